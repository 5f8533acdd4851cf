"""Proof phase: inclusion and consistency proofs served from a 1,000,000-entry SQLite tree.

The tree is synthetic but real as far as proofs go: ``--proof-tree`` entries
with ~260-byte harvest-like statement bytes (not signed: the signature column
holds a SHA-512 placeholder, so this database would fail an audit and is good
only for proofs), their leaf hashes, and every
complete Merkle node, computed with :func:`ledger.merkle.new_nodes_for_append`
and written with bulk inserts through :attr:`SqlStore.engine` in large
transactions, then the ``log_head`` row moved to the new size. The root is also
computed independently with :class:`~ledger.merkle.CompactRange` and kept in
the ``meta`` table; the phase checks the stored nodes give that root.

Building takes about a minute for 1,000,000 entries; the result is cached
in ``bench/cache/proof-tree-<size>-schema<revision>-v<recipe>.db`` so reruns skip
it. The key holds the Alembic head revision (a new migration invalidates the
cache) and this module's recipe version. ``--quick`` builds a small tree in the
scratch directory and never touches the cache.

Timing: each proof is one call of :meth:`Ledger.inclusion_proof` or
:meth:`Ledger.consistency_proof` on a :class:`SqlStore` (the path the HTTP API
uses), after a short warm-up; each answer is verified once afterwards, outside
the timing. Inclusion proofs are for random leaves in the whole tree;
consistency proofs between random sizes ``1 <= size1 < size2 <= size``.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench_core import BenchContext, BenchError, Phase, Target, percentile
from sqlalchemy import insert, update
from sqlalchemy.engine import URL

from ledger.admission import LogIdentity
from ledger.hashing import ZERO_HASH, Digest, digest_from_hex
from ledger.keys import Signer, VerifyingKey
from ledger.merkle import (
    CompactRange,
    NodeId,
    new_nodes_for_append,
    verify_consistency,
    verify_inclusion,
)
from ledger.service import Ledger
from ledger.statements import Entry
from ledger.storage.sql import (
    EntryRow,
    HeadRow,
    NodeRow,
    SqlStore,
    default_sqlite_url,
    migrate,
    schema_status,
)

__all__ = ["PHASES", "PROOF_TARGET", "RECIPE_VERSION"]

PROOF_TARGET = Target(op="<=", threshold=2.0)
"""Issue 2: p99 of a proof at most 2 ms at 1,000,000 entries."""
RECIPE_VERSION = 1
"""Bump when the synthetic tree changes shape: it is part of the cache key."""

_ROOT_META = "bench.proof_tree.root"
_CHUNK = 50_000
"""Entries per build transaction."""
_WARMUP = 200
"""Untimed proofs of each kind before the timing."""
_ACCEPTED_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_SIGNER_HEX = hashlib.sha256(b"mandi-bench-proof-tree").hexdigest()
_STATEMENT = (
    b'{"body":{"crop":"rice","lot":"synthetic:%09d","quantity":{"amount":%d,"unit":"kg"}},'
    b'"kind":"harvest","origin":"bench.mandi.example/log","signer":"'
    + _SIGNER_HEX.encode("ascii")
    + b'","time":"2026-01-01T00:00:00Z","version":1}'
)


def run_proofs(ctx: BenchContext) -> None:
    """Time random inclusion and consistency proofs; record p50 and p99 of each."""
    cfg = ctx.config
    size = cfg.proof_tree
    db_path, how = _tree(ctx, size)
    store = SqlStore.open(_url(db_path))
    try:
        root = _checked_root(store, size)
        ledger = Ledger(store, log=LogIdentity(origin="bench", log_key=_placeholder_key()))
        rng = random.Random(cfg.seed)
        inclusion = [(rng.randrange(size), size) for _ in range(cfg.proofs)]
        consistency = [_random_sizes(rng, size) for _ in range(cfg.proofs)]
        # Warm-up on other requests: a server that has run a while has compiled
        # the node lookup for every proof length and has the pages in cache.
        for _ in range(_WARMUP):
            ledger.inclusion_proof(rng.randrange(size), size)
            ledger.consistency_proof(*_random_sizes(rng, size))
        # No progress bar while timing: its refresh thread would take the GIL
        # in the middle of sub-millisecond calls. Each loop lasts about a second.
        ctx.say(f"  timing {cfg.proofs:,} inclusion and {cfg.proofs:,} consistency proofs ...")
        inc_ms, inc_proofs = _time_calls(ledger.inclusion_proof, inclusion)
        con_ms, con_proofs = _time_calls(ledger.consistency_proof, consistency)

        with ctx.progress("verifying the proofs (untimed)", 2 * cfg.proofs) as advance:
            for (leaf_index, tree_size), proof in zip(inclusion, inc_proofs, strict=True):
                leaf = store.entry(leaf_index).leaf_hash  # from the entry, not the node
                verify_inclusion(leaf, leaf_index, tree_size, proof, root)
                advance(1)
            for (size1, size2), proof in zip(consistency, con_proofs, strict=True):
                verify_consistency(
                    size1, size2, proof, ledger.root_hash(size1), ledger.root_hash(size2)
                )
                advance(1)
    finally:
        store.close()

    where = f"{size:,}-entry SQLite tree ({how})"
    for kind, values in (("inclusion", inc_ms), ("consistency", con_ms)):
        ctx.record(
            f"proof.{kind}.p50_ms",
            percentile(values, 50),
            "ms",
            note=f"{len(values):,} random {kind} proofs, Ledger.{kind}_proof on a {where}",
        )
        ctx.record(
            f"proof.{kind}.p99_ms",
            percentile(values, 99),
            "ms",
            target=PROOF_TARGET,
            note=f"max {max(values):.2f} ms; each proof verified once, untimed",
        )


def _time_calls(
    call: Callable[[int, int], list[Digest]], requests: Sequence[tuple[int, int]]
) -> tuple[list[float], list[list[Digest]]]:
    """Each call's latency in ms, and its answer (kept for verifying afterwards)."""
    latencies: list[float] = []
    answers: list[list[Digest]] = []
    clock = time.perf_counter_ns
    for first, second in requests:
        began = clock()
        answer = call(first, second)
        latencies.append((clock() - began) / 1e6)
        answers.append(answer)
    return latencies, answers


