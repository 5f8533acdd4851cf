"""The parallel auditor: the same verdict as :func:`ledger.audit.audit_log`, on all cores.

The walk is split in two, so that the part of an audit that needs no state
runs on every core and the part that does runs once, in order:

* **Workers** (``jobs`` processes, chunks of entries round robin) decode each
  entry and check its canonical form, hash its leaf, parse and shape-check its
  statement, and verify its Ed25519 signature with libsodium (PyNaCl) against
  the key the registry holds for the named signer. Decoding avoids
  re-canonicalising with ``rfc8785``: an entry is rebuilt and compared byte for
  byte, a statement goes through :func:`ledger.encoding.decode_canonical`'s
  fast path (one re-encoding with ``json``), and anything that does not pass
  falls back to the ordinary parser, so errors are the ordinary ones.
* **The parent** streams the results in log order, once: index and chain
  links, stored leaves, the compact Merkle range and every checkpoint's root,
  and admission through :func:`ledger.admission.admit`, the server's own
  rule code, with ``signature_checked=True`` where a worker verified the
  signature with that very key. Everything else (a key the workers did not yet
  know, a signature libsodium refused) is verified again by ``admit`` itself
  with ``cryptography``, so a failed signature is the same finding, from the
  same code, as in the sequential audit, and libsodium can only ever save
  work, never change an answer. A test holds libsodium to ``cryptography`` on
  every Wycheproof vector.

Why that is sound: a key id is the SHA-256 of the key, so the key a worker
used for a signer id is the only key the registry can hold under that id; and
the workers learn keys only from registry changes the parent admitted.

Memory stays flat: a bounded number of chunks in flight, O(log n) Merkle
hashes, and the replay state in an audit-state file
(:class:`~ledger.audit_state.StoredReplay`) behind a bounded overlay. The
incremental audit (``--since``) is the same walk started from a saved state.
"""

from __future__ import annotations

import binascii
import contextlib
import gc
import json
import multiprocessing
import os
import queue
import re
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ledger.admission import LogIdentity, admit
from ledger.audit import (
    AuditReport,
    Finding,
    _check_saved_consistency,
    _CheckpointQueue,
    _Collector,
    _compare_stored_leaf,
    _open_saved,
)
from ledger.audit_state import StateMeta, StoredReplay
from ledger.checkpoint import NoteVerifier, open_checkpoint
from ledger.encoding import MAX_SAFE_INTEGER
from ledger.errors import EncodingError, LedgerError
from ledger.hashing import ZERO_HASH, Digest, KeyId, leaf_hash
from ledger.keys import SIGNATURE_SIZE, libsodium_accepts
from ledger.merkle import CompactRange
from ledger.registry import KeyRecord, ParticipantRecord, Registry
from ledger.statements import (
    STATEMENT_DOMAIN,
    Entry,
    SignedStatement,
    Statement,
)

__all__ = [
    "DEFAULT_CHUNK",
    "AuditOutcome",
    "Form",
    "audit_entries",
    "compare_registry",
    "decode_chunk",
    "first_rewritten",
]

Form = Literal["entries", "entry_bytes", "bundle_lines"]
"""What the items handed to :func:`audit_entries` are: :class:`~ledger.statements.Entry`
values, exact entry bytes (a server's JSON Lines), or bundle entry lines."""

DEFAULT_CHUNK = 2048
"""Entries per work unit: large enough to amortise the hand-over, small enough to stay flat."""

_IN_FLIGHT_PER_JOB = 4
"""Chunks handed out per worker before the parent waits for the oldest: enough that a
worker still has work while the parent spends a few hundred ms writing the replay
state out (with 2, the cores were idle 3-7% of a run; with 4, about 1%)."""
_WALK_GC_THRESHOLD = 20_000
"""The collector's generation-0 threshold during the walk (the default is 700)."""
_ORPHAN_CHECK_S = 1.0
"""How often an idle worker checks that its parent is still alive."""
_OK, _BAD_STATEMENT, _BAD_ENTRY = 0, 1, 2
_SIG_UNCHECKED, _SIG_OK, _SIG_BAD = 0, 1, -1

