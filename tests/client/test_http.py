"""MandiClient over httpx.MockTransport: retries with backoff, problem+json errors, entry checks."""

from __future__ import annotations

import json

import httpx
import pytest

from client.errors import (
    AuditError,
    ClientError,
    RefusedError,
    ServerError,
    TransportError,
)
from client.http import Envelope, MandiClient, RetryPolicy, envelope
from ledger import LedgerError, Signer, Statement, sign_statement
from ledger.keys import b64encode
from ledger.statements import Entry

ORIGIN = "mock.mandi.example/log"
PROBLEM = "application/problem+json"


def signed_statement(n: int = 0):
    signer = Signer.from_seed(bytes([7]) * 32)
    statement = Statement.build(
        origin=ORIGIN,
        kind="recall",
        signer=signer.key_id,
        time="2026-11-20T09:30:00+05:00",
        body={"lot": f"lot:farm-1:p{n}", "reason": "test"},
    )
    return sign_statement(signer, statement)


def entry_json(signed, index: int = 5, *, statement: bytes | None = None) -> dict:
    entry = Entry(
        index=index,
        accepted_ms=1_790_000_000_000,
        prev=bytes(32),
        statement=statement if statement is not None else signed.statement.raw,
        signature=signed.signature,
    )
    return {
        "index": entry.index,
        "accepted_ms": entry.accepted_ms,
        "prev": entry.prev.hex(),
        "event_id": entry.event_id.hex(),
        "leaf_hash": entry.leaf_hash.hex(),
        "statement": b64encode(entry.statement),
        "signature": b64encode(entry.signature),
        "entry_bytes": b64encode(entry.to_bytes()),
    }


def problem(status: int, code: str, field: str | None = None, **extra) -> httpx.Response:
    body = {
        "type": f"https://mandi.example/problems/{code}",
        "title": code,
        "status": status,
        "detail": f"detail of {code}",
        "code": code,
        "field": field,
        "rule": code,
        **extra,
    }
    headers = {"content-type": PROBLEM}
    if status == 503:
        headers["retry-after"] = "1"
    return httpx.Response(status, content=json.dumps(body), headers=headers)


