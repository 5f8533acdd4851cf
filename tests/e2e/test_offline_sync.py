"""Offline first, for real: the installed `mandi` records with the server down, then syncs to a live
`mandi serve`; a `mandi sync` killed with SIGKILL mid-way loses and duplicates nothing.

Every command is the installed console script (``.venv/bin/mandi``) in its own
process, configured only through ``MANDI_*`` variables, as a clerk would run it.
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

MANDI = str(Path(sys.executable).parent / "mandi")
ORIGIN = "offline.mandi.example/log"
FARM = "farm.punjab.1"
TIME = "2026-11-20T09:30:00+05:00"
DATE = "2026-11-20"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clerk:
    """Runs the installed CLI with the cooperative's environment."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MANDI_", "PROMETHEUS_"))
        }
        self.env.update(
            {
                "COLUMNS": "200",
                "XDG_CONFIG_HOME": str(tmp / "config"),
                "MANDI_KEYS_DIR": str(tmp / "keys"),
                "MANDI_OUTBOX": str(tmp / "outbox.db"),
                "MANDI_SERVER": self.base,
                "MANDI_LOG_VKEY": str(self.data_dir / "log.vkey"),
                "MANDI_KEY": FARM,
            }
        )
        self.server: subprocess.Popen[bytes] | None = None

    def run(self, *args: str, check: bool = True, timeout: float = 120):
        result = subprocess.run(
            [MANDI, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def start(self, log_path: Path) -> None:
        with log_path.open("wb") as log:
            self.server = subprocess.Popen(
                [
                    MANDI,
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--checkpoint-delay-ms",
                    "100",
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in self.env.items() if not k.startswith("MANDI_")},
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.server.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def log_size(self) -> int:
        return int(httpx.get(f"{self.base}/v1/log", timeout=5).json()["tree_size"])

    def event_ids(self, start: int) -> list[str]:
        ids: list[str] = []
        while True:
            page = httpx.get(
                f"{self.base}/v1/log/entries",
                params={"start": start + len(ids), "format": "json"},
                timeout=10,
            ).json()
            if not page["entries"]:
                return ids
            ids.extend(e["event_id"] for e in page["entries"])

    def outbox(self) -> dict:
        return json.loads(self.run("outbox", "--all", "--json").stdout)


@pytest.fixture
def clerk(tmp_path):
    c = Clerk(tmp_path)
    c.run("admin", "init", "--data-dir", str(c.data_dir), "--origin", ORIGIN)
    c.run("keys", "new", FARM)
    request = tmp_path / "request.json"
    c.run(
        "register",
        "--participant",
        FARM,
        "--role",
        "producer",
        "--local-id",
        "PGC-0001",
        "--district",
        "Sheikhupura",
        "--province",
        "Punjab",
        "-o",
        str(request),
    )
    c.run("admin", "enrol", str(request), "--data-dir", str(c.data_dir))
    try:
        yield c
    finally:
        c.stop()
    log = tmp_path / "server.log"
    if log.exists():
        assert "Traceback" not in log.read_text(errors="replace")


def test_record_offline_then_sync_exactly_once_in_order(clerk, tmp_path):
    recorded = []
    for i in range(3):
        out = clerk.run(
            "record",
            "harvest",
            "--lot",
            f"lot:{FARM}:paddy-{i}",
            "--crop",
            "rice",
            "--plot",
            "plot-7",
            "--harvest-date",
            DATE,
            "--quantity",
            f"{1000 + i} kg",
            "--time",
            TIME,
            "--json",
        )
        recorded.append(json.loads(out.stdout)["event_id"])
    out = clerk.run(
        "record",
        "store",
        "--lot",
        f"lot:{FARM}:paddy-0",
        "--facility",
        "shed",
        "--time",
        TIME,
        "--json",
    )
    recorded.append(json.loads(out.stdout)["event_id"])

    # The server is down: sync fails, and nothing is lost.
    down = clerk.run("sync", check=False)
    assert down.returncode == 1
    assert "4 statements stay queued" in down.stderr
    assert clerk.outbox()["counts"]["pending"] == 4

    clerk.start(tmp_path / "server.log")
    start = clerk.log_size()
    synced = json.loads(clerk.run("sync", "--json").stdout)
    assert (synced["appended"], synced["pending"], synced["refused"]) == (4, 0, [])
    assert synced["proven"] == 4
    assert clerk.event_ids(start) == recorded

    again = json.loads(clerk.run("sync", "--json").stdout)
    assert again["appended"] == 0
    assert clerk.event_ids(start) == recorded
    held = json.loads(clerk.run("lots", "--mine", "--server", clerk.base, "--json").stdout)
    assert sorted(x["lot"] for x in held) == [f"lot:{FARM}:paddy-{i}" for i in range(3)]


def test_sync_killed_mid_way_loses_and_duplicates_nothing(clerk, tmp_path):
    rows = 1500
    csv_path = tmp_path / "harvest.csv"
    csv_path.write_text(
        "time,lot,crop,plot,harvest_date,quantity\n"
        + "".join(f"{TIME},lot:{FARM}:h-{i:05d},rice,plot,{DATE},{i + 1} kg\n" for i in range(rows))
    )
    clerk.run("import", str(csv_path), "--no-sync")
    queued = [item["event_id"] for item in clerk.outbox()["items"]]
    assert len(queued) == rows

    clerk.start(tmp_path / "server.log")
    start = clerk.log_size()
    kills = 0
    for stop_at in (start + rows // 4, start + rows // 2):
        sync = subprocess.Popen(
            [MANDI, "sync", "--batch", "5", "--wait-checkpoint", "0"],
            env=clerk.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while clerk.log_size() < stop_at and sync.poll() is None:
                assert time.monotonic() < deadline, "sync made no progress"
                time.sleep(0.01)
            if sync.poll() is None:
                os.kill(sync.pid, signal.SIGKILL)
                kills += 1
        finally:
            sync.wait(timeout=30)
        assert sync.returncode in (-signal.SIGKILL, 0)
        assert clerk.log_size() < start + rows, "the sync finished before it could be killed"
    assert kills == 2

    outbox = clerk.outbox()
    assert 0 < outbox["counts"]["pending"] < rows
    final = json.loads(clerk.run("sync", "--json").stdout)
    assert final["pending"] == 0
    assert final["refused"] == []
    assert final["unproven"] == 0
    # Each exactly once, in the order queued; what was sent before a kill but not
    # marked came back as "already in the log".
    assert clerk.event_ids(start) == queued
    assert clerk.outbox()["counts"] == {"pending": 0, "accepted": rows, "refused": 0}
