"""POST /v1/events, POST /v1/events:batch, GET /v1/events/{event_id}: success and every refusal."""

from __future__ import annotations

import base64
import json

import pytest

from api.settings import Settings
from ledger import Entry, Signer, Statement, leaf_hash, sign_statement
from ledger.keys import b64encode
from ledger.registry import build_revocation
from tests.api.support import (
    assert_problem,
    enrol,
    enrolment,
    envelope,
    harvest,
    snapshot,
)
from tests.ledger.builders import ORIGIN, TIME


@pytest.fixture
def farm(world):
    return enrol(world, "farm-1")


def test_submit_creates_entry_and_describes_it(api, world, farm):
    signed = harvest(world, "farm-1")
    r = api.post("/v1/events", json=envelope(signed))
    assert r.status_code == 201, r.text
    body = r.json()
    entry = world.ledger.entry(body["index"])
    assert body["index"] == world.ledger.size() - 1
    assert body["event_id"] == signed.event_id.hex()
    assert body["accepted_ms"] == entry.accepted_ms
    assert body["prev"] == entry.prev.hex()
    assert base64.b64decode(body["entry_bytes"]) == entry.to_bytes()
    assert body["leaf_hash"] == leaf_hash(entry.to_bytes()).hex()
    assert base64.b64decode(body["statement"]) == signed.statement.raw
    assert base64.b64decode(body["signature"]) == signed.signature
    assert r.headers["location"] == f"/v1/events/{signed.event_id.hex()}"
    assert Entry.from_bytes(base64.b64decode(body["entry_bytes"])) == entry


def test_resubmission_is_idempotent(api, world, farm):
    signed = harvest(world, "farm-1")
    first = api.post("/v1/events", json=envelope(signed))
    size = world.ledger.size()
    again = api.post("/v1/events", json=envelope(signed))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert world.ledger.size() == size


def test_get_event_by_id(api, world, farm):
    signed = harvest(world, "farm-1")
    created = api.post("/v1/events", json=envelope(signed)).json()
    r = api.get(f"/v1/events/{signed.event_id.hex()}")
    assert r.status_code == 200
    assert r.json() == created


def test_unknown_event_id_is_404(api):
    assert_problem(api.get("/v1/events/" + "ab" * 32), 404, "not_found")


@pytest.mark.parametrize("bad", ["AB" * 32, "ab" * 31, "zz" * 32, "x"])
def test_malformed_event_id_is_422_naming_the_path_parameter(api, bad):
    body = assert_problem(api.get(f"/v1/events/{bad}"), 422, "validation_failed", "event_id")
    assert body["rule"] == "bad_format"


# --- refusals: each leaves the ledger exactly as it was --------------------


def _refused(api, world, payload, status, code, field=None, **kwargs):
    before = snapshot(world.ledger)
    if isinstance(payload, bytes):
        headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
        r = api.post("/v1/events", content=payload, headers=headers, **kwargs)
    else:
        r = api.post("/v1/events", json=payload, **kwargs)
    body = assert_problem(r, status, code, field)
    assert snapshot(world.ledger) == before
    return body


def _raw_statement(world, signer: Signer, text: bytes) -> dict[str, str]:
    return {"statement": b64encode(text), "signature": b64encode(signer.sign(text))}


def test_bad_base64_statement(api, world, farm):
    env = envelope(harvest(world, "farm-1"))
    _refused(api, world, {**env, "statement": "not base64!"}, 400, "bad_base64", "statement")


def test_non_canonical_base64_signature(api, world, farm):
    env = envelope(harvest(world, "farm-1"))
    # 64 bytes end in one byte: two characters and "==", the last 4 bits unused and zero;
    # "B" sets one of them, so this decodes but does not re-encode to the same text.
    padded_wrong = env["signature"][:-3] + "B=="
    _refused(api, world, {**env, "signature": padded_wrong}, 400, "bad_base64", "signature")


def test_signature_of_wrong_length(api, world, farm):
    env = envelope(harvest(world, "farm-1"))
    _refused(api, world, {**env, "signature": b64encode(b"\0" * 63)}, 400, "bad_signature_length")


