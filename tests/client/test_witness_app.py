"""The witness server (client.witness_app) through httpx's ASGI transport, and `mandi witness`.

Every status the add-checkpoint endpoint can answer, the monitoring endpoints,
a rollback and a fork refused (also after a restart and from two concurrent
requests), and the CLI: `vkey`, `serve`'s checks before it listens, and
`compare` over state files, note files, witness URLs and a Mandi server's
consistency proof (all in-process).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

import client.cli.witness as witness_cli
import client.http
from client.cli.main import app as mandi
from client.keystore import KeyStore
from client.witness_app import WitnessIdentity, create_witness_app
from client.witness_state import WitnessState, origin_hash
from ledger.checkpoint import (
    Checkpoint,
    NoteVerifier,
    SignedNote,
    build_witness_vkey,
    cosign_checkpoint,
    open_checkpoint,
    open_cosignature,
    sign_checkpoint,
)
from ledger.hashing import EMPTY_ROOT, Digest, sha256
from ledger.keys import Signer
from ledger.witness import (
    ADD_CHECKPOINT_PATH,
    MAX_REQUEST_SIZE,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    parse_size_response,
)
from tests.api.support import Api
from tests.ledger.merkle_reference import mth, proof

ORIGIN = "witness.mandi.example/log"
LOG = Signer.from_seed(bytes([11]) * 32)
IMPOSTOR = Signer.from_seed(bytes([12]) * 32)
LOG_V = NoteVerifier.from_key(ORIGIN, LOG.public)
W1 = Signer.from_seed(bytes([21]) * 32)
W2 = Signer.from_seed(bytes([22]) * 32)
W1_V = NoteVerifier.from_vkey(build_witness_vkey("w1", W1.public))
W2_V = NoteVerifier.from_vkey(build_witness_vkey("w2", W2.public))
LEAVES = [Digest(sha256(bytes([i]))) for i in range(40)]
FORK = [*LEAVES[:10], *(Digest(sha256(bytes([i, 1]))) for i in range(10, 40))]
HASH = origin_hash(ORIGIN)
NOW = 1_800_000_000
runner = CliRunner()


def note(size: int, leaves: list[Digest] = LEAVES, signer: Signer = LOG) -> str:
    root = mth(leaves[:size]) if size else EMPTY_ROOT
    checkpoint = Checkpoint(origin=ORIGIN, size=size, root_hash=root)
    return sign_checkpoint(checkpoint, ORIGIN, signer).to_text()


def body(old: int, new: int, leaves: list[Digest] = LEAVES, signer: Signer = LOG) -> bytes:
    hashes = tuple(proof(old, leaves[:new])) if 0 < old < new else ()
    return AddCheckpointRequest(
        old_size=old, proof=hashes, note=note(new, leaves, signer)
    ).to_bytes()


class Witness:
    """A witness app over a state file, driven in-process."""

    def __init__(self, path: Path, signer: Signer = W1, name: str = "w1", state=None) -> None:
        self.path = path
        self.state = state if state is not None else WitnessState(path)
        self.state.add_log(LOG_V, now=NOW)
        self.identity = WitnessIdentity(name=name, signer=signer)
        self.app = create_witness_app(self.state, self.identity, clock=lambda: NOW)
        self.api = Api(self.app)

    def add(self, payload: bytes) -> httpx.Response:
        return self.api.post(ADD_CHECKPOINT_PATH, content=payload)

    def close(self) -> None:
        self.api.close()


@pytest.fixture
def witness(tmp_path):
    w = Witness(tmp_path / "w1.db")
    yield w
    w.close()


def assert_known_size(response: httpx.Response, size: int) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == SIZE_CONTENT_TYPE
    assert parse_size_response(response.content) == size


def assert_refused(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.startswith(f"{code} [{field}]: "), response.text
    assert response.text.endswith("\n")


# --------------------------------------------------------------------------- add-checkpoint


def test_first_checkpoint_is_cosigned_and_stored_before_the_answer(witness):
    response = witness.add(body(0, 10))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    cosig = open_cosignature(SignedNote.from_text(note(10)).text, response.text, W1_V)
    assert (cosig.name, cosig.timestamp) == ("w1", NOW)
    stored = witness.state.latest_note(ORIGIN)
    assert stored is not None
    assert stored.endswith(response.text)
    verified = open_checkpoint(stored, LOG_V, [W1_V], quorum=1)
    assert verified.checkpoint.size == 10
    assert witness.state.latest(ORIGIN).size == 10


def test_extensions_are_cosigned_and_kept_in_history(witness):
    assert witness.add(body(0, 10)).status_code == 200
    assert witness.add(body(10, 17)).status_code == 200
    assert witness.add(body(17, 17)).status_code == 200  # the same tree again
    history = witness.api.get(f"/checkpoints/{HASH}")
    assert history.status_code == 200
    notes = history.json()
    assert [open_checkpoint(n, LOG_V, [W1_V], 1).checkpoint.size for n in notes] == [10, 17]
    latest = witness.api.get(f"/checkpoint/{HASH}")
    assert latest.status_code == 200
    assert latest.text == notes[-1]


def test_only_the_log_signature_and_the_own_cosignature_are_kept(witness):
    text = SignedNote.from_text(note(10)).text
    other = cosign_checkpoint(W2, "w2", text, 5)
    stale_own = cosign_checkpoint(W1, "w1", text, 5)
    extra = note(10) + other + stale_own
    payload = AddCheckpointRequest(old_size=0, proof=(), note=extra).to_bytes()
    response = witness.add(payload)
    assert response.status_code == 200, response.text
    stored = SignedNote.from_text(witness.state.latest_note(ORIGIN))
    assert [s.name for s in stored.signatures] == [ORIGIN, "w1"]
    assert stored.signatures[1].line == response.text


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"old 0\nno empty line follows\n", "body"),
        (b"new 0\n\n" + note(3).encode(), "old"),
        (b"old 01\n\n" + note(3).encode(), "old"),
        (b"old 0\nnot-base64\n\n" + note(3).encode(), "proof[0]"),
        (b"\xff\xfe\n\n" + note(3).encode(), "body"),
    ],
)
def test_malformed_bodies_are_400_naming_the_part(witness, payload, field):
    assert_refused(witness.add(payload), 400, "bad_witness_request", field)
    assert witness.state.latest(ORIGIN) is None


def test_a_malformed_checkpoint_is_400(witness):
    payload = b"old 0\n\n" + f"{ORIGIN}\n3\n".encode()
    assert_refused(witness.add(payload), 400, "bad_checkpoint", "checkpoint")


def test_an_unknown_log_is_404(witness):
    other = Signer.from_seed(bytes([9]) * 32)
    checkpoint = Checkpoint(origin="other.example/log", size=1, root_hash=LEAVES[0])
    signed = sign_checkpoint(checkpoint, "other.example/log", other).to_text()
    payload = AddCheckpointRequest(old_size=0, proof=(), note=signed).to_bytes()
    assert_refused(witness.add(payload), 404, "unknown_log", "origin")


def test_a_checkpoint_not_signed_by_the_log_key_is_403(witness):
    assert_refused(
        witness.add(body(0, 10, signer=IMPOSTOR)), 403, "bad_log_signature", "checkpoint"
    )
    assert witness.state.evidence(ORIGIN) == []


def test_old_larger_than_the_new_size_is_400(witness):
    assert witness.add(body(0, 10)).status_code == 200
    assert_refused(witness.add(body(10, 5)), 400, "old_size_too_large", "old")


def test_a_stale_old_size_is_409_with_the_known_size(witness):
    assert witness.add(body(0, 10)).status_code == 200
    assert_known_size(witness.add(body(0, 12)), 10)
    assert_known_size(witness.add(body(5, 12)), 10)
    assert witness.state.evidence(ORIGIN) == []  # a lagging log is no misbehaviour


def test_a_rollback_is_never_cosigned(witness):
    assert witness.add(body(0, 10)).status_code == 200
    assert_known_size(witness.add(body(0, 5)), 10)
    assert_known_size(witness.add(body(5, 5)), 10)
    assert_refused(witness.add(body(10, 5)), 400, "old_size_too_large", "old")
    assert witness.state.latest(ORIGIN).size == 10
    assert len(witness.state.history(ORIGIN)) == 1


def test_a_fork_of_the_same_size_is_409_and_kept_as_evidence(witness):
    assert witness.add(body(0, 20)).status_code == 200
    fork = body(20, 20, FORK)
    assert_known_size(witness.add(fork), 20)
    assert witness.state.latest(ORIGIN).root_hash == mth(LEAVES[:20])
    evidence = witness.api.get(f"/evidence/{HASH}")
    assert evidence.status_code == 200
    [item] = evidence.json()
    assert item["status"] == 409
    assert item["code"] == "conflicting_root"
    assert item["request"] == fork.decode()
    assert item["id"] == sha256(fork).hex()
    assert open_checkpoint(item["cosigned_note"], LOG_V, [W1_V], 1).checkpoint.root_hash == (
        mth(LEAVES[:20])
    )


def test_a_fork_that_does_not_extend_is_422_and_kept_as_evidence(witness):
    assert witness.add(body(0, 20)).status_code == 200
    # A well-formed proof, but from the fork's own size-20 tree.
    fork = body(20, 30, FORK)
    assert_refused(witness.add(fork), 422, "bad_consistency_proof", "proof")
    assert witness.state.latest(ORIGIN).size == 20
    [kept] = witness.state.evidence(ORIGIN)
    assert (kept.status, kept.code, kept.request) == (422, "bad_consistency_proof", fork)
    # The same request again is kept once.
    assert witness.add(fork).status_code == 422
    assert len(witness.state.evidence(ORIGIN)) == 1


def test_a_body_over_the_limit_is_413(witness):
    response = witness.add(b"old 0\n\n" + b"x" * MAX_REQUEST_SIZE)
    assert_refused(response, 413, "bad_witness_request", "body")


def test_a_chunked_body_over_the_limit_is_413(witness):
    async def chunks():
        yield b"old 0\n\n"
        for _ in range(MAX_REQUEST_SIZE // 4096 + 2):
            yield b"x" * 4096

    response = witness.api.post(ADD_CHECKPOINT_PATH, content=chunks())
    assert response.status_code == 413


def test_other_methods_are_405(witness):
    assert witness.api.get(ADD_CHECKPOINT_PATH).status_code == 405


# --------------------------------------------------------------------------- monitoring


def test_monitoring_endpoints_before_anything_is_cosigned(witness):
    assert witness.api.get(f"/checkpoint/{HASH}").status_code == 404
    assert witness.api.get(f"/checkpoints/{HASH}").json() == []
    assert witness.api.get(f"/evidence/{HASH}").json() == []
    for path in ("/checkpoint/", "/checkpoints/", "/evidence/"):
        assert witness.api.get(path + "0" * 64).status_code == 404
        assert witness.api.get(path + HASH.upper()).status_code == 404
    about = witness.api.get("/").json()
    assert about["vkey"] == W1_V.to_vkey()
    assert about["logs"] == [{"origin": ORIGIN, "hash": HASH, "vkey": LOG_V.to_vkey()}]


# --------------------------------------------------------------------------- restart and races


def test_a_restarted_witness_refuses_the_fork_and_the_rollback(tmp_path):
    first = Witness(tmp_path / "w1.db")
    assert first.add(body(0, 20)).status_code == 200
    first.close()
    again = Witness(tmp_path / "w1.db")
    try:
        assert_known_size(again.add(body(0, 20, FORK)), 20)
        assert_known_size(again.add(body(0, 5)), 20)
        assert_known_size(again.add(body(20, 20, FORK)), 20)
        assert again.add(body(20, 25)).status_code == 200
        assert again.state.latest(ORIGIN).root_hash == mth(LEAVES[:25])
    finally:
        again.close()


class _RacingState(WitnessState):
    """Holds every reader of the tree until both requests have read it, so both pass the
    checks against the same tree before either stores (the race the CAS must settle)."""

    barrier: threading.Barrier | None = None
    held = 0
    lock = threading.Lock()

    def latest(self, origin):
        tree = super().latest(origin)
        with self.lock:
            wait = self.barrier is not None and self.held < 2
            self.held += wait  # only the first read of each request waits
        if wait:
            self.barrier.wait(timeout=10)
        return tree


def test_two_concurrent_forks_only_one_is_cosigned(tmp_path):
    state = _RacingState(tmp_path / "w1.db")
    w = Witness(tmp_path / "w1.db", state=state)
    a, b = body(0, 20), body(0, 20, FORK)
    results: dict[str, httpx.Response] = {}

    async def send(key: str, payload: bytes) -> None:
        results[key] = await w.api._client.post(ADD_CHECKPOINT_PATH, content=payload)

    async def both() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(send, "a", a)
            group.start_soon(send, "b", b)

    try:
        state.barrier = threading.Barrier(2)
        w.api.call(both)
        state.barrier = None
        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [200, 409], {k: r.text for k, r in results.items()}
        winner = next(k for k, r in results.items() if r.status_code == 200)
        loser = next(k for k, r in results.items() if r.status_code == 409)
        assert_known_size(results[loser], 20)
        leaves = LEAVES if winner == "a" else FORK
        assert state.latest(ORIGIN).root_hash == mth(leaves[:20])
        assert len(state.history(ORIGIN)) == 1
        stored = state.latest_note(ORIGIN)
        assert stored.endswith(results[winner].text)
    finally:
        state.barrier = None
        w.close()


# --------------------------------------------------------------------------- the CLI: vkey, serve


@pytest.fixture
def keys(tmp_path, monkeypatch):
    directory = tmp_path / "keys"
    KeyStore(directory).create("w1")
    monkeypatch.setenv("MANDI_KEYS_DIR", str(directory))
    monkeypatch.setenv("MANDI_CONFIG", str(tmp_path / "none.toml"))
    return directory


def test_vkey_prints_the_cosignature_vkey(keys):
    signer = KeyStore(keys).load("w1")
    result = runner.invoke(mandi, ["witness", "vkey", "--key", "w1"])
    assert result.exit_code == 0, result.output
    assert result.stdout == build_witness_vkey("w1", signer.public) + "\n"
    named = runner.invoke(mandi, ["witness", "vkey", "--key", "w1", "--name", "witness.example"])
    assert named.stdout == build_witness_vkey("witness.example", signer.public) + "\n"


def test_vkey_usage_and_key_errors(keys):
    bad = runner.invoke(mandi, ["witness", "vkey", "--key", "w1", "--name", "a+b"])
    assert bad.exit_code == 2
    assert "--name" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = runner.invoke(mandi, ["witness", "vkey", "--key", "nobody"])
    assert missing.exit_code == 1
    assert "mandi keys new nobody" in missing.stderr


def test_serve_checks_before_it_listens(keys, tmp_path):
    state = str(tmp_path / "w.db")
    none = runner.invoke(mandi, ["witness", "serve", "--key", "w1", "--state", state])
    assert none.exit_code == 2
    assert "--log" in none.stderr
    bad = runner.invoke(
        mandi, ["witness", "serve", "--key", "w1", "--state", state, "--log", "nonsense"]
    )
    assert bad.exit_code == 2
    assert "--log" in bad.stderr
    typed = runner.invoke(
        mandi, ["witness", "serve", "--key", "w1", "--state", state, "--log", W2_V.to_vkey()]
    )
    assert typed.exit_code == 2
    assert "Ed25519" in typed.stderr
    missing = runner.invoke(
        mandi, ["witness", "serve", "--key", "nobody", "--state", state, "--log", LOG_V.to_vkey()]
    )
    assert missing.exit_code == 1


def test_serve_keeps_its_logs_and_its_identity_across_restarts(keys, tmp_path, monkeypatch):
    served: list[Any] = []
    # `mandi witness serve` imports uvicorn when it runs (the CLI starts fast), so patch
    # uvicorn itself.
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(LOG_V.to_vkey() + "\n")
    state = str(tmp_path / "w.db")
    args = ["witness", "serve", "--key", "w1", "--state", state, "--port", "9123"]
    first = runner.invoke(mandi, [*args, "--log", str(vkey_file)])
    assert first.exit_code == 0, first.output
    app, options = served[-1]
    assert (options["host"], options["port"]) == ("127.0.0.1", 9123)
    api = Api(app)
    try:
        assert api.post(ADD_CHECKPOINT_PATH, content=body(0, 10)).status_code == 200
    finally:
        api.close()
    # Restarted without --log: the state file still lists the log and its tree.
    second = runner.invoke(mandi, args)
    assert second.exit_code == 0, second.output
    api = Api(served[-1][0])
    try:
        assert_known_size(api.post(ADD_CHECKPOINT_PATH, content=body(0, 10, FORK)), 10)
        assert api.post(ADD_CHECKPOINT_PATH, content=body(10, 12)).status_code == 200
    finally:
        api.close()
    # Under another witness name, the state file is refused.
    renamed = runner.invoke(mandi, [*args, "--name", "someone.else"])
    assert renamed.exit_code == 1
    assert "belongs to the witness" in renamed.stderr


# --------------------------------------------------------------------------- the CLI: compare


def _witness_with(path: Path, signer: Signer, name: str, pushes: list[bytes]) -> Witness:
    w = Witness(path, signer=signer, name=name)
    for payload in pushes:
        assert w.add(payload).status_code == 200
    return w


def compare(*args: str) -> Any:
    return runner.invoke(mandi, ["witness", "compare", *args, "--log-vkey", LOG_V.to_vkey()])


def test_compare_exposes_a_split_view_between_state_files(tmp_path):
    a = _witness_with(tmp_path / "a.db", W1, "w1", [body(0, 10), body(10, 20)])
    b = _witness_with(tmp_path / "b.db", W2, "w2", [body(0, 10), body(10, 20, FORK)])
    a.close()
    b.close()
    result = compare(
        str(a.path), str(b.path), "--witness-vkey", W1_V.to_vkey(), "--witness-vkey", W2_V.to_vkey()
    )
    assert result.exit_code == 1, result.output
    assert "SPLIT VIEW" in result.stdout
    assert a.state.latest_note(ORIGIN) in result.stdout
    assert b.state.latest_note(ORIGIN) in result.stdout
    as_json = compare(str(a.path), str(b.path), "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["result"] == "split_view"
    assert {e["note"] for e in data["evidence"]} == {
        a.state.latest_note(ORIGIN),
        b.state.latest_note(ORIGIN),
    }
    assert {e["size"] for e in data["evidence"]} == {20}


def test_compare_agrees_on_the_same_tree_and_on_a_history_prefix(tmp_path):
    a = _witness_with(tmp_path / "a.db", W1, "w1", [body(0, 10), body(10, 20)])
    b = _witness_with(tmp_path / "b.db", W2, "w2", [body(0, 10)])
    c = _witness_with(tmp_path / "c.db", W2, "w2", [body(0, 20)])
    for w in (a, b, c):
        w.close()
    same = compare(str(a.path), str(c.path))
    assert same.exit_code == 0, same.output
    assert same.stdout.startswith("consistent: both at size 20")
    prefix = compare(str(b.path), str(a.path))
    assert prefix.exit_code == 0, prefix.output
    assert "history holds the checkpoint of size 10" in prefix.stdout
    # b is at 10, c jumped straight to 20: no common checkpoint, no server.
    undecided = compare(str(b.path), str(c.path))
    assert undecided.exit_code == 3, undecided.output
    assert "cannot decide" in undecided.stdout


def test_compare_reads_note_files_and_checks_cosignatures(tmp_path):
    a = _witness_with(tmp_path / "a.db", W1, "w1", [body(0, 20)])
    a.close()
    cosigned = tmp_path / "cosigned.txt"
    cosigned.write_text(a.state.latest_note(ORIGIN))
    bare = tmp_path / "bare.txt"
    bare.write_text(note(20))
    fork = tmp_path / "fork.txt"
    fork.write_text(note(20, FORK))
    assert compare(str(cosigned), str(bare)).exit_code == 0
    split = compare(str(cosigned), str(fork))
    assert split.exit_code == 1
    assert note(20, FORK) in split.stdout
    # With a witness key, a note without that witness's cosignature does not verify.
    unsigned = compare(str(cosigned), str(bare), "--witness-vkey", W1_V.to_vkey())
    assert unsigned.exit_code == 4
    assert "quorum" in unsigned.stderr or "cosignature" in unsigned.stderr
    forged = tmp_path / "forged.txt"
    forged.write_text(note(20, signer=IMPOSTOR))
    bad = compare(str(cosigned), str(forged))
    assert bad.exit_code == 4
    assert bad.stderr.startswith("mandi: error: ")


def test_compare_usage_errors_name_the_option(tmp_path):
    bare = tmp_path / "bare.txt"
    bare.write_text(note(10))
    no_vkey = runner.invoke(mandi, ["witness", "compare", str(bare), str(bare)], env={})
    assert no_vkey.exit_code == 2
    assert "--log-vkey" in no_vkey.stderr
    missing = compare(str(bare), str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2
    assert "B:" in missing.stderr
    wrong_type = compare(str(bare), str(bare), "--witness-vkey", LOG_V.to_vkey())
    assert wrong_type.exit_code == 2
    assert "--witness-vkey" in wrong_type.stderr
    server = compare(str(bare), str(bare), "--server", "ftp://x")
    assert server.exit_code == 2
    assert "--server" in server.stderr


class _AsgiTransport(httpx.BaseTransport):
    """A synchronous transport into an ASGI app, through an anyio portal."""

    def __init__(self, portal: Any, app: Any) -> None:
        self._portal = portal
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._portal.call(call)


@pytest.fixture
def routes(monkeypatch):
    """Route http://NAME URLs to in-process apps (witnesses) or handlers (a Mandi server)."""
    table: dict[str, Any] = {}
    with anyio.from_thread.start_blocking_portal() as portal:

        def new_client(base_url: str, timeout: Any = None) -> httpx.Client:
            target = table[httpx.URL(base_url).host]
            transport = (
                httpx.MockTransport(target)
                if callable(target) and not hasattr(target, "router")
                else _AsgiTransport(portal, target)
            )
            return httpx.Client(transport=transport, base_url=base_url)

        monkeypatch.setattr(witness_cli, "new_http_client", new_client)
        monkeypatch.setattr(client.http, "new_http_client", new_client)
        yield table


