"""The ledger service: where the pure rules meet a :class:`~ledger.storage.Store`.

:class:`Ledger` appends signed statements (one, or a batch in one transaction),
answers reads, builds inclusion and consistency proofs from stored nodes, and
signs checkpoints with the log key. It is the only module that combines the
admission rules, the Merkle arithmetic and storage. It owns no HTTP, no CLI and
no file layout (that is :mod:`ledger.datadir`); time comes from an injected clock.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.admission import LogIdentity, admit
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.domain.rules import LotState
from ledger.domain.trace import (
    MAX_TRACE_DEPTH,
    Trace,
    recalled_upstream,
    trace_back,
    trace_forward,
)
from ledger.errors import NotFoundError, ProofError
from ledger.hashing import Digest
from ledger.keys import Signer, VerifyingKey
from ledger.merkle import (
    consistency_proof_node_ids,
    inclusion_proof_node_ids,
    new_nodes_for_append,
    root_from_nodes,
    root_node_ids,
)
from ledger.registry import SignedRequest, build_genesis
from ledger.statements import Entry, SignedStatement, Statement
from ledger.storage import NodeId, Store, StoredCheckpoint, WriteTx

__all__ = [
    "DEFAULT_CHECKPOINT_DELAY_MS",
    "MAX_BATCH",
    "AppendResult",
    "HistoryItem",
    "Ledger",
    "wall_clock_ms",
]

DEFAULT_CHECKPOINT_DELAY_MS = 1000
MAX_BATCH = 500
"""Most statements one append transaction takes (documented batch limit)."""


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, UTC."""
    return _time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryItem:
    """One statement in a lot's history, decoded from its stored signed bytes."""

    index: int
    event_id: Digest
    kind: str
    participant: str
    time: str
    accepted_ms: int
    body: dict[str, Any]
    corrected_by: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResult:
    """The entry holding a submitted statement, and whether this call created it."""

    entry: Entry
    created: bool


