"""The storage contract for domain state: every Store answers like DomainState.

The first part runs on each kind of the ``store`` fixture (memory, sqlite,
postgres; see the "store fixtures" section of tests/conftest.py) and talks to the
store only through the Store/WriteTx protocol: hand-built domain changes applied
with ``apply_domain``, then every read checked on the store and inside a write
transaction. Then a short real sequence, checked by ``domain_changes`` through
:class:`tests.ledger.domain.World`, is applied both to a ``DomainState`` and to
the store, and every read must agree. The last part checks what only the SQL
store has: the rows it writes, and that nothing is written before commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import text

from ledger.domain.rules import (
    AddEdge,
    AddEvent,
    AddLotEvent,
    DomainChange,
    DomainView,
    EventRecord,
    LotState,
    MarkCorrected,
    PutLot,
    PutShipment,
    ShipmentState,
    domain_changes,
)
from ledger.domain.state import DomainState, LotEvent
from ledger.domain.trace import Edge
from ledger.errors import ConflictError
from ledger.hashing import ZERO_HASH, leaf_hash, sha256
from ledger.statements import Entry, Statement
from ledger.storage import Store, WriteTx
from ledger.storage.sql import SqlStore, SqlWriteTx
from tests.ledger.domain import ROLES, World, q, record

T0 = "2026-11-28T09:30:00+05:00"
T1 = "2026-11-28T09:31:00+05:00"
DOMAIN_TABLES = ("domain_events", "lots", "shipments", "lot_events", "lot_edges")


def eid(n: int) -> bytes:
    return sha256(b"event %d" % n)


def lot(lot_id: str, **fields: object) -> LotState:
    base: dict[str, object] = {
        "lot_id": lot_id,
        "crop": "rice",
        "unit_class": "mass",
        "quantity": 1_000_000,
        "custodian": "farm-a",
        "status": "held",
        "producer": "farm-a",
        "created_at": 0,
        "last_time": T0,
    }
    base.update(fields)
    return LotState(**base)  # type: ignore[arg-type]


def add_event(index: int, kind: str, participant: str = "farm-a", time: str = T0) -> AddEvent:
    return AddEvent(event_id=eid(index), index=index, kind=kind, participant=participant, time=time)


def touch(index: int, kind: str, *lot_ids: str) -> list[DomainChange]:
    return [AddLotEvent(lot_id=lot_id, index=index, kind=kind) for lot_id in lot_ids]


def edge(parent: str, child: str, index: int, kind: str = "transform") -> Edge:
    return Edge(parent=parent, child=child, index=index, kind=kind)  # type: ignore[arg-type]


def add_edge(e: Edge) -> AddEdge:
    return AddEdge(parent=e.parent, child=e.child, index=e.index, kind=e.kind)


def apply(store: Store, *batches: Sequence[DomainChange]) -> None:
    """Apply each batch with its own apply_domain call, all in one write transaction."""
    with store.write() as tx:
        for changes in batches:
            tx.apply_domain(changes)


# Lots, ids chosen so that code point order differs from a typical collation.
A, B, M1, M2, UNIT = "lot:farm-a:b", "lot:farm-a:A", "lot:mill:m1", "lot:mill:M2", "lot:mill:P1"

HARVESTS: list[DomainChange] = [
    add_event(0, "harvest"),
    PutLot(state=lot(A)),
    *touch(0, "harvest", A),
    add_event(1, "harvest", time=T1),
    PutLot(state=lot(B, quantity=500_000, created_at=1, last_time=T1)),
    *touch(1, "harvest", B),
]
# A transform listing B before A and M2 before M1: reads must keep the rules' order.
TRANSFORM_EDGES = [edge(B, M2, 2), edge(A, M2, 2), edge(B, M1, 2), edge(A, M1, 2)]
TRANSFORM: list[DomainChange] = [
    add_event(2, "transform", "farm-a", T1),
    PutLot(state=lot(B, quantity=0, status="consumed", created_at=1, last_time=T1)),
    PutLot(state=lot(A, quantity=0, status="consumed", last_time=T1)),
    PutLot(state=lot(M2, producer="farm-a", created_at=2, last_time=T1, quantity=700_000)),
    PutLot(state=lot(M1, producer="farm-a", created_at=2, last_time=T1, quantity=800_000)),
    *touch(2, "transform", B, A, M2, M1),
    *[add_edge(e) for e in TRANSFORM_EDGES],
]
SHIPMENT = ShipmentState(
    event_id=eid(3), lot=M1, sender="farm-a", consignee="mill", quantity=800_000, shipped_at=3
)
SHIP: list[DomainChange] = [
    add_event(3, "ship", "farm-a", T1),
    PutLot(
        state=lot(
            M1,
            custodian=None,
            status="in_transit",
            created_at=2,
            last_time=T1,
            quantity=800_000,
            shipment=eid(3).hex(),
        )
    ),
    *touch(3, "ship", M1),
    PutShipment(state=SHIPMENT),
]


def expected_after_first_three() -> DomainState:
    state = DomainState()
    state.apply([*HARVESTS, *TRANSFORM, *SHIP])
    return state


def assert_reads_agree(store: Store, state: DomainState, lot_ids: Sequence[str]) -> None:
    """Every store-level read equals the reference's for these lots and every event."""
    for lot_id in lot_ids:
        assert store.lot(lot_id) == state.lot(lot_id), lot_id
        assert store.history(lot_id) == state.history(lot_id), lot_id
        assert store.edges_into(lot_id) == state.edges_into(lot_id), lot_id
        assert store.edges_from(lot_id) == state.edges_from(lot_id), lot_id
    for event_id in state.events:
        assert store.event(event_id) == state.event(event_id)
    for event_id in state.shipments:
        assert store.shipment(event_id) == state.shipment(event_id)
    holders = {s.custodian for s in state.lots.values() if s.custodian is not None}
    for participant in sorted(holders | {"nobody"}):
        assert store.held_by(participant) == state.held_by(participant), participant


