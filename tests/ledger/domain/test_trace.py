"""Trace back and forward: order, depth and size limits, recalls; the overlay view."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.domain import (
    AddEdge,
    AddEvent,
    DomainOverlay,
    DomainState,
    LotState,
    MarkCorrected,
    PutLot,
    holdings,
    recalled_upstream,
    trace_back,
    trace_forward,
)
from ledger.errors import NotFoundError


def lot(name: str, **kw) -> LotState:
    fields = {
        "lot_id": f"lot:p:{name}", "crop": "rice", "unit_class": "mass", "quantity": 1,
        "custodian": "p", "status": "held", "producer": "p", "created_at": 0,
        "last_time": "2026-11-28T09:30:00+05:00",
    } | kw  # fmt: skip
    return LotState(**fields)


def graph(edges: list[tuple[str, str]], **states: LotState) -> DomainState:
    state = DomainState()
    names = {n for e in edges for n in e}
    state.apply([PutLot(state=states.get(n, lot(n))) for n in sorted(names)])
    state.apply(
        AddEdge(parent=f"lot:p:{a}", child=f"lot:p:{b}", index=i, kind="transform")
        for i, (a, b) in enumerate(edges)
    )
    return state


def ids(*names: str) -> tuple[str, ...]:
    return tuple(f"lot:p:{n}" for n in names)


def test_diamond_is_walked_once_breadth_first():
    # a and b feed c; c is split into d and e; d and e merge into f.
    state = graph([("a", "c"), ("b", "c"), ("c", "d"), ("c", "e"), ("d", "f"), ("e", "f")])
    back = trace_back("lot:p:f", state)
    assert back.lots == tuple(
        zip(ids("f", "d", "e", "c", "a", "b"), (0, 1, 1, 2, 3, 3), strict=True)
    )
    assert len(back.edges) == 6
    assert not back.truncated
    forward = trace_forward("lot:p:a", state)
    assert forward.lot_ids == ids("a", "c", "d", "e", "f")
    assert forward.direction == "forward"
    assert trace_forward("lot:p:f", state).lot_ids == ids("f")


def test_depth_limit_truncates():
    chain = [(str(i), str(i + 1)) for i in range(60)]
    state = graph(chain)
    back = trace_back("lot:p:60", state)
    assert back.truncated
    assert len(back.lots) == 51
    assert back.lots[-1] == ("lot:p:10", 50)
    exact = trace_back("lot:p:50", state)
    assert not exact.truncated
    assert len(exact.lots) == 51


def test_a_diamond_at_the_depth_limit_is_not_truncation():
    state = graph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    forward = trace_forward("lot:p:a", state, max_depth=2)
    assert not forward.truncated
    assert len(forward.edges) == 4


def test_size_limit_truncates():
    state = graph([(str(i), "root") for i in range(20)])
    back = trace_back("lot:p:root", state, max_lots=5)
    assert back.truncated
    assert len(back.lots) == 5
    assert len(back.edges) == 4


def test_limits_and_unknown_lots():
    state = graph([("a", "b")])
    with pytest.raises(NotFoundError) as info:
        trace_back("lot:p:zzz", state)
    assert info.value.code == "unknown_lot"
    with pytest.raises(ValueError, match="max_depth"):
        trace_forward("lot:p:a", state, max_depth=-1)
    with pytest.raises(ValueError, match="max_lots"):
        trace_forward("lot:p:a", state, max_lots=0)
    assert trace_back("lot:p:b", state, max_depth=0).truncated


def test_recall_banner_and_recall_list():
    recalled = lot("a", recalled_at=7, recall_reason="aflatoxin")
    state = graph([("a", "c"), ("b", "c"), ("c", "d")], a=recalled)
    assert recalled_upstream("lot:p:d", state) == (recalled,)
    assert recalled_upstream("lot:p:b", state) == ()
    recall_list = holdings(trace_forward("lot:p:a", state), state)
    assert [s.lot_id for s in recall_list] == list(ids("a", "c", "d"))


def test_overlay_stages_changes_over_a_base():
    base = graph([("a", "b")])
    base.apply([AddEvent(event_id=b"\x01" * 32, index=3, kind="store", participant="p", time="t")])
    overlay = DomainOverlay(base)
    moved = replace(base.lots["lot:p:a"], custodian="q")
    overlay.apply([PutLot(state=moved), MarkCorrected(event_id=b"\x01" * 32, by_index=9)])
    assert overlay.lot("lot:p:a") == moved
    assert overlay.lot("lot:p:b") == base.lot("lot:p:b")
    assert overlay.event(b"\x01" * 32).corrected_by == 9
    assert base.event(b"\x01" * 32).corrected_by is None
    assert base.lot("lot:p:a").custodian == "p"
    assert overlay.shipment(b"\x02" * 32) is None
    assert overlay.event(b"\x02" * 32) is None
