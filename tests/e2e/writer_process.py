"""A writer process for the concurrency tests: appends statements, printing each acknowledged id.

Usage: python -m tests.e2e.writer_process DATA_DIR WRITER_NAME COUNT [GO_FILE]

With GO_FILE, the writer opens the ledger, creates GO_FILE.WRITER_NAME.ready, then
waits until GO_FILE exists, so several writers start appending at the same moment,
and pauses briefly after each append so that their appends interleave.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from client.demo import demo_signer
from ledger.datadir import open_ledger
from ledger.statements import Statement, sign_statement


def main() -> None:
    data_dir, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ledger = open_ledger(data_dir, checkpoint_delay_ms=50)
    paced = len(sys.argv) > 4
    if paced:
        go = Path(sys.argv[4])
        go.with_name(f"{go.name}.{name}.ready").touch()
        while not go.exists():
            time.sleep(0.001)
    signer = demo_signer("farm.punjab.1")
    claimed = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(hours=1)
    for n in range(count):
        statement = Statement.build(
            origin=ledger.log.origin,
            kind="harvest",
            signer=signer.key_id,
            time=claimed.isoformat(),
            body={
                "lot": f"lot:farm.punjab.1:{name}-{n:05d}",
                "crop": "rice",
                "plot": "plot-1",
                "harvest_date": (claimed - timedelta(days=1)).date().isoformat(),
                "quantity": {"amount": 100 + n, "unit": "kg"},
            },
        )
        result = ledger.append(sign_statement(signer, statement))
        # Acknowledged only once the transaction committed.
        print(f"{result.entry.index} {result.entry.event_id.hex()}", flush=True)
        if paced:
            # SQLite's lock is not fair: a writer that re-takes it at once can starve the
            # other one, which then sleeps in its busy handler. A field client pauses anyway.
            time.sleep(0.002)
    ledger.flush_checkpoint()
    ledger.store.close()


if __name__ == "__main__":
    main()
