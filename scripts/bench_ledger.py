"""Append and audit phases: a fresh SQLite ledger, filled and then re-verified.

``append``: a fresh data directory made the way ``mandi demo`` makes one
(:func:`init_data_dir`, then :func:`run_demo` so the producers are enrolled),
then N synthetic statements signed *before* the clock starts (signing is the
client's cost) and appended with :meth:`Ledger.append_batch` in commits of
``--batch`` (100) entries. The store runs SQLite with ``synchronous=FULL`` and
the ledger verifies every signature; checkpoints are signed as the server signs
them (when the newest is a second old) and once more at the end, inside the
timing.

``audit``: :func:`audit_log` over that file exactly as ``mandi verify`` calls it
(entries, checkpoints and stored leaves streamed from :class:`SqlStore`, the
log's vkey file as trust anchor), in a fresh child process so that its peak RSS
is the audit's own.

Neither phase changes the ledger's code paths or settings; both refuse to
report a rate if the ledger's answer is wrong (an entry not created, an audit
finding).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_baselines import VERIFY_BASELINE
from bench_core import (
    MIB,
    BenchContext,
    BenchError,
    Phase,
    Target,
    current_rss_bytes,
    peak_rss_bytes,
    percentile,
    run_in_child,
)

from client.demo import run_demo, synthetic_statements
from ledger.admission import LogIdentity
from ledger.audit import audit_log
from ledger.datadir import (
    LOG_VKEY_FILE,
    init_data_dir,
    load_verifier,
    open_ledger,
    read_operator,
    rfc3339_from_ms,
)
from ledger.keys import Signer
from ledger.service import Ledger, wall_clock_ms
from ledger.statements import SignedStatement
from ledger.storage.sql import SqlStore

__all__ = ["APPEND_TARGET", "AUDIT_TARGET", "LEDGER_ORIGIN", "PHASES"]

LEDGER_ORIGIN = "bench.mandi.example/log"
APPEND_TARGET = Target(op=">=", threshold=3000)
"""Issue 2: at least 3,000 statements/s in one process, every signature verified."""
AUDIT_TARGET = Target(op=">=", threshold=0.5, on="ratio")
"""Issue 2: the audit runs at 50% or more of the raw single-core verify rate."""

_DATA_DIR = "ledger.data_dir"
"""Artifact: the data directory the append phase filled."""


# --------------------------------------------------------------------------- append


def run_append(ctx: BenchContext) -> None:
    """Fill a fresh SQLite ledger and record ``append.rate`` and ``append.batch_p99_ms``."""
    cfg = ctx.config
    data_dir = ctx.workdir / "ledger"
    init_data_dir(data_dir, origin=LEDGER_ORIGIN)
    ledger = open_ledger(data_dir)
    try:
        operator_id, operator = read_operator(data_dir)
        run_demo(ledger, operator_id=operator_id, operator=operator)
        batches = _presign(ctx, ledger, cfg.appends, cfg.batch)
        # The pre-signed statements are the client's, not the server's: keep
        # the collector from walking them during the timed loop.
        gc.collect()
        gc.freeze()
        try:
            elapsed, latencies = _append_all(ctx, ledger, batches)
        finally:
            gc.unfreeze()
        size = ledger.size()
    finally:
        ledger.store.close()
    del batches
    gc.collect()
    ctx.artifacts[_DATA_DIR] = data_dir
    ctx.record(
        "append.rate",
        cfg.appends / elapsed,
        "statements/s",
        baseline=VERIFY_BASELINE,
        target=APPEND_TARGET,
        note=f"{cfg.appends:,} pre-signed statements, Ledger.append_batch of {cfg.batch}, "
        f"SQLite synchronous=FULL, {elapsed:.1f} s; log size {size:,}",
    )
    p50 = percentile(latencies, 50)
    ctx.record(
        "append.batch_p99_ms",
        percentile(latencies, 99),
        "ms",
        note=f"one append_batch of {cfg.batch} (one commit); p50 {p50:.2f} ms",
    )


def _presign(
    ctx: BenchContext, ledger: Ledger, count: int, batch: int
) -> list[list[SignedStatement]]:
    """Sign ``count`` synthetic statements (untimed) and cut them into batches."""
    now = rfc3339_from_ms(wall_clock_ms())
    statements: list[SignedStatement] = []
    with ctx.progress("signing statements (client side, untimed)", count) as advance:
        for signed in synthetic_statements(
            origin=ledger.log.origin, count=count, time=now, start=ledger.size()
        ):
            statements.append(signed)
            if len(statements) % 1000 == 0:
                advance(1000)
        advance(len(statements) % 1000)
    return [statements[i : i + batch] for i in range(0, len(statements), batch)]


def _append_all(
    ctx: BenchContext, ledger: Ledger, batches: Sequence[Sequence[SignedStatement]]
) -> tuple[float, list[float]]:
    """Append every batch; returns the wall time and each batch's latency in ms."""
    latencies: list[float] = []
    total = sum(len(b) for b in batches)
    with ctx.progress("appending", total) as advance:
        start = time.perf_counter()
        for batch in batches:
            began = time.perf_counter_ns()
            results = ledger.append_batch(batch)
            latencies.append((time.perf_counter_ns() - began) / 1e6)
            if not all(r.created for r in results):
                raise BenchError("a fresh statement was not appended")
            advance(len(batch))
        ledger.flush_checkpoint()
        elapsed = time.perf_counter() - start
    return elapsed, latencies


