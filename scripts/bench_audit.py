"""Auditor phases: a parallel audit of a large export bundle, then an incremental one.

``audit_parallel``: a synthetic ``mandi-bundle`` of N entries (the demo story,
then synthetic harvests by the demo producers; N is ``MANDI_BENCH_AUDIT_ENTRIES``,
default 1,000,000, 5,000 under ``--quick``) is built once and cached in
``bench/cache``. It is audited with :func:`ledger.audit_parallel.audit_entries`
exactly as ``mandi verify --bundle FILE --jobs CORES --save-state STATE`` runs
it, in a fresh child process. Figures: events/s next to the raw Ed25519
verify rate x cores of this run's baselines (``cryptography`` and PyNaCl); the
same audit's CPU-time rate (entries x cores / CPU seconds of the parent and its
workers: what the wall-clock rate would be on cores nobody else uses); the
child's peak RSS and its largest worker's; and the RSS change between a quarter
of the log and its end (flat memory means about zero).

``audit_incremental``: the bundle holds 1,000 entries and a checkpoint beyond
N; the full audit saw only the first N. ``mandi verify --bundle FILE --since
STATE`` is then run as a real process (startup included) and timed.

Both refuse to report a rate when the audit finds anything in the clean log.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
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
)

from client.demo import DEMO_PARTICIPANTS, demo_signer, run_demo
from ledger.audit_parallel import audit_entries
from ledger.audit_state import StateMeta, StoredReplay, nodes_of
from ledger.bundle import (
    BundleCheckpoint,
    BundleHeader,
    BundleReader,
    BundleWriter,
    entry_line,
)
from ledger.checkpoint import Checkpoint, NoteVerifier, build_vkey, sign_checkpoint
from ledger.datadir import rfc3339_from_ms
from ledger.hashing import ZERO_HASH, leaf_hash
from ledger.keys import Signer
from ledger.merkle import CompactRange
from ledger.registry import build_enrolment_request
from ledger.service import Ledger
from ledger.statements import Entry, Statement
from ledger.storage.memory import MemoryStore

__all__ = ["INCREMENTAL_TARGET", "PARALLEL_TARGET", "PHASES", "build_bundle"]

ORIGIN = "bench-audit.mandi.example/log"
RECIPE_VERSION = 1
"""Bump when the synthetic bundle changes, so a stale cache file is not used."""
NEW_ENTRIES = 1000
"""Entries beyond the fully audited size, for the incremental audit."""
PARALLEL_TARGET = Target(op=">=", threshold=0.7, on="ratio")
"""Issue 7: the parallel audit runs at 70% or more of the cryptography verify rate x cores."""
STRETCH_TARGET = Target(op=">=", threshold=0.7, on="ratio")
"""Issue 7 stretch: 70% or more of the libsodium verify rate x cores."""
INCREMENTAL_TARGET = Target(op="<=", threshold=2.0)
"""Issue 7: an incremental audit of 1,000 new entries on a 1,000,000-entry log in 2 s or less."""

_LOG_SEED = bytes(range(200, 232))
_OPERATOR_SEED = bytes(range(100, 132))
_BASE_MS = 1_795_843_800_000
_BUNDLE = "audit.bundle"
_STATE = "audit.state"
_SIGN_CHUNK = 5000


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _size(quick: bool) -> int:
    return int(os.environ.get("MANDI_BENCH_AUDIT_ENTRIES", 5_000 if quick else 1_000_000))


# --------------------------------------------------------------------------- the bundle


def _producers() -> list[str]:
    return [pid for pid, profile in DEMO_PARTICIPANTS if profile["role"] == "producer"]


def _harvest_bytes(origin: str, signer_hex: str, producer: str, n: int, time: str) -> bytes:
    """The canonical bytes of synthetic harvest ``n`` (checked against Statement.build)."""
    return (
        f'{{"body":{{"crop":"rice","harvest_date":"{time[:10]}","lot":"lot:{producer}:'
        f's{n:09d}","plot":"plot-1","quantity":{{"amount":{1000 + n % 500},"unit":"kg"}}}},'
        f'"kind":"harvest","origin":"{origin}","signer":"{signer_hex}","time":"{time}",'
        f'"version":1}}'
    ).encode()


def _sign_range(args: tuple[int, int, str]) -> list[tuple[bytes, bytes]]:
    """In a worker: statements ``[begin, end)`` and their signatures."""
    begin, end, time = args
    producers = _producers()
    signers = [demo_signer(pid) for pid in producers]
    out = []
    for n in range(begin, end):
        k = n % len(signers)
        raw = _harvest_bytes(ORIGIN, signers[k].key_id.hex(), producers[k], n, time)
        out.append((raw, signers[k].sign(b"mandi-statement-v1\n" + raw)))
    return out


def build_bundle(
    path: Path, size: int, *, checkpoint_sizes: set[int], progress: Callable[[int], None]
) -> str:
    """Write a clean bundle of ``size`` entries; return the log's vkey.

    Checkpoints at ``checkpoint_sizes`` and at ``size``. The demo
    story comes first (so the producers are enrolled), then synthetic harvests.
    """
    log_signer = Signer.from_seed(_LOG_SEED)
    operator = Signer.from_seed(_OPERATOR_SEED)
    clock = itertools.count(_BASE_MS)
    time0 = rfc3339_from_ms(_BASE_MS)
    request = build_enrolment_request(
        origin=ORIGIN,
        participant_id="operator",
        signer=operator,
        time=time0,
        profile={"role": "operator"},
    )
    store = MemoryStore()
    ledger = Ledger.initialise(
        store,
        origin=ORIGIN,
        log_signer=log_signer,
        operator_request=request,
        time=time0,
        clock=lambda: next(clock),
        checkpoint_delay_ms=10**12,
    )
    from datetime import UTC, datetime

    run_demo(
        ledger,
        operator_id="operator",
        operator=operator,
        start=datetime.fromtimestamp(_BASE_MS / 1000 - 40 * 86400, tz=UTC),
    )
    demo = list(store.entries(0, store.size()))
    if len(demo) > size:
        raise BenchError(f"the bundle must hold at least the demo's {len(demo)} entries")
    accepted = demo[-1].accepted_ms + 1000
    time = rfc3339_from_ms(accepted)
    producers = _producers()
    check = _harvest_bytes(ORIGIN, demo_signer(producers[0]).key_id.hex(), producers[0], 0, time)
    built = Statement.build(
        origin=ORIGIN,
        kind="harvest",
        signer=demo_signer(producers[0]).key_id,
        time=time,
        body={
            "lot": f"lot:{producers[0]}:s000000000",
            "crop": "rice",
            "plot": "plot-1",
            "harvest_date": time[:10],
            "quantity": {"amount": 1000, "unit": "kg"},
        },
    )
    if built.raw != check:
        raise BenchError("the synthetic statement template is not canonical")
    tree = CompactRange()
    prev = ZERO_HASH
    checkpoints: list[tuple[int, str]] = []
    tmp = path.with_name(path.name + ".partial")
    entries_path = path.with_name(path.name + ".entries")
    with entries_path.open("wb") as body:

        def put(entry: Entry) -> None:
            nonlocal prev
            raw = entry.to_bytes()
            body.write(entry_line(raw))
            prev = leaf_hash(raw)
            tree.append(prev)
            if tree.size in checkpoint_sizes or tree.size == size:
                cp = Checkpoint(origin=ORIGIN, size=tree.size, root_hash=tree.root())
                checkpoints.append((tree.size, sign_checkpoint(cp, ORIGIN, log_signer).to_text()))

        for e in demo:
            put(
                Entry(
                    index=e.index,
                    accepted_ms=e.accepted_ms,
                    prev=prev,
                    statement=e.statement,
                    signature=e.signature,
                )
            )
        ranges = [
            (n, min(n + _SIGN_CHUNK, size - len(demo)), time)
            for n in range(0, size - len(demo), _SIGN_CHUNK)
        ]
        with multiprocessing.get_context("spawn").Pool(_cores()) as pool:
            for signed in pool.imap(_sign_range, ranges):
                for raw, signature in signed:
                    put(
                        Entry(
                            index=tree.size,
                            accepted_ms=accepted,
                            prev=prev,
                            statement=raw,
                            signature=signature,
                        )
                    )
                progress(tree.size)
    with tmp.open("wb") as out:
        writer = BundleWriter(out)
        writer.begin(
            BundleHeader(origin=ORIGIN, vkey=build_vkey(ORIGIN, log_signer.public), size=size),
            [BundleCheckpoint(size=s, note=n) for s, n in checkpoints],
        )
        with entries_path.open("rb") as lines:
            shutil.copyfileobj(lines, out, 16 * MIB)
        writer.entries_written = size
        writer.finish(store.participants(), store.keys())
    entries_path.unlink()
    os.replace(tmp, path)
    return build_vkey(ORIGIN, log_signer.public)


def _cached_bundle(ctx: BenchContext, size: int) -> tuple[Path, str]:
    cache = ctx.config.cache_dir
    folder = cache if cache is not None else ctx.workdir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"audit-bundle-{size}-v{RECIPE_VERSION}.jsonl"
    vkey = build_vkey(ORIGIN, Signer.from_seed(_LOG_SEED).public)
    if path.exists():
        ctx.say(f"  using the cached bundle {path}")
        return path, vkey
    ctx.say(f"  building a {size:,}-entry bundle (signing on {_cores()} cores) ...")
    every = max(1000, (size - NEW_ENTRIES) // 10)
    with ctx.progress("building the bundle", size) as advance:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            advance(n - done)
            done = n

        sizes = {every * k for k in range(1, 11)} | {size - NEW_ENTRIES}
        build_bundle(path, size, checkpoint_sizes=sizes, progress=progress)
    return path, vkey


# --------------------------------------------------------------------------- the full audit


def run_parallel(ctx: BenchContext) -> None:
    """Audit the bundle on every core; record the rate, its ratios and the memory."""
    cores = _cores()
    total = _size(ctx.config.quick) + NEW_ENTRIES
    path, vkey = _cached_bundle(ctx, total)
    audited = total - NEW_ENTRIES
    state = ctx.workdir / "audit.state"
    crypto = ctx.figure(VERIFY_BASELINE).value
    pynacl = ctx.figure("verify.pynacl").value
    ctx.record(
        "verify.cryptography.cores",
        crypto * cores,
        "verifications/s",
        baseline=VERIFY_BASELINE,
        note=f"verify.cryptography x {cores} cores (the parallel audit's limit)",
    )
    ctx.record(
        "verify.pynacl.cores",
        pynacl * cores,
        "verifications/s",
        baseline=VERIFY_BASELINE,
        note=f"verify.pynacl x {cores} cores (libsodium's limit)",
    )
    result = _run_child(
        ctx,
        [str(path), vkey, str(audited), str(cores), str(state)],
        description=f"auditing {audited:,} entries on {cores} cores (fresh process)",
        total=audited,
    )
    if not result["ok"]:
        raise BenchError(f"the audit found damage in a clean bundle: {result['summary']}")
    rate = audited / result["seconds"]
    note = (
        f"audit_entries as `mandi verify --bundle --jobs {cores} --save-state` runs it: "
        f"{audited:,} entries, {result['checkpoints']} checkpoints, {result['seconds']:.1f} s"
    )
    ctx.record(
        "audit.parallel.rate",
        rate,
        "events/s",
        baseline="verify.cryptography.cores",
        target=PARALLEL_TARGET,
        note=note,
    )
    ctx.record(
        "audit.parallel.rate_vs_pynacl",
        rate,
        "events/s",
        baseline="verify.pynacl.cores",
        target=STRETCH_TARGET,
        note="the same run against libsodium's limit (the stretch goal)",
    )
    cpu = result["parent_cpu"] + result["workers_cpu"]
    ctx.record(
        "audit.parallel.cpu_rate",
        audited * cores / cpu,
        "events/s",
        baseline="verify.cryptography.cores",
        note=f"the rate if all {cores} cores ran only this audit: entries x cores / CPU "
        f"seconds (parent {result['parent_cpu'] / audited * 1e6:.0f} us/entry, workers "
        f"{result['workers_cpu'] / audited * 1e6:.0f} us/entry); other load on a shared "
        "machine lowers the wall-clock rate, not this one",
    )
    ctx.record(
        "audit.parallel.peak_rss",
        result["peak"] / MIB,
        "MiB",
        note=f"parent (fresh process) peak RSS; largest worker {result['worker_peak'] / MIB:.0f} "
        f"MiB; RSS change from 25% to 100% of the log: {result['growth'] / MIB:+.1f} MiB",
    )
    ctx.artifacts[_BUNDLE] = path
    ctx.artifacts[_STATE] = (state, vkey, audited)


def _run_child(
    ctx: BenchContext, args: list[str], *, description: str, total: int
) -> dict[str, Any]:
    """Run :func:`_audit_child` in a fresh interpreter (not a daemon: it starts workers).

    The child writes JSON lines on stdout: ``["progress", n]`` now and then,
    ``["done", {...}]`` once. On Ctrl-C it is terminated before the interrupt goes on.
    """
    errors = ctx.workdir / "audit-child.err"
    with errors.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,  # a file, not a pipe nobody reads while the child runs
            text=True,
        )
    assert child.stdout is not None
    try:
        with ctx.progress(description, total) as advance:
            done = 0
            for line in child.stdout:
                kind, payload = json.loads(line)
                if kind == "progress":
                    advance(int(payload) - done)
                    done = int(payload)
                elif kind == "done":
                    result: dict[str, Any] = payload
                    return result
        child.wait()
        raise BenchError(f"{description}: the child died: {errors.read_text()[-2000:]}")
    finally:
        if child.poll() is None:
            child.terminate()
        child.wait()


def _audit_child(
    send: Callable[[tuple[str, Any]], None],
    path: str,
    vkey: str,
    audited: int,
    jobs: int,
    state_path: str,
) -> None:
    verifier = NoteVerifier.from_vkey(vkey)
    with open(path, "rb") as handle:
        reader = BundleReader(handle)
        notes = [c.note for c in reader.checkpoints if c.size <= audited]
        partial = Path(state_path + ".partial")
        partial.unlink(missing_ok=True)
        replay = StoredReplay.create(partial)
        quarter: list[int] = []
        start = time.perf_counter()
        cpu_start = time.process_time()

        def progress(n: int) -> None:
            if not quarter and n >= audited // 4:
                quarter.append(current_rss_bytes())
            send(("progress", n))

        outcome = audit_entries(
            itertools.islice(reader.entry_lines(), audited),
            notes,
            log_verifier=verifier,
            replay=replay,
            form="bundle_lines",
            jobs=jobs,
            progress=progress,
        )
        seconds = time.perf_counter() - start
        parent_cpu = time.process_time() - cpu_start
        workers = resource.getrusage(resource.RUSAGE_CHILDREN)
        end_rss = current_rss_bytes()
        report = outcome.report
        if report.ok and outcome.checkpoint is not None:
            size, root, note = outcome.checkpoint
            replay.commit(
                StateMeta(
                    origin=report.origin,
                    vkey=vkey,
                    size=outcome.size,
                    last_leaf=outcome.last_leaf,
                    nodes=nodes_of(outcome.tree),
                    checkpoint=note,
                    checkpoint_size=size,
                    checkpoint_root=root,
                ),
                final=Path(state_path),
            )
        else:
            replay.close()
    send(
        (
            "done",
            {
                "ok": report.ok,
                "summary": report.to_text()[:2000],
                "seconds": seconds,
                "checkpoints": report.checkpoints_checked,
                "peak": peak_rss_bytes(),
                "worker_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                "growth": end_rss - (quarter[0] if quarter else end_rss),
                "parent_cpu": parent_cpu,
                "workers_cpu": workers.ru_utime + workers.ru_stime,
            },
        )
    )


# --------------------------------------------------------------------------- incremental


def run_incremental(ctx: BenchContext) -> None:
    """Time ``mandi verify --bundle FILE --since STATE`` over the last 1,000 entries."""
    path = ctx.artifact(_BUNDLE, Path)
    state, vkey, audited = ctx.artifact(_STATE, tuple)
    mandi = str(Path(sys.executable).parent / "mandi")
    vkey_file = ctx.workdir / "log.vkey"
    vkey_file.write_text(vkey + "\n")
    ctx.say(f"  mandi verify --bundle ... --since STATE: {NEW_ENTRIES} new entries")
    start = time.perf_counter()
    done = subprocess.run(
        [
            mandi,
            "verify",
            "--bundle",
            str(path),
            "--log-vkey",
            str(vkey_file),
            "--since",
            str(state),
            "--json",
        ],
        capture_output=True,
        timeout=600,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(
            f"incremental audit failed: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}"
        )
    report = json.loads(done.stdout)
    if report["entries_checked"] != NEW_ENTRIES:
        raise BenchError(f"incremental audit checked {report['entries_checked']} entries")
    ctx.record(
        "audit.incremental.seconds",
        seconds,
        "s",
        target=INCREMENTAL_TARGET,
        note=f"`mandi verify --bundle --since STATE` as a new process (startup included): "
        f"{NEW_ENTRIES:,} new entries after {audited:,}, a new checkpoint",
    )


PHASES = (
    Phase(
        name="audit_parallel",
        title="parallel audit of an export bundle on every core",
        run=run_parallel,
        requires=("baselines",),
    ),
    Phase(
        name="audit_incremental",
        title="incremental audit of 1,000 new entries (mandi verify --since)",
        run=run_incremental,
        requires=("audit_parallel",),
    ),
)


def _child(argv: list[str]) -> None:
    path, vkey, audited, jobs, state = argv

    def send(message: tuple[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    _audit_child(send, path, vkey, int(audited), int(jobs), state)


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _child(sys.argv[2:])
