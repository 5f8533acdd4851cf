"""`make run`: initialise a data directory with the demo ledger (once) and verify it.

Runs the installed `mandi` command exactly as a user would: `mandi demo` when
the data directory is new, then `mandi verify` with the log's vkey as the trust
anchor.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def _mandi() -> str:
    local = Path(sys.executable).parent / "mandi"
    found = str(local) if local.exists() else shutil.which("mandi")
    if found is None:
        raise SystemExit("the `mandi` command is not installed: run `make run` from the repo")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="var")
    parser.add_argument("--origin", default="demo.mandi.example/log")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    mandi = _mandi()
    if not (data_dir / "log.key").exists():
        subprocess.run(
            [mandi, "demo", "--data-dir", str(data_dir), "--origin", args.origin], check=True
        )
    else:
        print(f"using the existing demo ledger in {data_dir} (delete it for a fresh one)")
    db = f"sqlite:///{data_dir.resolve() / 'ledger.db'}"
    vkey = (data_dir / "log.vkey").read_text().strip()
    print(f"\nlog vkey (the auditor's trust anchor): {vkey}")
    print(f"$ mandi verify --db {db} --log-vkey {data_dir / 'log.vkey'}")
    result = subprocess.run(
        [mandi, "verify", "--db", db, "--log-vkey", str(data_dir / "log.vkey")], check=False
    )
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
