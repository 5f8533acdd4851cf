"""kill -9 a process in the middle of appending: nothing acknowledged is lost, the log verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from client.demo import demo_signer
from ledger.audit import audit_log
from ledger.datadir import init_data_dir, load_verifier, open_ledger, read_operator
from ledger.registry import build_enrolment, build_enrolment_request

ROOT = Path(__file__).resolve().parents[2]


def test_acknowledged_appends_survive_kill_9(tmp_path):
    data_dir = tmp_path / "data"
    init_data_dir(data_dir, origin="kill9.example/log")
    ledger = open_ledger(data_dir)
    _, operator = read_operator(data_dir)
    request = build_enrolment_request(
        origin=ledger.log.origin,
        participant_id="farm.punjab.1",
        signer=demo_signer("farm.punjab.1"),
        time="2026-11-20T09:00:00+05:00",
        profile={
            "role": "producer",
            "local_id": "farm.punjab.1",
            "location": {"district": "Sheikhupura", "province": "Punjab"},
        },
    )
    ledger.append(
        build_enrolment(
            origin=ledger.log.origin,
            operator=operator,
            request=request,
            time="2026-11-20T09:00:00+05:00",
        )
    )
    ledger.store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.writer_process", str(data_dir), "k", "100000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acknowledged: list[tuple[int, str]] = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        index, event = line.split()
        acknowledged.append((int(index), event))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 300

    ledger = open_ledger(data_dir)
    store = ledger.store
    size = store.size()
    entries = list(store.entries(0, size))
    assert [e.index for e in entries] == list(range(size))
    for index, event in acknowledged:
        assert entries[index].event_id.hex() == event
    # The recovered log takes a fresh checkpoint and audits clean.
    ledger.flush_checkpoint()
    report = audit_log(
        store.entries(0, size),
        [c.note for c in store.checkpoints()],
        log_verifier=load_verifier(str(data_dir / "log.vkey")),
        stored_leaves=store.leaf_hashes(0, size),
    )
    assert report.ok, report.to_text()
    store.close()