_ENTRY_RE = re.compile(
    rb'\{"accepted_ms":(0|[1-9][0-9]{0,15}),"index":(0|[1-9][0-9]{0,15}),'
    rb'"prev":"([0-9a-f]{64})","signature":"([A-Za-z0-9+/]*={0,2})",'
    rb'"statement":"([A-Za-z0-9+/]*={0,2})"\}'
)
_BUNDLE_PREFIX = b'{"entry":"'
_BUNDLE_SUFFIX = b'","type":"entry"}'


# --------------------------------------------------------------------------- verifying


class _Directory:
    """key id -> public key, as the parent's admitted registry changes taught this worker."""

    def __init__(self) -> None:
        self.keys: dict[bytes, bytes] = {}

    def add(self, delta: Iterable[tuple[bytes, bytes]]) -> None:
        for key_id, public in delta:
            self.keys[bytes(key_id)] = bytes(public)


# --------------------------------------------------------------------------- decoding (workers)


def _b64_canonical(text: bytes) -> bytes | None:
    """Decode standard base64 (``=`` padded); None unless it is the canonical encoding.

    With the alphabet and padding checked (strict mode), only the last quantum
    can carry non-zero unused bits, so re-encoding the last bytes is enough.
    """
    # binascii directly: base64.b64decode(validate=True) adds a regex and a copy.
    if len(text) % 4:
        return None
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return None
    if not text:
        return raw
    tail = len(raw) % 3 or 3
    if binascii.b2a_base64(raw[-tail:], newline=False) != text[-4:]:
        return None
    return raw


_EntryFields = tuple[int, int, bytes, bytes, bytes]
"""An entry's ``(index, accepted_ms, prev, statement, signature)``."""


def _decode_entry(raw: bytes) -> _EntryFields:
    """:meth:`Entry.from_bytes`'s fields, not re-parsing the JSON when the bytes are canonical.

    The pattern is :meth:`Entry.to_bytes`'s exact template (sorted keys,
    decimal integers without leading zeros, lowercase hex); with both base64
    fields canonical and both integers within :class:`Entry`'s range,
    ``to_bytes`` of the same fields gives ``raw`` back (a test holds the two
    to agree). No :class:`Entry` is built: the walk needs only its fields.
    Anything else goes to the ordinary parser.
    """
    match = _ENTRY_RE.fullmatch(raw)
    if match is not None:
        signature = _b64_canonical(match[4])
        statement = _b64_canonical(match[5])
        index, accepted_ms = int(match[2]), int(match[1])
        if (
            signature is not None
            and statement is not None
            and index <= MAX_SAFE_INTEGER
            and accepted_ms <= MAX_SAFE_INTEGER
        ):
            return index, accepted_ms, bytes.fromhex(match[3].decode("ascii")), statement, signature
    entry = Entry.from_bytes(raw)
    return entry.index, entry.accepted_ms, entry.prev, entry.statement, entry.signature


def _entry_bytes_of_line(line: bytes) -> bytes:
    body = line[:-1] if line.endswith(b"\n") else line
    if body.startswith(_BUNDLE_PREFIX) and body.endswith(_BUNDLE_SUFFIX):
        raw = _b64_canonical(body[len(_BUNDLE_PREFIX) : -len(_BUNDLE_SUFFIX)])
        if raw is not None:
            return raw
    raise EncodingError(
        'bundle line is not {"entry":"<canonical base64>","type":"entry"}',
        code="bundle_malformed",
    )


