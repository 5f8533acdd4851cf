"""Body schemas of the statement kinds, and their EPCIS mapping."""

from __future__ import annotations

import copy

import pytest

from ledger.domain.kinds import (
    DOMAIN_KINDS,
    EPCIS_MAP,
    MAX_CONTENTS,
    MAX_TRANSFORM_LOTS,
    HarvestBody,
    InspectBody,
    ReceiveBody,
    TransformBody,
    epcis_disposition,
    parse_body,
)
from ledger.domain.quantities import Money, Quantity
from ledger.errors import EncodingError

LOT = "lot:farm-a:R1"
GS1_LOT = "gtin:09506000134352:AB%2F12"
HEX = "ab" * 32
Q = {"amount": 10, "unit": "kg"}

# One body per kind with every optional field, and the fields it requires.
FULL = {
    "harvest": {
        "lot": LOT, "crop": "rice", "variety": "Super Basmati", "plot": "Chak 12, plot 7",
        "harvest_date": "2026-11-20", "quantity": Q, "ext": {"moisture_pct": 14},
    },
    "store": {
        "lot": LOT, "facility": "Cold store 2", "condition": "dry", "temperature_dc": -45,
    },
    "transform": {
        "process": "milling",
        "inputs": [{"lot": LOT, "quantity": Q}, {"lot": GS1_LOT, "quantity": Q}],
        "outputs": [{"lot": "lot:mill:M1", "crop": "rice", "variety": "Super", "quantity": Q}],
    },
    "pack": {"unit": "lot:mill:P1", "contents": [LOT, GS1_LOT]},
    "unpack": {"unit": "lot:mill:P1"},
    "ship": {
        "lot": LOT, "to": "market-lhr", "quantity": Q,
        "transport": {"mode": "road", "vehicle": "LES-1234", "carrier": "truck"},
    },
    "receive": {"shipment": HEX, "quantity": Q},
    "inspect": {
        "lot": LOT, "inspection": "residue", "result": "pass", "grade": "A", "document": HEX,
        "certificate": "PSQCA-2026-77", "valid_until": "2027-05-31",
    },
    "sell": {"lot": LOT, "quantity": Q, "price": {"amount_minor": 12000, "currency": "PKR"}},
    "recall": {"lot": LOT, "reason": "aflatoxin above limit"},
    "correct": {"corrects": HEX, "reason": "wrong quantity", "replacement": "cd" * 32},
}  # fmt: skip
REQUIRED = {
    "harvest": ["lot", "crop", "plot", "harvest_date", "quantity"],
    "store": ["lot", "facility"],
    "transform": ["process", "inputs", "outputs"],
    "pack": ["unit", "contents"],
    "unpack": ["unit"],
    "ship": ["lot", "to", "quantity", "transport"],
    "receive": ["shipment", "quantity"],
    "inspect": ["lot", "inspection", "result", "document"],
    "sell": ["lot", "quantity"],
    "recall": ["lot", "reason"],
    "correct": ["corrects", "reason"],
}


def refused(kind, body):
    with pytest.raises(EncodingError) as info:
        parse_body(kind, body)
    return info.value.code, info.value.field


def test_tables_cover_every_kind():
    assert set(FULL) == set(REQUIRED) == set(EPCIS_MAP) == DOMAIN_KINDS


@pytest.mark.parametrize("kind", sorted(FULL))
def test_full_body_parses(kind):
    body = parse_body(kind, copy.deepcopy(FULL[kind]))
    assert kind == body.KIND


@pytest.mark.parametrize("kind", sorted(FULL))
def test_required_fields_alone_parse(kind):
    minimal = {k: v for k, v in FULL[kind].items() if k in REQUIRED[kind]}
    parse_body(kind, minimal)


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k in REQUIRED for n in REQUIRED[k]])
def test_each_required_field_is_required(kind, name):
    body = copy.deepcopy(FULL[kind])
    del body[name]
    assert refused(kind, body) == ("missing_field", f"body.{name}")


@pytest.mark.parametrize("kind", sorted(FULL))
def test_unknown_fields_only_under_ext(kind):
    body = copy.deepcopy(FULL[kind]) | {"colour": "green"}
    assert refused(kind, body) == ("unknown_field", "body.colour")
    body = copy.deepcopy(FULL[kind]) | {"ext": {"colour": "green"}}
    assert parse_body(kind, body).ext == {"colour": "green"}


def test_typed_values():
    harvest = parse_body("harvest", FULL["harvest"])
    assert isinstance(harvest, HarvestBody)
    assert harvest.quantity == Quantity(amount=10, unit="kg")
    assert harvest.variety == "Super Basmati"
    transform = parse_body("transform", FULL["transform"])
    assert isinstance(transform, TransformBody)
    assert [i.lot for i in transform.inputs] == [LOT, GS1_LOT]
    receive = parse_body("receive", FULL["receive"])
    assert isinstance(receive, ReceiveBody)
    assert receive.shipment == bytes.fromhex(HEX)
    sell = parse_body("sell", FULL["sell"])
    assert sell.price == Money(amount_minor=12000, currency="PKR")


