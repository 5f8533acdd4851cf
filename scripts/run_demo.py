"""`make run`: the demo ledger on the embedded SQLite, verified, then served over HTTP.

Runs the installed `mandi` command exactly as a user would:

1. ``mandi demo --data-dir DIR --json`` when the data directory is new; the lot
   the demo picks for its page (a rice lot made from a recalled paddy lot) is
   saved in ``DIR/demo.json`` so later runs show the same one;
2. ``mandi verify`` with the log's vkey as the trust anchor (a log that does not
   verify is not served);
3. prints the URL of that lot's history (and of its public page and QR code,
   when the app serves those routes), then replaces itself with
   ``mandi serve --data-dir DIR --port PORT`` (``MANDI_PORT``, default 8000).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO_FILE = "demo.json"
DEFAULT_PORT = 8000


def _mandi() -> str:
    local = Path(sys.executable).parent / "mandi"
    found = str(local) if local.exists() else shutil.which("mandi")
    if found is None:
        raise SystemExit("the `mandi` command is not installed: run `make run` from the repo")
    return found


def _port() -> int:
    text = os.environ.get("MANDI_PORT") or str(DEFAULT_PORT)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SystemExit(f"MANDI_PORT must be a TCP port, got {text!r}")
    return int(text)


def _initialise(mandi: str, data_dir: Path, origin: str) -> dict[str, str]:
    """Record the demo in a new data directory; returns what demo.json keeps."""
    done = subprocess.run(
        [mandi, "demo", "--data-dir", str(data_dir), "--origin", origin, "--json"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    summary = json.loads(done.stdout)
    print(
        f"recorded the demo in {data_dir}: {summary['log_size']} entries, "
        f"{len(summary['lots'])} lots; recalled at the source: {summary['recalled_lot']}"
    )
    return {"page_lot": summary["page_lot"], "recalled_lot": summary["recalled_lot"]}


def _demo_lot(mandi: str, data_dir: Path, origin: str) -> str:
    saved = data_dir / DEMO_FILE
    if not (data_dir / "log.key").exists():
        demo = _initialise(mandi, data_dir, origin)
        saved.write_text(json.dumps(demo, indent=2) + "\n", encoding="utf-8")
    elif saved.exists():
        print(f"using the existing demo ledger in {data_dir} (delete it for a fresh one)")
        demo = json.loads(saved.read_text(encoding="utf-8"))
    else:
        print(f"using the existing ledger in {data_dir} (delete it for a fresh demo)")
        demo = {"page_lot": _find_demo_lot(data_dir)}
        saved.write_text(json.dumps(demo, indent=2) + "\n", encoding="utf-8")
    lot: str = demo["page_lot"]
    return lot


def _find_demo_lot(data_dir: Path) -> str:
    """For a data directory made before demo.json: a lot at the market, recalled upstream if any."""
    from ledger.service import Ledger
    from ledger.storage.sql import SqlStore, default_sqlite_url

    store = SqlStore.open(default_sqlite_url(data_dir))
    try:
        ledger = Ledger.reader(store)
        held = ledger.held_by("market.lahore")
        affected = [s.lot_id for s in held if ledger.recalled_upstream(s.lot_id)]
        lots = affected or [s.lot_id for s in held]
    finally:
        store.close()
    if not lots:
        raise SystemExit(f"{data_dir} holds no demo lots: delete it for a fresh demo")
    return lots[0]


def _verify(mandi: str, data_dir: Path) -> int:
    db = f"sqlite:///{data_dir.resolve() / 'ledger.db'}"
    vkey_file = data_dir / "log.vkey"
    print(f"\nlog vkey (the auditor's trust anchor): {vkey_file.read_text().strip()}")
    print(f"$ mandi verify --db {db} --log-vkey {vkey_file}")
    return subprocess.run(
        [mandi, "verify", "--db", db, "--log-vkey", str(vkey_file)], check=False
    ).returncode


def _served_paths(data_dir: Path) -> set[str]:
    """The route templates the app serves over this data directory."""
    from api.app import create_app
    from api.settings import Settings

    app = create_app(Settings(data_dir=data_dir.resolve(), run_checkpointer=False))
    paths = set(app.openapi().get("paths", {}))
    paths |= {str(getattr(route, "path", "")) for route in app.routes}
    return paths


def _urls(data_dir: Path, lot: str, port: int) -> list[tuple[str, str]]:
    base = f"http://127.0.0.1:{port}"
    urls = [("history", f"{base}/v1/lots/{lot}/history")]
    try:
        paths = _served_paths(data_dir)
    except Exception:  # noqa: BLE001 - the history URL is enough; never block `make run`
        paths = set()
    if any(p.startswith("/l/{") for p in paths):
        urls.append(("page", f"{base}/l/{lot}"))
    if any(p.startswith("/v1/lots/{") and p.endswith("/qr.png") for p in paths):
        urls.append(("QR code", f"{base}/v1/lots/{lot}/qr.png"))
    return urls


def main() -> int:  # returns only on failure; else it becomes the server
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="var")
    parser.add_argument("--origin", default="demo.mandi.example/log")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    port = _port()
    mandi = _mandi()
    lot = _demo_lot(mandi, data_dir, args.origin)
    status = _verify(mandi, data_dir)
    if status != 0:
        print("the demo log does not verify: not serving it", file=sys.stderr)
        return status
    print(f"\nserving {data_dir} on http://127.0.0.1:{port} (Ctrl-C stops it)")
    for what, url in _urls(data_dir, lot, port):
        print(f"  {what + ':':9} {url}")
    print(flush=True)
    command = [mandi, "serve", "--data-dir", str(data_dir), "--port", str(port)]
    os.execv(command[0], command)  # noqa: S606 - becomes the server, as `make run` promises


if __name__ == "__main__":
    raise SystemExit(main())