def decode_chunk(form: Form, items: Sequence[Any], directory: _Directory) -> list[tuple[Any, ...]]:
    """Decode and pre-check one chunk of entries (the workers' job; pure apart from hashing).

    Returns one tuple per item, in order:

    * ``(0, index, accepted_ms, prev, leaf, origin, kind, signer, time, body, raw,
      signature, sig)``: a statement that parsed; ``sig`` is 1 when libsodium
      verified it with the directory's key for its signer, -1 when that failed,
      0 when the signer was not in the directory;
    * ``(1, index, accepted_ms, prev, leaf, code, message)``: an entry whose
      statement or signature field is malformed;
    * ``(2, leaf, code, message)``: bytes that are no entry at all (``leaf`` is
      the hash of whatever bytes there were).
    """
    keys = directory.keys
    results: list[tuple[Any, ...]] = []
    append = results.append
    # One object per distinct origin, kind, signer and time in the chunk: pickle then
    # sends each once and the parent builds each once.
    same: dict[Any, Any] = {}
    one = same.setdefault
    for item in items:
        if form == "entries":
            fields: _EntryFields = item
            raw = Entry(
                index=item[0],
                accepted_ms=item[1],
                prev=item[2],
                statement=item[3],
                signature=item[4],
            ).to_bytes()
        else:
            try:
                raw = _entry_bytes_of_line(item) if form == "bundle_lines" else bytes(item)
            except LedgerError as exc:
                append((_BAD_ENTRY, leaf_hash(bytes(item)), exc.code, exc.message))
                continue
            try:
                fields = _decode_entry(raw)
            except LedgerError as exc:
                append((_BAD_ENTRY, leaf_hash(raw), exc.code, exc.message))
                continue
        index, accepted_ms, prev, statement_bytes, signature = fields
        leaf = leaf_hash(raw)
        try:
            if len(signature) != SIGNATURE_SIZE:
                # SignedStatement.from_bytes checks the length first: the same error.
                SignedStatement.from_bytes(statement_bytes, signature)
            statement = Statement.from_bytes(statement_bytes)
        except LedgerError as exc:
            append((_BAD_STATEMENT, index, accepted_ms, prev, leaf, exc.code, exc.message))
            continue
        public = keys.get(statement.signer)
        if public is None:
            sig = _SIG_UNCHECKED
        elif libsodium_accepts(public, signature, STATEMENT_DOMAIN + statement.raw):
            sig = _SIG_OK
        else:
            sig = _SIG_BAD
        append(
            (
                _OK,
                index,
                accepted_ms,
                prev,
                leaf,
                one(statement.origin, statement.origin),
                one(statement.kind, statement.kind),
                one(statement.signer, statement.signer),
                one(statement.time, statement.time),
                statement.body,
                statement.raw,
                signature,
                sig,
            )
        )
    return results


def _worker_main(tasks: Any, results: Any, parent: int) -> None:
    """A worker process: decode chunks until told to stop (``None``) or ``parent`` is gone."""
    # Ctrl-C reaches the whole process group; the parent alone decides to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    directory = _Directory()
    while True:
        try:
            task = tasks.get(timeout=_ORPHAN_CHECK_S)
        except queue.Empty:
            if os.getppid() != parent:  # the parent was killed (kill -9): stop, do not linger
                return
            continue
        if task is None:
            return
        seq, form, delta, items = task
        directory.add(delta)
        results.put((seq, decode_chunk(form, items, directory)))


# --------------------------------------------------------------------------- the parent walk


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditOutcome:
    """An audit's report and where it left the log, for saving an audit state.

    Attributes:
        report: the findings (the same type :func:`ledger.audit.audit_log` returns).
        start: the index the walk began at (0 for a full audit).
        size: entries covered, ``start + report.entries_checked``.
        tree: the compact range of ``[0, size)``.
        last_leaf: leaf hash of entry ``size - 1``.
        checkpoint: the newest checkpoint whose log signature verified, as
            ``(size, root, note)``.
    """

    report: AuditReport
    start: int
    size: int
    tree: CompactRange
    last_leaf: Digest
    checkpoint: tuple[int, bytes, str] | None


