"""``/v1/lots`` and ``/v1/participants/{id}/lots`` over a ledger that ran the demo story.

One in-memory ledger per module (the endpoints only read): the demo's
farm-to-market story, plus two GS1 lots whose ids carry escapes (``AB%2F1``
is the AI (10) value ``AB/1``, ``50%25`` is ``50%``), which must reach the
ledger exactly as written, through the ASGI transport and through a real
uvicorn server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.routes.lots import HistoryItemOut, HistoryOut
from api.settings import Settings
from client.demo import demo_signer, run_demo
from ledger import SignedStatement, Statement, VerifyingKey, sign_statement
from ledger.domain import MAX_TRACE_DEPTH
from tests.api.support import Api, assert_problem, snapshot
from tests.ledger.builders import new_world

GS1_SLASH = "gtin:09506000134352:AB%2F1"
GS1_PERCENT = "gtin:09506000134352:50%25"
ENDPOINTS = ("/v1/lots/{}", "/v1/lots/{}/history", "/v1/lots/{}/trace?direction=back")


@pytest.fixture(scope="module")
def demo():
    world = new_world()
    summary = run_demo(
        world.ledger,
        operator_id="operator",
        operator=world.operator,
        start=datetime(2026, 10, 1, tzinfo=UTC),
    )
    farm = demo_signer("farm.punjab.1")
    for n, lot in enumerate((GS1_SLASH, GS1_PERCENT), start=1):
        body = {
            "lot": lot,
            "crop": "rice",
            "plot": "plot-1",
            "harvest_date": "2026-10-30",
            "quantity": {"amount": 100 * n, "unit": "kg"},
        }
        statement = Statement.build(
            origin=world.ledger.log.origin,
            kind="harvest",
            signer=farm.key_id,
            time="2026-10-31T08:00:00+00:00",
            body=body,
        )
        world.ledger.append(sign_statement(farm, statement))
    return world, summary


@pytest.fixture(scope="module")
def app(demo):
    return create_app(Settings(run_checkpointer=False), demo[0].ledger)


@pytest.fixture(scope="module")
def client(app):
    api = Api(app)
    yield api
    api.close()


# --------------------------------------------------------------------------- state


def test_lot_state_shows_holder_quantity_and_the_recall_upstream(demo, client):
    world, summary = demo
    r = client.get(f"/v1/lots/{summary.page_lot}")
    assert r.status_code == 200, r.text
    lot = r.json()
    state = world.ledger.lot(summary.page_lot)
    assert lot["lot_id"] == summary.page_lot
    assert lot["holder"] == state.custodian == "market.lahore"
    assert lot["quantity"] == {"amount": state.quantity, "unit": "g"}
    assert lot["status"] == state.status
    assert lot["crop"] == "rice"
    assert lot["unit_class"] == "mass"
    assert lot["recall"] is None
    recalled = world.ledger.lot(summary.recalled_lot)
    assert lot["recalled_upstream"] == [
        {
            "lot_id": summary.recalled_lot,
            "index": recalled.recalled_at,
            "reason": recalled.recall_reason,
        }
    ]


def test_a_recalled_lot_carries_its_own_recall(demo, client):
    _, summary = demo
    lot = client.get(f"/v1/lots/{summary.recalled_lot}").json()
    assert lot["recall"]["lot_id"] == summary.recalled_lot
    assert lot["recall"]["reason"] == "pesticide residue above the MRL"
    assert lot["recalled_upstream"] == [lot["recall"]]


def test_an_unaffected_lot_has_no_recalls(demo, client):
    lot = client.get("/v1/lots/lot:farm.punjab.1:paddy-01").json()
    assert lot["recall"] is None
    assert lot["recalled_upstream"] == []


def test_count_units_and_units_are_shown_as_they_are(client):
    pallet = client.get("/v1/lots/lot:coop.sindh:pallet-01").json()
    assert pallet["quantity"]["unit"] == "piece"
    mango = client.get("/v1/lots/lot:farm.sindh.1:sindhri-01").json()
    assert mango["quantity"]["unit"] == "crate"


# --------------------------------------------------------------------------- history


def test_history_is_decoded_from_the_stored_bytes_and_verifies(demo, client):
    world, summary = demo
    r = client.get(f"/v1/lots/{summary.page_lot}/history")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["lot_id"] == summary.page_lot
    expected = world.ledger.history(summary.page_lot)
    assert [i["index"] for i in body["items"]] == [h.index for h in expected]
    assert [i["kind"] for i in body["items"]] == [h.kind for h in expected]
    assert body["items"][0]["kind"] == "transform"
    for item, known in zip(body["items"], expected, strict=True):
        raw = base64.b64decode(item["statement"], validate=True)
        signature = base64.b64decode(item["signature"], validate=True)
        entry = world.ledger.entry(item["index"])
        assert (raw, signature) == (entry.statement, entry.signature)
        assert hashlib.sha256(raw).hexdigest() == item["event_id"] == known.event_id.hex()
        decoded = json.loads(raw)
        assert item["body"] == decoded["body"]
        assert item["time"] == decoded["time"]
        assert item["accepted_ms"] == entry.accepted_ms
        assert item["participant"] == known.participant
        assert item["corrected_by"] is None
        key = world.store.key(bytes.fromhex(decoded["signer"]))
        assert key.participant == item["participant"]
        SignedStatement.from_bytes(raw, signature).verify(VerifyingKey.from_bytes(key.public))


def test_history_bytes_are_what_fastapi_makes_of_the_model(demo, client):
    # The route serialises its answer itself; it must stay byte for byte what
    # FastAPI made of the HistoryOut response model (docs/api.md).
    world, summary = demo
    for lot in [known.lot for known in summary.lots] + [GS1_SLASH, GS1_PERCENT]:
        r = client.get(f"/v1/lots/{lot}/history")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        model = HistoryOut(
            lot_id=lot,
            items=[
                HistoryItemOut(
                    index=h.index,
                    event_id=h.event_id.hex(),
                    kind=h.kind,
                    participant=h.participant,
                    time=h.time,
                    accepted_ms=h.accepted_ms,
                    corrected_by=h.corrected_by,
                    body=h.body,
                    statement=base64.b64encode(h.statement).decode(),
                    signature=base64.b64encode(h.signature).decode(),
                )
                for h in world.ledger.history(lot)
            ],
        )
        assert r.content == model.model_dump_json().encode()


# --------------------------------------------------------------------------- escapes in ids


@pytest.mark.parametrize("lot", [GS1_SLASH, GS1_PERCENT])
def test_lot_ids_with_escapes_arrive_undecoded(demo, client, lot):
    world, _ = demo
    r = client.get(f"/v1/lots/{lot}")
    assert r.status_code == 200, r.text
    assert r.json()["lot_id"] == lot
    assert r.json()["quantity"] == {"amount": world.ledger.lot(lot).quantity, "unit": "g"}
    history = client.get(f"/v1/lots/{lot}/history").json()
    assert history["lot_id"] == lot
    assert [i["body"]["lot"] for i in history["items"]] == [lot]
    trace = client.get(f"/v1/lots/{lot}/trace", params={"direction": "forward"}).json()
    assert trace["lot_id"] == lot
    assert [x["lot_id"] for x in trace["lots"]] == [lot]


def test_an_id_encoded_as_a_whole_is_understood(client):
    encoded = quote(GS1_SLASH, safe="")
    assert encoded == "gtin%3A09506000134352%3AAB%252F1"
    r = client.get(f"/v1/lots/{encoded}")
    assert r.status_code == 200, r.text
    assert r.json()["lot_id"] == GS1_SLASH


def test_a_decoded_slash_is_another_path(client):
    assert_problem(client.get("/v1/lots/gtin:09506000134352:AB/1"), 404, "not_found")
    # ... and a decoded %25 another (non-canonical) id.
    assert_problem(client.get("/v1/lots/gtin:09506000134352:50%"), 400, "bad_lot_id", "lot_id")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "lot",
    [
        "nope",
        "lot:Farm.Punjab.1:paddy-01",  # participant ids are lowercase
        "gtin:09506000134353:AB",  # wrong check digit
        "gtin:09506000134352:ab%2f1",  # lowercase hex is not canonical
        "gtin:09506000134352:A%42",  # an escaped unreserved character is not canonical
        "lot:farm.punjab.1:paddy%2001",
    ],
)
def test_malformed_lot_ids_are_refused(client, path, lot):
    body = assert_problem(client.get(path.format(lot)), 400, "bad_lot_id", "lot_id")
    assert body["detail"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_unknown_lots_are_not_found(client, path):
    body = assert_problem(
        client.get(path.format("lot:farm.punjab.1:paddy-99")), 404, "unknown_lot", "lot_id"
    )
    assert "paddy-99" in body["detail"]


# --------------------------------------------------------------------------- trace


def test_trace_back_reaches_the_farms(demo, client):
    world, summary = demo
    r = client.get(f"/v1/lots/{summary.page_lot}/trace", params={"direction": "back"})
    assert r.status_code == 200, r.text
    trace = r.json()
    expected = world.ledger.trace_back(summary.page_lot)
    assert trace["direction"] == "back"
    assert trace["depth"] == MAX_TRACE_DEPTH
    assert trace["truncated"] is False
    assert [(x["lot_id"], x["depth"]) for x in trace["lots"]] == list(expected.lots)
    assert trace["lots"][0]["lot_id"] == summary.page_lot
    assert summary.recalled_lot in [x["lot_id"] for x in trace["lots"]]
    assert {e["kind"] for e in trace["edges"]} == {"transform"}
    assert all(e["child"] == summary.page_lot for e in trace["edges"])
    paddy = next(x for x in trace["lots"] if x["lot_id"] == summary.recalled_lot)
    assert paddy["status"] == "consumed"
    assert paddy["recall"]["lot_id"] == summary.recalled_lot


def test_trace_forward_is_the_recall_list(demo, client):
    _, summary = demo
    trace = client.get(
        f"/v1/lots/{summary.recalled_lot}/trace", params={"direction": "forward"}
    ).json()
    lots = {x["lot_id"]: x for x in trace["lots"]}
    assert summary.page_lot in lots
    assert lots[summary.page_lot]["holder"] == "market.lahore"
    assert lots[summary.page_lot]["depth"] == 1


def test_trace_through_packing(client):
    back = client.get(
        "/v1/lots/lot:coop.sindh:pallet-01/trace", params={"direction": "back"}
    ).json()
    assert {e["kind"] for e in back["edges"]} == {"pack", "transform"}
    assert back["edges"][0]["child"] == "lot:coop.sindh:pallet-01"
    assert back["lots"][0]["contents"] == []  # unpacked at the market


def test_a_depth_limit_truncates(demo, client):
    _, summary = demo
    trace = client.get(
        f"/v1/lots/{summary.page_lot}/trace", params={"direction": "back", "depth": 0}
    ).json()
    assert [x["lot_id"] for x in trace["lots"]] == [summary.page_lot]
    assert trace["truncated"] is True
    assert trace["depth"] == 0
    full = client.get(
        f"/v1/lots/{summary.page_lot}/trace", params={"direction": "back", "depth": 1}
    ).json()
    assert full["truncated"] is False
    assert len(full["lots"]) == 4


def test_depth_beyond_the_limit_is_refused(client, demo):
    _, summary = demo
    url = f"/v1/lots/{summary.page_lot}/trace"
    body = assert_problem(
        client.get(url, params={"direction": "back", "depth": MAX_TRACE_DEPTH + 1}),
        400,
        "depth_too_large",
        "depth",
    )
    assert str(MAX_TRACE_DEPTH) in body["detail"]
    assert_problem(
        client.get(url, params={"direction": "back", "depth": -1}),
        422,
        "validation_failed",
        "depth",
    )
    assert_problem(client.get(url), 422, "validation_failed", "direction")
    assert_problem(
        client.get(url, params={"direction": "sideways"}), 422, "validation_failed", "direction"
    )


# --------------------------------------------------------------------------- holdings


def test_participant_lots_are_what_it_holds_now(demo, client):
    world, _ = demo
    r = client.get("/v1/participants/market.lahore/lots")
    assert r.status_code == 200, r.text
    body = r.json()
    held = world.ledger.held_by("market.lahore")
    assert body["participant_id"] == "market.lahore"
    assert [x["lot_id"] for x in body["lots"]] == [s.lot_id for s in held]
    assert held
    assert all(x["holder"] == "market.lahore" for x in body["lots"])
    farm = client.get("/v1/participants/farm.punjab.1/lots").json()
    assert {GS1_SLASH, GS1_PERCENT} <= {x["lot_id"] for x in farm["lots"]}


def test_participant_lots_of_an_unknown_or_malformed_participant(client):
    assert_problem(client.get("/v1/participants/nobody/lots"), 404, "not_found", "participant_id")
    assert_problem(client.get("/v1/participants/No%20Body/lots"), 422, "validation_failed")


# --------------------------------------------------------------------------- contract


def test_reads_change_nothing(demo, client):
    world, summary = demo
    before = snapshot(world.ledger)
    for path in ENDPOINTS:
        client.get(path.format(summary.page_lot))
    client.get("/v1/participants/market.lahore/lots")
    assert snapshot(world.ledger) == before


def test_openapi_has_examples_for_every_lot_operation(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for path in (
        "/v1/lots/{lot_id}",
        "/v1/lots/{lot_id}/history",
        "/v1/lots/{lot_id}/trace",
        "/v1/participants/{participant_id}/lots",
    ):
        op = doc["paths"][path]["get"]
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert schemas[ref.rsplit("/", 1)[1]]["examples"], path
        for param in op["parameters"]:
            assert param.get("examples") or param["schema"].get("examples"), (path, param)
    depth = next(
        p
        for p in doc["paths"]["/v1/lots/{lot_id}/trace"]["get"]["parameters"]
        if p["name"] == "depth"
    )
    assert depth["schema"]["maximum"] == MAX_TRACE_DEPTH
    assert depth["schema"]["default"] == MAX_TRACE_DEPTH


def test_cors_allows_reading_lots_from_other_origins(demo, client):
    _, summary = demo
    r = client.get(f"/v1/lots/{summary.page_lot}", headers={"Origin": "https://shop.example"})
    assert r.headers["access-control-allow-origin"] == "*"


# --------------------------------------------------------------------------- a real server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_escapes_survive_a_real_uvicorn_server(app):
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            for lot in (GS1_SLASH, GS1_PERCENT):
                r = http.get(f"/v1/lots/{lot}/history")
                assert r.status_code == 200, r.text
                assert r.json()["lot_id"] == lot
            r = http.get("/v1/lots/gtin:09506000134352:AB/1/history")
            assert r.status_code == 404
    finally:
        server.should_exit = True
        thread.join(10)
