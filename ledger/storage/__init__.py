"""The storage port: what the ledger needs from a database, and nothing more.

A :class:`Store` holds entries (the exact signed statement bytes, never a
re-serialised copy), the stored Merkle nodes (complete subtrees only), the
registry state derived from the log, the signed checkpoints, and (apart from
all of these) the witnesses' cosignatures of checkpoints and the personal
values kept off the log. Appends happen
inside :meth:`Store.write`: one transaction, serialised against every other
writer (other threads and other processes), in which reads see the
transaction's own writes, and which either commits everything or nothing.

Implementations: :mod:`ledger.storage.memory` (the reference) and
:mod:`ledger.storage.sql` (SQLAlchemy 2: SQLite and PostgreSQL). Both pass the
same contract suite (tests/ledger/test_store_contract.py). This package holds no
rule about what may be appended; that is :mod:`ledger.service`'s and
:mod:`ledger.admission`'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from ledger.domain.personal import PersonalRecord
from ledger.domain.rules import DomainChange, EventRecord, LotState, ShipmentState
from ledger.domain.state import LotEvent
from ledger.domain.trace import Edge
from ledger.hashing import Digest, KeyId
from ledger.registry import KeyRecord, ParticipantRecord, RegistryChange
from ledger.statements import Entry

__all__ = [
    "HistoryEntry",
    "NodeId",
    "Store",
    "StoredCheckpoint",
    "StoredCosignature",
    "WriteTx",
]

NodeId = tuple[int, int]
"""(level, index): the complete subtree over leaves [index * 2**level, (index + 1) * 2**level)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One statement of a lot's history: its entry, and who signed it and who corrected it.

    ``participant`` and ``corrected_by`` come from the statement's domain
    record; ``has_record`` is False (and both are None) when it has none.
    """

    entry: Entry
    has_record: bool
    participant: str | None
    corrected_by: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCheckpoint:
    """A signed checkpoint note as stored: its tree size, full note text, and when it was made."""

    size: int
    note: str
    created_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCosignature:
    """A witness's cosignature of the stored checkpoint of size ``size`` (C2SP tlog-cosignature).

    ``line`` is the signature line exactly as the witness returned it (``— name
    base64`` and its LF); ``key_hash`` is its 4-byte key hash and
    ``timestamp`` the witness's time in seconds since the epoch. The caller
    verifies the line against the witness's key before storing it; a store
    never checks it.
    """

    size: int
    name: str
    key_hash: bytes
    line: str
    timestamp: int


class _Reads(Protocol):
    """Reads shared by a store and its write transactions."""

    def size(self) -> int:
        """Number of entries (the tree size)."""
        ...

    def entry_by_event_id(self, event_id: Digest) -> Entry | None:
        """The entry whose statement has this event id, if any."""
        ...

    def nodes(self, node_ids: Sequence[NodeId]) -> dict[NodeId, Digest]:
        """Hashes of stored nodes. Raises NotFoundError if one is missing."""
        ...

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """Registry record of a key (as of the newest entry)."""
        ...

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """Registry record of a participant (as of the newest entry)."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size, if any."""
        ...

    # Domain state (ledger.domain.rules.DomainView and ledger.domain.trace.EdgeView).

    def lot(self, lot_id: str) -> LotState | None:
        """A lot's current state, or None."""
        ...

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """A shipment by the event id of its ship statement, or None."""
        ...

    def event(self, event_id: bytes) -> EventRecord | None:
        """A domain statement's record (index, kind, participant, lots, correction)."""
        ...

    def edges_into(self, lot_id: str) -> list[Edge]:
        """Edges whose child is ``lot_id`` (its inputs and contents), in log order."""
        ...

    def edges_from(self, lot_id: str) -> list[Edge]:
        """Edges whose parent is ``lot_id`` (what was made from it or holds it), in log order."""
        ...


