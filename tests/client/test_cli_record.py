"""The cooperative's CLI against an in-process server: keys, register, enrol, record, sync, read.

The server is ``api.app.create_app`` over a fresh SQLite ledger in a temporary
data directory; the CLI's HTTP client is an ``httpx.Client`` whose transport
hands each request to ``httpx.ASGITransport`` through an anyio portal
(:class:`AsgiTransport`), injected by replacing ``client.http.new_http_client``.
No socket is opened. The ledger signs a
checkpoint at every append (delay 0), so the client's audit can prove every
statement at once.
"""

from __future__ import annotations

import json
import stat
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from typer.testing import CliRunner

import client.http
from api.app import create_app
from api.settings import Settings
from client.cli.main import app
from client.outbox import Outbox
from ledger.datadir import init_data_dir, open_ledger

ORIGIN = "coop.mandi.example/log"
SERVER = "http://testserver"
TODAY = "2026-11-20"
TIME = "2026-11-20T09:30:00+05:00"
runner = CliRunner()


class AsgiTransport(httpx.BaseTransport):
    """A synchronous transport over ``httpx.ASGITransport``, each request run in an anyio portal."""

    def __init__(self, app: Any) -> None:
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._portal.call(call)

    def close(self) -> None:
        self._stack.close()


class SharedClient(httpx.Client):
    """One client for every CLI call of a test: the CLI's close() leaves it open."""

    def close(self) -> None:
        pass

    def really_close(self) -> None:
        super().close()


def asgi_client(app: Any) -> SharedClient:
    """An httpx.Client that talks to the ASGI ``app`` in-process."""
    return SharedClient(transport=AsgiTransport(app), base_url=SERVER)


@dataclass
class Coop:
    """A server in-process, a client configuration in the environment, helpers to run the CLI."""

    tmp: Path
    data_dir: Path
    ledger: object
    vkey: str

    def run(self, *args: str, ok: bool = True, input: str | None = None):
        result = runner.invoke(app, list(args), input=input)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json").stdout)

    def enrol(self, pid: str, role: str = "producer") -> None:
        self.run("keys", "new", pid, "--keys-dir", str(self.tmp / "keys"))
        request = self.tmp / f"{pid}.json"
        self.run(
            "register",
            "--participant",
            pid,
            "--role",
            role,
            "--local-id",
            pid.upper().replace(".", "-"),
            "--district",
            "Sheikhupura",
            "--province",
            "Punjab",
            "--key",
            pid,
            "-o",
            str(request),
        )
        self.run(
            "admin", "enrol", str(request), "--data-dir", str(self.data_dir), "--server", SERVER
        )

    def outbox(self) -> Outbox:
        return Outbox(self.tmp / "outbox.db")


