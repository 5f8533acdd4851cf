"""Two real witnesses catch a log that shows each of them a different history.

A real SQLite ledger is built and checkpointed, then its data directory is
copied: two forks behind the same log key. Each fork appends different
statements and signs its own checkpoint of the same size. Two `mandi witness
serve` processes run on free loopback ports; fork A is pushed to witness 1 and
fork B to witness 2 with add-checkpoint requests built from each ledger
(checkpoint notes and consistency proofs from the Ledger API). Then the
installed `mandi witness compare` finds the split view from the two witnesses'
HTTP endpoints alone (exit 1, both signed checkpoints printed), while witness 1
refuses fork B (409/422, also after a restart) and keeps it as evidence. A
second, honest log witnessed by the same two processes compares clean (exit 0),
once from the witnesses' histories and once with a consistency proof from a
real `mandi serve`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from client.keystore import KeyStore
from ledger.checkpoint import Checkpoint, SignedNote, build_witness_vkey, open_checkpoint
from ledger.datadir import init_data_dir, load_verifier, open_ledger, read_operator
from ledger.keys import Signer, VerifyingKey
from ledger.registry import build_enrolment, build_enrolment_request
from ledger.service import Ledger
from ledger.witness import SIZE_CONTENT_TYPE, AddCheckpointRequest, parse_size_response

pytestmark = pytest.mark.slow

MANDI = str(Path(sys.executable).parent / "mandi")
FORKED = "split.mandi.example/log"
HONEST = "honest.mandi.example/log"
TIME = "2026-11-20T09:30:00+05:00"
LOCATION = {"district": "Sheikhupura", "province": "Punjab"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _origin_hash(origin: str) -> str:
    return hashlib.sha256(origin.encode()).hexdigest()


# --------------------------------------------------------------------------- ledgers


@dataclass
class Log:
    """A data directory, and every checkpoint note it signed, by size."""

    data_dir: Path
    origin: str
    notes: dict[int, str] = field(default_factory=dict)

    @property
    def vkey_file(self) -> Path:
        return self.data_dir / "log.vkey"

    def open(self) -> Ledger:
        return open_ledger(self.data_dir)

    def enrol(self, *participants: str) -> int:
        """Append the operator's enrolment of each participant; sign a checkpoint."""
        ledger = self.open()
        try:
            _, operator = read_operator(self.data_dir)
            for pid in participants:
                request = build_enrolment_request(
                    origin=self.origin,
                    participant_id=pid,
                    signer=Signer.generate(),
                    time=TIME,
                    profile={"role": "producer", "local_id": pid, "location": LOCATION},
                )
                ledger.append(
                    build_enrolment(
                        origin=self.origin, operator=operator, request=request, time=TIME
                    )
                )
            stored = ledger.flush_checkpoint()
            assert stored is not None
            self.notes[stored.size] = stored.note
            return stored.size
        finally:
            ledger.store.close()

    def request(self, old: int, new: int) -> bytes:
        """The add-checkpoint request for the checkpoint of size ``new``, from ``old``."""
        ledger = self.open()
        try:
            proof = ledger.consistency_proof(old, new) if 0 < old < new else []
        finally:
            ledger.store.close()
        return AddCheckpointRequest(
            old_size=old, proof=tuple(proof), note=self.notes[new]
        ).to_bytes()

    def root(self, size: int) -> bytes:
        note = SignedNote.from_text(self.notes[size])
        return Checkpoint.from_text(note.text).root_hash


def _make_log(directory: Path, origin: str) -> Log:
    init_data_dir(directory, origin=origin)
    return Log(data_dir=directory, origin=origin)


# --------------------------------------------------------------------------- processes


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANDI_", "PROMETHEUS_"))}
    env.update(
        {
            "COLUMNS": "200",
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "MANDI_KEYS_DIR": str(tmp / "keys"),
        }
    )
    return env


def _mandi(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MANDI, *args], capture_output=True, text=True, timeout=120, env=_env(tmp), check=False
    )


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited: {log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} not ready in 30 s: {log.read_text()}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output