def assert_tx_reads(
    tx: WriteTx, view: DomainState, committed: DomainState, lots: list[str]
) -> None:
    """Inside a transaction: lots, shipments and events include the staged changes
    (``view``); edges are the committed ones, as in the reference, whose
    DomainOverlay stages lots, shipments and events only."""
    for lot_id in lots:
        assert tx.lot(lot_id) == view.lot(lot_id), lot_id
        assert tx.edges_into(lot_id) == committed.edges_into(lot_id), lot_id
        assert tx.edges_from(lot_id) == committed.edges_from(lot_id), lot_id
    for event_id in view.events:
        assert tx.event(event_id) == view.event(event_id)
    for event_id in view.shipments:
        assert tx.shipment(event_id) == view.shipment(event_id)


# ---------------------------------------------------------------------------
# The contract, on every store.


def test_empty_domain(store):
    assert store.lot(A) is None
    assert store.shipment(eid(3)) is None
    assert store.event(eid(0)) is None
    assert store.edges_into(A) == []
    assert store.edges_from(A) == []
    assert store.history(A) == []
    assert store.held_by("farm-a") == []
    with store.write() as tx:
        assert tx.lot(A) is None
        assert tx.shipment(eid(3)) is None
        assert tx.event(eid(0)) is None
        assert tx.edges_into(A) == []
        assert tx.edges_from(A) == []
        tx.apply_domain([])


