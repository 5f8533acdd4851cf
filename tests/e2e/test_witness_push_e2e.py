"""`mandi serve --witness` as a real process pushing to a real `mandi witness serve`.

A fresh data directory is served (one uvicorn worker) with one witness (the
real witness server, its key made with `mandi keys new`, pinned to the log's
vkey). Statements are recorded over HTTP; the server's pushers send each new
checkpoint to the witness, verify its cosignature and store it, and
`/v1/log/checkpoint` then carries it. `mandi verify --server` with the witness
key and quorum 1 passes; with a second, unknown witness and quorum 2 it fails.
The export from the database and from the server carry the cosignatures too,
and `mandi log push-witnesses` reports the witness up to date.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger import (
    NoteVerifier,
    Signer,
    build_enrolment,
    build_enrolment_request,
    build_witness_vkey,
    open_checkpoint,
)
from ledger.datadir import read_operator, rfc3339_from_ms
from ledger.keys import b64encode
from ledger.service import wall_clock_ms

MANDI = str(Path(sys.executable).parent / "mandi")
ORIGIN = "witnessed.mandi.example/log"
WITNESS = "witness.e2e.example/w1"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANDI_", "PROMETHEUS_"))}
    env["COLUMNS"] = "200"
    return {**env, **extra}


def _run(*args: str, env: dict[str, str] | None = None, expect: int = 0) -> str:
    done = subprocess.run(
        [MANDI, *args], capture_output=True, text=True, timeout=120, env=env or _env()
    )
    assert done.returncode == expect, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _start(args: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen([MANDI, *args], stdout=log, stderr=subprocess.STDOUT, env=env)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, ok=(200,)) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited: {log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code in ok:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} not up in 30 s: {log.read_text()}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def witnessed(tmp_path) -> Iterator[tuple[str, Path, str, Path]]:
    data_dir = tmp_path / "data"
    keys_dir = tmp_path / "keys"
    _run("admin", "init", "--data-dir", str(data_dir), "--origin", ORIGIN)
    log_vkey = (data_dir / "log.vkey").read_text().strip()
    wenv = _env(MANDI_KEYS_DIR=str(keys_dir))
    _run("keys", "new", "w1", env=wenv)
    named = ["--key", "w1", "--name", WITNESS]
    witness_vkey = _run("witness", "vkey", *named, env=wenv).strip().splitlines()[-1]
    assert NoteVerifier.from_vkey(witness_vkey).name == WITNESS
    vkey_file = tmp_path / "w1.vkey"
    vkey_file.write_text(witness_vkey + "\n")
    wport, port = _free_port(), _free_port()
    wlog, slog = tmp_path / "witness.log", tmp_path / "server.log"
    witness = _start(
        ["witness", "serve", *named, "--state", str(tmp_path / "witness.db"),
         "--log", log_vkey, "--port", str(wport), "--log-level", "warning"],
        wlog,
        wenv,
    )  # fmt: skip
    server = None
    try:
        # Any answer means it is up (GET / of a witness is a 404).
        _wait_http(f"http://127.0.0.1:{wport}/", witness, wlog, ok=range(200, 500))
        server = _start(
            ["serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", "1",
             "--checkpoint-delay-ms", "200", "--witness", f"http://127.0.0.1:{wport}={vkey_file}"],
            slog,
            _env(MANDI_WITNESS_RETRY_S="1"),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/readyz", server, slog)
        yield base, data_dir, witness_vkey, tmp_path
    finally:
        if server is not None:
            _stop(server)
        _stop(witness)
    output = slog.read_text(errors="replace")
    assert "Traceback" not in output, output
    assert "other_log" not in output, output


def _enrol(http: httpx.Client, data_dir: Path, pid: str) -> None:
    _, operator = read_operator(data_dir)
    now = rfc3339_from_ms(wall_clock_ms())
    request = build_enrolment_request(
        origin=ORIGIN,
        participant_id=pid,
        signer=Signer.generate(),
        time=now,
        profile={
            "role": "producer",
            "local_id": pid,
            "location": {"district": "Sheikhupura", "province": "Punjab"},
        },
    )
    enrol = build_enrolment(origin=ORIGIN, operator=operator, request=request, time=now)
    body = {"statement": b64encode(enrol.statement.raw), "signature": b64encode(enrol.signature)}
    r = http.post("/v1/participants", json=body)
    assert r.status_code == 201, r.text


def _wait_cosigned(http: httpx.Client, size: int, vkey: NoteVerifier, witness: NoteVerifier):
    deadline = time.monotonic() + 30
    while True:
        note = http.get("/v1/log/checkpoint").text
        verified = open_checkpoint(note, vkey, [witness])
        if verified.checkpoint.size >= size and verified.witnesses_verified:
            return note
        assert time.monotonic() < deadline, f"checkpoint {size} not cosigned in 30 s: {note}"
        time.sleep(0.1)


def test_checkpoints_are_cosigned_served_and_verified(witnessed):
    base, data_dir, witness_vkey, tmp = witnessed
    log_vkey = NoteVerifier.from_vkey((data_dir / "log.vkey").read_text().strip())
    witness = NoteVerifier.from_vkey(witness_vkey)
    with httpx.Client(base_url=base, timeout=10) as http:
        _check(http, base, data_dir, witness_vkey, tmp, log_vkey, witness)


def _check(http, base, data_dir, witness_vkey, tmp, log_vkey, witness) -> None:
    _wait_cosigned(http, 1, log_vkey, witness)  # the genesis checkpoint, pushed at start
    for n in range(5):
        _enrol(http, data_dir, f"farm-{n}")
    note = _wait_cosigned(http, 6, log_vkey, witness)
    assert note.count("\n\u2014 ") == 2  # the log's signature and the witness's
    assert http.get("/v1/log/checkpoint?min_cosignatures=1").text == note
    r = http.get("/v1/log/checkpoint?min_cosignatures=2")
    assert r.status_code == 404
    assert r.json()["code"] == "no_cosigned_checkpoint"
    metrics = http.get("/metrics").text
    assert f'mandi_witness_cosigned_size{{witness="{WITNESS}"}} 6.0' in metrics
    assert 'mandi_witness_push_total{outcome="cosigned"' in metrics

    other = build_witness_vkey("witness.e2e.example/w2", Signer.generate().public)
    vkey_file = str(data_dir / "log.vkey")
    audit = ["verify", "--log-vkey", vkey_file, "--witness-vkey", witness_vkey, "--json"]
    report = json.loads(_run(*audit, "--server", base, "--quorum", "1"))
    assert report["ok"], report
    two = [*audit, "--witness-vkey", other, "--quorum", "2"]
    failed = json.loads(_run(*two, "--server", base, expect=1))
    assert [f["check"] for f in failed["findings"]] == ["quorum_not_met"]

    # Exports, from the database and from the server, carry the cosignatures.
    db = f"sqlite:///{data_dir / 'ledger.db'}"
    for source in (["--db", db], ["--server", base]):
        bundle = tmp / f"{source[0][2:]}.bundle"
        _run("export", *source, "-o", str(bundle))
        assert json.loads(_run(*audit, "--bundle", str(bundle), "--quorum", "1"))["ok"]
        failed = json.loads(_run(*two, "--bundle", str(bundle), expect=1))
        assert [f["check"] for f in failed["findings"]] == ["quorum_not_met"]

    # The one-shot command finds the witness up to date (the server pushed already).
    url = f"{base.rsplit(':', 1)[0]}:1"  # not used: the witness is up to date before any request
    pushed = _run(
        "log",
        "push-witnesses",
        "--db",
        db,
        "--witness",
        f"{url}={witness_vkey}",
        "--json",
    )
    assert json.loads(pushed)["outcome"] == "up_to_date"