def _random_sizes(rng: random.Random, size: int) -> tuple[int, int]:
    size2 = rng.randint(2, size)
    return rng.randint(1, size2 - 1), size2


def _placeholder_key() -> VerifyingKey:
    # Proving needs no key; a reader Ledger takes a placeholder identity.
    return Signer.from_seed(bytes(32)).public


# --------------------------------------------------------------------------- the tree


def _url(path: Path) -> str:
    return URL.create("sqlite", database=str(path.resolve())).render_as_string()


def _tree(ctx: BenchContext, size: int) -> tuple[Path, str]:
    """The database file of a ``size``-entry tree, and how it was obtained.

    Uses the cache when one is configured and holds a complete tree for this
    size, schema revision and recipe; otherwise builds one (into the cache, by
    an atomic rename of a finished file, or into the scratch directory).
    """
    cache_dir = ctx.config.cache_dir
    if cache_dir is None:
        path = ctx.workdir / f"proof-tree-{size}.db"
        seconds = _build(ctx, size, path)
        return path, f"built in {seconds:.0f} s, not cached"
    _, head = schema_status(_url(ctx.workdir / "schema-probe.db"))
    path = cache_dir / f"proof-tree-{size}-schema{head}-v{RECIPE_VERSION}.db"
    if path.exists():
        if _cached_tree_ok(path, size):
            ctx.say(f"  using the cached tree {_display(path)}")
            return path, "cached"
        ctx.say(f"  the cached tree {_display(path)} is incomplete: rebuilding it")
        path.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    seconds = _build(ctx, size, path)
    ctx.say(f"  cached the tree in {_display(path)}")
    return path, f"built in {seconds:.0f} s, now cached"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _cached_tree_ok(path: Path, size: int) -> bool:
    store = SqlStore.open(_url(path))
    try:
        return store.size() == size and store.get_meta(_ROOT_META) is not None
    finally:
        store.close()