class Recorder:
    """A MockTransport handler answering from a script, and a sleep that records pauses."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def client(self, attempts: int = 4) -> MandiClient:
        http = httpx.Client(transport=httpx.MockTransport(self), base_url="http://mandi.test")
        return MandiClient(
            http,
            retry=RetryPolicy(attempts=attempts, backoff_s=0.5, max_backoff_s=3.0, jitter=0.5),
            sleep=self.sleeps.append,
            rng=lambda: 0.0,
        )


def test_submit_sends_the_exact_bytes_and_returns_the_checked_entry():
    signed = signed_statement()
    rec = Recorder(lambda r: httpx.Response(201, json=entry_json(signed)))
    result = rec.client().submit(signed)
    assert result.created is True
    assert result.entry.statement == signed.statement.raw
    assert result.entry.index == 5
    sent = json.loads(rec.requests[0].content)
    assert sent == envelope(signed)
    assert rec.requests[0].url.path == "/v1/events"


def test_connection_errors_and_5xx_are_retried_with_exponential_backoff():
    signed = signed_statement()
    rec = Recorder(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        problem(500, "internal_error"),
        lambda r: httpx.Response(200, json=entry_json(signed)),
    )
    result = rec.client(attempts=4).submit(signed)
    assert result.created is False  # 200: the log held it already (a resend is harmless)
    assert len(rec.requests) == 4
    assert rec.sleeps == [0.5, 1.0, 2.0]
    # Every attempt carried the same statement.
    assert len({r.content for r in rec.requests}) == 1


def test_backoff_is_capped_and_honours_retry_after():
    rec = Recorder(*[problem(503, "storage_error")] * 3, httpx.Response(200, json={"status": "ok"}))
    client = rec.client(attempts=4)
    assert client.health() == {"status": "ok"}
    # 0.5 and 1.0 are raised to Retry-After (1 s); 2.0 stays.
    assert rec.sleeps == [1.0, 1.0, 2.0]
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=3.0, jitter=0.5)
    assert policy.delay(10, None, lambda: 0.0) == 3.0
    assert policy.delay(1, None, lambda: 1.0) == 0.5  # jitter takes off up to half
    assert policy.delay(1, 60.0, lambda: 0.0) == 3.0  # a long Retry-After is capped


def test_transport_errors_after_the_last_attempt_raise_transport_error():
    rec = Recorder(*[httpx.ConnectError("refused")] * 3)
    with pytest.raises(TransportError) as caught:
        rec.client(attempts=3).log_info()
    assert isinstance(caught.value, ClientError)
    assert isinstance(caught.value, LedgerError)
    assert "after 3 attempts" in caught.value.message
    assert len(rec.sleeps) == 2


def test_5xx_after_the_last_attempt_raises_server_error_with_the_problem():
    rec = Recorder(*[problem(503, "storage_error")] * 2)
    with pytest.raises(ServerError) as caught:
        rec.client(attempts=2).checkpoint()
    assert caught.value.status == 503
    assert caught.value.code == "storage_error"
    assert caught.value.problem["title"] == "storage_error"


def test_4xx_is_not_retried_and_carries_the_problem_json():
    signed = signed_statement()
    rec = Recorder(
        problem(
            422,
            "quantity_exceeds_held",
            "body.quantity",
            lot="lot:farm-1:p0",
            numbers={"held": 900, "requested": 1000, "unit": "g"},
        )
    )
    with pytest.raises(RefusedError) as caught:
        rec.client().submit(signed)
    exc = caught.value
    assert (exc.status, exc.code, exc.field, exc.rule) == (
        422,
        "quantity_exceeds_held",
        "body.quantity",
        "quantity_exceeds_held",
    )
    assert exc.lot == "lot:farm-1:p0"
    assert exc.numbers == {"held": 900, "requested": 1000, "unit": "g"}
    assert exc.message == "detail of quantity_exceeds_held"
    assert len(rec.requests) == 1
    assert rec.sleeps == []


def test_409_conflict_is_retried_but_key_exists_is_final():
    rec = Recorder(problem(409, "conflict"), httpx.Response(200, json={"status": "ok"}))
    assert rec.client().health() == {"status": "ok"}
    assert len(rec.sleeps) == 1
    rec = Recorder(problem(409, "key_exists", "body.request.key"))
    with pytest.raises(RefusedError) as caught:
        rec.client().health()
    assert caught.value.code == "key_exists"
    assert rec.sleeps == []


def test_an_error_without_problem_json_still_raises_the_family():
    rec = Recorder(httpx.Response(404, text="<html>nope</html>"))
    with pytest.raises(RefusedError) as caught:
        rec.client().log_info()
    assert caught.value.code == "http_404"
    assert caught.value.status == 404


def test_an_entry_without_our_bytes_is_an_audit_error():
    signed = signed_statement()
    other = signed_statement(1)
    rec = Recorder(
        lambda r: httpx.Response(201, json=entry_json(signed, statement=other.statement.raw))
    )
    with pytest.raises(AuditError) as caught:
        rec.client().submit(signed)
    assert caught.value.code == "entry_mismatch"


def test_an_entry_whose_fields_contradict_its_bytes_is_an_audit_error():
    signed = signed_statement()
    forged = {**entry_json(signed), "leaf_hash": "00" * 32}
    rec = Recorder(httpx.Response(201, json=forged), httpx.Response(200, json=forged))
    with pytest.raises(AuditError):
        rec.client().submit(signed)
    with pytest.raises(AuditError):
        rec.client().event(signed.event_id)


def test_batch_returns_each_item_in_order_and_checks_each_entry():
    items = [signed_statement(i) for i in range(3)]

    def answer(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)["items"]
        assert sent == [envelope(s) for s in items]
        return httpx.Response(
            201,
            json={
                "created": 2,
                "items": [
                    {"created": i != 1, "entry": entry_json(s, 10 + i)} for i, s in enumerate(items)
                ],
            },
        )

    rec = Recorder(answer)
    result = rec.client().submit_batch([Envelope.of(s) for s in items])
    assert result.created == 2
    assert [r.entry.index for r in result.items] == [10, 11, 12]
    assert [r.created for r in result.items] == [True, False, True]
    assert rec.requests[0].url.path == "/v1/events:batch"


def test_a_refused_batch_names_the_item():
    rec = Recorder(problem(403, "bad_signature", "items[2].signature"))
    with pytest.raises(RefusedError) as caught:
        rec.client().submit_batch([signed_statement(i) for i in range(3)])
    assert caught.value.field == "items[2].signature"


def test_malformed_answers_raise_server_error():
    rec = Recorder(httpx.Response(200, text="not json"))
    with pytest.raises(ServerError) as caught:
        rec.client().log_info()
    assert caught.value.code == "bad_response"
    rec = Recorder(httpx.Response(200, json={"leaf_index": 1, "tree_size": 2}))
    with pytest.raises(ServerError):
        rec.client().inclusion_proof(index=1, tree_size=2)


def test_read_endpoints_build_their_urls():
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.raw_path, "ascii"))
        if request.url.path.endswith(".png"):
            return httpx.Response(200, content=b"\x89PNG")
        if request.url.path.endswith("/proof/consistency"):
            return httpx.Response(
                200,
                json={
                    "first": 2,
                    "second": 3,
                    "first_root": "ab" * 32,
                    "second_root": "cd" * 32,
                    "proof": ["ef" * 32],
                },
            )
        if request.url.path == "/v1/log/entries":
            return httpx.Response(200, content=b"")
        return httpx.Response(200, json={})

    http = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://mandi.test")
    client = MandiClient(http, sleep=lambda s: None)
    client.lot("gtin:09506000134352:AB%2F1")
    client.lot_history("lot:farm-1:p1")
    client.lot_trace("lot:farm-1:p1", "back", 3)
    client.holdings("farm-1")
    assert client.lot_qr("lot:farm-1:p1", "png", size=4) == b"\x89PNG"
    client.participants(offset=10, limit=5)
    client.registry(size=4)
    client.root(3)
    proof = client.consistency_proof(2, 3)
    assert proof.proof == (bytes.fromhex("ef" * 32),)
    assert client.entries(0, 10) == []
    client.lot_page("gtin:09506000134352:AB%2F1")
    assert seen == [
        "/v1/lots/gtin:09506000134352:AB%2F1",
        "/v1/lots/lot:farm-1:p1/history",
        "/v1/lots/lot:farm-1:p1/trace?direction=back&depth=3",
        "/v1/participants/farm-1/lots",
        "/v1/lots/lot:farm-1:p1/qr.png?size=4",
        "/v1/participants?offset=10&limit=5",
        "/v1/registry?size=4",
        "/v1/log/root?tree_size=3",
        "/v1/log/proof/consistency?first=2&second=3",
        "/v1/log/entries?start=0&format=jsonl&end=10",
        "/01/09506000134352/10/AB%2F1?format=json",
    ]


def test_from_url_refuses_what_is_not_an_http_url():
    with pytest.raises(TransportError):
        MandiClient.from_url("ftp://example.org")
    with pytest.raises(TransportError):
        MandiClient.from_url("not a url")