def _server(size1: int, size2: int, leaves: list[Digest], *, status: int = 200):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/log/proof/consistency"
        first, second = int(request.url.params["first"]), int(request.url.params["second"])
        assert (first, second) == (size1, size2)
        if status != 200:
            return httpx.Response(status, json={"status": status, "code": "bad_proof_request"})
        return httpx.Response(
            200,
            json={
                "first": first,
                "second": second,
                "first_root": mth(leaves[:first]).hex(),
                "second_root": mth(leaves[:second]).hex(),
                "proof": [h.hex() for h in proof(first, leaves[:second])],
            },
        )

    return handler


def test_compare_over_witness_urls_and_a_consistency_proof(tmp_path, routes):
    a = _witness_with(tmp_path / "a.db", W1, "w1", [body(0, 12)])
    b = _witness_with(tmp_path / "b.db", W2, "w2", [body(0, 30)])
    f = _witness_with(tmp_path / "f.db", W2, "w2", [body(0, 30, FORK)])
    routes.update({"w1": a.app, "w2": b.app, "wf": f.app})
    try:
        assert compare("http://w1", "http://w2").exit_code == 3
        routes["log"] = _server(12, 30, LEAVES)
        proven = compare("http://w1", "http://w2/", "--server", "http://log")
        assert proven.exit_code == 0, proven.output
        assert "the server proved size 30 extends size 12" in proven.stdout
        # The fork's size-30 tree does not extend the size-12 tree w1 cosigned.
        routes["log"] = _server(12, 30, FORK)
        forked = compare("http://w1", "http://wf", "--server", "http://log", "--json")
        assert forked.exit_code == 1, forked.output
        data = json.loads(forked.stdout)
        assert data["result"] == "inconsistent"
        assert {e["note"] for e in data["evidence"]} == {
            a.state.latest_note(ORIGIN),
            f.state.latest_note(ORIGIN),
        }
        routes["log"] = _server(12, 30, LEAVES, status=400)
        unavailable = compare("http://w1", "http://w2", "--server", "http://log")
        assert unavailable.exit_code == 1
        assert "no consistency proof" in unavailable.stdout
        routes["nobody"] = lambda request: httpx.Response(404, text="unknown_log")
        unknown = compare("http://w1", "http://nobody")
        assert unknown.exit_code == 4
        assert "HTTP 404" in unknown.stderr
    finally:
        for w in (a, b, f):
            w.close()