def test_changes_read_back_on_the_store_and_inside_the_transaction(store):
    lots = [A, B, M1, M2, UNIT]
    staged = DomainState()
    with store.write() as tx:
        tx.apply_domain(HARVESTS)
        staged.apply(HARVESTS)
        assert_tx_reads(tx, staged, DomainState(), lots)
        tx.apply_domain(TRANSFORM)
        tx.apply_domain(SHIP)
        staged.apply([*TRANSFORM, *SHIP])
        assert_tx_reads(tx, staged, DomainState(), lots)
        assert tx.lot(A).status == "consumed"
        assert tx.event(eid(2)).lots == (B, A, M2, M1)
        assert tx.shipment(eid(3)) == SHIPMENT
        assert store.lot(A) is None  # not before commit
    state = expected_after_first_three()
    assert staged == state
    assert_reads_agree(store, state, lots)
    assert store.event(eid(2)) == EventRecord(
        event_id=eid(2), index=2, kind="transform", participant="farm-a", time=T1,
        lots=(B, A, M2, M1),
    )  # fmt: skip
    assert store.edges_into(M1) == [edge(B, M1, 2), edge(A, M1, 2)]
    assert store.edges_from(A) == [edge(A, M2, 2), edge(A, M1, 2)]

    # A second transaction reads the committed state and its own changes on top.
    receive = [
        add_event(4, "receive", "mill", T1),
        PutLot(state=lot(M1, custodian="mill", created_at=2, last_time=T1, quantity=790_000)),
        *touch(4, "receive", M1),
        PutShipment(state=replace(SHIPMENT, received_at=4, received_quantity=790_000, loss=10_000)),
    ]
    pack = [
        add_event(5, "pack", "mill", T1),
        PutLot(state=lot(M1, custodian="mill", status="packed", unit=UNIT, created_at=2,
                         last_time=T1, quantity=790_000)),
        PutLot(state=lot(UNIT, custodian="mill", producer="mill", created_at=5, last_time=T1,
                         crop="rice", unit_class="piece", quantity=1, contents=(M1,))),
        *touch(5, "pack", M1, UNIT),
        add_edge(edge(M1, UNIT, 5, "pack")),
    ]  # fmt: skip
    committed = state.copy()
    with store.write() as tx:
        assert_tx_reads(tx, committed, committed, lots)
        tx.apply_domain(receive)
        tx.apply_domain(pack)
        state.apply([*receive, *pack])
        assert_tx_reads(tx, state, committed, lots)
        assert tx.lot(UNIT).contents == (M1,)
        assert tx.shipment(eid(3)).loss == 10_000
    assert_reads_agree(store, state, lots)
    assert store.history(M1) == [
        LotEvent(lot_id=M1, index=2, kind="transform"),
        LotEvent(lot_id=M1, index=3, kind="ship"),
        LotEvent(lot_id=M1, index=4, kind="receive"),
        LotEvent(lot_id=M1, index=5, kind="pack"),
    ]
    assert store.edges_from(M1) == [edge(M1, UNIT, 5, "pack")]
    assert store.edges_into(M1) == [edge(B, M1, 2), edge(A, M1, 2)]
    assert store.held_by("mill") == [state.lot(UNIT), state.lot(M1)]  # "P1" < "m1"
    assert store.lot(UNIT).contents == (M1,)


def test_an_exception_rolls_back_every_domain_change(store):
    apply(store, HARVESTS, TRANSFORM)
    before = DomainState()
    before.apply([*HARVESTS, *TRANSFORM])
    boom = RuntimeError("boom")

    def doomed() -> None:
        with store.write() as tx:
            tx.apply_domain(SHIP)
            tx.apply_domain(
                [
                    add_event(4, "correct", "farm-a", T1),
                    PutLot(state=lot(A, quantity=1, status="held")),
                    PutLot(state=lot("lot:new:X")),
                    *touch(4, "correct", B, A, M2, M1),
                    MarkCorrected(event_id=eid(2), by_index=4),
                    add_edge(edge(M2, "lot:new:X", 4)),
                ]
            )
            assert tx.event(eid(2)).corrected_by == 4
            raise boom

    with pytest.raises(RuntimeError) as caught:
        doomed()
    assert caught.value is boom
    assert_reads_agree(store, before, [A, B, M1, M2, "lot:new:X"])
    assert store.shipment(eid(3)) is None
    assert store.event(eid(4)) is None
    assert store.event(eid(2)).corrected_by is None
    assert store.lot("lot:new:X") is None
    # The next transaction starts from the committed state.
    with store.write() as tx:
        assert tx.lot(A) == before.lot(A)
        assert tx.event(eid(2)).corrected_by is None
        tx.apply_domain(SHIP)
    before.apply(SHIP)
    assert_reads_agree(store, before, [A, B, M1, M2])