class Ledger:
    """Append, read and prove over one log.

    Args:
        store: where the log lives.
        log: the log's origin and public key.
        log_signer: the log's private key; needed to sign checkpoints (a
            read-only ledger may pass None).
        clock: milliseconds since the epoch; injected so tests control time.
        checkpoint_delay_ms: the longest an append waits for a checkpoint.
    """

    def __init__(
        self,
        store: Store,
        *,
        log: LogIdentity,
        log_signer: Signer | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        checkpoint_delay_ms: int = DEFAULT_CHECKPOINT_DELAY_MS,
    ) -> None:
        if log_signer is not None and log_signer.public.raw != log.log_key.raw:
            raise ValueError("log_signer does not match the log key")
        self.store = store
        self.log = log
        self._signer = log_signer
        self._clock = clock
        self.checkpoint_delay_ms = checkpoint_delay_ms

    @classmethod
    def initialise(
        cls,
        store: Store,
        *,
        origin: str,
        log_signer: Signer,
        operator_request: SignedRequest,
        time: str,
        clock: Callable[[], int] = wall_clock_ms,
        checkpoint_delay_ms: int = DEFAULT_CHECKPOINT_DELAY_MS,
    ) -> Ledger:
        """Append the genesis entry to an empty store and sign the first checkpoint."""
        log = LogIdentity(origin=origin, log_key=log_signer.public)
        ledger = cls(
            store,
            log=log,
            log_signer=log_signer,
            clock=clock,
            checkpoint_delay_ms=checkpoint_delay_ms,
        )
        genesis = build_genesis(
            origin=origin, log_signer=log_signer, operator_request=operator_request, time=time
        )
        ledger.append(genesis)
        ledger.flush_checkpoint()
        return ledger

    @classmethod
    def reader(cls, store: Store) -> Ledger:
        """A read-only ledger over ``store``, naming the log as its genesis entry does.

        For queries and proofs only: the identity comes from the data itself, so
        it is no trust anchor (an auditor passes the vkey it was given instead).

        Raises:
            NotFoundError: the store holds no genesis entry.
        """
        genesis = Statement.from_bytes(store.entry(0).statement)
        log_key = VerifyingKey.from_base64(str(genesis.body.get("log_key", "")))
        return cls(store, log=LogIdentity(origin=genesis.origin, log_key=log_key))

    # -- appending -----------------------------------------------------------

    def append(self, signed: SignedStatement) -> AppendResult:
        """Append one statement (idempotent: a known statement returns its entry).

        Raises:
            StatementError, SignatureError, EncodingError, RuleError: refused; nothing changed.
            StorageError: the store failed; nothing changed.
        """
        return self.append_batch([signed])[0]

    def append_batch(self, items: Sequence[SignedStatement]) -> list[AppendResult]:
        """Append statements in order in one transaction: all of them or none.

        A statement already in the log (or earlier in the same batch) returns
        the existing entry with ``created=False``.

        Raises:
            ValueError: more than :data:`MAX_BATCH` items.
            LedgerError: the first refusal; nothing of the batch is stored.
        """
        if len(items) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} statements")
        now = self._clock()
        results: list[AppendResult] = []
        with self.store.write() as tx:
            size = tx.size()
            prev = tx.last_leaf_hash()
            for signed in items:
                existing = tx.entry_by_event_id(signed.event_id)
                if existing is not None:
                    results.append(AppendResult(entry=existing, created=False))
                    continue
                admission = admit(signed, index=size, accepted_ms=now, log=self.log, view=tx)
                entry = Entry(
                    index=size,
                    accepted_ms=now,
                    prev=prev,
                    statement=signed.statement.raw,
                    signature=signed.signature,
                )
                leaf = entry.leaf_hash
                tx.put_entry(entry, leaf)
                parents = new_nodes_for_append(size, leaf, _lookup(tx))
                parents.pop((0, size), None)
                tx.put_nodes(parents)
                tx.apply_registry(admission.changes)
                tx.apply_domain(admission.domain)
                results.append(AppendResult(entry=entry, created=True))
                prev = leaf
                size += 1
            if self._checkpoint_due(tx, size, now):
                self._put_checkpoint(tx, size, now)
        return results

    def flush_checkpoint(self) -> StoredCheckpoint | None:
        """Sign a checkpoint for the current size if the newest one is older.

        A server calls this on a timer (every ``checkpoint_delay_ms``) so that
        no append waits longer than the delay for a checkpoint covering it.

        Returns:
            The newest checkpoint after the call (None for an empty log).
        """
        with self.store.write() as tx:
            size = tx.size()
            latest = tx.latest_checkpoint()
            if size > 0 and (latest is None or latest.size < size):
                return self._put_checkpoint(tx, size, self._clock())
            return latest

    def _checkpoint_due(self, tx: WriteTx, size: int, now: int) -> bool:
        if self._signer is None:
            return False
        latest = tx.latest_checkpoint()
        if latest is None:
            return True
        return latest.size < size and now - latest.created_ms >= self.checkpoint_delay_ms

    def _put_checkpoint(self, tx: WriteTx, size: int, now: int) -> StoredCheckpoint:
        if self._signer is None:
            raise ValueError("this ledger has no log key to sign checkpoints with")
        ids = root_node_ids(size)
        root = root_from_nodes(size, tx.nodes(ids))
        note = sign_checkpoint(
            Checkpoint(origin=self.log.origin, size=size, root_hash=root),
            name=self.log.origin,
            signer=self._signer,
        )
        stored = StoredCheckpoint(size=size, note=note.to_text(), created_ms=now)
        tx.put_checkpoint(stored)
        return stored

    # -- reading and proving ---------------------------------------------------

    def size(self) -> int:
        """Number of entries."""
        return self.store.size()

    def entry(self, index: int) -> Entry:
        """The entry at ``index``. Raises NotFoundError."""
        return self.store.entry(index)

    def entry_by_event_id(self, event_id: Digest) -> Entry:
        """The entry holding the statement with this event id. Raises NotFoundError."""
        entry = self.store.entry_by_event_id(event_id)
        if entry is None:
            raise NotFoundError(f"no event {event_id.hex()} in the log")
        return entry

    def latest_checkpoint(self) -> StoredCheckpoint:
        """The newest signed checkpoint. Raises NotFoundError for an empty log."""
        latest = self.store.latest_checkpoint()
        if latest is None:
            raise NotFoundError("the log has no checkpoint yet")
        return latest

    def root_hash(self, tree_size: int) -> Digest:
        """Merkle root of the first ``tree_size`` entries, from O(log n) stored nodes."""
        self._check_size(tree_size)
        return root_from_nodes(tree_size, self.store.nodes(root_node_ids(tree_size)))

    def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[Digest]:
        """RFC 9162 inclusion proof; requires 0 <= leaf_index < tree_size <= size.

        Raises:
            ProofError: the indices are out of range.
        """
        self._check_size(tree_size)
        if not 0 <= leaf_index < tree_size:
            raise ProofError(
                f"leaf_index must satisfy 0 <= leaf_index < tree_size ({tree_size})",
                code="bad_proof_request",
                field="leaf_index",
            )
        plan = inclusion_proof_node_ids(leaf_index, tree_size)
        return plan.build(self.store.nodes(plan.node_ids()))

    def consistency_proof(self, size1: int, size2: int) -> list[Digest]:
        """RFC 9162 consistency proof; requires 0 <= size1 <= size2 <= size.

        Raises:
            ProofError: the sizes are out of range.
        """
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise ProofError(
                f"sizes must satisfy 0 <= size1 <= size2 ({size2})",
                code="bad_proof_request",
                field="size1",
            )
        plan = consistency_proof_node_ids(size1, size2)
        return plan.build(self.store.nodes(plan.node_ids()))

    # -- supply-chain queries (answered from indexed state, never by scanning the log)

    def lot(self, lot_id: str) -> LotState:
        """A lot's current state. Raises NotFoundError (``unknown_lot``)."""
        state = self.store.lot(lot_id)
        if state is None:
            raise NotFoundError(f"lot {lot_id} does not exist", code="unknown_lot", field="lot")
        return state

    def history(self, lot_id: str) -> list[HistoryItem]:
        """Every statement on a lot in log order, corrections and corrected ones included.

        Raises:
            NotFoundError: ``unknown_lot``.
        """
        self.lot(lot_id)
        items: list[HistoryItem] = []
        for line in self.store.history(lot_id):
            entry = self.store.entry(line.index)
            statement = Statement.from_bytes(entry.statement)
            record = self.store.event(entry.event_id)
            signer = self.store.key(statement.signer)
            items.append(
                HistoryItem(
                    index=entry.index,
                    event_id=entry.event_id,
                    kind=statement.kind,
                    participant=signer.participant if signer is not None else "",
                    time=statement.time,
                    accepted_ms=entry.accepted_ms,
                    body=statement.body,
                    corrected_by=record.corrected_by if record is not None else None,
                )
            )
        return items

    def trace_back(self, lot_id: str, *, max_depth: int = MAX_TRACE_DEPTH) -> Trace:
        """Every upstream lot, to the farms (through transforms and packs)."""
        return trace_back(lot_id, self.store, max_depth=max_depth)

    def trace_forward(self, lot_id: str, *, max_depth: int = MAX_TRACE_DEPTH) -> Trace:
        """Every downstream lot and so who holds it now: the recall list."""
        return trace_forward(lot_id, self.store, max_depth=max_depth)

    def recalled_upstream(self, lot_id: str) -> tuple[LotState, ...]:
        """The recalled lots among this lot and its inputs (for the recall banner)."""
        return recalled_upstream(lot_id, self.store)

    def held_by(self, participant: str) -> list[LotState]:
        """What a participant holds now."""
        return self.store.held_by(participant)

    def _check_size(self, tree_size: int) -> None:
        size = self.store.size()
        if not 0 <= tree_size <= size:
            raise ProofError(
                f"tree_size {tree_size} is beyond the log size {size}",
                code="bad_proof_request",
                field="tree_size",
            )


def _lookup(tx: WriteTx) -> Callable[[NodeId], Digest]:
    def lookup(node_id: NodeId) -> Digest:
        return tx.nodes([node_id])[node_id]

    return lookup