def test_non_canonical_statement(api, world, farm):
    signed = harvest(world, "farm-1")
    pretty = json.dumps(json.loads(signed.statement.raw), indent=1).encode()
    _refused(api, world, _raw_statement(world, farm, pretty), 400, "not_canonical")


def test_duplicate_key_inside_the_statement(api, world, farm):
    raw = harvest(world, "farm-1").statement.raw
    duplicated = raw[:-1] + b',"version":1}'
    _refused(api, world, _raw_statement(world, farm, duplicated), 400, "duplicate_key")


def test_duplicate_key_in_the_envelope(api, world, farm):
    env = envelope(harvest(world, "farm-1"))
    text = (
        f'{{"statement":"{env["statement"]}","signature":"{env["signature"]}",'
        f'"statement":"{env["statement"]}"}}'
    )
    _refused(api, world, text.encode(), 400, "duplicate_key", "statement")


def test_invalid_json_body(api, world):
    _refused(api, world, b'{"statement": ', 400, "invalid_json")


def test_deeply_nested_body(api, world):
    deep = b'{"statement":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _refused(api, world, deep, 400, "too_deep", "body")
    batch = b'{"items":' + b"[" * 40 + b"]" * 40 + b"}"
    before = snapshot(world.ledger)
    r = api.post("/v1/events:batch", content=batch, headers={"content-type": "application/json"})
    assert_problem(r, 400, "too_deep")
    assert snapshot(world.ledger) == before


def test_deeply_nested_statement(api, world, farm):
    deep = b'{"body":' + b"[" * 5000 + b"]" * 5000 + b"}"
    _refused(api, world, _raw_statement(world, farm, deep), 400, "too_deep", "statement")


def test_float_in_the_envelope(api, world):
    _refused(api, world, b'{"statement": 1.5, "signature": "x"}', 400, "float_not_allowed")


def test_unknown_envelope_field_is_named(api, world, farm):
    env = {**envelope(harvest(world, "farm-1")), "note": "hi"}
    body = _refused(api, world, env, 422, "validation_failed", "note")
    assert body["rule"] == "unknown_field"
    assert body["errors"] == [
        {"field": "note", "code": "unknown_field", "detail": "Extra inputs are not permitted"}
    ]


def test_missing_envelope_field_is_named(api, world, farm):
    env = envelope(harvest(world, "farm-1"))
    del env["signature"]
    body = _refused(api, world, env, 422, "validation_failed", "signature")
    assert body["rule"] == "missing_field"


def test_wrong_type_in_envelope(api, world):
    _refused(api, world, {"statement": 5, "signature": None}, 422, "validation_failed")


def test_unknown_signer(api, world):
    stranger = Signer.generate()
    _refused(
        api,
        world,
        envelope(harvest(world, "farm-x", signer=stranger)),
        403,
        "unknown_signer",
        "signer",
    )


def test_bad_signature(api, world, farm):
    signed = harvest(world, "farm-1")
    env = envelope(signed)
    env["signature"] = b64encode(farm.sign(b"something else"))
    _refused(api, world, env, 403, "bad_signature", "signature")


def test_bad_signature_from_a_signer_the_server_already_knows(api, app, world, farm):
    # After one accepted statement the server verifies this signer's signatures
    # before the writer (libsodium); a bad one must still be the same refusal.
    assert api.post("/v1/events", json=envelope(harvest(world, "farm-1"))).status_code == 201
    assert app.state.mandi.ledger.signer_key(farm.key_id) == farm.public.raw
    env = envelope(harvest(world, "farm-1"))
    env["signature"] = b64encode(farm.sign(b"something else"))
    _refused(api, world, env, 403, "bad_signature", "signature")
    assert api.post("/v1/events", json=envelope(harvest(world, "farm-1"))).status_code == 201


def test_revoked_key(api, world, farm):
    world.ledger.append(
        build_revocation(
            origin=ORIGIN,
            operator=world.operator,
            participant_id="farm-1",
            key_id=farm.key_id,
            reason="lost",
            time=TIME,
        )
    )
    _refused(api, world, envelope(harvest(world, "farm-1")), 403, "key_revoked", "signer")