def test_a_refused_commit_rolls_back_the_domain_changes(store):
    """A ConflictError in the block (here: an entry leaving a gap) also undoes apply_domain."""

    def refused() -> None:
        with store.write() as tx:
            tx.apply_domain(HARVESTS)
            entry = Entry(index=5, accepted_ms=0, prev=ZERO_HASH, statement=b"{}", signature=b"s")
            tx.put_entry(entry, leaf_hash(entry.to_bytes()))

    with pytest.raises(ConflictError):
        refused()
    assert store.lot(A) is None
    assert store.event(eid(0)) is None
    assert store.history(A) == []


def test_upserts_replace(store):
    first, second, third = lot(A), lot(A, quantity=5, custodian="coop"), lot(A, status="sold")
    with store.write() as tx:
        tx.apply_domain([PutLot(state=first)])
        tx.apply_domain([PutLot(state=second)])
        assert tx.lot(A) == second
        tx.apply_domain([PutShipment(state=SHIPMENT)])
    assert store.lot(A) == second
    assert store.held_by("coop") == [second]
    assert store.held_by("farm-a") == []
    received = replace(SHIPMENT, received_at=9, received_quantity=1, loss=SHIPMENT.quantity - 1)
    with store.write() as tx:
        tx.apply_domain([PutLot(state=third), PutShipment(state=received)])
        assert tx.lot(A) == third
        assert tx.shipment(eid(3)) == received
    assert store.lot(A) == third
    assert store.shipment(eid(3)) == received
    assert store.held_by("coop") == []
    # Every optional field set, then cleared again.
    full = lot(
        A, custodian=None, status="in_transit", recalled_at=7, recall_reason="aflatoxin",
        unit=UNIT, contents=(M2, M1), shipment="ab" * 32,
    )  # fmt: skip
    apply(store, [PutLot(state=full)])
    assert store.lot(A) == full
    apply(store, [PutLot(state=first)])
    assert store.lot(A) == first


def test_mark_corrected_shows_in_event(store):
    apply(store, HARVESTS)
    correct_0 = [
        add_event(2, "correct", "farm-a", T1),
        *touch(2, "correct", A),
        MarkCorrected(event_id=eid(0), by_index=2),
    ]
    # Corrected in the same transaction that adds the statement.
    same_tx = [
        add_event(3, "store"),
        *touch(3, "store", B),
        MarkCorrected(event_id=eid(3), by_index=4),
    ]
    with store.write() as tx:
        tx.apply_domain(correct_0)
        assert tx.event(eid(0)) == EventRecord(
            event_id=eid(0), index=0, kind="harvest", participant="farm-a", time=T0,
            lots=(A,), corrected_by=2,
        )  # fmt: skip
        tx.apply_domain(same_tx)
        assert tx.event(eid(3)).corrected_by == 4
        assert tx.event(eid(1)).corrected_by is None
    assert store.event(eid(0)).corrected_by == 2
    assert store.event(eid(0)).lots == (A,)
    assert store.event(eid(3)).corrected_by == 4
    assert store.event(eid(2)) == EventRecord(
        event_id=eid(2), index=2, kind="correct", participant="farm-a", time=T1, lots=(A,)
    )
    assert [h.kind for h in store.history(A)] == ["harvest", "correct"]
    assert store.event(eid(1)).corrected_by is None


def test_mark_corrected_of_an_unknown_event_is_refused(store):
    apply(store, HARVESTS)
    with pytest.raises(KeyError), store.write() as tx:
        tx.apply_domain([MarkCorrected(event_id=eid(99), by_index=2)])
    assert store.event(eid(0)).corrected_by is None