@pytest.mark.parametrize(
    ("kind", "mutate", "code", "field"),
    [
        ("transform", lambda b: b["inputs"][1].update(quantity={"amount": 1, "unit": "maund"}),
         "bad_unit", "body.inputs[1].quantity.unit"),
        ("transform", lambda b: b["inputs"].append({"lot": LOT, "quantity": Q}),
         "duplicate_lot", "body.inputs"),
        ("transform", lambda b: b["outputs"].append({"lot": LOT, "crop": "x", "quantity": Q}),
         "duplicate_lot", "body.outputs[1].lot"),
        ("transform", lambda b: b.update(inputs=[]), "bad_count", "body.inputs"),
        ("transform", lambda b: b.update(outputs={}), "bad_type", "body.outputs"),
        ("transform", lambda b: b.update(process="roasting"), "bad_value", "body.process"),
        ("transform", lambda b: b["outputs"][0].update(grade="A"),
         "unknown_field", "body.outputs[0].grade"),
        ("transform", lambda b: b["inputs"][0].update(lot="lot:Mill:M1"),
         "bad_lot_id", "body.inputs[0].lot"),
        ("pack", lambda b: b["contents"].append(LOT), "duplicate_lot", "body.contents"),
        ("pack", lambda b: b.update(unit=LOT), "duplicate_lot", "body.unit"),
        ("pack", lambda b: b["contents"].append("nope"), "bad_lot_id", "body.contents[2]"),
        ("ship", lambda b: b["transport"].update(mode="camel"), "bad_value", "body.transport.mode"),
        ("ship", lambda b: b["transport"].update(carrier="Truck Co"),
         "bad_participant_id", "body.transport.carrier"),
        ("ship", lambda b: b["transport"].update(driver="x"),
         "unknown_field", "body.transport.driver"),
        ("ship", lambda b: b.update(to="Market"), "bad_participant_id", "body.to"),
        ("receive", lambda b: b.update(shipment="AB" * 32), "bad_hex", "body.shipment"),
        ("inspect", lambda b: b.update(result="maybe"), "bad_value", "body.result"),
        ("inspect", lambda b: b.update(valid_until="2027-02-30"), "bad_date", "body.valid_until"),
        ("inspect", lambda b: b.update(document="not a hash"), "bad_hex", "body.document"),
        ("harvest", lambda b: b.update(harvest_date="20/11/2026"), "bad_date", "body.harvest_date"),
        ("harvest", lambda b: b.update(crop="x" * 201), "too_long", "body.crop"),
        ("harvest", lambda b: b.update(crop=""), "bad_string", "body.crop"),
        ("harvest", lambda b: b.update(plot="a\nb"), "bad_string", "body.plot"),
        ("harvest", lambda b: b.update(quantity={"amount": 0, "unit": "kg"}),
         "bad_amount", "body.quantity.amount"),
        ("harvest", lambda b: b.update(ext={"blob": "x" * 2100}), "too_large", "body.ext"),
        ("harvest", lambda b: b.update(ext="note"), "bad_type", "body.ext"),
        ("store", lambda b: b.update(temperature_dc=1001), "out_of_range", "body.temperature_dc"),
        ("store", lambda b: b.update(temperature_dc=True), "out_of_range", "body.temperature_dc"),
        ("sell", lambda b: b["price"].update(currency="Rs"), "bad_currency", "body.price.currency"),
        ("correct", lambda b: b.update(replacement=HEX), "bad_value", "body.replacement"),
    ],
)  # fmt: skip
def test_field_rules(kind, mutate, code, field):
    body = copy.deepcopy(FULL[kind])
    mutate(body)
    assert refused(kind, body) == (code, field)


def test_list_limits():
    many = [{"lot": f"lot:farm-a:L{i}", "quantity": Q} for i in range(MAX_TRANSFORM_LOTS + 1)]
    body = copy.deepcopy(FULL["transform"]) | {"inputs": many}
    assert refused("transform", body) == ("bad_count", "body.inputs")
    body["inputs"] = many[:MAX_TRANSFORM_LOTS]
    parse_body("transform", body)
    contents = [f"lot:farm-a:L{i}" for i in range(MAX_CONTENTS + 1)]
    assert refused("pack", {"unit": "lot:mill:P1", "contents": contents}) == (
        "bad_count", "body.contents",
    )  # fmt: skip
    parse_body("pack", {"unit": "lot:mill:P1", "contents": contents[:MAX_CONTENTS]})


def test_body_must_be_an_object_and_kind_known():
    assert refused("store", ["lot"]) == ("bad_type", "body")
    assert refused("teleport", {}) == ("unknown_kind", "kind")


def test_epcis_map():
    assert EPCIS_MAP["harvest"].biz_step == "commissioning"
    assert EPCIS_MAP["pack"].event_type == "AggregationEvent"
    assert (EPCIS_MAP["unpack"].event_type, EPCIS_MAP["unpack"].action) == (
        "AggregationEvent", "DELETE",
    )  # fmt: skip
    assert EPCIS_MAP["transform"].event_type == "TransformationEvent"
    assert EPCIS_MAP["sell"].biz_step == "retail_selling"
    assert EPCIS_MAP["recall"].disposition == "recalled"
    assert EPCIS_MAP["correct"].event_type is None


def test_epcis_disposition_of_a_failed_inspection():
    passed = parse_body("inspect", FULL["inspect"])
    failed = parse_body("inspect", FULL["inspect"] | {"result": "fail"})
    assert isinstance(failed, InspectBody)
    assert epcis_disposition(passed) == "conformant"
    assert epcis_disposition(failed) == "nonconformant"
    assert epcis_disposition(parse_body("ship", FULL["ship"])) == "in_transit"