# --------------------------------------------------------------------------- audit


def run_audit(ctx: BenchContext) -> None:
    """Audit the append phase's ledger; record ``audit.rate`` and ``audit.rss_growth``."""
    data_dir = ctx.artifact(_DATA_DIR, Path)
    db_url = f"sqlite:///{(data_dir / 'ledger.db').resolve()}"
    vkey = str(data_dir / LOG_VKEY_FILE)
    size = _log_size(db_url)
    result = run_in_child(
        ctx, _audit_child, (db_url, vkey), description="auditing (fresh process)", total=size
    )
    if not result["ok"]:
        raise BenchError(f"the audit found damage in a clean log: {result['summary']}")
    entries = int(result["entries"])
    elapsed = float(result["elapsed"])
    ctx.record(
        "audit.rate",
        entries / elapsed,
        "events/s",
        baseline=VERIFY_BASELINE,
        target=AUDIT_TARGET,
        note=f"audit_log as `mandi verify` runs it: {entries:,} entries, "
        f"{result['checkpoints']} checkpoints, stored leaves, {elapsed:.1f} s",
    )
    growth = (int(result["peak_rss"]) - int(result["rss_before"])) / MIB
    late = result["late_growth"]
    late_text = "n/a (too few entries)" if late is None else f"{int(late) / MIB:+.1f} MiB"
    ctx.record(
        "audit.rss_growth",
        growth,
        "MiB",
        note=f"peak RSS (VmHWM) minus RSS before the audit, fresh process; RSS change "
        f"from 50% to 100% of the log: {late_text}; the log holds "
        f"{int(result['statement_bytes']) / MIB:.0f} MiB of statements",
    )


def _log_size(db_url: str) -> int:
    store = SqlStore.open(db_url)
    try:
        return store.size()
    finally:
        store.close()


def _audit_child(send: Callable[[tuple[str, Any]], None], db_url: str, vkey: str) -> None:
    """In the child: audit the log exactly as ``mandi verify --db URL --log-vkey FILE`` does."""
    verifier = load_verifier(vkey)
    store = SqlStore.open(db_url)
    try:
        size = store.size()
        samples: list[tuple[int, int]] = []
        statement_bytes = 0

        def progress(n: int) -> None:
            samples.append((n, current_rss_bytes()))
            send(("progress", n))

        def counted(entries: Any) -> Any:
            nonlocal statement_bytes
            for entry in entries:
                statement_bytes += len(entry.statement)
                yield entry

        gc.collect()
        rss_before = current_rss_bytes()
        start = time.perf_counter()
        report = audit_log(
            counted(store.entries(0, size)),
            (cp.note for cp in store.checkpoints()),
            log_verifier=verifier,
            stored_leaves=store.leaf_hashes(0, size),
            saved_checkpoint=None,
            consistency_proof=_consistency_fetcher(store),
            progress=progress,
        )
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    peak = max([peak_rss_bytes(), *(rss for _, rss in samples)])
    half = next((rss for n, rss in samples if n >= size // 2), None)
    late = None if half is None or len(samples) < 3 else samples[-1][1] - half
    send(
        (
            "done",
            {
                "ok": report.ok,
                "summary": report.to_text()[:2000],
                "entries": report.entries_checked,
                "checkpoints": report.checkpoints_checked,
                "elapsed": elapsed,
                "rss_before": rss_before,
                "peak_rss": peak,
                "late_growth": late,
                "statement_bytes": statement_bytes,
            },
        )
    )


def _consistency_fetcher(store: SqlStore) -> Callable[[int, int], list[bytes]]:
    # As client.cli.main does: a read-only Ledger over the store, with a
    # placeholder identity because proving needs no key.
    placeholder = Signer.from_seed(bytes(32)).public
    reader = Ledger(store, log=LogIdentity(origin="reader", log_key=placeholder))

    def fetch(size1: int, size2: int) -> list[bytes]:
        return list(reader.consistency_proof(size1, size2))

    return fetch


PHASES = (
    Phase(
        name="append",
        title="append pre-signed statements to a fresh SQLite ledger",
        run=run_append,
        requires=("baselines",),
    ),
    Phase(
        name="audit",
        title="audit that ledger as `mandi verify` does",
        run=run_audit,
        requires=("baselines", "append"),
    ),
)