def test_event_lots_history_and_edges_keep_log_order_across_transactions(store):
    """Rows of one statement may come in several calls or transactions: order is kept."""
    apply(
        store,
        [add_event(3, "transform"), *touch(3, "transform", M2), add_edge(edge(M2, M1, 3))],
        [add_edge(edge(B, M1, 3))],
    )
    apply(store, [add_edge(edge(A, M1, 3))])
    apply(store, [add_event(7, "pack"), *touch(7, "pack", M2)], touch(7, "pack", A))
    apply(store, [*touch(7, "pack", B), add_edge(edge(A, M2, 7, "pack"))])
    assert store.event(eid(7)).lots == (M2, A, B)
    assert store.edges_into(M1) == [edge(M2, M1, 3), edge(B, M1, 3), edge(A, M1, 3)]
    assert store.edges_from(A) == [edge(A, M1, 3), edge(A, M2, 7, "pack")]
    assert store.edges_into(M2) == [edge(A, M2, 7, "pack")]
    assert [(h.index, h.kind) for h in store.history(M2)] == [(3, "transform"), (7, "pack")]


def test_held_by(store):
    lots = [
        lot("lot:z", custodian="mill"),
        lot("lot:B", custodian="mill", status="packed", unit="lot:unit"),
        lot("lot:a", custodian="mill"),
        lot("lot:unit", custodian="mill", unit_class="piece", quantity=1, contents=("lot:B",)),
        lot("lot:sold", custodian="mill", status="sold", quantity=0),
        lot("lot:gone", custodian="mill", status="consumed", quantity=0),
        lot("lot:moving", custodian=None, status="in_transit"),
        lot("lot:other", custodian="coop"),
    ]
    apply(store, [PutLot(state=s) for s in lots])
    held = store.held_by("mill")
    assert [s.lot_id for s in held] == ["lot:B", "lot:a", "lot:unit", "lot:z"]
    assert held[0] == lots[1]
    assert store.held_by("coop") == [lots[-1]]
    assert store.held_by("nobody") == []


# ---------------------------------------------------------------------------
# A real sequence, checked by the rules, on DomainState and on the store.


@dataclass(frozen=True)
class Checked:
    """One statement of the sequence and what the rules made of it against DomainState."""

    statement: Statement
    participant: str
    index: int
    accepted_ms: int
    changes: list[DomainChange]

    @property
    def event_id(self) -> bytes:
        return bytes(self.statement.event_id)

    def check(self, view: DomainView) -> list[DomainChange]:
        return domain_changes(
            self.statement,
            event_id=self.event_id,
            index=self.index,
            accepted_ms=self.accepted_ms,
            participant=record(self.participant),
            view=view,
            participant_role=ROLES.get,
        )


def run_sequence(world: World) -> list[Checked]:
    """A short supply chain through the rules, applied to ``world.state``."""
    out: list[Checked] = []

    def do(pid: str, kind: str, body: dict[str, Any]) -> bytes:
        checked = Checked(
            statement=world.statement(kind, body),
            participant=pid,
            index=world.index,
            accepted_ms=world.now_ms,
            changes=[],
        )
        checked.changes.extend(checked.check(world.state))
        world.state.apply(checked.changes)
        out.append(checked)
        world.index += 1
        world.now_ms += 60_000
        return checked.event_id

    def harvest(pid: str, code: str, amount: int) -> None:
        body = {
            "lot": f"lot:{pid}:{code}", "crop": "rice", "plot": "plot 7",
            "harvest_date": "2026-11-27", "quantity": q(amount),
        }  # fmt: skip
        do(pid, "harvest", body)

    def ship(pid: str, lot_id: str, to: str, amount: int, unit: str = "kg") -> bytes:
        body = {"lot": lot_id, "to": to, "quantity": q(amount, unit), "transport": {"mode": "road"}}
        return do(pid, "ship", body)

    def receive(pid: str, shipment: bytes, amount: int, unit: str = "kg") -> None:
        do(pid, "receive", {"shipment": shipment.hex(), "quantity": q(amount, unit)})

    harvest("farm-a", "R1", 1000)
    harvest("farm-b", "R2", 500)
    receive("mill", ship("farm-a", "lot:farm-a:R1", "mill", 1000), 990)
    receive("mill", ship("farm-b", "lot:farm-b:R2", "mill", 500), 500)
    transform = {
        "process": "milling",
        "inputs": [
            {"lot": "lot:farm-b:R2", "quantity": q(200)},
            {"lot": "lot:farm-a:R1", "quantity": q(990)},
        ],
        "outputs": [
            {"lot": "lot:mill:M2", "crop": "rice", "quantity": q(400)},
            {"lot": "lot:mill:M1", "crop": "rice", "quantity": q(700)},
        ],
    }
    do("mill", "transform", transform)
    stored = do("mill", "store", {"lot": "lot:mill:M1", "facility": "silo"})
    do("mill", "correct", {"corrects": stored.hex(), "reason": "wrong silo"})
    do("mill", "pack", {"unit": "lot:mill:P1", "contents": ["lot:mill:M2", "lot:mill:M1"]})
    receive("market-lhr", ship("mill", "lot:mill:P1", "market-lhr", 1, "piece"), 1, "piece")
    do("market-lhr", "unpack", {"unit": "lot:mill:P1"})
    do("market-lhr", "sell", {"lot": "lot:mill:M1", "quantity": q(300)})
    do("farm-b", "recall", {"lot": "lot:farm-b:R2", "reason": "aflatoxin"})
    return out