class _Walk:
    """The in-order part of the audit: one pass, in the parent."""

    def __init__(
        self,
        *,
        log: LogIdentity,
        out: _Collector,
        replay: StoredReplay,
        tree: CompactRange,
        prev: Digest,
        position: int,
        leaves: Iterator[tuple[int, Digest]] | None,
        checkpoints: _CheckpointQueue,
    ) -> None:
        self.log = log
        self.out = out
        self.replay = replay
        self.tree = tree
        self.prev = prev
        self.position = position
        self.leaves = leaves
        self.checkpoints = checkpoints
        self.new_keys: list[tuple[bytes, bytes]] = []

    def consume(self, results: list[tuple[Any, ...]]) -> None:
        out = self.out
        tree = self.tree
        replay = self.replay
        leaves = self.leaves
        at_size = self.checkpoints.at_size
        position = self.position
        prev = self.prev
        for r in results:
            tag = r[0]
            if tag == _BAD_ENTRY:
                leaf = r[1]
                out.add(Finding(index=position, check=r[2], message=f"entry: {r[3]}"))
            else:
                leaf = r[4]
                if r[1] != position:
                    out.add(
                        Finding(
                            index=position,
                            check="index_mismatch",
                            message="entry at this position claims another index (deleted, "
                            "inserted or reordered entries)",
                            expected=str(position),
                            found=str(r[1]),
                        )
                    )
                if r[3] != prev:
                    out.add(
                        Finding(
                            index=position,
                            check="chain_broken",
                            message="prev is not the leaf hash of the entry before",
                            expected=prev.hex(),
                            found=r[3].hex(),
                        )
                    )
                if tag == _BAD_STATEMENT:
                    out.add(Finding(index=position, check=r[5], message=f"statement: {r[6]}"))
                else:
                    self._admit(r, position)
            if leaves is not None:
                _compare_stored_leaf(leaves, position, leaf, out)
            tree.append(leaf)
            replay.add_leaf(position, leaf)
            prev = leaf
            position += 1
            at_size(position, tree)
        self.position = position
        self.prev = prev

    def _admit(self, r: tuple[Any, ...], position: int) -> None:
        statement = Statement(
            origin=r[5], kind=r[6], signer=KeyId(r[7]), time=r[8], body=r[9], raw=r[10]
        )
        signed = SignedStatement(statement=statement, signature=r[11])
        try:
            admission = admit(
                signed,
                index=position,
                accepted_ms=r[2],
                log=self.log,
                view=self.replay,
                signature_checked=r[12] == _SIG_OK,
            )
        except LedgerError as exc:
            self.out.add(
                Finding(
                    index=position,
                    check=exc.code,
                    message=exc.message,
                    lot=getattr(exc, "lot", None),
                )
            )
            return
        if admission.changes:
            self.new_keys.extend(self.replay.apply_registry(admission.changes))
        if admission.domain:
            self.replay.apply_domain(admission.domain)


