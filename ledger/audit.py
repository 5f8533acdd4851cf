"""The auditor's verifier: re-check a whole log from its entries and a trust anchor.

:func:`audit_log` walks the entries in stored order, once, and re-derives
everything: each entry's canonical bytes and leaf hash, the chain link to its
predecessor, the statement's canonical form, its signature with the key the
registry (replayed from the log itself) held at that index, the admission rules,
and the Merkle root at every checkpoint size, comparing it with each stored
checkpoint whose log signature it also checks. The trust anchor (the log's
verifier key) is an argument; nothing is read from the data being checked to
decide whom to trust.

It never stops at the first problem: it reports every kind of damage it sees,
each as a :class:`Finding` naming the index, the check, and expected versus
found, plus the first damaged index. Memory stays flat: the Merkle state is a
compact range (O(log n) hashes) and the registry holds only participants and
keys. It does no I/O itself; callers hand it iterators (from a store, an HTTP
client or a bundle).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.admission import LogIdentity, admit
from ledger.checkpoint import NoteVerifier, open_checkpoint
from ledger.domain.rules import EventRecord, LotState, ShipmentState
from ledger.domain.state import DomainState
from ledger.errors import LedgerError
from ledger.hashing import ZERO_HASH, Digest, KeyId
from ledger.merkle import CompactRange, verify_consistency
from ledger.registry import KeyRecord, ParticipantRecord, Registry
from ledger.statements import Entry, SignedStatement

__all__ = ["AuditReport", "Finding", "ReplayState", "audit_log"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing that does not hold.

    Attributes:
        index: the log index it concerns (None for log-wide findings).
        check: a stable code naming the check or rule (``chain_broken``, ...).
        message: a human sentence.
        expected / found: the two sides, where there are two.
        lot: the lot concerned, for supply-chain rules.
    """

    index: int | None
    check: str
    message: str
    expected: str | None = None
    found: str | None = None
    lot: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """What an audit saw."""

    origin: str
    entries_checked: int
    checkpoints_checked: int
    root_hash: str
    findings: tuple[Finding, ...]
    findings_truncated: bool = False
    latest_checkpoint_size: int | None = None

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.findings

    @property
    def first_damaged_index(self) -> int | None:
        """The lowest index any finding names."""
        indices = [f.index for f in self.findings if f.index is not None]
        return min(indices) if indices else None

    @property
    def checks(self) -> list[str]:
        """The distinct kinds of damage seen, sorted."""
        return sorted({f.check for f in self.findings})

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` output)."""
        return {
            "ok": self.ok,
            "origin": self.origin,
            "entries_checked": self.entries_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "root_hash": self.root_hash,
            "first_damaged_index": self.first_damaged_index,
            "checks_failed": self.checks,
            "findings": [asdict(f) for f in self.findings],
            "findings_truncated": self.findings_truncated,
        }

    def to_text(self) -> str:
        """A short human report."""
        lines = [
            f"log {self.origin}: {self.entries_checked} entries, "
            f"{self.checkpoints_checked} checkpoints checked, root {self.root_hash}",
        ]
        if self.ok:
            lines.append("OK: every signature, chain link, rule and checkpoint holds")
        else:
            lines.append(
                f"FAILED: {len(self.findings)} findings; first damaged index "
                f"{self.first_damaged_index}; checks failed: {', '.join(self.checks)}"
            )
            for f in self.findings:
                where = f"index {f.index}" if f.index is not None else "log"
                detail = ""
                if f.expected is not None or f.found is not None:
                    detail = f" (expected {f.expected}, found {f.found})"
                lines.append(f"  {where}: {f.check}: {f.message}{detail}")
            if self.findings_truncated:
                lines.append("  ... more findings were cut")
        return "\n".join(lines)

    def to_json_text(self) -> str:
        """Pretty JSON text."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True)


class ReplayState:
    """The registry and domain state an audit replays the log into.

    Memory grows with the number of participants and lots (not with the number
    of entries): that is the state the rules need to re-check every statement.
    """

    def __init__(self) -> None:
        self.registry = Registry()
        self.domain = DomainState()

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """See :class:`~ledger.registry.RegistryView`."""
        return self.registry.key(key_id)

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """See :class:`~ledger.registry.RegistryView`."""
        return self.registry.participant(participant_id)

    def lot(self, lot_id: str) -> LotState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self.domain.lot(lot_id)

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self.domain.shipment(event_id)

    def event(self, event_id: bytes) -> EventRecord | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self.domain.event(event_id)


@dataclass(slots=True)
class _Collector:
    limit: int
    findings: list[Finding] = field(default_factory=list)
    truncated: bool = False

    def add(self, finding: Finding) -> None:
        if len(self.findings) < self.limit:
            self.findings.append(finding)
        else:
            self.truncated = True


def audit_log(
    entries: Iterable[Entry],
    checkpoints: Iterable[str],
    *,
    log_verifier: NoteVerifier,
    stored_leaves: Iterable[tuple[int, Digest]] | None = None,
    saved_checkpoint: str | None = None,
    consistency_proof: Callable[[int, int], Sequence[bytes]] | None = None,
    max_findings: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Verify a log from its entries, its checkpoints and the log's verifier key.

    Args:
        entries: every entry in stored order (gaps, repeats and reorderings are
            reported, not assumed away).
        checkpoints: signed checkpoint notes, by ascending size.
        log_verifier: the trust anchor: the log's C2SP verifier key.
        stored_leaves: the store's level-0 Merkle nodes ``(index, hash)`` in
            order, compared with the recomputed leaf hashes when given.
        saved_checkpoint: a checkpoint note the auditor saved earlier; the log
            must extend it (the root at its size must match, and a consistency
            proof from it to the newest checkpoint must verify).
        consistency_proof: fetches a consistency proof ``(size1, size2)`` from
            the log, used with ``saved_checkpoint``.
        max_findings: stop recording findings after this many (the walk goes on).
        progress: called with the number of entries checked so far, now and then.

    Returns:
        The report; ``report.ok`` is True only when nothing was found.
    """
    log = LogIdentity(origin=log_verifier.name, log_key=log_verifier.public)
    out = _Collector(limit=max_findings)
    checkpoint_roots = _CheckpointQueue(checkpoints, log_verifier, out)
    saved = _open_saved(saved_checkpoint, log_verifier, out)
    if saved is not None:
        checkpoint_roots.expect(saved[0], saved[1], label="saved checkpoint")
    leaves = iter(stored_leaves) if stored_leaves is not None else None
    registry = ReplayState()
    tree = CompactRange()
    prev = ZERO_HASH
    position = 0
    for entry in entries:
        _check_entry(entry, position, prev, registry, log, out)
        leaf = entry.leaf_hash
        if leaves is not None:
            _compare_stored_leaf(leaves, position, leaf, out)
        tree.append(leaf)
        prev = leaf
        position += 1
        checkpoint_roots.at_size(position, tree)
        if progress is not None and position % 4096 == 0:
            progress(position)
    if progress is not None:
        progress(position)
    checkpoint_roots.finish(position)
    if saved is not None and consistency_proof is not None:
        _check_saved_consistency(saved, checkpoint_roots.latest, consistency_proof, out)
    out.findings.sort(key=lambda f: (f.index if f.index is not None else -1, f.check))
    return AuditReport(
        origin=log.origin,
        entries_checked=position,
        checkpoints_checked=checkpoint_roots.checked,
        root_hash=tree.root().hex(),
        findings=tuple(out.findings),
        findings_truncated=out.truncated,
        latest_checkpoint_size=checkpoint_roots.latest[0] if checkpoint_roots.latest else None,
    )


def _check_entry(
    entry: Entry,
    position: int,
    prev: Digest,
    registry: ReplayState,
    log: LogIdentity,
    out: _Collector,
) -> None:
    if entry.index != position:
        out.add(
            Finding(
                index=position,
                check="index_mismatch",
                message="entry at this position claims another index (deleted, inserted or"
                " reordered entries)",
                expected=str(position),
                found=str(entry.index),
            )
        )
    if entry.prev != prev:
        out.add(
            Finding(
                index=position,
                check="chain_broken",
                message="prev is not the leaf hash of the entry before",
                expected=prev.hex(),
                found=entry.prev.hex(),
            )
        )
    try:
        signed = SignedStatement.from_bytes(entry.statement, entry.signature)
    except LedgerError as exc:
        out.add(Finding(index=position, check=exc.code, message=f"statement: {exc.message}"))
        return
    try:
        admission = admit(
            signed, index=position, accepted_ms=entry.accepted_ms, log=log, view=registry
        )
    except LedgerError as exc:
        out.add(
            Finding(
                index=position,
                check=exc.code,
                message=exc.message,
                lot=getattr(exc, "lot", None),
            )
        )
        return
    registry.registry.apply(admission.changes)
    registry.domain.apply(admission.domain)


def _compare_stored_leaf(
    leaves: Iterator[tuple[int, Digest]], position: int, leaf: Digest, out: _Collector
) -> None:
    stored = next(leaves, None)
    if stored is None:
        out.add(Finding(index=position, check="leaf_node_missing", message="no stored leaf node"))
    elif stored[0] != position or stored[1] != leaf:
        out.add(
            Finding(
                index=position,
                check="leaf_node_mismatch",
                message="stored Merkle leaf differs from the hash of the stored entry",
                expected=leaf.hex(),
                found=stored[1].hex(),
            )
        )


class _CheckpointQueue:
    """Stored checkpoints, consumed as the walk reaches each one's size."""

    def __init__(self, notes: Iterable[str], verifier: NoteVerifier, out: _Collector) -> None:
        self._notes = iter(notes)
        self._verifier = verifier
        self._out = out
        self._pending: list[tuple[int, bytes, str]] = []
        self._next: tuple[int, bytes, str] | None = None
        self.checked = 0
        self.latest: tuple[int, bytes] | None = None
        self._advance()

    def expect(self, size: int, root: bytes, *, label: str) -> None:
        self._pending.append((size, root, label))
        self._pending.sort(key=lambda item: item[0])

    def _advance(self) -> None:
        for note in self._notes:
            try:
                verified = open_checkpoint(note, self._verifier)
            except LedgerError as exc:
                self._out.add(Finding(index=None, check="checkpoint_invalid", message=exc.message))
                continue
            cp = verified.checkpoint
            self._next = (cp.size, cp.root_hash, "checkpoint")
            if self.latest is None or cp.size >= self.latest[0]:
                self.latest = (cp.size, cp.root_hash)
            return
        self._next = None

    def at_size(self, size: int, tree: CompactRange) -> None:
        root: Digest | None = None
        while self._next is not None and self._next[0] <= size:
            cp_size, cp_root, label = self._next
            if cp_size == size:
                root = root or tree.root()
                self._compare(size, cp_root, root, label)
                self.checked += 1
            self._advance()
        while self._pending and self._pending[0][0] <= size:
            cp_size, cp_root, label = self._pending.pop(0)
            if cp_size == size:
                root = root or tree.root()
                self._compare(size, cp_root, root, label)

    def _compare(self, size: int, signed_root: bytes, root: Digest, label: str) -> None:
        if signed_root != root:
            self._out.add(
                Finding(
                    index=size - 1,
                    check="root_mismatch",
                    message=f"{label} at size {size} signs another root than the entries give",
                    expected=signed_root.hex(),
                    found=root.hex(),
                )
            )

    def finish(self, size: int) -> None:
        # Checkpoints for sizes beyond the entries: the log was truncated.
        if size == 0 and self._next is not None and self._next[0] == 0:
            self.checked += 1
            self._advance()
        beyond = []
        while self._next is not None:
            beyond.append(self._next)
            self._advance()
        beyond.extend(self._pending)
        self._pending.clear()
        for cp_size, _root, label in beyond:
            self._out.add(
                Finding(
                    index=size,
                    check="log_truncated",
                    message=f"{label} covers {cp_size} entries but the log holds {size}",
                    expected=str(cp_size),
                    found=str(size),
                )
            )


def _open_saved(
    note: str | None, verifier: NoteVerifier, out: _Collector
) -> tuple[int, bytes] | None:
    if note is None:
        return None
    try:
        cp = open_checkpoint(note, verifier).checkpoint
    except LedgerError as exc:
        out.add(Finding(index=None, check="saved_checkpoint_invalid", message=exc.message))
        return None
    return cp.size, cp.root_hash


def _check_saved_consistency(
    saved: tuple[int, bytes],
    latest: tuple[int, bytes] | None,
    fetch: Callable[[int, int], Sequence[bytes]],
    out: _Collector,
) -> None:
    if latest is None or latest[0] < saved[0]:
        return  # already reported as truncation
    try:
        proof = fetch(saved[0], latest[0])
        verify_consistency(saved[0], latest[0], proof, saved[1], latest[1])
    except LedgerError as exc:
        out.add(
            Finding(
                index=None,
                check="inconsistent_with_saved_checkpoint",
                message=f"no valid consistency proof from size {saved[0]} to {latest[0]}: "
                f"{exc.message}",
            )
        )