SEQUENCE_LOTS = ["lot:farm-a:R1", "lot:farm-b:R2", "lot:mill:M1", "lot:mill:M2", "lot:mill:P1"]


def test_a_real_sequence_reads_the_same_as_domain_state(store):
    world = World()
    sequence = run_sequence(world)
    # Replay into the store, four statements per transaction: inside each, the
    # rules checked against the transaction return the very same changes.
    reference = DomainState()
    for start in range(0, len(sequence), 4):
        committed = reference.copy()
        with store.write() as tx:
            for checked in sequence[start : start + 4]:
                assert checked.check(tx) == checked.changes
                tx.apply_domain(checked.changes)
                reference.apply(checked.changes)
                assert_tx_reads(tx, reference, committed, SEQUENCE_LOTS)
    assert reference == world.state
    assert_reads_agree(store, world.state, SEQUENCE_LOTS)

    by_kind = {c.statement.kind: c for c in sequence}
    m1 = store.lot("lot:mill:M1")
    assert (m1.status, m1.custodian, m1.quantity) == ("held", "market-lhr", 400_000)
    assert [h.kind for h in store.history("lot:mill:M1")] == [
        "transform", "store", "correct", "pack", "ship", "receive", "unpack", "sell",
    ]  # fmt: skip
    assert store.event(by_kind["store"].event_id).corrected_by == by_kind["correct"].index
    assert store.event(by_kind["transform"].event_id).lots == (
        "lot:farm-b:R2", "lot:farm-a:R1", "lot:mill:M2", "lot:mill:M1",
    )  # fmt: skip
    assert [e.parent for e in store.edges_into("lot:mill:P1")] == ["lot:mill:M2", "lot:mill:M1"]
    assert [e.parent for e in store.edges_into("lot:mill:M1")] == [
        "lot:farm-b:R2", "lot:farm-a:R1",
    ]  # fmt: skip
    assert store.lot("lot:farm-b:R2").recalled_at == by_kind["recall"].index
    assert store.held_by("mill") == [world.state.lot("lot:farm-b:R2")]


# ---------------------------------------------------------------------------
# SqlStore only.


def count_rows(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
            for t in DOMAIN_TABLES
        }


def test_rows_as_stored(sql_store):
    unit = lot(UNIT, unit_class="piece", quantity=1, contents=(M2, M1, "lot:ünï"))
    apply(sql_store, HARVESTS, TRANSFORM, SHIP, [PutLot(state=unit)])
    assert count_rows(sql_store) == {
        "domain_events": 4, "lots": 5, "shipments": 1, "lot_events": 7, "lot_edges": 4,
    }  # fmt: skip
    with sql_store.engine.connect() as conn:
        contents = conn.execute(text("SELECT contents FROM lots WHERE lot_id = :l"), {"l": UNIT})
        assert contents.scalar_one() == '["lot:mill:M2","lot:mill:m1","lot:ünï"]'
        assert (
            conn.execute(text("SELECT contents FROM lots WHERE lot_id = :l"), {"l": A}).scalar_one()
            == "[]"
        )
        pos = conn.execute(text("SELECT lot_id, pos FROM lot_events WHERE idx = 2 ORDER BY pos"))
        assert pos.all() == [(B, 0), (A, 1), (M2, 2), (M1, 3)]
    assert sql_store.lot(UNIT) == unit


