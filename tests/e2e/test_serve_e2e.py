"""`mandi serve` as a real process: a farm-to-market journey over HTTP, audited from HTTP alone.

The server runs with two uvicorn workers on one SQLite file on a free loopback
port. The test signs every statement locally (the operator key comes from the
data directory, participants' keys are made here), submits them with httpx,
then verifies the whole log using only what the HTTP API serves (entries and
checkpoints) and the log's vkey read out of band from the data directory.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ledger import (
    Entry,
    Signer,
    Statement,
    build_enrolment,
    build_enrolment_request,
    open_checkpoint,
    sign_statement,
    verify_consistency,
    verify_inclusion,
)
from ledger.audit import audit_log
from ledger.datadir import load_verifier, read_operator, rfc3339_from_ms
from ledger.keys import b64encode
from ledger.service import wall_clock_ms

MANDI = str(Path(sys.executable).parent / "mandi")
ORIGIN = "e2e.mandi.example/log"
LOCATION = {"district": "Sheikhupura", "province": "Punjab"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _init(data_dir: Path) -> None:
    subprocess.run(
        [MANDI, "admin", "init", "--data-dir", str(data_dir), "--origin", ORIGIN],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANDI_", "PROMETHEUS_"))}
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def server(tmp_path):
    data_dir = tmp_path / "data"
    _init(data_dir)
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                MANDI,
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
                "--checkpoint-delay-ms",
                "200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mandi serve exited: {log_path.read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mandi serve not ready in 30 s: {log_path.read_text()}")
            time.sleep(0.1)
        yield base, data_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output


def _envelope(signed) -> dict[str, str]:
    return {"statement": b64encode(signed.statement.raw), "signature": b64encode(signed.signature)}


def _statement(signer: Signer, kind: str, body: dict, time: str | None = None) -> dict[str, str]:
    stmt = Statement.build(
        origin=ORIGIN, kind=kind, signer=signer.key_id, time=time or _now(), body=body
    )
    return _envelope(sign_statement(signer, stmt))


class _Checkpoints:
    """Every distinct checkpoint the server has published while we watched."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.notes: dict[int, str] = {}

    def fetch(self) -> int:
        r = self.http.get("/v1/log/checkpoint")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        size = int(r.text.split("\n")[1])
        self.notes[size] = r.text
        return size

    def wait_for(self, size: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.fetch() < size:
            assert time.monotonic() < deadline, f"no checkpoint of size {size} in {timeout} s"
            time.sleep(0.05)


def _now() -> str:
    return rfc3339_from_ms(wall_clock_ms())


def test_farm_to_market_journey_verified_from_http(server):
    base, data_dir = server
    _, operator = read_operator(data_dir)
    vkey = (data_dir / "log.vkey").read_text().strip()  # out of band: the trust anchor
    http = httpx.Client(base_url=base, timeout=10)
    checkpoints = _Checkpoints(http)
    checkpoints.fetch()

    # Enrol three participants (operator-signed, each with its own signed request).
    roles = {"farm-1": "producer", "trader-1": "cooperative", "market-1": "market"}
    keys = {pid: Signer.generate() for pid in roles}
    for pid, signer in keys.items():
        profile = {"role": roles[pid], "local_id": pid, "location": LOCATION}
        request = build_enrolment_request(
            origin=ORIGIN, participant_id=pid, signer=signer, time=_now(), profile=profile
        )
        enrol = build_enrolment(origin=ORIGIN, operator=operator, request=request, time=_now())
        r = http.post("/v1/participants", json=_envelope(enrol))
        assert r.status_code == 201, r.text
        assert r.json()["participant"]["keys"][0]["key_id"] == signer.key_id.hex()
    checkpoints.wait_for(4)

    # The journey: harvest, ship, receive, ship on, receive at market.
    lot = "lot:farm-1:A1"
    kg = {"amount": 1200, "unit": "kg"}
    road = {"mode": "road", "vehicle": "LEA-1234"}

    def submit(pid: str, kind: str, body: dict) -> tuple[dict, dict]:
        env = _statement(keys[pid], kind, body)
        r = http.post("/v1/events", json=env)
        assert r.status_code == 201, r.text
        assert base64.b64decode(r.json()["statement"]) == base64.b64decode(env["statement"])
        return env, r.json()

    harvest_date = _now()[:10]
    submitted = [
        submit(
            "farm-1",
            "harvest",
            {
                "lot": lot,
                "crop": "basmati paddy",
                "plot": "plot 7",
                "harvest_date": harvest_date,
                "quantity": kg,
            },
        )
    ]
    submitted.append(
        submit("farm-1", "ship", {"lot": lot, "to": "trader-1", "quantity": kg, "transport": road})
    )
    submitted.append(
        submit("trader-1", "receive", {"shipment": submitted[1][1]["event_id"], "quantity": kg})
    )
    submitted.append(
        submit(
            "trader-1", "ship", {"lot": lot, "to": "market-1", "quantity": kg, "transport": road}
        )
    )
    received = {"amount": 1150, "unit": "kg"}  # 50 kg lost on the way
    submitted.append(
        submit(
            "market-1", "receive", {"shipment": submitted[3][1]["event_id"], "quantity": received}
        )
    )
    # Idempotent resubmission.
    again = http.post("/v1/events", json=submitted[0][0])
    assert again.status_code == 200
    assert again.json() == submitted[0][1]
    # A supply-chain rule refusal: the shipment was received already.
    twice = http.post(
        "/v1/events",
        json=_statement(
            keys["market-1"],
            "receive",
            {"shipment": submitted[3][1]["event_id"], "quantity": {"amount": 1, "unit": "kg"}},
        ),
    )
    assert twice.status_code == 422, twice.text
    assert twice.json()["code"] == "already_received"
    checkpoints.wait_for(9)

    # A batch, and concurrent single submissions spread over both workers.
    batch = [
        _statement(
            keys["farm-1"],
            "harvest",
            {
                "lot": f"lot:farm-1:B{n}",
                "crop": "wheat",
                "plot": "plot 8",
                "harvest_date": harvest_date,
                "quantity": {"amount": 10 + n, "unit": "kg"},
            },
        )
        for n in range(20)
    ]
    r = http.post("/v1/events:batch", json={"items": batch})
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 20
    sold_at = _now()  # one time for all: they may be appended in any order
    singles = [
        _statement(
            keys["market-1"],
            "sell",
            {"lot": lot, "quantity": {"amount": n + 1, "unit": "kg"}},
            time=sold_at,
        )
        for n in range(40)
    ]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda e: httpx.post(f"{base}/v1/events", json=e, timeout=10), singles)
        )
    assert [s.status_code for s in statuses] == [201] * 40, [s.text for s in statuses]
    indices = sorted(s.json()["index"] for s in statuses)
    assert indices == list(range(29, 69))

    # A refused statement changes nothing.
    stranger = _statement(Signer.generate(), "harvest", {"lot": "lot:x:X"})
    refused = http.post("/v1/events", json=stranger)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "unknown_signer"

    size = http.get("/v1/log").json()["tree_size"]
    assert size == 69
    checkpoints.wait_for(size)

    # Audit from HTTP alone: entries page by page, the checkpoints we saw, the vkey.
    entries: list[Entry] = []
    while len(entries) < size:
        page = http.get("/v1/log/entries", params={"start": len(entries), "end": len(entries) + 25})
        assert page.headers["content-type"] == "application/jsonl"
        entries += [Entry.from_bytes(line) for line in page.content.splitlines()]
    notes = [checkpoints.notes[s] for s in sorted(checkpoints.notes)]
    report = audit_log(entries, notes, log_verifier=load_verifier(vkey))
    assert report.ok, report.findings
    assert report.entries_checked == size
    assert report.checkpoints_checked == len(notes) >= 3

    # Proofs from HTTP against the signed checkpoints.
    verifier = load_verifier(vkey)
    newest = open_checkpoint(checkpoints.notes[size], verifier).checkpoint
    event_id = submitted[2][1]["event_id"]  # the trader's receipt
    proof = http.get("/v1/log/proof/inclusion", params={"event_id": event_id}).json()
    assert proof["tree_size"] == size
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["leaf_index"],
        size,
        [bytes.fromhex(p) for p in proof["proof"]],
        newest.root_hash,
    )
    older = open_checkpoint(checkpoints.notes[4], verifier).checkpoint
    consistency = http.get("/v1/log/proof/consistency", params={"first": 4, "second": size}).json()
    verify_consistency(
        4,
        size,
        [bytes.fromhex(p) for p in consistency["proof"]],
        older.root_hash,
        newest.root_hash,
    )
    assert http.get("/v1/log/vkey").text.strip() == vkey
    metrics = http.get("/metrics").text
    assert "mandi_appends_total" in metrics
    assert f"mandi_log_size {float(size)}" in metrics
    http.close()


def _serve_refusal(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MANDI, "serve", "--data-dir", str(data_dir), "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )


def test_serve_refuses_an_uninitialised_data_dir(tmp_path):
    result = _serve_refusal(tmp_path / "empty")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "not an initialised data directory" in lines[0]
    assert "mandi admin init" in lines[0]


def test_serve_refuses_a_data_dir_without_its_database(tmp_path):
    data_dir = tmp_path / "data"
    _init(data_dir)
    (data_dir / "ledger.db").unlink()
    result = _serve_refusal(data_dir)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "database is not initialised" in lines[0]


def test_serve_refuses_a_schema_not_at_head(tmp_path):
    import sqlite3

    data_dir = tmp_path / "data"
    _init(data_dir)
    db = sqlite3.connect(data_dir / "ledger.db")
    try:
        with db:
            db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    finally:
        db.close()
    result = _serve_refusal(data_dir)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "mandi admin migrate" in lines[0]