def client_env(monkeypatch, tmp: Path, vkey: str, *, key: str = "farm.punjab.1") -> None:
    """The client's configuration, all in environment variables, nothing from $HOME."""
    for name in (
        "MANDI_CONFIG",
        "MANDI_PARTICIPANT",
        "MANDI_ORIGIN",
        "MANDI_KEY_PASSPHRASE",
        "MANDI_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp / "config"))
    monkeypatch.setenv("MANDI_KEYS_DIR", str(tmp / "keys"))
    monkeypatch.setenv("MANDI_OUTBOX", str(tmp / "outbox.db"))
    monkeypatch.setenv("MANDI_SERVER", SERVER)
    monkeypatch.setenv("MANDI_LOG_VKEY", vkey)
    monkeypatch.setenv("MANDI_KEY", key)


def coop_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The ``coop`` fixture's body, for other modules' fixtures to ``yield from``."""
    data_dir = tmp_path / "data"
    result = init_data_dir(data_dir, origin=ORIGIN)
    ledger = open_ledger(data_dir, checkpoint_delay_ms=0)
    server = create_app(Settings(data_dir=data_dir, run_checkpointer=False), ledger)
    http = asgi_client(server)
    monkeypatch.setattr(client.http, "new_http_client", lambda url, timeout=None: http)
    client_env(monkeypatch, tmp_path, result.vkey)
    try:
        yield Coop(tmp=tmp_path, data_dir=data_dir, ledger=ledger, vkey=result.vkey)
    finally:
        http.really_close()
        server.state.mandi.committer.stop()
        ledger.store.close()


@pytest.fixture
def coop(tmp_path, monkeypatch):
    yield from coop_world(tmp_path, monkeypatch)


def harvest(coop: Coop, code: str, amount: int = 1200, *extra: str):
    return coop.run(
        "record",
        "harvest",
        "--lot",
        f"lot:farm.punjab.1:{code}",
        "--crop",
        "rice",
        "--plot",
        "plot-7",
        "--harvest-date",
        TODAY,
        "--quantity",
        f"{amount} kg",
        "--time",
        TIME,
        *extra,
    )


# ---------------------------------------------------------------------------


def test_keys_new_list_export_never_show_the_private_key(coop):
    created = coop.json("keys", "new", "clerk")
    path = Path(created["path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = coop.json("keys", "list")
    assert [k["name"] for k in listed] == ["clerk"]
    assert listed[0]["key_id"] == created["key_id"]
    public = coop.run("keys", "export-public", "clerk").stdout.strip()
    assert public == created["public_key"]
    secret = path.read_text()
    for output in (
        coop.run("keys", "list").stdout,
        coop.run("keys", "export-public", "clerk").stdout,
    ):
        assert secret.strip().rsplit("+", 1)[-1] not in output
    again = coop.run("keys", "new", "clerk", ok=False)
    assert again.exit_code == 1
    assert "exists already" in again.output


def test_passphrase_key_records_only_with_the_passphrase(coop, monkeypatch):
    coop.run("keys", "new", "farm.punjab.1", "--passphrase", input="s3cret\ns3cret\n")
    assert coop.json("keys", "list")[0]["encrypted"] is True
    refused = coop.run(
        "record", "recall", "--lot", "lot:farm.punjab.1:x", "--reason", "r", ok=False
    )
    assert refused.exit_code == 1
    assert "passphrase" in refused.output
    monkeypatch.setenv("MANDI_KEY_PASSPHRASE", "wrong")
    assert (
        "wrong passphrase"
        in coop.run(
            "record", "recall", "--lot", "lot:farm.punjab.1:x", "--reason", "r", ok=False
        ).output
    )
    monkeypatch.setenv("MANDI_KEY_PASSPHRASE", "s3cret")
    coop.run("record", "recall", "--lot", "lot:farm.punjab.1:x", "--reason", "r")


def test_record_offline_then_sync_appends_in_order_and_proves_inclusion(coop):
    coop.enrol("farm.punjab.1")
    size = coop.ledger.size()
    events = []
    for i in range(3):
        out = coop.json(
            "record",
            "harvest",
            "--lot",
            f"lot:farm.punjab.1:paddy-{i}",
            "--crop",
            "rice",
            "--plot",
            "plot-7",
            "--harvest-date",
            TODAY,
            "--quantity",
            "1200 kg",
            "--time",
            TIME,
        )
        assert out["queued"] is True
        events.append(out["event_id"])
    assert coop.ledger.size() == size  # recorded, not sent
    pending = coop.json("outbox")
    assert [item["event_id"] for item in pending["items"]] == events
    assert pending["counts"]["pending"] == 3

    report = coop.json("sync")
    assert report["appended"] == 3
    assert report["refused"] == []
    assert report["pending"] == 0
    assert report["proven"] == 3
    assert report["unproven"] == 0
    entries = [coop.ledger.entry(size + i).event_id.hex() for i in range(3)]
    assert entries == events
    again = coop.json("sync")
    assert again["appended"] == 0
    assert coop.ledger.size() == size + 3


def test_record_checks_the_body_with_the_ledger_before_signing(coop):
    coop.run("keys", "new", "farm.punjab.1")
    bad = harvest(coop, "p1", 1200)  # valid; then a bad unit
    assert bad.exit_code == 0
    result = coop.run(
        "record",
        "harvest",
        "--lot",
        "lot:farm.punjab.1:p2",
        "--crop",
        "rice",
        "--plot",
        "p",
        "--harvest-date",
        TODAY,
        "--quantity",
        "1200 kilos",
        ok=False,
    )
    assert result.exit_code == 1
    assert "bad_unit [--quantity]" in result.output
    assert "nothing was signed" in result.output
    bad_time = coop.run(
        "record",
        "recall",
        "--lot",
        "lot:farm.punjab.1:p1",
        "--reason",
        "r",
        "--time",
        "today",
        ok=False,
    )
    assert "bad_time [--time]" in bad_time.output
    bad_lot = coop.run("record", "recall", "--lot", "farm-1/p1", "--reason", "r", ok=False)
    assert "bad_lot_id [--lot]" in bad_lot.output
    with coop.outbox() as box:
        assert box.counts()["pending"] == 1


def test_refused_statement_is_reported_with_the_servers_reason(coop):
    coop.enrol("farm.punjab.1")
    harvest(coop, "paddy-1")
    coop.run(
        "record",
        "ship",
        "--lot",
        "lot:farm.punjab.1:paddy-1",
        "--to",
        "nobody",
        "--quantity",
        "1200 kg",
        "--mode",
        "road",
        "--time",
        TIME,
    )
    harvest(coop, "paddy-2")
    result = coop.run("sync", "--json", ok=False)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["appended"] == 2
    [refused] = report["refused"]
    assert refused["kind"] == "ship"
    assert refused["refusal"]["code"] == "unknown_participant"
    assert refused["refusal"]["status"] == 422
    listing = coop.run("outbox").stdout
    assert "refused" in listing
    assert "unknown_participant" in listing


def test_read_commands_over_the_server_match_the_database(coop):
    coop.enrol("farm.punjab.1")
    harvest(coop, "paddy-1")
    coop.run("sync")
    lot = "lot:farm.punjab.1:paddy-1"
    db = ["--data-dir", str(coop.data_dir)]
    remote = ["--server", SERVER]
    assert coop.json("history", lot, *remote) == coop.json("history", lot, *db)
    assert coop.json("trace", lot, "--back", *remote) == coop.json("trace", lot, "--back", *db)
    mine = coop.json("lots", "--mine", *remote)
    assert [x["lot"] for x in mine] == [lot]
    assert coop.json("lots", "--holder", "farm.punjab.1", *db) == mine
    missing = coop.run("history", "lot:farm.punjab.1:nope", *remote, ok=False)
    assert missing.exit_code == 1
    assert "unknown_lot" in missing.output


def test_checkpoint_from_the_server_is_verified_and_remembered(coop, tmp_path):
    note = coop.run("checkpoint", "--server", SERVER).stdout
    assert note.startswith(ORIGIN + "\n")
    coop.enrol("farm.punjab.1")
    target = tmp_path / "cp.txt"
    coop.run("checkpoint", "--server", SERVER, "-o", str(target))
    assert int(target.read_text().split("\n")[1]) == coop.ledger.size()
    with coop.outbox() as box:
        assert box.newest_checkpoint().tree_size == coop.ledger.size()


def test_a_server_showing_another_log_key_is_an_audit_failure(coop, monkeypatch):
    coop.run("checkpoint", "--server", SERVER)  # pins the configured vkey in the outbox
    other = init_data_dir(coop.tmp / "other", origin=ORIGIN)
    monkeypatch.setenv("MANDI_LOG_VKEY", other.vkey)
    result = coop.run("checkpoint", "--server", SERVER, ok=False)
    assert result.exit_code == 3
    assert "AUDIT FAILURE (vkey_changed)" in result.output


def test_admin_enrol_to_the_database_and_register_checks_the_profile(coop, tmp_path):
    coop.run("keys", "new", "mill.one")
    bad = coop.run(
        "register", "--participant", "mill.one", "--role", "miller", "--key", "mill.one", ok=False
    )
    assert bad.exit_code == 1
    assert "bad_value [profile.role]" in bad.output
    request = tmp_path / "mill.json"
    coop.run(
        "register",
        "--participant",
        "mill.one",
        "--role",
        "processor",
        "--key",
        "mill.one",
        "--name",
        "Mill One",
        "--gln",
        "9506000000008",
        "--district",
        "Gujranwala",
        "--province",
        "Punjab",
        "-o",
        str(request),
    )
    body = json.loads(request.read_text())
    assert body["request"]["profile"]["gln"] == "9506000000008"
    size = coop.ledger.size()
    out = coop.json("admin", "enrol", str(request), "--data-dir", str(coop.data_dir))
    assert out == {**out, "participant": "mill.one", "index": size, "created": True}
    # Again: the same statement within the same second (nothing new), else the key is known.
    again = coop.run("admin", "enrol", str(request), "--data-dir", str(coop.data_dir), ok=False)
    assert "already enrolled" in again.output or "key_exists" in again.output
    assert coop.ledger.size() == size + 1


def test_every_kind_has_a_record_command_whose_options_reach_the_body(coop):
    coop.enrol("farm.punjab.1")
    harvest(coop, "paddy-1")
    harvest(coop, "paddy-2")
    lot1, lot2 = "lot:farm.punjab.1:paddy-1", "lot:farm.punjab.1:paddy-2"
    coop.run(
        "record",
        "store",
        "--lot",
        lot1,
        "--facility",
        "shed",
        "--temperature-dc",
        "185",
        "--time",
        TIME,
    )
    coop.run(
        "record",
        "transform",
        "--process",
        "milling",
        "--input",
        f"{lot1}=1200 kg",
        "--output",
        "lot:farm.punjab.1:rice-1=780 kg=rice=basmati",
        "--time",
        TIME,
    )
    coop.run(
        "record", "pack", "--unit", "lot:farm.punjab.1:pallet-1", "--content", lot2, "--time", TIME
    )
    coop.run("record", "unpack", "--unit", "lot:farm.punjab.1:pallet-1", "--time", TIME)
    coop.run("record", "recall", "--lot", lot2, "--reason", "residue", "--time", TIME)
    report = coop.json("sync")
    assert report["refused"] == [], report
    assert report["appended"] == 7
    history = coop.json("history", "lot:farm.punjab.1:rice-1", "--server", SERVER)
    [made] = history["history"]
    assert made["body"]["outputs"] == [
        {
            "crop": "rice",
            "lot": "lot:farm.punjab.1:rice-1",
            "quantity": {"amount": 780, "unit": "kg"},
            "variety": "basmati",
        }
    ]
    store = coop.json("history", lot1, "--data-dir", str(coop.data_dir))["history"][1]
    assert store["body"] == {"facility": "shed", "lot": lot1, "temperature_dc": 185}


def test_without_a_configured_vkey_the_servers_is_pinned_on_first_use(coop, monkeypatch):
    monkeypatch.delenv("MANDI_LOG_VKEY")
    first = coop.run("checkpoint", "--server", SERVER)
    assert "pinned the log vkey" in first.stderr
    assert "trust on first use" in first.stderr
    with coop.outbox() as box:
        assert box.meta("log_vkey") == coop.vkey
    # The origin now comes from the pinned vkey: registering and recording work offline.
    coop.enrol("farm.punjab.1")
    harvest(coop, "paddy-1")
    report = coop.json("sync")
    assert report["appended"] == 1
    assert report["proven"] == 1
    assert "pinned" not in coop.run("checkpoint", "--server", SERVER).stderr


def test_record_with_sync_sends_at_once(coop):
    coop.enrol("farm.punjab.1")
    size = coop.ledger.size()
    result = harvest(coop, "paddy-9", 1200, "--sync")
    assert "sent: 1 appended, 0 already in the log, 0 refused; 0 pending" in result.stdout
    assert coop.ledger.size() == size + 1
    refused = coop.run(
        "record",
        "recall",
        "--lot",
        "lot:farm.punjab.1:nope",
        "--reason",
        "r",
        "--sync",
        ok=False,
    )
    assert refused.exit_code == 1
    assert "mandi: refused: unknown_lot [body.lot]" in refused.output