class WitnessProcess:
    """`mandi witness serve` as a real process on a free loopback port."""

    def __init__(self, tmp: Path, key: str, logs: list[Path]) -> None:
        self.tmp = tmp
        self.key = key
        self.state = tmp / f"{key}.db"
        self.logs = logs
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, with_logs: bool = True) -> None:
        self.launch(with_logs=with_logs)
        self.wait()

    def launch(self, *, with_logs: bool = True) -> None:
        self.starts += 1
        self.output = self.tmp / f"{self.key}.{self.starts}.log"
        args = [MANDI, "witness", "serve", "--key", self.key, "--state", str(self.state)]
        args += ["--host", "127.0.0.1", "--port", str(self.port)]
        if with_logs:
            for vkey in self.logs:
                args += ["--log", str(vkey)]
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=_env(self.tmp)
            )

    def wait(self) -> None:
        assert self.proc is not None
        _wait_ready(self.proc, f"{self.url}/", self.output)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, self.output)
            self.proc = None

    def push(self, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/add-checkpoint", content=body, timeout=10)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    tmp: Path
    fork_a: Log
    fork_b: Log
    honest: Log
    w1: WitnessProcess
    w2: WitnessProcess
    w1_vkey: str
    w2_vkey: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # One world for the module: every `mandi` process costs an interpreter start.
    tmp_path = tmp_path_factory.mktemp("witnesses")
    base = _make_log(tmp_path / "base", FORKED)
    assert base.enrol("farm.common.1", "farm.common.2") == 3
    fork_a = Log(data_dir=tmp_path / "fork-a", origin=FORKED, notes=dict(base.notes))
    fork_b = Log(data_dir=tmp_path / "fork-b", origin=FORKED, notes=dict(base.notes))
    shutil.copytree(base.data_dir, fork_a.data_dir)
    shutil.copytree(base.data_dir, fork_b.data_dir)
    assert fork_a.enrol("farm.a.1", "farm.a.2", "farm.a.3") == 6
    assert fork_b.enrol("farm.b.1", "farm.b.2", "farm.b.3") == 6
    assert fork_a.root(6) != fork_b.root(6)
    assert fork_a.vkey_file.read_text() == fork_b.vkey_file.read_text()  # one log key

    honest = _make_log(tmp_path / "honest", HONEST)
    assert honest.enrol("farm.h.1") == 2
    assert honest.enrol("farm.h.2") == 3
    assert honest.enrol("farm.h.3", "farm.h.4") == 5

    keys = KeyStore(tmp_path / "keys")
    vkeys = {
        key: build_witness_vkey(key, VerifyingKey.from_bytes(keys.create(key).public_key))
        for key in ("w1", "w2")
    }
    shown = _mandi(tmp_path, "witness", "vkey", "--key", "w1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == vkeys["w1"] + "\n"

    logs = [fork_a.vkey_file, honest.vkey_file]
    w1 = WitnessProcess(tmp_path, "w1", logs)
    w2 = WitnessProcess(tmp_path, "w2", logs)
    try:
        w1.launch()
        w2.launch()
        w1.wait()
        w2.wait()
        yield World(tmp_path, fork_a, fork_b, honest, w1, w2, vkeys["w1"], vkeys["w2"])
    finally:
        w1.stop()
        w2.stop()


def _compare(world: World, origin_vkey: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _mandi(
        world.tmp,
        "witness",
        "compare",
        world.w1.url,
        world.w2.url,
        "--log-vkey",
        str(origin_vkey),
        "--witness-vkey",
        world.w1_vkey,
        "--witness-vkey",
        world.w2_vkey,
        *args,
    )


def _assert_known_size(response: httpx.Response, size: int) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == SIZE_CONTENT_TYPE
    assert parse_size_response(response.content) == size


# --------------------------------------------------------------------------- the test


def test_two_witnesses_expose_a_forked_log(world: World) -> None:
    w1, w2, a, b = world.w1, world.w2, world.fork_a, world.fork_b
    forked_hash = _origin_hash(FORKED)
    log_v = load_verifier(str(a.vkey_file))

    # Both witnesses see the common prefix, then each sees its own fork.
    assert w1.push(a.request(0, 3)).status_code == 200
    assert w2.push(b.request(0, 3)).status_code == 200
    cosig_a = w1.push(a.request(3, 6))
    cosig_b = w2.push(b.request(3, 6))
    assert cosig_a.status_code == cosig_b.status_code == 200, (cosig_a.text, cosig_b.text)
    note_a = w1.get(f"/checkpoint/{forked_hash}").text
    note_b = w2.get(f"/checkpoint/{forked_hash}").text
    w1_v = load_verifier(world.w1_vkey)
    w2_v = load_verifier(world.w2_vkey)
    assert open_checkpoint(note_a, log_v, [w1_v], 1).checkpoint.root_hash == a.root(6)
    assert open_checkpoint(note_b, log_v, [w2_v], 1).checkpoint.root_hash == b.root(6)
    assert note_a.endswith(cosig_a.text)

    # The real CLI, from the two witnesses' HTTP endpoints alone: a split view.
    split = _compare(world, a.vkey_file)
    assert split.returncode == 1, split.stdout + split.stderr
    assert "SPLIT VIEW" in split.stdout
    assert note_a in split.stdout
    assert note_b in split.stdout
    assert split.stdout.count("--- evidence from") == 2
    assert f"size 6 root {base64.b64encode(a.root(6)).decode()}" in split.stdout
    assert f"size 6 root {base64.b64encode(b.root(6)).decode()}" in split.stdout

    # Witness 1, having cosigned fork A, refuses fork B however it is offered.
    _assert_known_size(w1.push(b.request(3, 6)), 6)  # stale old size
    fork_same_size = b.request(6, 6)
    _assert_known_size(w1.push(fork_same_size), 6)  # conflicting root
    assert b.enrol("farm.b.4", "farm.b.5") == 8
    fork_longer = b.request(6, 8)  # fork B's own proof from its size 6
    refused = w1.push(fork_longer)
    assert refused.status_code == 422, refused.text
    assert refused.text.startswith("bad_consistency_proof [proof]:")
    _assert_known_size(w1.push(b.request(0, 3)), 6)  # a rollback

    # ... also after a restart, without --log (the state file keeps the logs).
    w1.stop()
    w1.start(with_logs=False)
    _assert_known_size(w1.push(fork_same_size), 6)
    assert w1.push(fork_longer).status_code == 422
    assert w1.get(f"/checkpoint/{forked_hash}").text == note_a
    history = w1.get(f"/checkpoints/{forked_hash}").json()
    assert [open_checkpoint(n, log_v).checkpoint.size for n in history] == [3, 6]

    # The refused, log-signed fork is kept as evidence (each request once).
    evidence = w1.get(f"/evidence/{forked_hash}").json()
    assert [(e["status"], e["code"]) for e in evidence] == [
        (409, "conflicting_root"),
        (422, "bad_consistency_proof"),
    ]
    assert evidence[0]["request"] == fork_same_size.decode()
    assert evidence[1]["request"] == fork_longer.decode()
    assert evidence[0]["cosigned_note"] == note_a
    kept = AddCheckpointRequest.from_bytes(evidence[0]["request"].encode())
    assert open_checkpoint(kept.note, log_v).checkpoint.root_hash == b.root(6)


def test_two_honest_witnesses_compare_clean(world: World) -> None:
    tmp_path = world.tmp
    w1, w2, honest = world.w1, world.w2, world.honest
    # Witness 1 sees sizes 2 and 5; witness 2 sees only size 3.
    assert w1.push(honest.request(0, 2)).status_code == 200
    assert w1.push(honest.request(2, 5)).status_code == 200
    assert w2.push(honest.request(0, 3)).status_code == 200
    # (Without --server this is undecided, exit 3: tests/client/test_witness_app.py.)

    # A real `mandi serve` of the honest log proves size 5 extends size 3.
    port = _free_port()
    server_url = f"http://127.0.0.1:{port}"
    output = tmp_path / "serve.log"
    with output.open("wb") as out:
        server = subprocess.Popen(
            [MANDI, "serve", "--data-dir", str(honest.data_dir), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(tmp_path),
        )
    try:
        _wait_ready(server, f"{server_url}/readyz", output)
        proven = _compare(world, honest.vkey_file, "--server", server_url)
        assert proven.returncode == 0, proven.stdout + proven.stderr
        assert "the server proved size 5 extends size 3" in proven.stdout
    finally:
        _stop(server, output)

    # Once witness 2 catches up, the witnesses agree on the very same tree.
    assert w2.push(honest.request(3, 5)).status_code == 200
    same = _compare(world, honest.vkey_file)
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.startswith("consistent: both at size 5")
