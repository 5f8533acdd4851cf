"""Two OS processes appending to one SQLite file at once: dense indices, no fork, nothing lost."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

from client.demo import demo_signer
from ledger.audit import audit_log
from ledger.datadir import init_data_dir, load_verifier, open_ledger, read_operator
from ledger.registry import build_enrolment, build_enrolment_request

ROOT = Path(__file__).resolve().parents[2]
PER_WRITER = 150


def test_two_processes_append_to_one_sqlite_file(tmp_path):
    data_dir = tmp_path / "data"
    init_data_dir(data_dir, origin="two.writers.example/log")
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
    base = ledger.size()
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.writer_process",
                str(data_dir),
                name,
                str(PER_WRITER),
                str(go),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    # Start both at once: a slow interpreter start-up must not let one writer finish first.
    ready = [go.with_name(f"go.{name}.ready") for name in ("a", "b")]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline, "writers did not open the ledger within 60 s"
        assert all(p.poll() is None for p in writers), "a writer exited before the start"
        time.sleep(0.01)
    go.touch()
    acknowledged: list[tuple[int, str]] = []
    for proc in writers:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        acknowledged += [(int(i), e) for i, e in (line.split() for line in out.splitlines())]
    assert len(acknowledged) == 2 * PER_WRITER
    store = ledger.store
    size = store.size()
    assert size == base + 2 * PER_WRITER
    entries = list(store.entries(0, size))
    assert [e.index for e in entries] == list(range(size))
    ids = [e.event_id.hex() for e in entries]
    assert len(set(ids)) == size
    by_index = dict(enumerate(ids))
    for index, event in acknowledged:
        assert by_index[index] == event
    # The writers interleaved (otherwise this test proves nothing about concurrency).
    writer_of = [
        e.signed_statement().statement.body["lot"].split(":")[2][0] for e in entries[base:]
    ]
    switches = sum(1 for x, y in itertools.pairwise(writer_of) if x != y)
    assert switches > 10
    report = audit_log(
        store.entries(0, size),
        [c.note for c in store.checkpoints()],
        log_verifier=load_verifier(str(data_dir / "log.vkey")),
        stored_leaves=store.leaf_hashes(0, size),
    )
    assert report.ok, report.to_text()
    store.close()
