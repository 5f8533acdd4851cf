"""The same log, read from its SQLite file and from a live server's HTTP API, audits identically.

`mandi demo` writes a ledger; `mandi serve` serves that very file as a real
process on a loopback port. The auditor exports a bundle from each side, audits
both bundles and both live sources, and gets the same verdict, the same root
and the same findings (the database also holds older checkpoints that the
server does not list, so only the count of checkpoints checked may differ).
A lot's proof bundle is the same byte for byte from either side, and an
interrupted HTTP export resumes into the same file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from client.cli.main import app

MANDI = str(Path(sys.executable).parent / "mandi")
LOT = "lot:mill.gujranwala:rice-09"
runner = CliRunner()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    data_dir = root / "var"
    made = runner.invoke(app, ["demo", "--data-dir", str(data_dir), "--json"])
    assert made.exit_code == 0, made.output
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANDI_", "PROMETHEUS_"))}
    env["MANDI_MAX_PAGE_SIZE"] = "100"  # make the exporter page
    log_path = root / "server.log"
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
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
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
        yield base, data_dir, root
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log_path.read_text(errors="replace")


def _cli(*args: str, expect: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == expect, result.output
    return result.stdout


def _verify(data_dir: Path, *source: str) -> dict:
    report = json.loads(_cli("verify", *source, "--log-vkey", str(data_dir / "log.vkey"), "--json"))
    assert report["ok"], report
    return report


def _same_verdict(a: dict, b: dict) -> None:
    keys = ("ok", "origin", "entries_checked", "root_hash", "findings", "latest_checkpoint_size")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_sqlite_bundle_and_http_view_audit_identically(served):
    base, data_dir, root = served
    db = f"sqlite:///{data_dir / 'ledger.db'}"
    from_db = root / "db.bundle"
    from_http = root / "http.bundle"
    _cli("export", "--db", db, "-o", str(from_db))
    _cli("export", "--server", base, "-o", str(from_http))
    reports = [
        _verify(data_dir, "--bundle", str(from_db)),
        _verify(data_dir, "--bundle", str(from_http)),
        _verify(data_dir, "--db", db),
        _verify(data_dir, "--server", base),
    ]
    for other in reports[1:]:
        _same_verdict(reports[0], other)
    assert reports[0]["entries_checked"] > 700
    assert reports[1]["checkpoints_checked"] == 1  # a server shows its newest checkpoint only
    # The entries and the registry sections are byte for byte the same.
    db_lines = from_db.read_bytes().splitlines()
    http_lines = from_http.read_bytes().splitlines()
    assert [x for x in db_lines if x.startswith(b'{"entry"')] == [
        x for x in http_lines if x.startswith(b'{"entry"')
    ]
    assert db_lines[-40:-1] == http_lines[-40:-1]  # the end lines count checkpoints


def test_interrupted_http_export_resumes_to_the_same_file(served):
    base, _data_dir, root = served
    whole = root / "whole.bundle"
    _cli("export", "--server", base, "-o", str(whole))
    data = whole.read_bytes()
    partial = root / "partial.bundle"
    partial.write_bytes(data[: len(data) // 2])  # cut mid-line, as a crash would
    out = _cli("export", "--server", base, "-o", str(partial))
    assert "resumed at entry" in out
    assert partial.read_bytes() == data
    assert "already a complete bundle" in _cli("export", "--server", base, "-o", str(partial))
    # A partial file of something else is refused, not overwritten.
    wrong = root / "wrong.bundle"
    wrong.write_bytes(
        b'{"format":"mandi-bundle","origin":"x","size":1,"version":1,"vkey":"x+1+A"}\n'
    )
    assert (
        "another log" in runner.invoke(app, ["export", "--server", base, "-o", str(wrong)]).output
    )


def test_proof_bundle_is_the_same_from_either_side(served):
    base, data_dir, root = served
    db = f"sqlite:///{data_dir / 'ledger.db'}"
    from_db, from_http = root / "db.proof", root / "http.proof"
    _cli("proof", LOT, "--db", db, "-o", str(from_db))
    _cli("proof", LOT, "--server", base, "-o", str(from_http))
    assert from_db.read_bytes() == from_http.read_bytes()
    report = json.loads(
        _cli(
            "verify", "--proof", str(from_http), "--log-vkey", str(data_dir / "log.vkey"), "--json"
        )
    )
    assert report["ok"]
    assert report["lot"] == LOT
    assert len(report["events"]) > 10
