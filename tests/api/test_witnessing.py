"""The witness pusher (api.witnessing over ledger.cosigning) against an in-process witness."""

from __future__ import annotations

import time

import httpx
import pytest

from api.app import create_app
from api.metrics import Metrics
from api.settings import Settings, SettingsError, parse_witnesses
from api.witnessing import WitnessPusher, httpx_post
from ledger import NoteVerifier, open_checkpoint
from ledger.cosigning import (
    PushOutcome,
    WitnessEndpoint,
    WitnessReply,
    WitnessTransportError,
    parse_witness_spec,
    push_checkpoint,
)
from ledger.witness import WitnessedTree
from tests.api.support import Api, assert_problem, enrol, harvest
from tests.api.witness_support import FakeWitness
from tests.ledger.builders import seeded

URL = "http://witness.test/w"


@pytest.fixture
def witness(world):
    return FakeWitness(world.verifier, seeded(40))


@pytest.fixture
def endpoint(witness):
    return WitnessEndpoint(url=URL, verifier=witness.verifier)


def pusher_for(world, *witnesses: FakeWitness, metrics=None, **kwargs) -> WitnessPusher:
    """One pusher over several fake witnesses, each at its own URL, one mock transport."""
    by_url = {f"{URL}{n}": w for n, w in enumerate(witnesses)}

    def handler(request: httpx.Request) -> httpx.Response:
        base = str(request.url).removesuffix("/add-checkpoint")
        return by_url[base].transport().handle_request(request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    endpoints = [WitnessEndpoint(url=u, verifier=w.verifier) for u, w in by_url.items()]
    return WitnessPusher(world.ledger, endpoints, metrics=metrics, http=http, **kwargs)


def grow(world, n: int = 3) -> None:
    if world.store.participant("farm-1") is None:
        enrol(world, "farm-1")
    for _ in range(n):
        world.ledger.append(harvest(world, "farm-1"))


def pushes(metrics: Metrics, name: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "mandi_witness_push_total", {"witness": name, "outcome": outcome}
    )
    return value or 0.0


def test_a_cosignature_is_verified_stored_and_served(world, witness, endpoint):
    grow(world)
    http = httpx.Client(transport=witness.transport())
    post = httpx_post(http)
    result = push_checkpoint(world.ledger, endpoint, post)
    size = world.ledger.size()
    assert (result.outcome, result.size, result.known_size) == (PushOutcome.COSIGNED, size, size)
    assert witness.requests[0].old_size == 0
    assert world.store.cosignatures(size) == list(result.stored)
    served = world.ledger.cosigned_checkpoint(1).note
    verified = open_checkpoint(served, world.verifier, [witness.verifier], 1)
    assert verified.witnesses_verified == (witness.name,)
    # Already cosigned: nothing is sent.
    again = push_checkpoint(world.ledger, endpoint, post)
    assert again.outcome is PushOutcome.UP_TO_DATE
    assert len(witness.requests) == 1
    # A newer checkpoint goes with the stored size and a consistency proof from it.
    grow(world, 2)
    assert push_checkpoint(world.ledger, endpoint, post).outcome is PushOutcome.COSIGNED
    assert witness.requests[-1].old_size == size
    assert witness.requests[-1].proof == tuple(
        world.ledger.consistency_proof(size, world.ledger.size())
    )


def test_409_resyncs_to_the_witness_size_once(world, witness, endpoint):
    grow(world)
    http = httpx.Client(transport=witness.transport())
    assert push_checkpoint(world.ledger, endpoint, httpx_post(http)).outcome.value == "cosigned"
    first = world.ledger.size()
    world.store._cosignatures.clear()  # the log forgot; the witness did not
    grow(world)
    result = push_checkpoint(world.ledger, endpoint, httpx_post(http))
    assert result.outcome is PushOutcome.COSIGNED
    assert [r.old_size for r in witness.requests[1:]] == [0, first]
    assert witness.statuses[1:] == [409, 200]


def test_a_witness_beyond_our_tree_is_another_log(world, witness, endpoint, caplog):
    grow(world)
    root = world.ledger.root_hash(world.ledger.size())
    witness.trees[world.verifier.name] = WitnessedTree(size=999, root_hash=root)
    metrics = Metrics(world.ledger, [witness.verifier])
    pusher = pusher_for(world, witness, metrics=metrics)
    [result] = pusher.run_once()
    assert result.outcome is PushOutcome.OTHER_LOG
    assert result.known_size == 999
    assert world.store.cosignatures(world.ledger.size()) == []
    assert pushes(metrics, witness.name, "other_log") == 1
    assert any(r.levelname == "ERROR" and "other_log" in r.getMessage() for r in caplog.records)


def test_a_fork_at_the_same_size_is_another_log(world, witness, endpoint):
    grow(world)
    size = world.ledger.size()
    witness.trees[world.verifier.name] = WitnessedTree(size=size, root_hash=b"\x07" * 32)
    post = httpx_post(httpx.Client(transport=witness.transport()))
    result = push_checkpoint(world.ledger, endpoint, post)
    assert result.outcome is PushOutcome.OTHER_LOG
    assert witness.statuses == [409, 409]


def test_a_smaller_tree_we_cannot_prove_from_is_another_log(world, witness, endpoint):
    grow(world)
    witness.trees[world.verifier.name] = WitnessedTree(size=2, root_hash=b"\x07" * 32)
    post = httpx_post(httpx.Client(transport=witness.transport()))
    result = push_checkpoint(world.ledger, endpoint, post)
    assert result.outcome is PushOutcome.OTHER_LOG
    assert witness.statuses == [409, 422]


@pytest.mark.parametrize(("status", "outcome"), [(422, "refused"), (403, "refused")])
def test_refusals_are_counted_and_retried_later(world, witness, status, outcome):
    grow(world)
    witness.mode = f"status:{status}"
    metrics = Metrics(world.ledger, [witness.verifier])
    now = [100.0]
    pusher = pusher_for(world, witness, metrics=metrics, retry_s=30, clock=lambda: now[0])
    [result] = pusher.run_once()
    assert result.outcome.value == outcome
    assert pushes(metrics, witness.name, outcome) == 1
    assert world.store.cosignatures(world.ledger.size()) == []
    # The thread's step waits for the retry time, then succeeds.
    witness.mode = "ok"
    assert pusher._push(0) is None
    now[0] += 31
    assert pusher._push(0).outcome is PushOutcome.COSIGNED
    assert pushes(metrics, witness.name, "cosigned") == 1
    assert pusher._push(0) is None  # done for this size


def test_a_timeout_is_unreachable_and_blocks_nothing(world, witness):
    grow(world)
    witness.mode = "timeout"
    metrics = Metrics(world.ledger, [witness.verifier])
    pusher = pusher_for(world, witness, metrics=metrics)
    [result] = pusher.run_once()
    assert result.outcome is PushOutcome.UNREACHABLE
    assert "ReadTimeout" in result.message
    assert pushes(metrics, witness.name, "unreachable") == 1
    grow(world)  # appends and checkpoints go on
    assert world.store.latest_checkpoint().size == world.ledger.size()


def test_a_real_connection_failure_is_unreachable(world, witness):
    grow(world)
    endpoint = WitnessEndpoint(url="http://127.0.0.1:9", verifier=witness.verifier)
    post = httpx_post(httpx.Client(timeout=1.0))
    assert push_checkpoint(world.ledger, endpoint, post).outcome is PushOutcome.UNREACHABLE


@pytest.mark.parametrize("mode", ["bad_line", "other_key_only"])
def test_an_invalid_cosignature_is_never_stored(world, witness, mode):
    grow(world)
    witness.mode = mode
    metrics = Metrics(world.ledger, [witness.verifier])
    [result] = pusher_for(world, witness, metrics=metrics).run_once()
    assert result.outcome is PushOutcome.INVALID_COSIGNATURE
    assert list(world.store.all_cosignatures()) == []
    assert pushes(metrics, witness.name, "invalid_cosignature") == 1


def test_garbage_answers_are_handled(world, witness, endpoint):
    grow(world)
    replies = iter(
        [
            WitnessReply(status=200, content_type="text/plain", body=b"\xff\xfe"),
            WitnessReply(status=409, content_type="text/x.tlog.size", body=b"01\n"),
            WitnessReply(status=409, content_type="text/plain", body=b"5\n"),
            WitnessReply(status=200, content_type="text/plain", body=b"not a line\n"),
        ]
    )
    outcomes = [
        push_checkpoint(world.ledger, endpoint, lambda url, body: next(replies)).outcome
        for _ in range(4)
    ]
    assert outcomes == [
        PushOutcome.INVALID_COSIGNATURE,
        PushOutcome.REFUSED,
        PushOutcome.REFUSED,
        PushOutcome.INVALID_COSIGNATURE,
    ]

    def down(url: str, body: bytes) -> WitnessReply:
        raise WitnessTransportError("down")

    assert push_checkpoint(world.ledger, endpoint, down).outcome is PushOutcome.UNREACHABLE


def test_several_witnesses_each_cosign(world):
    grow(world)
    a, b = (
        FakeWitness(world.verifier, seeded(41), "w.example/a"),
        FakeWitness(world.verifier, seeded(42), "w.example/b"),
    )
    b.mode = "status:500"
    pusher = pusher_for(world, a, b)
    assert [r.outcome.value for r in pusher.run_once()] == ["cosigned", "refused"]
    b.mode = "ok"
    assert [r.outcome.value for r in pusher.run_once()] == ["cosigned"]  # a: nothing due
    note = world.ledger.cosigned_checkpoint(2).note
    assert open_checkpoint(note, world.verifier, [a.verifier, b.verifier], 2)


def test_the_thread_pushes_each_new_checkpoint(world, witness):
    grow(world)
    pusher = pusher_for(world, witness, interval_s=0.05)
    pusher.start()
    try:
        deadline = time.monotonic() + 10
        while world.store.latest_cosigned_checkpoint() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        grow(world)
        pusher.poke()
        size = world.ledger.size()
        while world.store.witness_size(witness.name, witness.verifier.key_hash) != size:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        pusher.stop()


def test_the_app_runs_the_pusher_and_serves_cosignatures(world, witness):
    grow(world)
    settings = Settings(
        witnesses=(WitnessEndpoint(url=URL, verifier=witness.verifier),),
        witness_retry_s=1,
        run_checkpointer=False,  # the pusher below, over the mock transport, does the work
    )
    app = create_app(settings, world.ledger)
    pusher = pusher_for(world, witness)
    api = Api(app)
    try:
        assert_problem(
            api.get("/v1/log/checkpoint?min_cosignatures=1"), 404, "no_cosigned_checkpoint"
        )
        pusher.run_once()
        body = api.get("/v1/log/checkpoint").text
        assert body == world.ledger.cosigned_checkpoint().note
        assert open_checkpoint(body, world.verifier, [witness.verifier], 1)
        assert api.get("/v1/log/checkpoint?min_cosignatures=1").text == body
        metrics = api.get("/metrics").text
        size = world.ledger.size()
        assert f'mandi_witness_cosigned_size{{witness="{witness.name}"}} {size}.0' in metrics
    finally:
        api.close()


# -- configuration ------------------------------------------------------------


def test_witness_specs_parse(witness):
    assert parse_witness_spec(f"{URL}/={witness.vkey}") == (URL, witness.vkey)
    assert parse_witness_spec(f" {URL} {witness.vkey} ") == (URL, witness.vkey)
    with pytest.raises(ValueError, match="URL=VKEY"):
        parse_witness_spec(URL)
    lines = f"# witnesses\n\n{URL}a {witness.vkey}\n{URL}b={witness.vkey}\n"
    with pytest.raises(SettingsError, match="same witness key"):
        Settings(witnesses=parse_witnesses(lines))
    as_json = f'[{{"url": "{URL}", "vkey": "{witness.vkey}"}}]'
    assert parse_witnesses(as_json)[0].verifier == witness.verifier
    assert parse_witnesses(f'["{URL}={witness.vkey}"]')[0].url == URL
    for bad, match in [
        ("[1]", r"\[0\]"),
        ("[", "JSON"),
        (f"ftp://x {witness.vkey}", "http"),
        (f"{URL} {NoteVerifier.from_vkey(witness.vkey).name}+00000000+AQ==", "witness"),
    ]:
        with pytest.raises(SettingsError, match=match):
            parse_witnesses(bad)


def test_settings_read_the_data_dir_file_unless_the_variable_is_set(tmp_path, witness):
    (tmp_path / "witnesses.txt").write_text(f"{URL} {witness.vkey}\n")
    env = {"MANDI_DATA_DIR": str(tmp_path)}
    assert [w.url for w in Settings.from_env(env).witnesses] == [URL]
    assert Settings.from_env({**env, "MANDI_WITNESSES": ""}).witnesses == ()
    other = f"{URL}2={witness.vkey}"
    assert [w.url for w in Settings.from_env({**env, "MANDI_WITNESSES": other}).witnesses] == [
        f"{URL}2"
    ]
    with pytest.raises(SettingsError, match="MANDI_WITNESSES"):
        Settings.from_env({**env, "MANDI_WITNESSES": "nonsense"})
