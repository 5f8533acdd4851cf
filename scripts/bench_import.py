"""Import phase: `mandi import` of a harvest CSV against a live `mandi serve` on SQLite.

``import``: a fresh data directory (:func:`init_data_dir`, SQLite with
``synchronous=FULL``), one producer enrolled with a key made by the client's own
key store, and a CSV of N harvest rows (``--appends``: 100,000; 2,000 under
``--quick``). Then, timed from the moment the command is started until it
exits: the installed ``mandi import FILE`` as a separate process, against
``mandi serve`` (one worker) on a loopback port. That is the whole of what a
clerk waits for: interpreter start, reading and checking every row with the
ledger's schema code, signing, queueing in the outbox (``synchronous=FULL``),
sending in batches over HTTP, the server admitting and appending every
statement, and the client's audit (checkpoint, consistency, inclusion proofs of
everything it sent).

The figure is rows per second end to end, next to ``append.rate`` (the core's
``Ledger.append_batch`` rate measured by the ``append`` phase in the same run).
The phase refuses to report a rate unless the server holds exactly the N new
statements and the client proved all of them included.
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
from bench_core import BenchContext, BenchError, Phase, Target

from client.keystore import KeyStore
from ledger.datadir import LOG_VKEY_FILE, init_data_dir, open_ledger, read_operator
from ledger.registry import build_enrolment, build_enrolment_request

__all__ = ["IMPORT_TARGET", "PHASES"]

IMPORT_TARGET = Target(op=">=", threshold=0.5, on="ratio")
"""Issue 5: `mandi import` runs at 50% or more of the core append rate."""

_ORIGIN = "import.bench.mandi.example/log"
_FARM = "farm.bench"
_TIME = "2026-11-20T09:30:00+05:00"
_MANDI = str(Path(sys.executable).parent / "mandi")


def run_import(ctx: BenchContext) -> None:
    """Import N harvest rows end to end; record ``import.rate``."""
    rows = ctx.config.appends
    work = ctx.workdir / "import"
    data_dir = work / "data"
    init_data_dir(data_dir, origin=_ORIGIN)
    keys = KeyStore(work / "keys")
    keys.create(_FARM)
    _enrol(data_dir, keys)
    csv_path = work / "harvest.csv"
    _write_csv(csv_path, rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANDI_", "PROMETHEUS_"))}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(data_dir, port, env, work / "server.log")
    try:
        start_size = _size(base)
        client_env = {
            **env,
            "XDG_CONFIG_HOME": str(work / "config"),
            "MANDI_SERVER": base,
            "MANDI_LOG_VKEY": str(data_dir / LOG_VKEY_FILE),
            "MANDI_KEY": _FARM,
            "MANDI_KEYS_DIR": str(work / "keys"),
            "MANDI_OUTBOX": str(work / "outbox.db"),
        }
        with ctx.progress("mandi import (rows in the log)", rows) as advance:
            began = time.perf_counter()
            proc = subprocess.Popen(
                [_MANDI, "import", str(csv_path), "--kind", "harvest", "--json"],
                env=client_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            shown = 0
            while proc.poll() is None:
                time.sleep(0.25)
                now = _size(base) - start_size
                advance(now - shown)
                shown = now
            elapsed = time.perf_counter() - began
            stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise BenchError(f"mandi import failed ({proc.returncode}): {stderr.decode()[-2000:]}")
        report = json.loads(stdout)
        appended = _size(base) - start_size
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if appended != rows or report["appended"] != rows or report["proven"] != rows:
        raise BenchError(
            f"expected {rows} rows appended and proven; the log grew by {appended}, the client "
            f"reports {report['appended']} appended and {report['proven']} proven"
        )
    ctx.record(
        "import.rate",
        rows / elapsed,
        "rows/s",
        baseline="append.rate",
        target=IMPORT_TARGET,
        note=f"`mandi import` of {rows:,} harvest rows, process start to exit ({elapsed:.1f} s): "
        f"check, sign, outbox, HTTP batches to `mandi serve` (SQLite synchronous=FULL), "
        f"inclusion proven",
    )


def _enrol(data_dir: Path, keys: KeyStore) -> None:
    ledger = open_ledger(data_dir)
    try:
        _, operator = read_operator(data_dir)
        request = build_enrolment_request(
            origin=_ORIGIN,
            participant_id=_FARM,
            signer=keys.load(_FARM),
            time=_TIME,
            profile={
                "role": "producer",
                "local_id": "BENCH-1",
                "location": {"district": "Sheikhupura", "province": "Punjab"},
            },
        )
        ledger.append(
            build_enrolment(origin=_ORIGIN, operator=operator, request=request, time=_TIME)
        )
        ledger.flush_checkpoint()
    finally:
        ledger.store.close()


def _write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("time,lot,crop,variety,plot,harvest_date,quantity\n")
        for i in range(rows):
            out.write(
                f"{_TIME},lot:{_FARM}:h-{i:07d},rice,basmati-385,plot-{i % 40},"
                f"2026-11-20,{1000 + i % 500} kg\n"
            )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(
    data_dir: Path, port: int, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                _MANDI,
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise BenchError(f"mandi serve exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise BenchError("mandi serve was not ready in 60 s")
        time.sleep(0.1)


def _size(base: str) -> int:
    return int(httpx.get(f"{base}/v1/log", timeout=10).json()["tree_size"])


PHASES = (
    Phase(
        name="import",
        title="`mandi import` of a harvest CSV against a live `mandi serve` (SQLite)",
        run=run_import,
        requires=("append",),
    ),
)
