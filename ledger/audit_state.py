"""Saved audit state: what an auditor keeps so the next audit checks only new entries.

An audit state is one SQLite file (stdlib ``sqlite3``; it is the auditor's own
working file, not the log's store) holding:

* ``meta``: format ``mandi-audit-state`` version 1, the log's origin and vkey,
  ``size`` (entries audited), the leaf hash of entry ``size - 1`` (the next
  entry's ``prev``), the compact range of ``[0, size)`` (O(log n) hashes, from
  which every later root is computed), and the newest checkpoint verified with
  the root it signs;
* the registry replayed from those entries (participants and keys);
* the domain state the rules read: lots, shipments and events;
* every leaf hash audited, so that a rewritten history can be located: the
  first index whose leaf differs from what was audited before.

:class:`StoredReplay` is the replay state an audit runs against. It answers
the admission gate's reads (:class:`~ledger.admission.LedgerView`) from a
write-back overlay over the file and spills the overlay to the file every so
many changes, so an audit's memory stays flat however many lots the log holds.
A full audit builds a fresh state; ``--since`` opens a saved one inside one
transaction that is committed only when asked (``--save-state``) and only
after a clean audit; otherwise it is rolled back and the file is untouched.

This module stores and loads; it decides nothing. The rules are
:mod:`ledger.admission`'s, the audit walk is :mod:`ledger.audit_parallel`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.domain.rules import (
    AddEdge,
    AddEvent,
    AddLotEvent,
    DomainChange,
    EventRecord,
    LotState,
    MarkCorrected,
    PutLot,
    PutShipment,
    ShipmentState,
)
from ledger.errors import LedgerError
from ledger.hashing import Digest, KeyId
from ledger.merkle import CompactRange, NodeId
from ledger.registry import (
    AddKey,
    AddParticipant,
    KeyRecord,
    ParticipantRecord,
    Registry,
    RegistryChange,
)

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "AuditStateError",
    "StateMeta",
    "StoredReplay",
    "nodes_of",
]

STATE_FORMAT = "mandi-audit-state"
STATE_VERSION = 1

_SPILL_ROWS = 50_000
"""Overlay rows kept in memory before they are written to the file."""

_LEAF_CHUNK = 1024
"""Leaf hashes per row of the ``leaves`` table (32 KiB blobs, one write per 1,024 entries)."""

_CACHE_KIB = 64 * 1024
"""SQLite page cache of a state file: bounded, and large enough that inserting events
(keyed by random event ids) into a million-row table does not go to the disk each time."""

_BLOOM_BITS = 1 << 24
"""Bits of the filter that spares a database lookup for a lot id never stored (2 MiB)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY, profile TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL, operator INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys (
    key_id BLOB PRIMARY KEY, participant TEXT NOT NULL, public BLOB NOT NULL,
    added_at INTEGER NOT NULL, revoked_at INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lots (
    lot_id TEXT PRIMARY KEY, crop TEXT, unit_class TEXT, quantity INTEGER, custodian TEXT,
    status TEXT, producer TEXT, created_at INTEGER, last_time TEXT, recalled_at INTEGER,
    recall_reason TEXT, unit TEXT, contents TEXT, shipment TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shipments (
    event_id BLOB PRIMARY KEY, lot TEXT, sender TEXT, consignee TEXT, quantity INTEGER,
    shipped_at INTEGER, received_at INTEGER, received_quantity INTEGER, loss INTEGER)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    event_id BLOB PRIMARY KEY, idx INTEGER, kind TEXT, participant TEXT, time TEXT,
    lots TEXT, corrected_by INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leaves (chunk INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bloom (id INTEGER PRIMARY KEY, bits BLOB NOT NULL);
"""


class AuditStateError(LedgerError):
    """An audit state file that is missing, of another format, or of another log."""

    code = "bad_audit_state"


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMeta:
    """Where a saved audit stopped.

    Attributes:
        origin / vkey: the log audited (its trust anchor).
        size: entries audited, ``[0, size)``.
        last_leaf: leaf hash of entry ``size - 1`` (32 zero bytes when size is 0).
        nodes: the compact range of ``[0, size)``: ``root_node_ids(size)`` hashes.
        checkpoint: the newest checkpoint verified (signed note), if any.
        checkpoint_size / checkpoint_root: its size and signed root.
    """

    origin: str
    vkey: str
    size: int
    last_leaf: Digest
    nodes: tuple[Digest, ...]
    checkpoint: str | None
    checkpoint_size: int | None
    checkpoint_root: bytes | None

    def compact_range(self) -> CompactRange:
        """The Merkle state to resume from."""
        from ledger.merkle import root_node_ids

        ids = root_node_ids(self.size)
        if len(ids) != len(self.nodes):
            raise AuditStateError("audit state: compact range does not match its size")
        return CompactRange.from_nodes(self.size, dict(zip(ids, self.nodes, strict=True)))

    def to_rows(self) -> list[tuple[str, str]]:
        """``meta`` table rows."""
        values: dict[str, Any] = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "origin": self.origin,
            "vkey": self.vkey,
            "size": self.size,
            "last_leaf": self.last_leaf.hex(),
            "nodes": [n.hex() for n in self.nodes],
            "checkpoint": self.checkpoint,
            "checkpoint_size": self.checkpoint_size,
            "checkpoint_root": None if self.checkpoint_root is None else self.checkpoint_root.hex(),
        }
        return [(name, json.dumps(value)) for name, value in values.items()]

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, str]]) -> StateMeta:
        """Parse the ``meta`` table.

        Raises:
            AuditStateError: another format or version, or a missing field.
        """
        values = {name: json.loads(value) for name, value in rows}
        if values.get("format") != STATE_FORMAT or values.get("version") != STATE_VERSION:
            raise AuditStateError(f"not a {STATE_FORMAT} version {STATE_VERSION} file")
        try:
            root = values["checkpoint_root"]
            return cls(
                origin=str(values["origin"]),
                vkey=str(values["vkey"]),
                size=int(values["size"]),
                last_leaf=Digest(bytes.fromhex(values["last_leaf"])),
                nodes=tuple(Digest(bytes.fromhex(n)) for n in values["nodes"]),
                checkpoint=values["checkpoint"],
                checkpoint_size=values["checkpoint_size"],
                checkpoint_root=None if root is None else bytes.fromhex(root),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditStateError(f"audit state: malformed meta ({exc})") from exc


class StoredReplay:
    """The registry and domain state an audit replays into, kept in an audit-state file.

    Implements :class:`~ledger.admission.LedgerView` for :func:`~ledger.admission.admit`
    and applies the changes it returns: the registry in memory (it is small),
    the domain through a write-back overlay over the file.

    Use :meth:`create` for a full audit and :meth:`open` to resume; finish with
    :meth:`commit` (after a clean audit, to keep the state) or :meth:`close`.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, fresh: bool) -> None:
        self._conn = conn
        self.path = path
        self._fresh = fresh
        self.registry = Registry()
        self._lots: dict[str, LotState] = {}
        self._shipments: dict[bytes, ShipmentState] = {}
        self._events: dict[bytes, list[Any]] = {}  # [index, kind, participant, time, lots, by]
        self._event_at: dict[int, bytes] = {}
        self._leaf_chunk = -1
        self._leaf_buf = bytearray()
        self._bloom = bytearray(_BLOOM_BITS // 8)
        self._dirty_keys: set[KeyId] = set()
        self._dirty_participants: set[str] = set()
        self._pending = 0
        self.keep_leaves = True
        self._lot_sql = conn.cursor()
        self._closed = False

    # -- opening and closing ----------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> StoredReplay:
        """A fresh, empty state at ``path`` (which must not exist), written fast and unsynced.

        The caller renames it into place when the audit is clean (:meth:`commit`
        with ``final``), so a crash never leaves a half-written state under the
        name the auditor uses.
        """
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN")
        return cls(conn, path, fresh=True)

    @classmethod
    def open(cls, path: Path) -> tuple[StoredReplay, StateMeta]:
        """Open a saved state inside one write transaction (rolled back unless committed).

        Raises:
            AuditStateError: the file is missing or not an audit state.
        """
        if not path.is_file():
            raise AuditStateError(f"no audit state at {path}")
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            conn.execute("BEGIN IMMEDIATE")
            meta = StateMeta.from_rows(conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise AuditStateError(f"{path} is not an audit state: {exc}") from exc
        replay = cls(conn, path, fresh=False)
        row = conn.execute("SELECT bits FROM bloom WHERE id = 0").fetchone()
        if row is not None and len(row[0]) == len(replay._bloom):
            replay._bloom = bytearray(row[0])
        else:  # no filter saved: every lookup asks the file
            replay._bloom = bytearray(b"\xff" * len(replay._bloom))
        for pid, profile, enrolled_at, operator in conn.execute(
            "SELECT participant_id, profile, enrolled_at, operator FROM participants"
        ):
            replay.registry.participants[pid] = ParticipantRecord(
                participant_id=pid,
                profile=json.loads(profile),
                enrolled_at=enrolled_at,
                operator=bool(operator),
            )
        for key_id, participant, public, added_at, revoked_at in conn.execute(
            "SELECT key_id, participant, public, added_at, revoked_at FROM keys"
        ):
            replay.registry.keys[KeyId(bytes(key_id))] = KeyRecord(
                key_id=KeyId(bytes(key_id)),
                participant=participant,
                public=bytes(public),
                added_at=added_at,
                revoked_at=revoked_at,
            )
        return replay, meta

    def commit(self, meta: StateMeta, *, final: Path | None = None) -> None:
        """Write the overlay and ``meta``, commit, and (for a fresh state) move it to ``final``."""
        self.spill()
        self._conn.execute("INSERT OR REPLACE INTO bloom VALUES (0, ?)", (bytes(self._bloom),))
        self._conn.execute("DELETE FROM meta")
        self._conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.to_rows())
        self._conn.execute("COMMIT")
        self._conn.close()
        self._closed = True
        if final is not None and final != self.path:
            os.replace(self.path, final)
            self.path = final

    def close(self) -> None:
        """Drop everything not committed (a fresh state's file is deleted)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(sqlite3.Error):  # nothing to roll back
            self._conn.execute("ROLLBACK")
        self._conn.close()
        if self._fresh:
            self.path.unlink(missing_ok=True)

    # -- LedgerView -------------------------------------------------------------------

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """See :class:`~ledger.registry.RegistryView`."""
        return self.registry.keys.get(key_id)

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """See :class:`~ledger.registry.RegistryView`."""
        return self.registry.participants.get(participant_id)

    def lot(self, lot_id: str) -> LotState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        found = self._lots.get(lot_id)
        if found is not None or not self._maybe_stored(lot_id):
            return found
        row = self._lot_sql.execute("SELECT * FROM lots WHERE lot_id = ?", (lot_id,)).fetchone()
        return None if row is None else _lot_from_row(row)

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        found = self._shipments.get(event_id)
        if found is not None:
            return found
        row = self._conn.execute(
            "SELECT * FROM shipments WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else _shipment_from_row(row)

    def event(self, event_id: bytes) -> EventRecord | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        found = self._events.get(event_id)
        if found is None:
            found = self._load_event(event_id)
            if found is None:
                return None
        index, kind, participant, time, lots, by = found
        return EventRecord(
            event_id=event_id,
            index=index,
            kind=kind,
            participant=participant,
            time=time,
            lots=tuple(lots),
            corrected_by=by,
        )

    def _load_event(self, event_id: bytes) -> list[Any] | None:
        row = self._conn.execute(
            "SELECT idx, kind, participant, time, lots, corrected_by FROM events "
            "WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        index, kind, participant, time, lots, by = row
        return [index, kind, participant, time, lots.split("\n") if lots else [], by]

    # -- changes ----------------------------------------------------------------------

    def apply_registry(self, changes: Sequence[RegistryChange]) -> list[tuple[KeyId, bytes]]:
        """Apply registry changes; returns the keys added, ``(key_id, public)``."""
        self.registry.apply(changes)
        added: list[tuple[KeyId, bytes]] = []
        for change in changes:
            if isinstance(change, AddKey):
                added.append((change.key_id, change.public))
                self._dirty_keys.add(change.key_id)
                self._dirty_participants.add(change.participant)
            elif isinstance(change, AddParticipant):
                self._dirty_participants.add(change.participant_id)
            else:
                self._dirty_keys.add(change.key_id)
        return added

    def apply_domain(self, changes: Sequence[DomainChange]) -> None:
        """Apply domain changes (the rule-facing part: lots, shipments, events)."""
        for change in changes:
            match change:
                case AddEvent():
                    self._events[change.event_id] = [
                        change.index,
                        change.kind,
                        change.participant,
                        change.time,
                        [],
                        None,
                    ]
                    self._event_at[change.index] = change.event_id
                case PutLot():
                    self._lots[change.state.lot_id] = change.state
                case PutShipment():
                    self._shipments[change.state.event_id] = change.state
                case AddLotEvent():
                    event_id = self._event_at.get(change.index)
                    record = self._events.get(event_id) if event_id is not None else None
                    if record is not None:
                        record[4].append(change.lot_id)
                case MarkCorrected():
                    record = self._events.get(change.event_id)
                    if record is None:
                        record = self._load_event(change.event_id)
                        if record is None:  # pragma: no cover - the rules found it
                            continue
                        self._events[change.event_id] = record
                    record[5] = change.by_index
                case AddEdge():
                    pass  # the lot graph answers trace queries; no rule reads it
        self._pending += len(changes)
        if self._pending >= _SPILL_ROWS:
            self.spill()

    def add_leaf(self, index: int, leaf: bytes) -> None:
        """Remember the leaf hash audited at ``index`` (indexes arrive in order)."""
        if not self.keep_leaves:
            return
        chunk, offset = divmod(index, _LEAF_CHUNK)
        if chunk != self._leaf_chunk:
            self._spill_leaves()
            self._leaf_chunk = chunk
            row = self._conn.execute(
                "SELECT hashes FROM leaves WHERE chunk = ?", (chunk,)
            ).fetchone()
            self._leaf_buf = bytearray(row[0]) if row is not None else bytearray()
        del self._leaf_buf[offset * 32 :]
        self._leaf_buf += leaf

    def leaves(self, begin: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Leaf hashes audited earlier, ``[begin, end)``, in order."""
        self._spill_leaves()
        cursor = self._conn.execute(
            "SELECT chunk, hashes FROM leaves WHERE chunk >= ? AND chunk <= ? ORDER BY chunk",
            (begin // _LEAF_CHUNK, max(begin, end - 1) // _LEAF_CHUNK),
        )
        for chunk, blob in cursor:
            base = chunk * _LEAF_CHUNK
            for i in range(len(blob) // 32):
                if begin <= base + i < end:
                    yield base + i, bytes(blob[i * 32 : i * 32 + 32])

    def _maybe_stored(self, lot_id: str) -> bool:
        bloom = self._bloom
        return all(bloom[bit >> 3] & (1 << (bit & 7)) for bit in _bloom_bits(lot_id))

    def _remember_stored(self, lot_id: str) -> None:
        bloom = self._bloom
        for bit in _bloom_bits(lot_id):
            bloom[bit >> 3] |= 1 << (bit & 7)

    def spill(self) -> None:
        """Write the overlay to the file (inside the open transaction) and empty it."""
        conn = self._conn
        if self._lots:
            # In key order, so each B-tree page is visited once per spill, not once per row.
            conn.executemany(
                "INSERT OR REPLACE INTO lots VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                sorted(_lot_row(s) for s in self._lots.values()),
            )
            for lot_id in self._lots:
                self._remember_stored(lot_id)
            self._lots.clear()
        if self._shipments:
            conn.executemany(
                "INSERT OR REPLACE INTO shipments VALUES (?,?,?,?,?,?,?,?,?)",
                [_shipment_row(s) for s in self._shipments.values()],
            )
            self._shipments.clear()
        if self._events:
            conn.executemany(
                "INSERT OR REPLACE INTO events VALUES (?,?,?,?,?,?,?)",
                sorted(
                    (eid, r[0], r[1], r[2], r[3], "\n".join(r[4]), r[5])
                    for eid, r in self._events.items()
                ),
            )
            self._events.clear()
            self._event_at.clear()
        if self._dirty_participants:
            rows = []
            for pid in self._dirty_participants:
                p = self.registry.participants.get(pid)
                if p is not None:
                    rows.append((pid, json.dumps(dict(p.profile)), p.enrolled_at, int(p.operator)))
            conn.executemany("INSERT OR REPLACE INTO participants VALUES (?,?,?,?)", rows)
            self._dirty_participants.clear()
        if self._dirty_keys:
            krows = []
            for kid in self._dirty_keys:
                k = self.registry.keys.get(kid)
                if k is not None:
                    krows.append((kid, k.participant, k.public, k.added_at, k.revoked_at))
            conn.executemany("INSERT OR REPLACE INTO keys VALUES (?,?,?,?,?)", krows)
            self._dirty_keys.clear()
        self._spill_leaves()
        self._pending = 0

    def _spill_leaves(self) -> None:
        if self._leaf_buf:
            self._conn.execute(
                "INSERT OR REPLACE INTO leaves VALUES (?, ?)",
                (self._leaf_chunk, bytes(self._leaf_buf)),
            )


def _bloom_bits(lot_id: str) -> tuple[int, int, int]:
    # Deterministic (unlike hash()), so the filter can be saved with the state.
    data = lot_id.encode("utf-8")
    a = zlib.crc32(data)
    b = zlib.crc32(data, 0x9E3779B9)
    return a & 0xFFFFFF, b & 0xFFFFFF, ((a >> 24) | (b >> 16)) & 0xFFFFFF


def nodes_of(tree: CompactRange) -> tuple[Digest, ...]:
    """The compact range's hashes in ``root_node_ids`` order (for :class:`StateMeta`)."""
    held: dict[NodeId, Digest] = tree.to_nodes()
    return tuple(held.values())


def _lot_row(s: LotState) -> tuple[Any, ...]:
    return (
        s.lot_id,
        s.crop,
        s.unit_class,
        s.quantity,
        s.custodian,
        s.status,
        s.producer,
        s.created_at,
        s.last_time,
        s.recalled_at,
        s.recall_reason,
        s.unit,
        json.dumps(list(s.contents)) if s.contents else None,
        s.shipment,
    )


def _lot_from_row(row: Sequence[Any]) -> LotState:
    return LotState(
        lot_id=row[0],
        crop=row[1],
        unit_class=row[2],
        quantity=row[3],
        custodian=row[4],
        status=row[5],
        producer=row[6],
        created_at=row[7],
        last_time=row[8],
        recalled_at=row[9],
        recall_reason=row[10],
        unit=row[11],
        contents=tuple(json.loads(row[12])) if row[12] else (),
        shipment=row[13],
    )


def _shipment_row(s: ShipmentState) -> tuple[Any, ...]:
    return (
        s.event_id,
        s.lot,
        s.sender,
        s.consignee,
        s.quantity,
        s.shipped_at,
        s.received_at,
        s.received_quantity,
        s.loss,
    )


def _shipment_from_row(row: Sequence[Any]) -> ShipmentState:
    return ShipmentState(
        event_id=bytes(row[0]),
        lot=row[1],
        sender=row[2],
        consignee=row[3],
        quantity=row[4],
        shipped_at=row[5],
        received_at=row[6],
        received_quantity=row[7],
        loss=row[8],
    )