def _build(ctx: BenchContext, size: int, path: Path) -> float:
    """Build the tree in a private directory next to ``path``, then rename it into place.

    An interrupted build leaves nothing behind: the directory is removed.

    Returns:
        The build time in seconds.
    """
    build_dir = path.parent / f".build-{path.stem}-{os.getpid()}"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    try:
        url = default_sqlite_url(build_dir)
        migrate(url)
        store = SqlStore.open(url)
        try:
            start = time.perf_counter()
            root = _fill(ctx, store, size)
            store.set_meta(_ROOT_META, root.hex())
            seconds = time.perf_counter() - start
        finally:
            store.close()  # the last connection checkpoints and removes the WAL
        leftovers = sorted(p.name for p in build_dir.iterdir() if p.name != "ledger.db")
        if leftovers:
            raise BenchError(f"SQLite left {leftovers} after closing the tree database")
        os.replace(build_dir / "ledger.db", path)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    # The build leaves hundreds of MB of dirty pages; let the kernel write them
    # back now rather than while the proofs are timed.
    os.sync()
    gc.collect()
    return seconds


def _fill(ctx: BenchContext, store: SqlStore, size: int) -> Digest:
    """Write ``size`` synthetic entries, their leaves and every complete node.

    Returns:
        The root computed independently of the stored nodes (CompactRange).
    """
    compact = CompactRange()
    # The left siblings an append asks for: this chunk's nodes, or the compact
    # range of everything before the chunk.
    nodes: dict[NodeId, Digest] = {}
    frontier: dict[NodeId, Digest] = {}

    def lookup(node_id: NodeId) -> Digest:
        found = nodes.get(node_id)
        return frontier[node_id] if found is None else found

    prev = ZERO_HASH
    with ctx.progress("building the proof tree", size) as advance:
        for begin in range(0, size, _CHUNK):
            end = min(size, begin + _CHUNK)
            entries: list[dict[str, object]] = []
            nodes.clear()
            for index in range(begin, end):
                statement = _STATEMENT % (index, 1000 + index % 500)
                signature = hashlib.sha512(statement).digest()
                entry = Entry(
                    index=index,
                    accepted_ms=_ACCEPTED_MS,
                    prev=prev,
                    statement=statement,
                    signature=signature,
                )
                leaf = entry.leaf_hash
                entries.append(
                    {
                        "idx": index,
                        "event_id": entry.event_id,
                        "accepted_ms": _ACCEPTED_MS,
                        "prev": prev,
                        "statement": statement,
                        "signature": signature,
                    }
                )
                nodes.update(new_nodes_for_append(index, leaf, lookup))
                compact.append(leaf)
                prev = leaf
            with store.engine.begin() as conn:
                # A bigger page cache for the bulk insert only: the unique
                # indexes on event_id and prev take random keys.
                conn.exec_driver_sql("PRAGMA cache_size = -262144")
                conn.execute(insert(EntryRow), entries)
                conn.execute(
                    insert(NodeRow),
                    [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in nodes.items()],
                )
                moved = conn.execute(
                    update(HeadRow)
                    .where(HeadRow.id == 1, HeadRow.size == begin)
                    .values(size=end, last_leaf=prev)
                ).rowcount
                if moved != 1:
                    raise BenchError("the log head moved while building the proof tree")
            frontier.clear()
            frontier.update(compact.to_nodes())
            advance(end - begin)
    return compact.root()


def _checked_root(store: SqlStore, size: int) -> Digest:
    """The independently computed root, after checking the stored nodes give it too."""
    text = store.get_meta(_ROOT_META)
    if text is None:
        raise BenchError("the proof tree has no recorded root")
    root = digest_from_hex(text)
    reader = Ledger(store, log=LogIdentity(origin="bench", log_key=_placeholder_key()))
    if reader.root_hash(size) != root:
        raise BenchError("the stored Merkle nodes do not give the recorded root")
    return root


PHASES = (
    Phase(
        name="proofs",
        title="inclusion and consistency proofs from storage on a large tree",
        run=run_proofs,
    ),
)