def _chunks(form: Form, items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        if form == "entries":
            item = (item.index, item.accepted_ms, item.prev, item.statement, item.signature)
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Pool:
    """``jobs`` worker processes, each with its own task and result queue, fed round robin."""

    def __init__(self, jobs: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._tasks = [context.Queue() for _ in range(jobs)]
        self._results = [context.Queue() for _ in range(jobs)]
        self._procs = [
            context.Process(
                target=_worker_main,
                args=(self._tasks[i], self._results[i], os.getpid()),
                daemon=True,
            )
            for i in range(jobs)
        ]
        for proc in self._procs:
            proc.start()
        self._sent = [0] * jobs

    def submit(
        self, worker: int, seq: int, form: Form, keys: list[tuple[bytes, bytes]], items: list[Any]
    ) -> None:
        delta = keys[self._sent[worker] :]
        self._sent[worker] = len(keys)
        self._tasks[worker].put((seq, form, delta, items))

    def result(self, worker: int, seq: int) -> list[tuple[Any, ...]]:
        while True:
            try:
                got_seq, results = self._results[worker].get(timeout=1.0)
            except queue.Empty:
                if not self._procs[worker].is_alive():
                    raise RuntimeError("an audit worker process died") from None
                continue
            if got_seq != seq:  # pragma: no cover - queues are FIFO per worker
                raise RuntimeError("audit worker answered out of order")
            result: list[tuple[Any, ...]] = results
            return result

    def close(self) -> None:
        for tasks in self._tasks:
            with contextlib.suppress(OSError, ValueError):  # already closed
                tasks.put(None)
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():  # pragma: no cover - stuck worker
                proc.terminate()
                proc.join()
        for q in (*self._tasks, *self._results):
            q.close()
            q.join_thread()


def _run_chunks(
    form: Form,
    items: Iterable[Any],
    walk: _Walk,
    *,
    jobs: int,
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> None:
    chunks = _chunks(form, items, chunk_size)
    if jobs <= 1:
        directory = _Directory()
        sent = 0
        for chunk in chunks:
            directory.add(walk.new_keys[sent:])
            sent = len(walk.new_keys)
            walk.consume(decode_chunk(form, chunk, directory))
            if progress is not None:
                progress(walk.position)
        return
    pool = _Pool(jobs)
    try:
        in_flight: list[tuple[int, int]] = []
        for seq, chunk in enumerate(chunks):
            worker = seq % jobs
            pool.submit(worker, seq, form, walk.new_keys, chunk)
            in_flight.append((worker, seq))
            if len(in_flight) >= jobs * _IN_FLIGHT_PER_JOB:
                done_worker, done_seq = in_flight.pop(0)
                walk.consume(pool.result(done_worker, done_seq))
                if progress is not None:
                    progress(walk.position)
        for done_worker, done_seq in in_flight:
            walk.consume(pool.result(done_worker, done_seq))
            if progress is not None:
                progress(walk.position)
    finally:
        pool.close()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector's young generation 30 times less often, then restore it.

    The walk allocates a few dozen objects per entry and keeps tens of
    thousands alive in the replay overlay, so at the default thresholds the
    collector ran about ten times per 1,000 entries, a full pass every 14,000,
    and took about 5 µs per entry, a tenth of the parent's time (measured with
    ``gc.callbacks`` on 200,000 entries: 0.97 s, then 0.35 s). The walk makes
    no reference cycles of its own; whatever it leaves is collected once the
    thresholds are back.
    """
    before = gc.get_threshold()
    gc.set_threshold(_WALK_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _log_key_entry(verifier: NoteVerifier) -> tuple[bytes, bytes]:
    return verifier.public.key_id, verifier.public.raw


class _NoteWatch:
    """Passes checkpoint notes on to the root checks, checking witness cosignatures on the way.

    Keeps the newest note whose log signature verifies, and how many of the
    given witnesses cosigned it.
    """

    def __init__(
        self,
        verifier: NoteVerifier,
        witnesses: Sequence[NoteVerifier],
        out: _Collector,
    ) -> None:
        self._verifier = verifier
        self._witnesses = witnesses
        self._out = out
        self.newest: tuple[int, bytes, str] | None = None
        self.newest_cosigners: tuple[str, ...] = ()

    def watch(self, notes: Iterable[str]) -> Iterator[str]:
        for note in notes:
            self._look(note)
            yield note

    def _look(self, note: str) -> None:
        try:
            verified = open_checkpoint(note, self._verifier, self._witnesses)
        except LedgerError as exc:
            if not self._witnesses:
                return  # the root checks report a bad log signature
            try:
                verified = open_checkpoint(note, self._verifier)
            except LedgerError:
                return
            self._out.add(
                Finding(
                    index=None,
                    check="cosignature_invalid",
                    message=f"checkpoint of size {verified.checkpoint.size}: a witness "
                    f"cosignature does not verify ({exc.message})",
                )
            )
        cp = verified.checkpoint
        if self.newest is None or cp.size >= self.newest[0]:
            self.newest = (cp.size, cp.root_hash, note)
            self.newest_cosigners = verified.witnesses_verified

    def check_quorum(self, quorum: int) -> None:
        if quorum <= 0:
            return
        if len(set(self.newest_cosigners)) < quorum:
            size = self.newest[0] if self.newest is not None else None
            self._out.add(
                Finding(
                    index=None,
                    check="quorum_not_met",
                    message=f"the newest checkpoint (size {size}) carries "
                    f"{len(set(self.newest_cosigners))} valid cosignatures of the witnesses "
                    f"given, {quorum} required",
                    expected=str(quorum),
                    found=str(len(set(self.newest_cosigners))),
                )
            )


def audit_entries(
    items: Iterable[Any],
    checkpoints: Iterable[str],
    *,
    log_verifier: NoteVerifier,
    replay: StoredReplay,
    form: Form = "entries",
    resume: StateMeta | None = None,
    stored_leaves: Iterable[tuple[int, Digest]] | None = None,
    saved_checkpoint: str | None = None,
    consistency_proof: Callable[[int, int], Sequence[bytes]] | None = None,
    witnesses: Sequence[NoteVerifier] = (),
    quorum: int = 0,
    jobs: int = 1,
    chunk_size: int = DEFAULT_CHUNK,
    max_findings: int = 1000,
    progress: Callable[[int], None] | None = None,
    extra_findings: Iterable[Finding] = (),
    after: Callable[[StoredReplay, int, Sequence[Finding]], Iterable[Finding]] | None = None,
) -> AuditOutcome:
    """Audit a log, or its new entries after a saved state, with ``jobs`` worker processes.

    For the same inputs the findings equal :func:`ledger.audit.audit_log`'s
    (tests/ledger/test_audit_parallel.py), whatever ``jobs`` and ``chunk_size``.

    Args:
        items: the entries in stored order, from index ``resume.size`` (or 0),
            of the kind ``form`` says.
        checkpoints: signed checkpoint notes by ascending size.
        log_verifier: the trust anchor.
        replay: the replay state to admit into: empty for a full audit, the
            saved one with ``resume``.
        form: what ``items`` are (see :data:`Form`).
        resume: the saved state's meta: start at its size, from its compact
            range and last leaf; the replay must be the same state's.
        stored_leaves: the store's level-0 nodes from the start index, compared
            with the recomputed leaves.
        saved_checkpoint: a checkpoint the auditor kept; the log must extend it.
        consistency_proof: fetches a consistency proof ``(size1, size2)``; with
            ``saved_checkpoint`` (or ``resume``'s checkpoint) it must verify up
            to the newest checkpoint.
        witnesses: witness keys whose cosignatures are checked where present.
        quorum: how many of them must have cosigned the newest checkpoint.
        jobs: worker processes; 1 decodes in this process.
        chunk_size: entries per work unit.
        max_findings: stop recording findings after this many.
        progress: called with the number of entries walked so far, per chunk.
        extra_findings: findings the caller made already (a malformed bundle tail, ...).
        after: called with the replay state, the size reached and the findings so
            far once the walk is done; its findings join the report (a registry
            comparison, where a rewritten history begins, ...).

    Returns:
        The report and the state the walk ended in.

    Raises:
        ValueError: ``resume`` belongs to another log.
    """
    log = LogIdentity(origin=log_verifier.name, log_key=log_verifier.public)
    out = _Collector(limit=max_findings)
    for finding in extra_findings:
        out.add(finding)
    watch = _NoteWatch(log_verifier, witnesses, out)
    queue_ = _CheckpointQueue(watch.watch(checkpoints), log_verifier, out)
    saved = _open_saved(saved_checkpoint, log_verifier, out)
    start = 0
    tree = CompactRange()
    prev = ZERO_HASH
    if resume is not None:
        if resume.vkey != log_verifier.to_vkey():
            raise ValueError("the audit state belongs to another log key")
        start, tree, prev = resume.size, resume.compact_range(), resume.last_leaf
        if saved is None and resume.checkpoint_size is not None and resume.checkpoint_root:
            saved = (resume.checkpoint_size, resume.checkpoint_root)
    if saved is not None and saved[0] >= start:
        queue_.expect(saved[0], saved[1], label="saved checkpoint")
    leaves = iter(stored_leaves) if stored_leaves is not None else None
    walk = _Walk(
        log=log,
        out=out,
        replay=replay,
        tree=tree,
        prev=prev,
        position=start,
        leaves=leaves,
        checkpoints=queue_,
    )
    walk.new_keys.append(_log_key_entry(log_verifier))
    walk.new_keys.extend((k.key_id, k.public) for k in replay.registry.keys.values())
    if start:
        queue_.at_size(start, tree)
    with _fewer_collections():
        _run_chunks(form, items, walk, jobs=jobs, chunk_size=chunk_size, progress=progress)
    queue_.finish(walk.position)
    if saved is not None and consistency_proof is not None:
        _check_saved_consistency(saved, queue_.latest, consistency_proof, out)
    watch.check_quorum(quorum)
    if after is not None:
        for finding in after(replay, walk.position, tuple(out.findings)):
            out.add(finding)
    out.findings.sort(key=lambda f: (f.index if f.index is not None else -1, f.check))
    report = AuditReport(
        origin=log.origin,
        entries_checked=walk.position - start,
        checkpoints_checked=queue_.checked,
        root_hash=walk.tree.root().hex(),
        findings=tuple(out.findings),
        findings_truncated=out.truncated,
        latest_checkpoint_size=queue_.latest[0] if queue_.latest else None,
    )
    return AuditOutcome(
        report=report,
        start=start,
        size=walk.position,
        tree=walk.tree,
        last_leaf=walk.prev,
        checkpoint=watch.newest,
    )


# --------------------------------------------------------------------------- after the walk


def compare_registry(
    replayed: Registry,
    participants: Iterable[ParticipantRecord],
    keys: Iterable[KeyRecord],
    *,
    source: str,
) -> list[Finding]:
    """Compare the registry a source claims with the one replayed from its entries.

    Each difference is a ``registry_mismatch`` finding at the first index where
    the two records part: where the record was added (so a key changed in the
    store's table points at the enrolment that really registered it), or where
    one of them says it was revoked.
    """
    findings: list[Finding] = []
    claimed_p = {p.participant_id: p for p in participants}
    for pid in sorted(set(claimed_p) | set(replayed.participants)):
        mine, theirs = replayed.participants.get(pid), claimed_p.get(pid)
        if mine == theirs or (
            mine is not None
            and theirs is not None
            and (mine.participant_id, dict(mine.profile), mine.enrolled_at, mine.operator)
            == (theirs.participant_id, dict(theirs.profile), theirs.enrolled_at, theirs.operator)
        ):
            continue
        findings.append(
            Finding(
                index=min(p.enrolled_at for p in (mine, theirs) if p is not None),
                check="registry_mismatch",
                message=f"participant {pid}: the {source} registry differs from the log's",
                expected=_describe(mine),
                found=_describe(theirs),
            )
        )
    claimed_k = {bytes(k.key_id): k for k in keys}
    replayed_k = {bytes(k): v for k, v in replayed.keys.items()}
    for kid in sorted(set(claimed_k) | set(replayed_k)):
        mine_k, theirs_k = replayed_k.get(kid), claimed_k.get(kid)
        if mine_k == theirs_k:
            continue
        anchor_k = mine_k or theirs_k
        assert anchor_k is not None
        findings.append(
            Finding(
                index=_key_divergence(mine_k, theirs_k),
                check="registry_mismatch",
                message=f"key {kid.hex()[:16]}… of {anchor_k.participant}: the {source} "
                "registry differs from the log's",
                expected=_describe(mine_k),
                found=_describe(theirs_k),
            )
        )
    return findings


def _key_divergence(mine: KeyRecord | None, theirs: KeyRecord | None) -> int:
    """The first index at which two records of one key disagree."""
    both = [k for k in (mine, theirs) if k is not None]
    if (
        mine is None
        or theirs is None
        or (mine.public, mine.participant, mine.added_at)
        != (
            theirs.public,
            theirs.participant,
            theirs.added_at,
        )
    ):
        return min(k.added_at for k in both)
    return min(k.revoked_at for k in both if k.revoked_at is not None)


def _describe(record: ParticipantRecord | KeyRecord | None) -> str:
    if record is None:
        return "absent"
    if isinstance(record, KeyRecord):
        return (
            f"public {record.public.hex()}, participant {record.participant}, added at "
            f"{record.added_at}, revoked at {record.revoked_at}"
        )
    return (
        f"profile {json.dumps(dict(record.profile), sort_keys=True)}, enrolled at "
        f"{record.enrolled_at}, operator {record.operator}"
    )


def first_rewritten(
    audited: Iterable[tuple[int, bytes]], current: Iterable[tuple[int, bytes]]
) -> Finding | None:
    """Where a log's history diverges from what an earlier audit saw.

    Args:
        audited: ``(index, leaf)`` saved by the earlier audit, in order.
        current: ``(index, leaf)`` of the log now, in order.

    Returns:
        A ``history_rewritten`` finding at the first index whose leaf differs
        (or that the log no longer holds), or None when the prefix is intact.
    """
    now = iter(current)
    for index, old in audited:
        got = next(now, None)
        if got is None:
            return Finding(
                index=index,
                check="history_rewritten",
                message=f"entry {index}, audited before, is gone from the log",
                expected=old.hex(),
                found="absent",
            )
        if got[1] != old:
            return Finding(
                index=index,
                check="history_rewritten",
                message=f"entry {index} is not the entry audited before (the history from "
                "here on was rewritten)",
                expected=old.hex(),
                found=got[1].hex(),
            )
    return None
