"""The in-memory reference store: plain lists and dicts behind a lock.

It defines by example what the SQL store must do (the contract suite runs on
both). It keeps nothing on disk. Its attributes are public on purpose so the
property tests can damage the stored data below the service, the way a
dishonest operator or a broken disk would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ledger.domain.personal import PersonalRecord
from ledger.domain.rules import DomainChange, DomainView, EventRecord, LotState, ShipmentState
from ledger.domain.state import DomainOverlay, DomainState, LotEvent
from ledger.domain.trace import Edge
from ledger.errors import ConflictError, NotFoundError
from ledger.hashing import ZERO_HASH, Digest, KeyId
from ledger.registry import KeyRecord, ParticipantRecord, Registry, RegistryChange, RevokeKey
from ledger.statements import Entry
from ledger.storage import HistoryEntry, NodeId, StoredCheckpoint, StoredCosignature

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _State:
    entries: list[Entry] = field(default_factory=list)
    by_event: dict[Digest, int] = field(default_factory=dict)
    prev_links: set[Digest] = field(default_factory=set)
    nodes: dict[NodeId, Digest] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)
    checkpoints: dict[int, StoredCheckpoint] = field(default_factory=dict)
    domain: DomainState = field(default_factory=DomainState)


class _Reader:
    _state: _State

    def _domain(self) -> DomainView:
        return self._state.domain

    def lot(self, lot_id: str) -> LotState | None:
        return self._domain().lot(lot_id)

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        return self._domain().shipment(event_id)

    def event(self, event_id: bytes) -> EventRecord | None:
        return self._domain().event(event_id)

    def edges_into(self, lot_id: str) -> list[Edge]:
        return self._state.domain.edges_into(lot_id)

    def edges_from(self, lot_id: str) -> list[Edge]:
        return self._state.domain.edges_from(lot_id)

    def size(self) -> int:
        return len(self._state.entries)

    def entry_by_event_id(self, event_id: Digest) -> Entry | None:
        index = self._state.by_event.get(event_id)
        return None if index is None else self._state.entries[index]

    def nodes(self, node_ids: Sequence[NodeId]) -> dict[NodeId, Digest]:
        try:
            return {node_id: self._state.nodes[node_id] for node_id in node_ids}
        except KeyError as exc:
            raise NotFoundError(f"Merkle node {exc.args[0]} is not stored") from exc

    def key(self, key_id: KeyId) -> KeyRecord | None:
        return self._state.registry.key(key_id)

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        return self._state.registry.participant(participant_id)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        if not self._state.checkpoints:
            return None
        return self._state.checkpoints[max(self._state.checkpoints)]


class _MemoryTx(_Reader):
    def __init__(self, state: _State) -> None:
        self._state = state
        self.added_nodes: list[NodeId] = []
        self.added_checkpoints: list[int] = []
        # Domain changes are staged and applied to the state only on commit.
        self.domain_overlay = DomainOverlay(state.domain)
        self.domain_changes: list[DomainChange] = []

    def _domain(self) -> DomainView:
        return self.domain_overlay

    def apply_domain(self, changes: Sequence[DomainChange]) -> None:
        self.domain_overlay.apply(changes)
        self.domain_changes.extend(changes)

    def last_leaf_hash(self) -> Digest:
        size = len(self._state.entries)
        return ZERO_HASH if size == 0 else self._state.nodes[(0, size - 1)]

    def put_entry(self, entry: Entry, leaf_hash: Digest) -> None:
        if entry.index != len(self._state.entries):
            raise ConflictError(
                f"entry index {entry.index} is not the next index {len(self._state.entries)}"
            )
        if entry.event_id in self._state.by_event:
            raise ConflictError("event id already stored")
        if entry.prev in self._state.prev_links:
            raise ConflictError("another entry already chains to this prev (a fork)")
        self._state.prev_links.add(entry.prev)
        self._state.entries.append(entry)
        self._state.by_event[entry.event_id] = entry.index
        self._state.nodes[(0, entry.index)] = leaf_hash
        self.added_nodes.append((0, entry.index))

    def put_nodes(self, nodes: Mapping[NodeId, Digest]) -> None:
        for node_id, value in nodes.items():
            if self._state.nodes.get(node_id, value) != value:
                raise ConflictError(f"Merkle node {node_id} already stored with another hash")
            if node_id not in self._state.nodes:
                self.added_nodes.append(node_id)
            self._state.nodes[node_id] = value

    def apply_registry(self, changes: Sequence[RegistryChange]) -> None:
        for change in changes:
            if isinstance(change, RevokeKey) and change.key_id not in self._state.registry.keys:
                raise NotFoundError(f"key {change.key_id.hex()} is not registered")
        self._state.registry.apply(changes)

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        if checkpoint.size not in self._state.checkpoints:
            self.added_checkpoints.append(checkpoint.size)
        self._state.checkpoints[checkpoint.size] = checkpoint


class MemoryStore(_Reader):
    """Reference :class:`~ledger.storage.Store` held in memory."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        # Personal data lives off the log: outside _State and the append lock.
        self._personal: dict[tuple[str, str], PersonalRecord] = {}
        self._personal_lock = threading.Lock()
        # Cosignatures are off the log too, keyed (size, name, key_hash); they are
        # written under the append lock so that a checkpoint being rolled back
        # cannot gain one.
        self._cosignatures: dict[tuple[int, str, bytes], StoredCosignature] = {}

    @contextmanager
    def write(self) -> Iterator[_MemoryTx]:
        """Write in place, undoing every change if the block raises."""
        with self._lock:
            state = self._state
            size = len(state.entries)
            registry_before = Registry(
                keys=dict(state.registry.keys), participants=dict(state.registry.participants)
            )
            tx = _MemoryTx(state)
            try:
                yield tx
                state.domain.apply(tx.domain_changes)
            except BaseException:
                for entry in state.entries[size:]:
                    state.by_event.pop(entry.event_id, None)
                    state.prev_links.discard(entry.prev)
                del state.entries[size:]
                for node_id in tx.added_nodes:
                    state.nodes.pop(node_id, None)
                state.registry = registry_before
                for cp_size in tx.added_checkpoints:
                    state.checkpoints.pop(cp_size, None)
                raise

    def entry(self, index: int) -> Entry:
        if not 0 <= index < len(self._state.entries):
            raise NotFoundError(f"no entry at index {index}")
        return self._state.entries[index]

    def entries(self, begin: int, end: int) -> Iterator[Entry]:
        if begin < 0:
            raise ValueError("begin must be >= 0")
        yield from self._state.entries[begin:end]

    def leaf_hashes(self, begin: int, end: int) -> Iterator[tuple[int, Digest]]:
        if begin < 0:
            raise ValueError("begin must be >= 0")
        for index in range(begin, min(end, len(self._state.entries))):
            node = self._state.nodes.get((0, index))
            if node is not None:
                yield index, node

    def keys(self) -> list[KeyRecord]:
        return sorted(self._state.registry.keys.values(), key=lambda k: (k.added_at, k.key_id))

    def participants(self) -> list[ParticipantRecord]:
        return sorted(
            self._state.registry.participants.values(),
            key=lambda p: (p.enrolled_at, p.participant_id),
        )

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        for size in sorted(self._state.checkpoints):
            yield self._state.checkpoints[size]

    def history(self, lot_id: str) -> list[LotEvent]:
        return self._state.domain.history(lot_id)

    def history_entries(self, lot_id: str) -> list[HistoryEntry]:
        found = []
        for line in self.history(lot_id):
            entry = self.entry(line.index)
            record = self.event(entry.event_id)
            found.append(
                HistoryEntry(
                    entry=entry,
                    has_record=record is not None,
                    participant=None if record is None else record.participant,
                    corrected_by=None if record is None else record.corrected_by,
                )
            )
        return found

    def held_by(self, participant: str) -> list[LotState]:
        return self._state.domain.held_by(participant)

    def put_cosignatures(self, cosignatures: Sequence[StoredCosignature]) -> None:
        with self._lock:
            for cosignature in cosignatures:
                if cosignature.size not in self._state.checkpoints:
                    raise NotFoundError(f"no checkpoint of size {cosignature.size} is stored")
            for c in cosignatures:
                self._cosignatures[(c.size, c.name, c.key_hash)] = c

    def cosignatures(self, size: int) -> list[StoredCosignature]:
        with self._lock:
            return [self._cosignatures[k] for k in sorted(self._cosignatures) if k[0] == size]

    def all_cosignatures(self) -> Iterator[StoredCosignature]:
        with self._lock:
            found = [self._cosignatures[k] for k in sorted(self._cosignatures)]
        yield from found

    def latest_cosigned_checkpoint(self, min_cosignatures: int = 1) -> StoredCheckpoint | None:
        if min_cosignatures < 1:
            raise ValueError("min_cosignatures must be >= 1")
        with self._lock:
            counts: dict[int, int] = {}
            for size, _, _ in self._cosignatures:
                counts[size] = counts.get(size, 0) + 1
            sizes = [size for size, count in counts.items() if count >= min_cosignatures]
            return self._state.checkpoints[max(sizes)] if sizes else None

    def witness_size(self, name: str, key_hash: bytes) -> int | None:
        with self._lock:
            sizes = [k[0] for k in self._cosignatures if k[1:] == (name, key_hash)]
        return max(sizes, default=None)

    def put_personal(self, record: PersonalRecord) -> None:
        with self._personal_lock:
            self._personal[(record.participant, record.field)] = record

    def personal(self, participant_id: str) -> list[PersonalRecord]:
        with self._personal_lock:
            return sorted(
                (r for (pid, _), r in self._personal.items() if pid == participant_id),
                key=lambda r: r.field,
            )

    def erase_personal(self, participant_id: str, field: str | None = None) -> int:
        with self._personal_lock:
            doomed = [
                key
                for key in self._personal
                if key[0] == participant_id and (field is None or key[1] == field)
            ]
            for key in doomed:
                del self._personal[key]
            return len(doomed)

    def close(self) -> None:
        """Nothing to release."""