class WriteTx(_Reads, Protocol):
    """One append transaction.

    Reads see this transaction's own writes, with one exception: the lot graph
    (``edges_into``/``edges_from``) shows only committed edges, since no rule
    reads it while appending.
    """

    def last_leaf_hash(self) -> Digest:
        """Leaf hash of the newest entry (32 zero bytes for an empty log)."""
        ...

    def put_entry(self, entry: Entry, leaf_hash: Digest) -> None:
        """Store an entry at ``entry.index``, which must equal ``size()``.

        Raises:
            ConflictError: the index is taken, leaves a gap, or the event id is stored.
        """
        ...

    def put_nodes(self, nodes: Mapping[NodeId, Digest]) -> None:
        """Store Merkle nodes (each written once; never overwritten)."""
        ...

    def apply_registry(self, changes: Sequence[RegistryChange]) -> None:
        """Apply registry changes returned by the admission rules."""
        ...

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a signed checkpoint (one per size)."""
        ...

    def apply_domain(self, changes: Sequence[DomainChange]) -> None:
        """Apply domain changes returned by the admission rules (plain upserts and inserts)."""
        ...


class Store(_Reads, Protocol):
    """A ledger database."""

    def write(self) -> AbstractContextManager[WriteTx]:
        """Begin a serialised write transaction; commit on normal exit, roll back on error."""
        ...

    def entry(self, index: int) -> Entry:
        """The entry at ``index``. Raises NotFoundError."""
        ...

    def entries(self, begin: int, end: int) -> Iterator[Entry]:
        """Entries with ``begin <= index < end`` in index order, streamed."""
        ...

    def leaf_hashes(self, begin: int, end: int) -> Iterator[tuple[int, Digest]]:
        """Stored level-0 node hashes for ``[begin, end)`` in order, streamed."""
        ...

    def keys(self) -> list[KeyRecord]:
        """Every registered key (current state), by ``added_at``."""
        ...

    def participants(self) -> list[ParticipantRecord]:
        """Every participant (current state), by ``enrolled_at``."""
        ...

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint, by ascending size."""
        ...

    def history(self, lot_id: str) -> list[LotEvent]:
        """The statements that touched a lot, in log order."""
        ...

    def history_entries(self, lot_id: str) -> list[HistoryEntry]:
        """:meth:`history` with each statement's entry and domain record, in one read."""
        ...

    def held_by(self, participant: str) -> list[LotState]:
        """Lots a participant holds now (held, or packed in a unit it holds), by lot id."""
        ...

    # Witness cosignatures, not part of the log: each call commits on its own,
    # outside any append transaction; any stored checkpoint may gain one at any time.

    def put_cosignatures(self, cosignatures: Sequence[StoredCosignature]) -> None:
        """Store cosignatures of stored checkpoints, replacing an earlier one by the same key.

        One per (size, name, key_hash): a witness that cosigns the same
        checkpoint again (with a newer timestamp) replaces its earlier line.

        Raises:
            NotFoundError: no checkpoint of that size is stored (nothing is stored).
        """
        ...

    def cosignatures(self, size: int) -> list[StoredCosignature]:
        """The cosignatures of the checkpoint of ``size``, by (name, key_hash)."""
        ...

    def all_cosignatures(self) -> Iterator[StoredCosignature]:
        """Every stored cosignature, by (size, name, key_hash), streamed."""
        ...

    def latest_cosigned_checkpoint(self, min_cosignatures: int = 1) -> StoredCheckpoint | None:
        """The largest checkpoint with at least ``min_cosignatures`` (>= 1) cosignatures."""
        ...

    def witness_size(self, name: str, key_hash: bytes) -> int | None:
        """The largest checkpoint size the witness (name, key_hash) has cosigned, if any."""
        ...

    # Personal data, off the log: each call commits on its own, outside any
    # append transaction, and never reads or writes an entry.

    def put_personal(self, record: PersonalRecord) -> None:
        """Store ``record``, replacing the participant's earlier value of that field."""
        ...

    def personal(self, participant_id: str) -> list[PersonalRecord]:
        """A participant's personal values, by field."""
        ...

    def erase_personal(self, participant_id: str, field: str | None = None) -> int:
        """Delete a participant's values (only ``field`` when given); returns how many."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