def test_wrong_origin(api, world, farm):
    stmt = Statement.build(
        origin="other.example/log", kind="harvest", signer=farm.key_id, time=TIME, body={}
    )
    _refused(api, world, envelope(sign_statement(farm, stmt)), 422, "wrong_origin", "origin")


def test_statement_over_the_size_limit(api, world, farm):
    from ledger.encoding import canonical_bytes

    small = json.loads(harvest(world, "farm-1").statement.raw)
    raw = canonical_bytes({**small, "body": {"pad": "x" * (64 * 1024)}})
    _refused(api, world, _raw_statement(world, farm, raw), 413, "too_large", "statement")


# --- body limits ---------------------------------------------------------------


def test_body_over_the_limit_by_content_length(api, world):
    body = _refused(api, world, b" " * (1024 * 1024 + 1), 413, "body_too_large", "body")
    assert body["limit"] == 1024 * 1024


def test_body_over_the_limit_when_streamed_without_length(api, world):
    async def chunks():
        for _ in range(20):
            yield b" " * 65536

    before = snapshot(world.ledger)
    r = api.post("/v1/events", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_problem(r, 413, "body_too_large")
    assert snapshot(world.ledger) == before


def test_smaller_body_limit_from_settings(world):
    from api.app import create_app
    from tests.api.support import Api

    api = Api(create_app(Settings(max_body_bytes=2048, run_checkpointer=False), world.ledger))
    try:
        enrol(world, "farm-1")
        small = api.post("/v1/events", json=envelope(harvest(world, "farm-1")))
        assert small.status_code == 201
        big = harvest(world, "farm-1", ext={"pad": "x" * 2000})
        assert_problem(api.post("/v1/events", json=envelope(big)), 413, "body_too_large")
    finally:
        api.close()


def test_compressed_body_is_refused(api, world, farm):
    env = json.dumps(envelope(harvest(world, "farm-1"))).encode()
    _refused(api, world, env, 415, "unsupported_media_type", headers={"content-encoding": "gzip"})


def test_non_json_content_type_is_refused(api, world, farm):
    env = json.dumps(envelope(harvest(world, "farm-1"))).encode()
    _refused(api, world, env, 415, "unsupported_media_type", headers={"content-type": "text/plain"})


# --- batches -------------------------------------------------------------------


def _batch(api, items):
    return api.post("/v1/events:batch", json={"items": items})


def test_batch_appends_in_order(api, world, farm):
    statements = [harvest(world, "farm-1") for _ in range(5)]
    size = world.ledger.size()
    r = _batch(api, [envelope(s) for s in statements])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 5
    assert [i["entry"]["index"] for i in body["items"]] == list(range(size, size + 5))
    assert [i["entry"]["event_id"] for i in body["items"]] == [s.event_id.hex() for s in statements]
    assert all(i["created"] for i in body["items"])


def test_batch_answer_is_the_bytes_fastapi_makes_of_its_model(api, world, farm):
    # The route serialises its answer itself; it must be what the declared model gives.
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    from api.schemas import BatchOut

    r = _batch(api, [envelope(harvest(world, "farm-1")) for _ in range(3)])
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    model = BatchOut.model_validate(r.json())
    assert r.content == JSONResponse(jsonable_encoder(model)).body


def test_batch_resubmission_and_inner_duplicates(api, world, farm):
    a, b = harvest(world, "farm-1"), harvest(world, "farm-1")
    api.post("/v1/events", json=envelope(a))
    r = _batch(api, [envelope(a), envelope(b), envelope(b)])
    assert r.status_code == 201
    assert [i["created"] for i in r.json()["items"]] == [False, True, False]
    again = _batch(api, [envelope(a), envelope(b)])
    assert again.status_code == 200
    assert again.json()["created"] == 0


def test_batch_may_enrol_and_use_a_key(api, world):
    farm = Signer.generate()
    enrol_farm = enrolment(world, "farm-2", farm)
    r = _batch(api, [envelope(enrol_farm), envelope(harvest(world, "farm-2", signer=farm))])
    assert r.status_code == 201, r.text


def test_batch_refusal_names_the_item_and_appends_nothing(api, world, farm):
    items = [envelope(harvest(world, "farm-1")) for _ in range(4)]
    items[2]["signature"] = b64encode(farm.sign(b"other"))
    before = snapshot(world.ledger)
    assert_problem(_batch(api, items), 403, "bad_signature", "items[2].signature")
    assert snapshot(world.ledger) == before


def test_batch_checks_known_signers_before_the_writer_and_refuses_the_same(
    api, app, world, farm, monkeypatch
):
    from tests.ledger.builders import count_verifications

    assert api.post("/v1/events", json=envelope(harvest(world, "farm-1"))).status_code == 201
    calls = count_verifications(monkeypatch)
    # farm-1's key is known: its good signatures are checked before the writer only.
    assert _batch(api, [envelope(harvest(world, "farm-1")) for _ in range(3)]).status_code == 201
    assert calls[0] == 0
    items = [envelope(harvest(world, "farm-1")) for _ in range(3)]
    items[1]["signature"] = b64encode(farm.sign(b"other"))
    before = snapshot(world.ledger)
    assert_problem(_batch(api, items), 403, "bad_signature", "items[1].signature")
    assert snapshot(world.ledger) == before
    assert calls[0] == 1  # the writer decided the refusal with cryptography


def test_batch_refusal_of_a_malformed_item(api, world, farm):
    items = [envelope(harvest(world, "farm-1")) for _ in range(3)]
    items[1]["statement"] = "%%%"
    assert_problem(_batch(api, items), 400, "bad_base64", "items[1].statement")


def test_batch_refusal_of_an_unknown_signer_item(api, world, farm):
    items = [
        envelope(harvest(world, "farm-1")),
        envelope(harvest(world, "farm-x", signer=Signer.generate())),
    ]
    assert_problem(_batch(api, items), 403, "unknown_signer", "items[1].signer")


def test_batch_unknown_item_field(api, world, farm):
    items = [envelope(harvest(world, "farm-1")), {**envelope(harvest(world, "farm-1")), "x": 1}]
    body = assert_problem(_batch(api, items), 422, "validation_failed", "items[1].x")
    assert body["rule"] == "unknown_field"


def test_batch_too_large(api, world, farm):
    one = envelope(harvest(world, "farm-1"))
    before = snapshot(world.ledger)
    r = _batch(api, [one] * 501)
    assert_problem(r, 422, "batch_too_large", "items")
    assert snapshot(world.ledger) == before


def test_batch_limit_from_settings(world):
    from api.app import create_app
    from tests.api.support import Api

    api = Api(create_app(Settings(max_batch=2, run_checkpointer=False), world.ledger))
    try:
        enrol(world, "farm-1")
        items = [envelope(harvest(world, "farm-1")) for _ in range(3)]
        assert_problem(_batch(api, items), 422, "batch_too_large", "items")
        assert _batch(api, items[:2]).status_code == 201
    finally:
        api.close()


def test_empty_batch(api):
    assert_problem(_batch(api, []), 422, "validation_failed", "items")


# --- the supply-chain rules' refusals travel the same way ------------------------


def test_unknown_kind(api, world, farm):
    signed = world.statement_by(farm, "gossip", {"text": "hello"})
    _refused(api, world, envelope(signed), 400, "unknown_kind", "kind")


def test_body_breaking_its_kind_schema(api, world, farm):
    signed = world.statement_by(farm, "harvest", {"lot": "lot:farm-1:Z"})
    _refused(api, world, envelope(signed), 400, "missing_field")


def test_supply_chain_rule_refusal_names_lot_and_numbers(api, world, farm):
    first = harvest(world, "farm-1")
    assert api.post("/v1/events", json=envelope(first)).status_code == 201
    body = json.loads(first.statement.raw)["body"]
    again = world.statement_by(farm, "harvest", {**body, "plot": "another plot"})
    problem = _refused(api, world, envelope(again), 422, "lot_exists", "body.lot")
    assert problem["lot"] == body["lot"]
    assert isinstance(problem["numbers"], dict)


def test_role_may_not_sign_the_kind(api, world):
    market = enrol(world, "market-1", role="market")
    signed = harvest(world, "market-1", signer=market)
    body = _refused(api, world, envelope(signed), 422, "not_permitted", "kind")
    assert body["numbers"] == {"role": "market", "kind": "harvest"}
