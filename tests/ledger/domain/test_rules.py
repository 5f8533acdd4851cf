"""The supply-chain rules: the happy paths, and one refusal per rule code.

Every refusal test asserts the code, the lot and the numbers, and that the
state did not change (domain_changes is pure; the test also never applies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.domain import (
    PERMISSIONS,
    RULE_CODES,
    AddEdge,
    AddEvent,
    AddLotEvent,
    MarkCorrected,
    PutLot,
    PutShipment,
    domain_changes,
    recalled_upstream,
    trace_back,
    trace_forward,
)
from ledger.errors import EncodingError, RuleError
from ledger.registry import ParticipantRecord
from tests.ledger.domain import ROLES, World, q, record, rfc3339

DOC = "ab" * 32


@pytest.fixture
def world() -> World:
    w = World()
    w.harvest("farm-a", "R1", 1000)
    return w


def refuse(world: World, pid: str, kind: str, body: dict[str, Any], **kw: Any) -> RuleError:
    before = world.state.copy()
    with pytest.raises(RuleError) as info:
        world.changes(pid, kind, body, **kw)
    assert world.state == before
    return info.value


# ---------------------------------------------------------------------------
# Happy paths.


def test_harvest_creates_the_lot(world):
    lot = world.state.lot("lot:farm-a:R1")
    assert lot is not None
    assert (lot.crop, lot.unit_class, lot.quantity) == ("rice", "mass", 1_000_000)
    assert (lot.custodian, lot.status, lot.producer) == ("farm-a", "held", "farm-a")
    assert lot.created_at == 10
    assert [e.kind for e in world.state.history(lot.lot_id)] == ["harvest"]


def test_changes_are_plain_values_in_a_fixed_order(world):
    event_id, changes = world.changes(
        "farm-a", "store", {"lot": "lot:farm-a:R1", "facility": "barn", "temperature_dc": 215}
    )
    assert [type(c) for c in changes] == [AddEvent, PutLot, AddLotEvent]
    assert changes[0] == AddEvent(
        event_id=event_id, index=world.index, kind="store", participant="farm-a",
        time=rfc3339(world.now_ms),
    )  # fmt: skip


def test_ship_receive_with_loss(world):
    shipment = world.ship("farm-a", "lot:farm-a:R1", "coop", 1000)
    lot = world.state.lot("lot:farm-a:R1")
    assert (lot.status, lot.custodian, lot.shipment) == ("in_transit", None, shipment.hex())
    world.receive("coop", shipment, 990)
    lot = world.state.lot("lot:farm-a:R1")
    assert (lot.status, lot.custodian, lot.quantity, lot.shipment) == (
        "held",
        "coop",
        990_000,
        None,
    )
    record = world.state.shipment(shipment)
    assert (record.quantity, record.received_quantity, record.loss) == (1_000_000, 990_000, 10_000)
    assert (record.sender, record.consignee, record.received_at) == ("farm-a", "coop", 12)


def test_split_merge_pack_ship_unpack_sell(world):
    world.harvest("farm-b", "R2", 500)
    for farm, lot, amount in (("farm-a", "R1", 1000), ("farm-b", "R2", 500)):
        world.receive("mill", world.ship(farm, f"lot:{farm}:{lot}", "mill", amount), amount)
    world.do(
        "mill",
        "transform",
        {
            "process": "milling",
            "inputs": [
                {"lot": "lot:farm-a:R1", "quantity": q(1000)},
                {"lot": "lot:farm-b:R2", "quantity": q(200)},
            ],
            "outputs": [
                {"lot": "lot:mill:M1", "crop": "rice", "quantity": q(700)},
                {"lot": "lot:mill:M2", "crop": "rice", "quantity": q(400)},
            ],
        },
    )
    state = world.state
    assert state.lot("lot:farm-a:R1").status == "consumed"
    assert state.lot("lot:farm-b:R2").quantity == 300_000
    assert state.lot("lot:mill:M1").producer == "mill"
    assert {(e.parent, e.child) for e in state.edges_into("lot:mill:M1")} == {
        ("lot:farm-a:R1", "lot:mill:M1"),
        ("lot:farm-b:R2", "lot:mill:M1"),
    }
    world.do("mill", "pack", {"unit": "lot:mill:P1", "contents": ["lot:mill:M1", "lot:mill:M2"]})
    unit = state.lot("lot:mill:P1")
    assert (unit.quantity, unit.unit_class, unit.crop) == (1, "piece", "rice")
    assert state.lot("lot:mill:M1").unit == "lot:mill:P1"
    shipment = world.ship("mill", "lot:mill:P1", "market-lhr", 1, "piece")
    assert state.lot("lot:mill:M2").custodian is None
    assert state.lot("lot:mill:M2").shipment == shipment.hex()
    world.receive("market-lhr", shipment, 1, "piece")
    assert state.lot("lot:mill:M2").custodian == "market-lhr"
    assert state.lot("lot:mill:M2").status == "packed"
    world.do("market-lhr", "unpack", {"unit": "lot:mill:P1"})
    assert state.lot("lot:mill:P1").status == "consumed"
    assert state.lot("lot:mill:M1").status == "held"
    world.do("market-lhr", "sell", {"lot": "lot:mill:M1", "quantity": q(700)})
    world.do(
        "market-lhr",
        "sell",
        {
            "lot": "lot:mill:M2",
            "quantity": q(100),
            "price": {"amount_minor": 2500, "currency": "PKR"},
        },
    )
    assert state.lot("lot:mill:M1").status == "sold"
    assert state.lot("lot:mill:M2").quantity == 300_000
    assert [h.kind for h in state.history("lot:mill:M1")] == [
        "transform", "pack", "ship", "receive", "unpack", "sell",
    ]  # fmt: skip
    assert trace_back("lot:mill:P1", state).lot_ids == (
        "lot:mill:P1", "lot:mill:M1", "lot:mill:M2", "lot:farm-a:R1", "lot:farm-b:R2",
    )  # fmt: skip
    assert set(trace_forward("lot:farm-b:R2", state).lot_ids) == {
        "lot:farm-b:R2", "lot:mill:M1", "lot:mill:M2", "lot:mill:P1",
    }  # fmt: skip
    assert state.held_by("market-lhr") == [state.lot("lot:mill:M2")]


def test_nested_units_follow_the_outer_unit(world):
    world.harvest("farm-a", "R2", 10, "crate", "mango")
    world.do("farm-a", "pack", {"unit": "lot:farm-a:P1", "contents": ["lot:farm-a:R1"]})
    world.do(
        "farm-a", "pack", {"unit": "lot:farm-a:C1", "contents": ["lot:farm-a:P1", "lot:farm-a:R2"]}
    )
    assert world.state.lot("lot:farm-a:C1").crop == "mixed"
    shipment = world.ship("farm-a", "lot:farm-a:C1", "depot", 1, "piece")
    assert world.state.lot("lot:farm-a:R1").shipment == shipment.hex()
    world.receive("depot", shipment, 1, "piece")
    assert world.state.lot("lot:farm-a:R1").custodian == "depot"
    world.do("depot", "unpack", {"unit": "lot:farm-a:C1"})
    assert world.state.lot("lot:farm-a:P1").status == "held"
    assert world.state.lot("lot:farm-a:R1").status == "packed"


def test_inspect_recall_and_correct(world):
    world.do(
        "lab",
        "inspect",
        {"lot": "lot:farm-a:R1", "inspection": "residue", "result": "pass", "document": DOC},
    )
    store = world.do("farm-a", "store", {"lot": "lot:farm-a:R1", "facility": "barn"})
    world.do("farm-a", "correct", {"corrects": store.hex(), "reason": "wrong barn"})
    assert world.state.event(store).corrected_by == 13
    assert [h.kind for h in world.state.history("lot:farm-a:R1")] == [
        "harvest", "inspect", "store", "correct",
    ]  # fmt: skip
    world.do("farm-a", "recall", {"lot": "lot:farm-a:R1", "reason": "aflatoxin"})
    lot = world.state.lot("lot:farm-a:R1")
    assert (lot.recalled_at, lot.recall_reason) == (14, "aflatoxin")
    assert recalled_upstream("lot:farm-a:R1", world.state) == (lot,)


def test_operator_recalls_any_lot(world):
    world.do("op", "recall", {"lot": "lot:farm-a:R1", "reason": "order"})
    assert world.state.lot("lot:farm-a:R1").recalled_at is not None


def test_correct_with_replacement(world):
    first = world.do("farm-a", "store", {"lot": "lot:farm-a:R1", "facility": "barn 1"})
    second = world.do("farm-a", "store", {"lot": "lot:farm-a:R1", "facility": "barn 2"})
    body = {"corrects": first.hex(), "reason": "typo", "replacement": second.hex()}
    _, changes = world.changes("farm-a", "correct", body)
    assert MarkCorrected(event_id=first, by_index=world.index) in changes


def test_registry_kinds_are_not_ours(world):
    _, changes = world.changes("op", "enrol", {"anything": 1})
    assert changes == []


def test_unknown_kind(world):
    with pytest.raises(EncodingError) as info:
        world.changes("farm-a", "teleport", {})
    assert (info.value.code, info.value.field) == ("unknown_kind", "kind")


def test_bad_body_names_the_field(world):
    body = {
        "process": "milling",
        "inputs": [{"lot": "lot:farm-a:R1", "quantity": q(1)}],
        "outputs": [{"lot": "lot:farm-a:X", "crop": "rice", "quantity": q(1, "tonne")}],
    }
    with pytest.raises(EncodingError) as info:
        world.changes("farm-a", "transform", body)
    assert (info.value.code, info.value.field) == ("bad_unit", "body.outputs[0].quantity.unit")


def test_permission_table():
    assert PERMISSIONS["transporter"] == {"store", "ship", "receive", "correct"}
    assert "harvest" not in PERMISSIONS["transporter"]
    assert {r for r, kinds in PERMISSIONS.items() if "harvest" in kinds} == {"producer"}
    assert {r for r, kinds in PERMISSIONS.items() if "inspect" in kinds} == {"inspector"}
    assert {r for r, kinds in PERMISSIONS.items() if "sell" in kinds} == {"market"}
    assert {r for r, kinds in PERMISSIONS.items() if "recall" in kinds} == {"producer", "operator"}
    assert set(PERMISSIONS) == set(ROLES.values())


def test_edges_of_a_transform(world):
    body = {
        "process": "splitting",
        "inputs": [{"lot": "lot:farm-a:R1", "quantity": q(1000)}],
        "outputs": [
            {"lot": "lot:farm-a:S1", "crop": "rice", "quantity": q(600)},
            {"lot": "lot:farm-a:S2", "crop": "rice", "quantity": q(400)},
        ],
    }
    _, changes = world.changes("farm-a", "transform", body)
    assert [c for c in changes if isinstance(c, AddEdge)] == [
        AddEdge(
            parent="lot:farm-a:R1", child=f"lot:farm-a:S{i}", index=world.index, kind="transform"
        )
        for i in (1, 2)
    ]
    assert not [c for c in changes if isinstance(c, PutShipment)]


# ---------------------------------------------------------------------------
# One refusal per rule code.


@dataclass
class Case:
    pid: str
    kind: str
    body: dict[str, Any]
    lot: str | None
    numbers: dict[str, Any] = field(default_factory=dict)
    kw: dict[str, Any] = field(default_factory=dict)


R1 = "lot:farm-a:R1"


def _store(lot: str = R1) -> dict[str, Any]:
    return {"lot": lot, "facility": "barn"}


def _ship_body(lot: str, to: str, amount: int, unit: str = "kg") -> dict[str, Any]:
    return {"lot": lot, "to": to, "quantity": q(amount, unit), "transport": {"mode": "road"}}


def _split(inputs: list[tuple[str, int]], outputs: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "process": "splitting",
        "inputs": [{"lot": lot, "quantity": q(n)} for lot, n in inputs],
        "outputs": [{"lot": lot, "crop": "rice", "quantity": q(n)} for lot, n in outputs],
    }


def case_already_corrected(w: World) -> Case:
    store = w.do("farm-a", "store", _store())
    w.do("farm-a", "correct", {"corrects": store.hex(), "reason": "x"})
    return Case(
        "farm-a", "correct", {"corrects": store.hex(), "reason": "y"}, None,
        {"index": 11, "corrected_by": 12},
    )  # fmt: skip


def case_already_received(w: World) -> Case:
    shipment = w.ship("farm-a", R1, "coop", 1000)
    w.receive("coop", shipment, 1000)
    return Case(
        "coop", "receive", {"shipment": shipment.hex(), "quantity": q(1000)}, R1,
        {"received_at": 12},
    )  # fmt: skip


def case_already_recalled(w: World) -> Case:
    w.do("op", "recall", {"lot": R1, "reason": "x"})
    return Case("farm-a", "recall", {"lot": R1, "reason": "y"}, R1, {"recalled_at": 11})


def case_harvest_date_in_future(w: World) -> Case:
    body = {
        "lot": "lot:farm-a:R9", "crop": "rice", "plot": "p", "harvest_date": "2026-11-29",
        "quantity": q(1),
    }  # fmt: skip
    return Case(
        "farm-a", "harvest", body, "lot:farm-a:R9",
        {"harvest_date": "2026-11-29", "date": "2026-11-28"},
    )  # fmt: skip


def case_in_transit(w: World) -> Case:
    shipment = w.ship("farm-a", R1, "coop", 1000)
    return Case("farm-a", "ship", _ship_body(R1, "mill", 1000), R1, {"shipment": shipment.hex()})


def case_lot_closed(w: World) -> Case:
    w.do("farm-a", "transform", _split([(R1, 1000)], [("lot:farm-a:S1", 1000)]))
    return Case("farm-a", "store", _store(), R1, {"status": "consumed"})


def case_lot_exists(w: World) -> Case:
    body = {
        "lot": R1, "crop": "rice", "plot": "p", "harvest_date": "2026-11-01", "quantity": q(1),
    }  # fmt: skip
    return Case("farm-a", "harvest", body, R1)


def case_lot_is_unit(w: World) -> Case:
    w.do("farm-a", "pack", {"unit": "lot:farm-a:U1", "contents": [R1]})
    body = _split([("lot:farm-a:U1", 1)], [("lot:farm-a:S1", 1)])
    body["inputs"][0]["quantity"] = q(1, "piece")
    body["outputs"][0]["quantity"] = q(1, "piece")
    return Case("farm-a", "transform", body, "lot:farm-a:U1")


def case_lot_packed(w: World) -> Case:
    w.do("farm-a", "pack", {"unit": "lot:farm-a:U1", "contents": [R1]})
    return Case("farm-a", "ship", _ship_body(R1, "coop", 1000), R1, {"unit": "lot:farm-a:U1"})


def case_lot_prefix(w: World) -> Case:
    body = {
        "lot": "lot:farm-b:R1", "crop": "rice", "plot": "p", "harvest_date": "2026-11-01",
        "quantity": q(1),
    }  # fmt: skip
    return Case(
        "farm-a", "harvest", body, "lot:farm-b:R1", {"prefix": "farm-b", "participant": "farm-a"}
    )


def case_not_a_unit(w: World) -> Case:
    return Case("farm-a", "unpack", {"unit": R1}, R1)


def case_not_consignee(w: World) -> Case:
    shipment = w.ship("farm-a", R1, "coop", 1000)
    return Case(
        "mill", "receive", {"shipment": shipment.hex(), "quantity": q(1000)}, R1,
        {"consignee": "coop", "participant": "mill"},
    )  # fmt: skip


def case_not_custodian(w: World) -> Case:
    w.receive("coop", w.ship("farm-a", R1, "coop", 1000), 1000)
    return Case("farm-a", "store", _store(), R1, {"custodian": "coop", "participant": "farm-a"})


def case_not_own_statement(w: World) -> Case:
    store = w.do("farm-a", "store", _store())
    return Case(
        "farm-b", "correct", {"corrects": store.hex(), "reason": "x"}, None,
        {"index": 11, "signer": "farm-a"},
    )  # fmt: skip


def case_not_permitted(w: World) -> Case:
    body = {
        "lot": "lot:truck:R1", "crop": "rice", "plot": "p", "harvest_date": "2026-11-01",
        "quantity": q(1),
    }  # fmt: skip
    return Case("truck", "harvest", body, None, {"role": "transporter", "kind": "harvest"})


def case_quantity_exceeds_held(w: World) -> Case:
    return Case(
        "farm-a", "transform", _split([(R1, 1001)], [("lot:farm-a:S1", 1)]), R1,
        {"held": 1_000_000, "requested": 1_001_000, "unit": "g"},
    )  # fmt: skip


def case_received_exceeds_shipped(w: World) -> Case:
    shipment = w.ship("farm-a", R1, "coop", 1000)
    return Case(
        "coop", "receive", {"shipment": shipment.hex(), "quantity": q(1001)}, R1,
        {"shipped": 1_000_000, "received": 1_001_000, "unit": "g"},
    )  # fmt: skip


def case_ship_quantity_mismatch(w: World) -> Case:
    return Case(
        "farm-a", "ship", _ship_body(R1, "coop", 900), R1,
        {"held": 1_000_000, "requested": 900_000, "unit": "g"},
    )  # fmt: skip


def case_time_before_inputs(w: World) -> Case:
    earlier = rfc3339(w.now_ms - 120_000)
    return Case(
        "farm-a", "store", _store(), R1,
        {"time": earlier, "last_time": rfc3339(w.now_ms - 60_000)}, {"time": earlier},
    )  # fmt: skip


def case_time_in_future(w: World) -> Case:
    later = w.now_ms + 5 * 60_000 + 1000
    return Case(
        "farm-a", "store", _store(), None,
        {"time_ms": later, "accepted_ms": w.now_ms, "skew_ms": 300_000}, {"time": rfc3339(later)},
    )  # fmt: skip


def case_transform_creates_mass(w: World) -> Case:
    return Case(
        "farm-a", "transform",
        _split([(R1, 500)], [("lot:farm-a:S1", 400), ("lot:farm-a:S2", 101)]), "lot:farm-a:S1",
        {"input": 500_000, "output": 501_000, "unit": "g"},
    )  # fmt: skip


def case_unit_mismatch(w: World) -> Case:
    return Case(
        "farm-a", "ship", _ship_body(R1, "coop", 1000, "crate"), R1,
        {"lot_unit_class": "mass", "unit": "crate"},
    )  # fmt: skip


def case_unknown_event(w: World) -> Case:
    return Case("farm-a", "correct", {"corrects": "cd" * 32, "reason": "x"}, None)


def case_unknown_lot(w: World) -> Case:
    return Case("farm-a", "store", _store("lot:farm-a:NOPE"), "lot:farm-a:NOPE")


def case_unknown_participant(w: World) -> Case:
    return Case("farm-a", "ship", _ship_body(R1, "nobody", 1000), None, {"participant": "nobody"})


def case_consignee_cannot_receive(w: World) -> Case:
    return Case(
        "farm-a",
        "ship",
        _ship_body(R1, "lab", 1000),
        R1,
        {"participant": "lab", "role": "inspector"},
    )


def case_unknown_shipment(w: World) -> Case:
    return Case("coop", "receive", {"shipment": "ef" * 32, "quantity": q(1)}, None)


CASES: dict[str, Callable[[World], Case]] = {
    name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")
}


def test_every_rule_code_has_a_case():
    assert set(CASES) == set(RULE_CODES)


@pytest.mark.parametrize("code", RULE_CODES)
def test_refusal(world, code):
    case = CASES[code](world)
    error = refuse(world, case.pid, case.kind, case.body, **case.kw)
    assert error.code == code
    assert error.lot == case.lot
    assert error.numbers == case.numbers


def test_recall_by_another_producer_is_not_permitted(world):
    error = refuse(world, "farm-b", "recall", {"lot": R1, "reason": "x"})
    assert (error.code, error.lot) == ("not_permitted", R1)
    assert error.numbers == {"producer": "farm-a", "participant": "farm-b"}


def test_ship_beyond_held_is_quantity_exceeds_held(world):
    error = refuse(world, "farm-a", "ship", _ship_body(R1, "coop", 1001))
    assert error.code == "quantity_exceeds_held"
    assert error.numbers == {"held": 1_000_000, "requested": 1_001_000, "unit": "g"}


def test_sell_beyond_held(world):
    world.receive("market-khi", world.ship("farm-a", R1, "market-khi", 1000), 900)
    error = refuse(world, "market-khi", "sell", {"lot": R1, "quantity": q(901)})
    assert (error.code, error.numbers["held"], error.numbers["requested"]) == (
        "quantity_exceeds_held", 900_000, 901_000,
    )  # fmt: skip


def test_pack_an_already_packed_lot(world):
    world.do("farm-a", "pack", {"unit": "lot:farm-a:U1", "contents": [R1]})
    error = refuse(world, "farm-a", "pack", {"unit": "lot:farm-a:U2", "contents": [R1]})
    assert (error.code, error.lot) == ("lot_packed", R1)


def test_unknown_carrier(world):
    body = _ship_body(R1, "coop", 1000)
    body["transport"]["carrier"] = "ghost"
    error = refuse(world, "farm-a", "ship", body)
    assert (error.code, error.field) == ("unknown_participant", "body.transport.carrier")


def test_replacement_must_be_own(world):
    own = world.do("farm-a", "store", _store())
    world.harvest("farm-b", "R2", 5)
    other = world.state.history("lot:farm-b:R2")[0].index
    other_id = world.state.event_ids[other]
    body = {"corrects": own.hex(), "reason": "x", "replacement": other_id.hex()}
    error = refuse(world, "farm-a", "correct", body)
    assert (error.code, error.field) == ("not_own_statement", "body.replacement")


def test_count_units_transform_cannot_create_crates(world):
    world.harvest("farm-a", "M1", 10, "crate", "mango")
    body = {
        "process": "sorting",
        "inputs": [{"lot": "lot:farm-a:M1", "quantity": q(10, "crate")}],
        "outputs": [{"lot": "lot:farm-a:M2", "crop": "mango", "quantity": q(11, "crate")}],
    }
    error = refuse(world, "farm-a", "transform", body)
    assert error.numbers == {"input": 10, "output": 11, "unit": "crate"}


def test_mass_to_count_transform_is_not_mass_checked(world):
    body = {
        "process": "other",
        "inputs": [{"lot": R1, "quantity": q(1)}],
        "outputs": [{"lot": "lot:farm-a:B1", "crop": "rice", "quantity": q(500, "bag")}],
    }
    world.do("farm-a", "transform", body)
    assert world.state.lot("lot:farm-a:B1").quantity == 500


def test_participant_without_role_is_not_permitted(world):
    statement = world.statement("store", _store())
    with pytest.raises(RuleError) as info:
        domain_changes(
            statement,
            event_id=bytes(statement.event_id),
            index=world.index,
            accepted_ms=world.now_ms,
            participant=ParticipantRecord(participant_id="x", profile={}, enrolled_at=1),
            view=world.state,
            participant_role=lambda _: "market",
        )
    assert info.value.code == "not_permitted"


def test_event_id_length_is_a_programmer_error(world):
    statement = world.statement("store", _store())
    with pytest.raises(ValueError, match="32 bytes"):
        domain_changes(
            statement,
            event_id=b"short",
            index=world.index,
            accepted_ms=world.now_ms,
            participant=record("farm-a"),
            view=world.state,
            participant_role=lambda _: "market",
        )


def test_package_all_is_sorted_and_curated():
    import importlib

    import ledger.domain

    def isort_key(name):
        if name.isupper() or (name.upper() == name and "_" in name):
            return (0, name)
        return (1, name) if name[:1].isupper() else (2, name)

    assert ledger.domain.__all__ == sorted(ledger.domain.__all__, key=isort_key)
    shape_helpers = {"check_date", "check_enum", "check_ext", "check_object", "check_text"}
    expected: set[str] = set()
    for name in (
        "ids",
        "quantities",
        "personal",
        "participants",
        "kinds",
        "rules",
        "trace",
        "state",
    ):
        expected |= set(importlib.import_module(f"ledger.domain.{name}").__all__)
    assert set(ledger.domain.__all__) == expected - shape_helpers
    for name in ledger.domain.__all__:
        assert hasattr(ledger.domain, name), name