def test_domain_rows_are_written_at_commit_only(sql_store, monkeypatch):
    """Not in an early flush either: a rollback after one leaves no domain rows."""
    monkeypatch.setattr(SqlWriteTx, "FLUSH_ROWS", 2)
    empty = dict.fromkeys(DOMAIN_TABLES, 0)

    def doomed() -> None:
        with sql_store.write() as tx:
            prev = ZERO_HASH
            for index in range(4):
                entry = Entry(
                    index=index, accepted_ms=0, prev=prev, statement=b"%d" % index, signature=b"s"
                )
                prev = leaf_hash(entry.to_bytes())
                tx.put_entry(entry, prev)
                tx.apply_domain(HARVESTS if index == 0 else [])
            assert tx._entry_rows == []  # flushed early
            assert tx._conn.execute(text("SELECT count(*) FROM lots")).scalar_one() == 0
            assert tx.lot(A) == lot(A)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        doomed()
    assert count_rows(sql_store) == empty
    assert sql_store.size() == 0


def test_a_duplicate_event_is_refused_at_commit(sql_store):
    """Stricter than the reference, which would overwrite: domain_events are inserts."""
    apply(sql_store, HARVESTS)
    with pytest.raises(ConflictError):
        apply(sql_store, [add_event(0, "harvest")])
    with pytest.raises(ConflictError):
        apply(sql_store, [add_event(5, "store")], [add_event(5, "store")])
    assert sql_store.event(eid(5)) is None


def test_a_transaction_reads_each_stored_row_once(sql_store, monkeypatch):
    from ledger.storage import sql

    apply(sql_store, HARVESTS)
    queries: list[str] = []
    fetch = sql._Driver.fetch

    def counted(self, statement, params):
        queries.append(statement.sql)
        return fetch(self, statement, params)

    monkeypatch.setattr(sql._Driver, "fetch", counted)
    with sql_store.write() as tx:
        for _ in range(3):
            assert tx.lot(A) == lot(A)
            assert tx.lot("lot:none") is None
            assert tx.event(eid(0)).lots == (A,)
            assert tx.shipment(eid(3)) is None
        # lot A, lot:none, the event and its lots, the shipment.
        assert len(queries) == 5
        tx.apply_domain([add_event(2, "store"), *touch(2, "store", A)])
        assert len(queries) == 5  # a new statement's rows number from 0 without asking
        tx.apply_domain(touch(1, "harvest", "lot:late"))
        assert len(queries) == 6  # a stored statement's next row asks once


def test_database_errors_inside_the_transaction_are_storage_errors(sql_store):
    from ledger.errors import StorageError

    with sql_store.engine.begin() as conn:
        conn.execute(text("DROP TABLE lots"))
    with pytest.raises(StorageError, match="database error"), sql_store.write() as tx:
        tx.lot(A)


def test_the_domain_migration_downgrades_and_upgrades(sql_url):
    from alembic import command

    from ledger.storage import sql
    from ledger.storage.sql import migrate, schema_status

    migrate(sql_url)
    store = SqlStore.open(sql_url)
    try:
        engine = store.engine
        with engine.begin() as conn:
            config = sql._alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        with engine.connect() as conn:
            assert not any(conn.dialect.has_table(conn, table) for table in DOMAIN_TABLES)
    finally:
        store.close()
    assert schema_status(sql_url)[0] == "0001"
    migrate(sql_url)
    store = SqlStore.open(sql_url)
    try:
        apply(store, HARVESTS)
        assert store.lot(A) == lot(A)
    finally:
        store.close()
