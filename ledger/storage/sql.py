"""The SQL store: :class:`~ledger.storage.Store` on SQLAlchemy 2 (SQLite and PostgreSQL).

This module owns the tables (declared as SQLAlchemy ``Mapped`` row classes), the
mapping between rows and the ledger's value types, the transaction discipline
and the schema lifecycle (:func:`migrate`, :func:`schema_status`, and the check
in :meth:`SqlStore.open`). It behaves like
:class:`~ledger.storage.memory.MemoryStore`; the same contract suite runs on
both (tests/ledger/test_store_contract.py). Where the reference is lax the SQL
store is stricter, and never otherwise: it refuses a fork (a second entry with
the same ``prev``), a key whose participant is not registered (foreign key),
and a revocation of an unknown key (``NotFoundError``); a node that clashes
with one already in the database is refused when the buffer is written rather
than in :meth:`SqlWriteTx.put_nodes`.

Durability and serialisation:

* SQLite: every connection runs ``PRAGMA journal_mode=WAL``,
  ``synchronous=FULL``, ``foreign_keys=ON`` and ``busy_timeout``. pysqlite's own
  transaction handling is switched off; writes begin with ``BEGIN IMMEDIATE``
  (one writer at a time, across OS processes), reads with a deferred ``BEGIN``
  (the SQLAlchemy SQLite dialect's documented recipe).
* PostgreSQL (psycopg 3): every writer first takes ``SELECT ... FROM log_head
  WHERE id = 1 FOR UPDATE``, so appends serialise on the one head row.
* On both, ``entries.idx`` is the primary key and ``entries.prev`` is unique, so
  a gap is refused by :meth:`SqlWriteTx.put_entry` and a fork (two entries
  chaining to one predecessor) cannot be stored at all.

A write transaction buffers its puts in memory, answers reads from that buffer
first, and writes the buffer with one ``executemany`` per table at commit (or
earlier, when the buffer grows large). The exact signed statement bytes are
stored as BLOB/BYTEA, never as JSON.

Domain state (lots, shipments, domain events, lot histories, the lot graph;
migration 0002) holds what :class:`~ledger.domain.state.DomainState` holds in
memory. A write transaction stages :meth:`SqlWriteTx.apply_domain` changes in a
:class:`~ledger.domain.state.DomainOverlay` over the rows stored before it (so
its reads see them, exactly as in the memory store: lots, shipments and events,
not edges) and writes them at commit only, as upserts (lots, shipments),
inserts and updates (corrections). The statements an append runs for each
statement (its event-id lookup, its lot lookups, the domain rows) go straight
to the DBAPI cursor, compiled once per dialect; see :class:`_Driver`.

Personal data (migration 0003) lives in ``personal_data``, outside the log: its
methods commit on their own, are never part of an append transaction, and
never touch the entries. Witness cosignatures of checkpoints (migration 0004)
live in ``cosignatures`` on the same terms; a foreign key ties each to its
checkpoint.

It does not decide what may be appended (that is :mod:`ledger.service` and
:mod:`ledger.admission`), compute Merkle nodes (:mod:`ledger.merkle`), or create
tables implicitly: a database is initialised and upgraded only by
:func:`migrate` (``mandi admin init`` / ``mandi admin migrate``). Every
SQLAlchemy exception is wrapped: :class:`~sqlalchemy.exc.IntegrityError` becomes
:class:`~ledger.errors.ConflictError`, anything else
:class:`~ledger.errors.StorageError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import rfc8785
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    SmallInteger,
    Text,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite import pysqlite as sqlite_pysqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry

from ledger.domain.personal import PersonalRecord
from ledger.domain.rules import (
    STATUS_HELD,
    STATUS_PACKED,
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
from ledger.domain.state import DomainOverlay, LotEvent
from ledger.domain.trace import Edge
from ledger.encoding import canonical_bytes
from ledger.errors import ConflictError, NotFoundError, SchemaError, StorageError
from ledger.hashing import Digest, KeyId
from ledger.registry import (
    AddKey,
    AddParticipant,
    KeyRecord,
    ParticipantRecord,
    RegistryChange,
)
from ledger.statements import Entry
from ledger.storage import (
    HistoryEntry,
    NodeId,
    Store,
    StoredCheckpoint,
    StoredCosignature,
    WriteTx,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SqlStore",
    "SqlWriteTx",
    "default_sqlite_url",
    "migrate",
    "schema_status",
]

DEFAULT_BUSY_TIMEOUT_MS: Final = 30_000
"""How long an SQLite connection waits for another writer's lock before failing."""

CHUNK_ROWS: Final = 1000
"""Rows per query when streaming entries, leaf hashes and checkpoints."""

_MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
_WRITE_OPTION: Final = "mandi_write"
"""Execution option marking a connection whose transaction must begin IMMEDIATE."""


# ---------------------------------------------------------------------------
# Tables. The migrations in migrations/versions/ (0001_initial.py, 0002_domain.py,
# 0003_personal.py, 0004_cosignatures.py) create the same schema; change both together
# (and add a new revision, never edit an old one).

# SQLite makes a single-column "INTEGER" primary key an alias of the rowid (no
# second B-tree); BIGINT would not be. PostgreSQL keeps BIGINT.
_INDEX_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the ledger tables (its ``metadata`` drives Alembic)."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class EntryRow(Base):
    """One log entry: the exact signed statement bytes at a dense index."""

    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint("idx >= 0", name="idx_non_negative"),
        CheckConstraint("length(event_id) = 32", name="event_id_length"),
        CheckConstraint("length(prev) = 32", name="prev_length"),
    )

    idx: Mapped[int] = mapped_column(_INDEX_TYPE, primary_key=True, autoincrement=False)
    event_id: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    accepted_ms: Mapped[int] = mapped_column(BigInteger)
    # Unique: a second entry chaining to the same predecessor is a fork.
    prev: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class NodeRow(Base):
    """A stored Merkle node: the hash of a complete subtree (level 0 = leaf hashes)."""

    __tablename__ = "merkle_nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class ParticipantRow(Base):
    """A participant as of the newest entry; ``profile`` is canonical JSON text."""

    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    profile: Mapped[str] = mapped_column(Text)
    enrolled_at: Mapped[int] = mapped_column(BigInteger)
    operator: Mapped[bool] = mapped_column(Boolean)


class KeyRow(Base):
    """A participant key as of the newest entry."""

    __tablename__ = "participant_keys"

    key_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    participant: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    public: Mapped[bytes] = mapped_column(LargeBinary(32))
    added_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class CheckpointRow(Base):
    """A signed checkpoint note, one per tree size."""

    __tablename__ = "checkpoints"

    size: Mapped[int] = mapped_column(_INDEX_TYPE, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class HeadRow(Base):
    """The single log head row: size and newest leaf hash; writers lock it."""

    __tablename__ = "log_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    last_leaf: Mapped[bytes] = mapped_column(LargeBinary(32))


class MetaRow(Base):
    """Small named settings of this database, such as the log origin."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# Domain state (migrations/versions/0002_domain.py): what ledger.domain.state.DomainState
# holds in memory. The composite-key tables are WITHOUT ROWID on SQLite (one B-tree).
# ``pos`` orders the rows one statement adds (its lots, its edges) as the rules listed them.


class DomainEventRow(Base):
    """A domain statement: event id, log index, kind, signer, time, and its correction."""

    __tablename__ = "domain_events"

    event_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    participant: Mapped[str] = mapped_column(Text)
    time: Mapped[str] = mapped_column(Text)
    corrected_by: Mapped[int | None] = mapped_column(BigInteger)


class LotRow(Base):
    """A lot's current state (:class:`~ledger.domain.rules.LotState`); ``contents`` is JSON."""

    __tablename__ = "lots"

    lot_id: Mapped[str] = mapped_column(Text, primary_key=True)
    crop: Mapped[str] = mapped_column(Text)
    unit_class: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(BigInteger)
    custodian: Mapped[str | None] = mapped_column(Text, index=True)
    status: Mapped[str] = mapped_column(Text, index=True)
    producer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_time: Mapped[str] = mapped_column(Text)
    recalled_at: Mapped[int | None] = mapped_column(BigInteger)
    recall_reason: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(Text)
    contents: Mapped[str] = mapped_column(Text)
    shipment: Mapped[str | None] = mapped_column(Text)


class ShipmentRow(Base):
    """A shipment (:class:`~ledger.domain.rules.ShipmentState`), keyed by its ship event id."""

    __tablename__ = "shipments"

    event_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    lot: Mapped[str] = mapped_column(Text)
    sender: Mapped[str] = mapped_column(Text)
    consignee: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(BigInteger)
    shipped_at: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[int | None] = mapped_column(BigInteger)
    received_quantity: Mapped[int | None] = mapped_column(BigInteger)
    loss: Mapped[int | None] = mapped_column(BigInteger)


class LotEventRow(Base):
    """One line of a lot's history: statement ``idx`` of ``kind`` touched ``lot_id``."""

    __tablename__ = "lot_events"
    __table_args__ = (
        Index("ix_lot_events_idx", "idx", "pos"),
        {"sqlite_with_rowid": False},
    )

    lot_id: Mapped[str] = mapped_column(Text, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    pos: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)


class LotEdgeRow(Base):
    """An edge of the lot graph: ``child`` was made from ``parent`` or holds it."""

    __tablename__ = "lot_edges"
    __table_args__ = ({"sqlite_with_rowid": False},)

    parent: Mapped[str] = mapped_column(Text, primary_key=True, index=True)
    child: Mapped[str] = mapped_column(Text, primary_key=True, index=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    pos: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)


class PersonalRow(Base):
    """A personal value kept off the log (migration 0003); never written by an append."""

    __tablename__ = "personal_data"

    participant: Mapped[str] = mapped_column(Text, primary_key=True)
    field: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    public: Mapped[bool] = mapped_column(Boolean)


class CosignatureRow(Base):
    """A witness's cosignature of a stored checkpoint (migration 0004); no append writes it."""

    __tablename__ = "cosignatures"
    __table_args__ = (
        CheckConstraint("length(key_hash) = 4", name="key_hash_length"),
        Index(None, "name", "key_hash", "size"),
    )

    size: Mapped[int] = mapped_column(
        _INDEX_TYPE, ForeignKey(CheckpointRow.size), primary_key=True, autoincrement=False
    )
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(4), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[int] = mapped_column(BigInteger)


# ---------------------------------------------------------------------------
# Statements built once (SQLAlchemy caches their compiled form).

_SEL_HEAD = select(HeadRow.size, HeadRow.last_leaf).where(HeadRow.id == 1)
_SEL_HEAD_FOR_UPDATE = _SEL_HEAD.with_for_update()
_UPD_HEAD = (
    update(HeadRow)
    .where(HeadRow.id == 1, HeadRow.size == bindparam("old_size"))
    .values(size=bindparam("new_size"), last_leaf=bindparam("new_leaf"))
)
_ENTRY_COLUMNS = (
    EntryRow.idx,
    EntryRow.accepted_ms,
    EntryRow.prev,
    EntryRow.statement,
    EntryRow.signature,
)
_SEL_ENTRY = select(*_ENTRY_COLUMNS).where(EntryRow.idx == bindparam("idx"))
_SEL_ENTRY_BY_EVENT = select(*_ENTRY_COLUMNS).where(EntryRow.event_id == bindparam("event_id"))
_SEL_ENTRIES = (
    select(*_ENTRY_COLUMNS)
    .where(EntryRow.idx >= bindparam("lo"), EntryRow.idx < bindparam("hi"))
    .order_by(EntryRow.idx)
    .limit(bindparam("n"))
)
# One lookup answers both "is this event id stored?" and "would this prev fork?".
_SEL_CLASH = (
    select(EntryRow.event_id, EntryRow.prev)
    .where((EntryRow.event_id == bindparam("event_id")) | (EntryRow.prev == bindparam("prev")))
    .limit(2)
)
_NODES_PER_QUERY: Final = 100
"""Node ids per lookup; SQLite parses ``a OR b OR ...`` as a tree of this depth (max 1000)."""


@lru_cache(maxsize=_NODES_PER_QUERY)
def _sel_nodes(count: int) -> Select[int, int, bytes]:
    """A lookup of ``count`` nodes by primary key.

    An OR of ``level = ? AND idx = ?`` terms, not ``(level, idx) IN (...)``:
    SQLite 3.40 answers the row-value IN with a full table scan, the OR with
    one primary-key search per term (PostgreSQL is fast either way).
    """
    terms = [
        and_(NodeRow.level == bindparam(f"l{i}"), NodeRow.idx == bindparam(f"i{i}"))
        for i in range(count)
    ]
    return select(NodeRow.level, NodeRow.idx, NodeRow.hash).where(or_(*terms))


_SEL_LEAVES = (
    select(NodeRow.idx, NodeRow.hash)
    .where(NodeRow.level == 0, NodeRow.idx >= bindparam("lo"), NodeRow.idx < bindparam("hi"))
    .order_by(NodeRow.idx)
    .limit(bindparam("n"))
)
_KEY_COLUMNS = (
    KeyRow.key_id,
    KeyRow.participant,
    KeyRow.public,
    KeyRow.added_at,
    KeyRow.revoked_at,
)
_SEL_KEY = select(*_KEY_COLUMNS).where(KeyRow.key_id == bindparam("key_id"))
_SEL_KEYS = select(*_KEY_COLUMNS)
_PARTICIPANT_COLUMNS = (
    ParticipantRow.id,
    ParticipantRow.profile,
    ParticipantRow.enrolled_at,
    ParticipantRow.operator,
)
_SEL_PARTICIPANT = select(*_PARTICIPANT_COLUMNS).where(ParticipantRow.id == bindparam("pid"))
_SEL_PARTICIPANTS = select(*_PARTICIPANT_COLUMNS)
_CHECKPOINT_COLUMNS = (CheckpointRow.size, CheckpointRow.note, CheckpointRow.created_ms)
_SEL_LATEST_CHECKPOINT = select(*_CHECKPOINT_COLUMNS).order_by(CheckpointRow.size.desc()).limit(1)
_SEL_CHECKPOINTS = (
    select(*_CHECKPOINT_COLUMNS)
    .where(CheckpointRow.size >= bindparam("lo"))
    .order_by(CheckpointRow.size)
    .limit(bindparam("n"))
)
_COSIGNATURE_COLUMNS = (
    CosignatureRow.size,
    CosignatureRow.name,
    CosignatureRow.key_hash,
    CosignatureRow.line,
    CosignatureRow.timestamp,
)
_SEL_COSIGNATURES = select(*_COSIGNATURE_COLUMNS).where(CosignatureRow.size == bindparam("size"))
_SEL_COSIGNATURES_FROM = (
    select(*_COSIGNATURE_COLUMNS)
    .where(CosignatureRow.size >= bindparam("lo"))
    .order_by(CosignatureRow.size)
    .limit(bindparam("n"))
)
_SEL_LATEST_COSIGNED = (
    select(*_CHECKPOINT_COLUMNS)
    .where(
        CheckpointRow.size.in_(
            select(CosignatureRow.size)
            .group_by(CosignatureRow.size)
            .having(func.count() >= bindparam("n"))
        )
    )
    .order_by(CheckpointRow.size.desc())
    .limit(1)
)
_SEL_WITNESS_SIZE = select(func.max(CosignatureRow.size)).where(
    CosignatureRow.name == bindparam("name"), CosignatureRow.key_hash == bindparam("key_hash")
)
_SEL_META = select(MetaRow.value).where(MetaRow.key == bindparam("key"))
_SEL_PERSONAL = select(
    PersonalRow.participant,
    PersonalRow.field,
    PersonalRow.value,
    PersonalRow.salt,
    PersonalRow.public,
).where(PersonalRow.participant == bindparam("participant"))
_INS_ENTRIES = insert(EntryRow)
_INS_NODES = insert(NodeRow)

_LOT_COLUMNS = (
    LotRow.lot_id,
    LotRow.crop,
    LotRow.unit_class,
    LotRow.quantity,
    LotRow.custodian,
    LotRow.status,
    LotRow.producer,
    LotRow.created_at,
    LotRow.last_time,
    LotRow.recalled_at,
    LotRow.recall_reason,
    LotRow.unit,
    LotRow.contents,
    LotRow.shipment,
)
_SEL_LOT = select(*_LOT_COLUMNS).where(LotRow.lot_id == bindparam("lot_id"))
_SEL_HELD = select(*_LOT_COLUMNS).where(
    LotRow.custodian == bindparam("participant"),
    LotRow.status.in_([STATUS_HELD, STATUS_PACKED]),
)
_SHIPMENT_COLUMNS = (
    ShipmentRow.event_id,
    ShipmentRow.lot,
    ShipmentRow.sender,
    ShipmentRow.consignee,
    ShipmentRow.quantity,
    ShipmentRow.shipped_at,
    ShipmentRow.received_at,
    ShipmentRow.received_quantity,
    ShipmentRow.loss,
)
_SEL_SHIPMENT = select(*_SHIPMENT_COLUMNS).where(ShipmentRow.event_id == bindparam("event_id"))
_SEL_EVENT = select(
    DomainEventRow.event_id,
    DomainEventRow.idx,
    DomainEventRow.kind,
    DomainEventRow.participant,
    DomainEventRow.time,
    DomainEventRow.corrected_by,
).where(DomainEventRow.event_id == bindparam("event_id"))
_SEL_EVENT_LOTS = (
    select(LotEventRow.lot_id).where(LotEventRow.idx == bindparam("idx")).order_by(LotEventRow.pos)
)
_SEL_HISTORY = (
    select(LotEventRow.lot_id, LotEventRow.idx, LotEventRow.kind)
    .where(LotEventRow.lot_id == bindparam("lot_id"))
    .order_by(LotEventRow.idx)
)
# A lot's history with each statement's entry and domain record: one search of
# the lot_events primary key, then a primary-key (entries) and a unique-index
# (domain_events.event_id) lookup per statement; nothing grows with the log.
_SEL_HISTORY_ENTRIES = (
    select(
        *_ENTRY_COLUMNS,
        DomainEventRow.idx,
        DomainEventRow.participant,
        DomainEventRow.corrected_by,
    )
    .select_from(LotEventRow)
    .join(EntryRow, EntryRow.idx == LotEventRow.idx)
    .outerjoin(DomainEventRow, DomainEventRow.event_id == EntryRow.event_id)
    .where(LotEventRow.lot_id == bindparam("lot_id"))
    .order_by(LotEventRow.idx)
)
_EDGE_COLUMNS = (LotEdgeRow.parent, LotEdgeRow.child, LotEdgeRow.idx, LotEdgeRow.kind)
_SEL_EDGES_INTO = (
    select(*_EDGE_COLUMNS)
    .where(LotEdgeRow.child == bindparam("lot_id"))
    .order_by(LotEdgeRow.idx, LotEdgeRow.pos)
)
_SEL_EDGES_FROM = (
    select(*_EDGE_COLUMNS)
    .where(LotEdgeRow.parent == bindparam("lot_id"))
    .order_by(LotEdgeRow.idx, LotEdgeRow.pos)
)
# The last ``pos`` of a statement whose rows are already partly stored (only for
# hand-made changes: the rules emit a statement's changes in one call).
_SEL_LAST_EVENT_POS = select(func.max(LotEventRow.pos)).where(LotEventRow.idx == bindparam("idx"))
_SEL_LAST_EDGE_POS = select(func.max(LotEdgeRow.pos)).where(LotEdgeRow.idx == bindparam("idx"))
_INS_DOMAIN_EVENTS = insert(DomainEventRow)
_UPD_CORRECTED = (
    update(DomainEventRow)
    .where(DomainEventRow.event_id == bindparam("corrected_event"))
    .values(corrected_by=bindparam("by_index"))
)
_INS_LOT_EVENTS = insert(LotEventRow)
_INS_LOT_EDGES = insert(LotEdgeRow)


class _Upserts:
    """INSERT ... ON CONFLICT DO UPDATE for one dialect (SQLite and PostgreSQL agree)."""

    def __init__(self, dialect: str) -> None:
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        participants = make(ParticipantRow)
        self.participants = participants.on_conflict_do_update(
            index_elements=[ParticipantRow.id],
            set_={
                "profile": participants.excluded.profile,
                "enrolled_at": participants.excluded.enrolled_at,
                "operator": participants.excluded.operator,
            },
        )
        keys = make(KeyRow)
        self.keys = keys.on_conflict_do_update(
            index_elements=[KeyRow.key_id],
            set_={
                "participant": keys.excluded.participant,
                "public": keys.excluded.public,
                "added_at": keys.excluded.added_at,
                "revoked_at": keys.excluded.revoked_at,
                "revoke_reason": keys.excluded.revoke_reason,
            },
        )
        checkpoints = make(CheckpointRow)
        self.checkpoints = checkpoints.on_conflict_do_update(
            index_elements=[CheckpointRow.size],
            set_={
                "note": checkpoints.excluded.note,
                "created_ms": checkpoints.excluded.created_ms,
            },
        )
        cosignatures = make(CosignatureRow)
        self.cosignatures = cosignatures.on_conflict_do_update(
            index_elements=[CosignatureRow.size, CosignatureRow.name, CosignatureRow.key_hash],
            set_={
                "line": cosignatures.excluded.line,
                "timestamp": cosignatures.excluded.timestamp,
            },
        )
        meta = make(MetaRow)
        self.meta = meta.on_conflict_do_update(
            index_elements=[MetaRow.key], set_={"value": meta.excluded.value}
        )
        personal = make(PersonalRow)
        self.personal = personal.on_conflict_do_update(
            index_elements=[PersonalRow.participant, PersonalRow.field],
            set_={
                "value": personal.excluded.value,
                "salt": personal.excluded.salt,
                "public": personal.excluded.public,
            },
        )
        lots = make(LotRow)
        self.lots = lots.on_conflict_do_update(
            index_elements=[LotRow.lot_id],
            set_={c.name: lots.excluded[c.name] for c in _LOT_COLUMNS[1:]},
        )
        shipments = make(ShipmentRow)
        self.shipments = shipments.on_conflict_do_update(
            index_elements=[ShipmentRow.event_id],
            set_={c.name: shipments.excluded[c.name] for c in _SHIPMENT_COLUMNS[1:]},
        )


# ---------------------------------------------------------------------------
# Error translation and row mapping.


class _Translate:
    """Turn SQLAlchemy exceptions into the ledger's StorageError family."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, IntegrityError):
            raise ConflictError(f"the database refused the write: {exc.orig}") from exc
        if isinstance(exc, SQLAlchemyError):
            raise StorageError(f"database error: {_short(exc)}") from exc


_TRANSLATE: Final = _Translate()


def _short(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


def _entry(row: Sequence[Any]) -> Entry:
    """An entries row in :data:`_ENTRY_COLUMNS` order (a SQLAlchemy Row or a DBAPI tuple)."""
    return Entry(
        index=row[0],
        accepted_ms=row[1],
        prev=Digest(bytes(row[2])),
        statement=bytes(row[3]),
        signature=bytes(row[4]),
    )


# Rows by position (the column tuples' order): a SQLAlchemy row and a DBAPI tuple alike.


def _key(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(
        key_id=KeyId(bytes(row[0])),
        participant=row[1],
        public=bytes(row[2]),
        added_at=row[3],
        revoked_at=row[4],
    )


def _participant(row: Sequence[Any]) -> ParticipantRecord:
    return ParticipantRecord(
        participant_id=row[0],
        profile=json.loads(row[1]),
        enrolled_at=row[2],
        operator=bool(row[3]),
    )


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(size=row[0], note=row[1], created_ms=row[2])


def _cosignature(row: Any) -> StoredCosignature:
    return StoredCosignature(
        size=row.size,
        name=row.name,
        key_hash=bytes(row.key_hash),
        line=row.line,
        timestamp=row.timestamp,
    )


def _by_witness(cosignatures: Iterator[StoredCosignature]) -> list[StoredCosignature]:
    # Sorted here, not in SQL: a database collation must not change the order.
    return sorted(cosignatures, key=lambda c: (c.size, c.name, c.key_hash))


def _contents_text(contents: tuple[str, ...]) -> str:
    return rfc8785.dumps(list(contents)).decode("utf-8") if contents else "[]"


def _lot_params(s: LotState) -> dict[str, Any]:
    return {
        "lot_id": s.lot_id,
        "crop": s.crop,
        "unit_class": s.unit_class,
        "quantity": s.quantity,
        "custodian": s.custodian,
        "status": s.status,
        "producer": s.producer,
        "created_at": s.created_at,
        "last_time": s.last_time,
        "recalled_at": s.recalled_at,
        "recall_reason": s.recall_reason,
        "unit": s.unit,
        "contents": _contents_text(s.contents),
        "shipment": s.shipment,
    }


def _lot(row: Sequence[Any]) -> LotState:
    """A lots row in :data:`_LOT_COLUMNS` order (a SQLAlchemy Row or a DBAPI tuple)."""
    contents = row[12]
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
        contents=() if contents == "[]" else tuple(json.loads(contents)),
        shipment=row[13],
    )


def _shipment_params(s: ShipmentState) -> dict[str, Any]:
    return {
        "event_id": s.event_id,
        "lot": s.lot,
        "sender": s.sender,
        "consignee": s.consignee,
        "quantity": s.quantity,
        "shipped_at": s.shipped_at,
        "received_at": s.received_at,
        "received_quantity": s.received_quantity,
        "loss": s.loss,
    }


def _shipment(row: Sequence[Any]) -> ShipmentState:
    """A shipments row in :data:`_SHIPMENT_COLUMNS` order."""
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


def _event(row: Sequence[Any], lots: Sequence[Sequence[Any]]) -> EventRecord:
    """A domain_events row (:data:`_SEL_EVENT` order) and its lots (:data:`_SEL_EVENT_LOTS`)."""
    return EventRecord(
        event_id=bytes(row[0]),
        index=row[1],
        kind=row[2],
        participant=row[3],
        time=row[4],
        lots=tuple(lot[0] for lot in lots),
        corrected_by=row[5],
    )


def _edge(row: Sequence[Any]) -> Edge:
    return Edge(parent=row[0], child=row[1], index=row[2], kind=row[3])


def _read_nodes(conn: Connection, node_ids: Sequence[NodeId]) -> dict[NodeId, Digest]:
    """The stored subset of ``node_ids`` (one query per 100 distinct ids)."""
    return _nodes_by_query(lambda count, params: conn.execute(_sel_nodes(count), params), node_ids)


def _nodes_by_query(
    run: Callable[[int, dict[str, int]], Iterable[Sequence[Any]]], node_ids: Sequence[NodeId]
) -> dict[NodeId, Digest]:
    """``node_ids`` looked up in batches; ``run(count, params)`` runs :func:`_sel_nodes`."""
    found: dict[NodeId, Digest] = {}
    unique = list(dict.fromkeys(node_ids))
    for start in range(0, len(unique), _NODES_PER_QUERY):
        ids = unique[start : start + _NODES_PER_QUERY]
        params: dict[str, int] = {}
        for i, (level, index) in enumerate(ids):
            params[f"l{i}"] = level
            params[f"i{i}"] = index
        for level, index, value in run(len(ids), params):
            found[(level, index)] = Digest(bytes(value))
    return found


def _require_nodes(node_ids: Sequence[NodeId], found: Mapping[NodeId, Digest]) -> None:
    for node_id in node_ids:
        if node_id not in found:
            raise NotFoundError(f"Merkle node {node_id} is not stored")


# ---------------------------------------------------------------------------
# The write transaction.


@dataclass(frozen=True, slots=True)
class _Raw:
    """A statement compiled once for a DBAPI: its SQL and its parameters in order."""

    sql: str
    names: tuple[str, ...]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(values[name] for name in self.names)


@dataclass(frozen=True, slots=True)
class _RawStatements:
    sel_key: _Raw
    sel_participant: _Raw
    sel_latest_checkpoint: _Raw
    sel_entry_by_event: _Raw
    ins_entries: _Raw
    ins_nodes: _Raw
    sel_lot: _Raw
    sel_shipment: _Raw
    sel_event: _Raw
    sel_event_lots: _Raw
    sel_edges_into: _Raw
    sel_edges_from: _Raw
    last_event_pos: _Raw
    last_edge_pos: _Raw
    ins_events: _Raw
    upd_corrected: _Raw
    upsert_lots: _Raw
    upsert_shipments: _Raw
    ins_lot_events: _Raw
    ins_edges: _Raw


def _dbapi_dialect(dialect_name: str) -> Any:
    """The dialect compiling statements for a DBAPI cursor (positional parameters)."""
    return (
        postgresql_psycopg.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
        if dialect_name == "postgresql"
        else sqlite_pysqlite.dialect()
    )


def _compile_raw(statement: Any, dialect: Any, *, literal: bool = False) -> _Raw:
    # literal: constants (a LIMIT) written into the SQL rather than bound.
    compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": literal})
    return _Raw(compiled.string, tuple(compiled.positiontup or ()))


@lru_cache(maxsize=2)
def _raw_history_entries(dialect_name: str) -> _Raw:
    """:data:`_SEL_HISTORY_ENTRIES` for a DBAPI cursor (see :meth:`SqlStore.history_entries`)."""
    return _compile_raw(_SEL_HISTORY_ENTRIES, _dbapi_dialect(dialect_name))


@lru_cache(maxsize=2 * _NODES_PER_QUERY)
def _raw_sel_nodes(dialect_name: str, count: int) -> _Raw:
    """:func:`_sel_nodes` for a DBAPI cursor."""
    return _compile_raw(_sel_nodes(count), _dbapi_dialect(dialect_name))


@lru_cache(maxsize=2)
def _raw_statements(dialect_name: str) -> _RawStatements:
    """The write transaction's hot statements, compiled with positional parameters."""
    dialect = _dbapi_dialect(dialect_name)
    upserts = _Upserts(dialect_name)

    def raw(statement: Any) -> _Raw:
        return _compile_raw(statement, dialect)

    return _RawStatements(
        sel_key=raw(_SEL_KEY),
        sel_participant=raw(_SEL_PARTICIPANT),
        sel_latest_checkpoint=_compile_raw(_SEL_LATEST_CHECKPOINT, dialect, literal=True),
        sel_entry_by_event=raw(_SEL_ENTRY_BY_EVENT),
        ins_entries=raw(_INS_ENTRIES),
        ins_nodes=raw(_INS_NODES),
        sel_lot=raw(_SEL_LOT),
        sel_shipment=raw(_SEL_SHIPMENT),
        sel_event=raw(_SEL_EVENT),
        sel_event_lots=raw(_SEL_EVENT_LOTS),
        sel_edges_into=raw(_SEL_EDGES_INTO),
        sel_edges_from=raw(_SEL_EDGES_FROM),
        last_event_pos=raw(_SEL_LAST_EVENT_POS),
        last_edge_pos=raw(_SEL_LAST_EDGE_POS),
        ins_events=raw(_INS_DOMAIN_EVENTS),
        upd_corrected=raw(_UPD_CORRECTED),
        upsert_lots=raw(upserts.lots),
        upsert_shipments=raw(upserts.shipments),
        ins_lot_events=raw(_INS_LOT_EVENTS),
        ins_edges=raw(_INS_LOT_EDGES),
    )


class _Driver:
    """The hot statements of a write transaction, run on its connection's DBAPI cursor.

    An append looks up its event id and the lots its statement touches, and
    writes a few domain rows: a SQLAlchemy execute costs about ten times an
    SQLite primary-key lookup, so these statements are compiled once per
    dialect (:func:`_raw_statements`) and run on the DBAPI cursor, inside the
    same transaction. Errors are translated as :class:`_Translate` does.
    """

    def __init__(self, conn: Connection) -> None:
        dbapi = conn.dialect.loaded_dbapi
        self._integrity_error: type[Exception] = dbapi.IntegrityError
        self._error: type[Exception] = dbapi.Error
        self._cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._dialect = conn.dialect.name
        self.sql = _raw_statements(self._dialect)

    def fetch(self, statement: _Raw, params: Mapping[str, Any]) -> list[Any]:
        """Run a query; its rows as DBAPI tuples."""
        try:
            self._cursor.execute(statement.sql, statement.params(params))
            return list(self._cursor.fetchall())
        except self._error as exc:
            raise StorageError(f"database error: {_first_line(exc)}") from exc

    def read_nodes(self, node_ids: Sequence[NodeId]) -> dict[NodeId, Digest]:
        """:func:`_read_nodes` on this cursor."""
        return _nodes_by_query(
            lambda count, params: self.fetch(_raw_sel_nodes(self._dialect, count), params),
            node_ids,
        )

    def close(self) -> None:
        """Close the cursor (the connection stays SQLAlchemy's)."""
        self._cursor.close()

    def write(self, statement: _Raw, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a write once per row (executemany)."""
        try:
            self._cursor.executemany(statement.sql, [statement.params(row) for row in rows])
        except self._integrity_error as exc:
            raise ConflictError(f"the database refused the write: {_first_line(exc)}") from exc
        except self._error as exc:
            raise StorageError(f"database error: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _StoredDomain:
    """The domain state stored before a write transaction, read on its connection.

    The transaction writes its domain rows only at commit, and holds the log's
    write lock, so these rows do not change while it runs: every answer is
    remembered. It is the base of the transaction's
    :class:`~ledger.domain.state.DomainOverlay`, as the committed
    :class:`~ledger.domain.state.DomainState` is in the memory store.
    """

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self.sql = driver.sql
        self._lots: dict[str, LotState | None] = {}
        self._shipments: dict[bytes, ShipmentState | None] = {}
        self._events: dict[bytes, EventRecord | None] = {}

    def lot(self, lot_id: str) -> LotState | None:
        try:
            return self._lots[lot_id]
        except KeyError:
            pass
        rows = self._driver.fetch(self.sql.sel_lot, {"lot_id": lot_id})
        state = _lot(rows[0]) if rows else None
        self._lots[lot_id] = state
        return state

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        try:
            return self._shipments[event_id]
        except KeyError:
            pass
        rows = self._driver.fetch(self.sql.sel_shipment, {"event_id": event_id})
        state = _shipment(rows[0]) if rows else None
        self._shipments[event_id] = state
        return state

    def event(self, event_id: bytes) -> EventRecord | None:
        try:
            return self._events[event_id]
        except KeyError:
            pass
        rows = self._driver.fetch(self.sql.sel_event, {"event_id": event_id})
        record = None
        if rows:
            lots = self._driver.fetch(self.sql.sel_event_lots, {"idx": rows[0][1]})
            record = _event(rows[0], lots)
        self._events[event_id] = record
        return record

    def edges(self, statement: _Raw, lot_id: str) -> list[Edge]:
        return [_edge(row) for row in self._driver.fetch(statement, {"lot_id": lot_id})]

    def next_pos(self, statement: _Raw, index: int) -> int:
        """The next free ``pos`` of statement ``index`` (0 when it has no rows)."""
        last = self._driver.fetch(statement, {"idx": index})[0][0]
        return 0 if last is None else int(last) + 1


class SqlWriteTx:
    """One append transaction (:class:`~ledger.storage.WriteTx`) on a locked connection.

    Puts are buffered and written at commit; every read consults the buffer
    before the database, so the transaction sees its own writes. Because the
    transaction holds the log's write lock, nothing else changes the tables
    while it runs, so it also remembers what it has read (keys, participants,
    nodes, event ids found absent) instead of asking again. Obtain one from
    :meth:`SqlStore.write`, never directly.
    """

    FLUSH_ROWS = 5000
    """Buffered rows (entries plus nodes) after which the buffer is written early."""

    def __init__(
        self, conn: Connection, upserts: _Upserts, *, size: int, last_leaf: Digest
    ) -> None:
        self._conn = conn
        self._upserts = upserts
        self._head_size = size
        self._size = size
        self._last_leaf = last_leaf
        self._open = True
        # The buffer: written by _flush.
        self._entry_rows: list[dict[str, Any]] = []
        self._entries_by_event: dict[Digest, Entry] = {}
        self._prevs: set[bytes] = set()
        self._nodes: dict[NodeId, Digest] = {}
        self._unchecked: list[NodeId] = []
        """Buffered nodes from put_nodes not yet compared with the database."""
        self._participants: dict[str, ParticipantRecord] = {}
        self._keys: dict[KeyId, tuple[KeyRecord, str | None]] = {}
        self._checkpoints: dict[int, StoredCheckpoint] = {}
        # What this transaction has read from (or flushed to) the database.
        self._absent_events: set[Digest] = set()
        self._known_nodes: dict[NodeId, Digest] = {}
        self._known_keys: dict[KeyId, KeyRecord | None] = {}
        self._known_participants: dict[str, ParticipantRecord | None] = {}
        # Domain changes: staged in an overlay (which answers this transaction's
        # reads) and buffered as rows, written at commit only (see _StoredDomain).
        self._driver = _Driver(conn)
        self._stored_domain = _StoredDomain(self._driver)
        self._domain = DomainOverlay(self._stored_domain)
        self._event_rows: list[dict[str, Any]] = []
        self._event_rows_by_id: dict[bytes, dict[str, Any]] = {}
        self._corrections: dict[bytes, int] = {}
        self._lots: dict[str, LotState] = {}
        self._shipments: dict[bytes, ShipmentState] = {}
        self._lot_event_rows: list[dict[str, Any]] = []
        self._edge_rows: list[dict[str, Any]] = []
        self._lot_event_pos: dict[int, int] = {}
        self._edge_pos: dict[int, int] = {}

    # -- reads -------------------------------------------------------------

    def size(self) -> int:
        """Number of entries, including this transaction's."""
        return self._size

    def last_leaf_hash(self) -> Digest:
        """Leaf hash of the newest entry (32 zero bytes for an empty log)."""
        return self._last_leaf

    def entry_by_event_id(self, event_id: Digest) -> Entry | None:
        """The entry whose statement has this event id, if any."""
        pending = self._entries_by_event.get(event_id)
        if pending is not None:
            return pending
        if event_id in self._absent_events:
            return None
        rows = self._driver.fetch(self._driver.sql.sel_entry_by_event, {"event_id": event_id})
        if not rows:
            self._absent_events.add(event_id)
            return None
        return _entry(rows[0])

    def nodes(self, node_ids: Sequence[NodeId]) -> dict[NodeId, Digest]:
        """Hashes of stored nodes, buffered ones included.

        Raises:
            NotFoundError: a node is neither buffered nor stored.
        """
        result: dict[NodeId, Digest] = {}
        missing: list[NodeId] = []
        for node_id in node_ids:
            value = self._nodes.get(node_id)
            if value is None:
                value = self._known_nodes.get(node_id)
            if value is None:
                missing.append(node_id)
            else:
                result[node_id] = value
        if not missing:
            return result
        stored = self._driver.read_nodes(missing)
        _require_nodes(missing, stored)
        self._known_nodes.update(stored)
        result.update(stored)
        return {node_id: result[node_id] for node_id in node_ids}

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """Registry record of a key, this transaction's changes included."""
        pending = self._keys.get(key_id)
        if pending is not None:
            return pending[0]
        if key_id in self._known_keys:
            return self._known_keys[key_id]
        rows = self._driver.fetch(self._driver.sql.sel_key, {"key_id": key_id})
        record = _key(rows[0]) if rows else None
        self._known_keys[key_id] = record
        return record

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """Registry record of a participant, this transaction's changes included."""
        pending = self._participants.get(participant_id)
        if pending is not None:
            return pending
        if participant_id in self._known_participants:
            return self._known_participants[participant_id]
        rows = self._driver.fetch(self._driver.sql.sel_participant, {"pid": participant_id})
        record = _participant(rows[0]) if rows else None
        self._known_participants[participant_id] = record
        return record

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size, this transaction's included."""
        rows = self._driver.fetch(self._driver.sql.sel_latest_checkpoint, {})
        stored = _checkpoint(rows[0]) if rows else None
        if self._checkpoints:
            pending = self._checkpoints[max(self._checkpoints)]
            if stored is None or pending.size >= stored.size:
                return pending
        return stored

    def lot(self, lot_id: str) -> LotState | None:
        """A lot's state, this transaction's changes included."""
        return self._domain.lot(lot_id)

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """A shipment, this transaction's changes included."""
        return self._domain.shipment(event_id)

    def event(self, event_id: bytes) -> EventRecord | None:
        """A domain statement's record, this transaction's changes included."""
        return self._domain.event(event_id)

    def edges_into(self, lot_id: str) -> list[Edge]:
        """Stored edges into ``lot_id`` in log order: as the memory store, without
        this transaction's (its DomainOverlay stages lots, shipments and events only)."""
        return self._stored_domain.edges(self._stored_domain.sql.sel_edges_into, lot_id)

    def edges_from(self, lot_id: str) -> list[Edge]:
        """Stored edges from ``lot_id`` in log order (without this transaction's)."""
        return self._stored_domain.edges(self._stored_domain.sql.sel_edges_from, lot_id)

    # -- writes ------------------------------------------------------------

    def put_entry(self, entry: Entry, leaf_hash: Digest) -> None:
        """Store an entry at ``entry.index`` (which must equal ``size()``) and its leaf hash.

        Raises:
            ConflictError: the index is taken or leaves a gap, the event id is
                stored, or ``entry.prev`` is already some entry's ``prev`` (a fork).
        """
        self._check_open()
        if entry.index != self._size:
            raise ConflictError(f"entry index {entry.index} is not the next index {self._size}")
        event_id = entry.event_id
        if event_id in self._entries_by_event:
            raise ConflictError("event id already stored")
        if entry.prev in self._prevs:
            raise ConflictError(f"entry {entry.index} would fork the log: prev already chained")
        # The usual append (event id just looked up and found absent, prev = the
        # newest leaf) needs no query: with honest leaf hashes no stored entry
        # can chain to the newest leaf, and the unique index on prev refuses a
        # dishonest one when the buffer is written.
        if event_id not in self._absent_events or entry.prev != self._last_leaf:
            with _TRANSLATE:
                clashes = self._conn.execute(
                    _SEL_CLASH, {"event_id": event_id, "prev": entry.prev}
                ).all()
            for clash in clashes:
                if clash.event_id == event_id:
                    raise ConflictError("event id already stored")
            if clashes:
                raise ConflictError(f"entry {entry.index} would fork the log: prev already chained")
        self._absent_events.discard(event_id)
        self._entry_rows.append(
            {
                "idx": entry.index,
                "event_id": event_id,
                "accepted_ms": entry.accepted_ms,
                "prev": entry.prev,
                "statement": entry.statement,
                "signature": entry.signature,
            }
        )
        self._entries_by_event[event_id] = entry
        self._prevs.add(entry.prev)
        self._nodes[(0, entry.index)] = leaf_hash
        self._size += 1
        self._last_leaf = leaf_hash
        self._maybe_flush()

    def put_nodes(self, nodes: Mapping[NodeId, Digest]) -> None:
        """Store Merkle nodes; re-putting a stored node with the same hash is a no-op.

        Nodes already in this transaction's buffer are compared here; nodes
        already in the database are compared in one batched query when the
        buffer is written (at commit at the latest), so an append costs no
        extra round trip.

        Raises:
            ConflictError: a node is already stored with another hash (here,
                keeping nothing of this call, or when the buffer is written).
        """
        self._check_open()
        fresh: list[NodeId] = []
        for node_id, value in nodes.items():
            buffered = self._nodes.get(node_id)
            if buffered is None:
                buffered = self._known_nodes.get(node_id)
            if buffered is None:
                fresh.append(node_id)
            elif buffered != value:
                raise ConflictError(f"Merkle node {node_id} already stored with another hash")
        for node_id in fresh:
            self._nodes[node_id] = nodes[node_id]
        self._unchecked.extend(fresh)
        self._maybe_flush()

    def apply_registry(self, changes: Sequence[RegistryChange]) -> None:
        """Apply registry changes in order (all or none).

        Raises:
            NotFoundError: a revocation names a key that is not registered.
        """
        self._check_open()
        participants: dict[str, ParticipantRecord] = {}
        keys: dict[KeyId, tuple[KeyRecord, str | None]] = {}
        for change in changes:
            if isinstance(change, AddParticipant):
                participants[change.participant_id] = ParticipantRecord(
                    participant_id=change.participant_id,
                    profile=change.profile,
                    enrolled_at=change.index,
                    operator=change.operator,
                )
            elif isinstance(change, AddKey):
                keys[change.key_id] = (
                    KeyRecord(
                        key_id=change.key_id,
                        participant=change.participant,
                        public=change.public,
                        added_at=change.index,
                    ),
                    None,
                )
            else:
                old = keys[change.key_id][0] if change.key_id in keys else self.key(change.key_id)
                if old is None:
                    raise NotFoundError(f"cannot revoke unregistered key {change.key_id.hex()}")
                keys[change.key_id] = (replace(old, revoked_at=change.index), change.reason)
        self._participants.update(participants)
        self._keys.update(keys)

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a signed checkpoint (one per size; a second one for a size replaces it)."""
        self._check_open()
        self._checkpoints[checkpoint.size] = checkpoint

    def apply_domain(self, changes: Sequence[DomainChange]) -> None:
        """Stage domain changes (reads in this transaction see them); written at commit.

        Raises:
            KeyError: a MarkCorrected names an unknown event (as DomainState.apply).
        """
        self._check_open()
        staged = list(changes)
        self._domain.apply(staged)
        sql = self._stored_domain.sql
        for change in staged:
            if isinstance(change, PutLot):
                self._lots[change.state.lot_id] = change.state
            elif isinstance(change, AddLotEvent):
                self._lot_event_rows.append(
                    {
                        "lot_id": change.lot_id,
                        "idx": change.index,
                        "pos": self._next_pos(self._lot_event_pos, sql.last_event_pos, change),
                        "kind": change.kind,
                    }
                )
            elif isinstance(change, AddEvent):
                row = {
                    "event_id": change.event_id,
                    "idx": change.index,
                    "kind": change.kind,
                    "participant": change.participant,
                    "time": change.time,
                    "corrected_by": None,
                }
                self._event_rows.append(row)
                self._event_rows_by_id[change.event_id] = row
                # Nothing is stored for a new statement yet: its rows number from 0.
                self._lot_event_pos.setdefault(change.index, 0)
                self._edge_pos.setdefault(change.index, 0)
            elif isinstance(change, PutShipment):
                self._shipments[change.state.event_id] = change.state
            elif isinstance(change, AddEdge):
                self._edge_rows.append(
                    {
                        "parent": change.parent,
                        "child": change.child,
                        "idx": change.index,
                        "pos": self._next_pos(self._edge_pos, sql.last_edge_pos, change),
                        "kind": change.kind,
                    }
                )
            elif isinstance(change, MarkCorrected):
                pending = self._event_rows_by_id.get(change.event_id)
                if pending is not None:
                    pending["corrected_by"] = change.by_index
                else:
                    self._corrections[change.event_id] = change.by_index

    def _next_pos(
        self, counters: dict[int, int], query: _Raw, change: AddLotEvent | AddEdge
    ) -> int:
        pos = counters.get(change.index)
        if pos is None:
            pos = self._stored_domain.next_pos(query, change.index)
        counters[change.index] = pos + 1
        return pos

    # -- commit machinery (used by SqlStore.write) ---------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("this write transaction has ended")

    def _maybe_flush(self) -> None:
        if len(self._entry_rows) + len(self._nodes) >= self.FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Write the buffer (parents before children: participants before keys)."""
        conn = self._conn
        with _TRANSLATE:
            if self._unchecked:
                for node_id, value in self._driver.read_nodes(self._unchecked).items():
                    if self._nodes[node_id] != value:
                        raise ConflictError(
                            f"Merkle node {node_id} already stored with another hash"
                        )
                    del self._nodes[node_id]
                    self._known_nodes[node_id] = value
                self._unchecked.clear()
            if self._participants:
                conn.execute(
                    self._upserts.participants,
                    [
                        {
                            "id": p.participant_id,
                            "profile": canonical_bytes(p.profile).decode("utf-8"),
                            "enrolled_at": p.enrolled_at,
                            "operator": p.operator,
                        }
                        for p in self._participants.values()
                    ],
                )
            if self._keys:
                conn.execute(
                    self._upserts.keys,
                    [
                        {
                            "key_id": k.key_id,
                            "participant": k.participant,
                            "public": k.public,
                            "added_at": k.added_at,
                            "revoked_at": k.revoked_at,
                            "revoke_reason": reason,
                        }
                        for k, reason in self._keys.values()
                    ],
                )
            # The bulk of every append: on the DBAPI cursor, like the domain rows.
            if self._entry_rows:
                self._driver.write(self._driver.sql.ins_entries, self._entry_rows)
            if self._nodes:
                self._driver.write(
                    self._driver.sql.ins_nodes,
                    [
                        {"level": level, "idx": index, "hash": value}
                        for (level, index), value in self._nodes.items()
                    ],
                )
            if self._checkpoints:
                conn.execute(
                    self._upserts.checkpoints,
                    [
                        {"size": c.size, "note": c.note, "created_ms": c.created_ms}
                        for c in self._checkpoints.values()
                    ],
                )
        # Flushed rows are in the database now, visible to this transaction only.
        self._known_nodes.update(self._nodes)
        self._known_keys.update((key_id, pair[0]) for key_id, pair in self._keys.items())
        self._known_participants.update(self._participants)
        self._entry_rows.clear()
        self._entries_by_event.clear()
        self._prevs.clear()
        self._nodes.clear()
        self._unchecked.clear()
        self._participants.clear()
        self._keys.clear()
        self._checkpoints.clear()

    def _write_domain(self) -> None:
        """Write the staged domain rows (at commit only; see _StoredDomain)."""
        db = self._driver
        if self._event_rows:
            db.write(db.sql.ins_events, self._event_rows)
        if self._corrections:
            db.write(
                db.sql.upd_corrected,
                [
                    {"corrected_event": event_id, "by_index": by_index}
                    for event_id, by_index in self._corrections.items()
                ],
            )
        if self._lots:
            db.write(db.sql.upsert_lots, [_lot_params(s) for s in self._lots.values()])
        if self._shipments:
            db.write(
                db.sql.upsert_shipments, [_shipment_params(s) for s in self._shipments.values()]
            )
        if self._lot_event_rows:
            db.write(db.sql.ins_lot_events, self._lot_event_rows)
        if self._edge_rows:
            db.write(db.sql.ins_edges, self._edge_rows)

    def _commit_prepare(self) -> None:
        """Flush, write the domain rows and move the head; the caller then commits."""
        self._flush()
        self._write_domain()
        if self._size != self._head_size:
            with _TRANSLATE:
                moved = self._conn.execute(
                    _UPD_HEAD,
                    {
                        "old_size": self._head_size,
                        "new_size": self._size,
                        "new_leaf": self._last_leaf,
                    },
                ).rowcount
            if moved != 1:
                raise ConflictError("the log head moved under this transaction")


# ---------------------------------------------------------------------------
# The store.


class SqlStore:
    """:class:`~ledger.storage.Store` on SQLite or PostgreSQL. Build with :meth:`open`."""

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine made by :func:`_make_engine` whose schema is at head."""
        self._engine = engine
        self._upserts = _Upserts(engine.dialect.name)
        self._chunk_rows = CHUNK_ROWS

    @classmethod
    def open(cls, url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> SqlStore:
        """Connect to an initialised database whose schema is at the head revision.

        Args:
            url: a SQLAlchemy URL: ``sqlite:///path`` or ``postgresql://...``
                (rewritten to the psycopg 3 driver).
            busy_timeout_ms: SQLite only: how long to wait for another writer.

        Raises:
            SchemaError: the database does not exist, is not initialised, or
                its schema is not at the head revision.
            StorageError: the database cannot be reached.
        """
        parsed = _normalise_url(url)
        if _sqlite_file_missing(parsed):
            raise SchemaError(_not_initialised(parsed))
        engine = _make_engine(parsed, busy_timeout_ms=busy_timeout_ms)
        try:
            current, head = _revisions(engine)
            if current is None:
                raise SchemaError(_not_initialised(parsed))
            if current != head:
                raise SchemaError(
                    f"schema revision {current} of the database at {_display(parsed)} "
                    f"is older than {head}: run `mandi admin migrate`"
                    if _is_ancestor(current, head)
                    else f"schema revision {current} of the database at {_display(parsed)} "
                    f"is unknown to this version of Mandi (head {head}): upgrade Mandi"
                )
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for admin tools and tests; never write through it."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return _display(self._engine.url)

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[Connection]:
        with _TRANSLATE, self._engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            yield conn

    def _raw_read(self, query: _Raw, params: Mapping[str, Any]) -> list[Any]:
        """Run one read-only query on a pooled connection's DBAPI cursor; its rows."""
        error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        with _TRANSLATE:
            conn = self._engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(query.sql, query.params(params))
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except error as exc:
            raise StorageError(f"database error: {_first_line(exc)}") from exc
        finally:
            conn.close()  # back to the pool, which resets it (rolls back) on return

    # -- Store protocol ------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[SqlWriteTx]:
        """Begin a serialised write transaction; commit on normal exit, roll back on error.

        Raises:
            ConflictError: the database refused the buffered writes at commit.
            StorageError: the database failed (on SQLite also: another writer
                held the lock for longer than ``busy_timeout_ms``).
        """
        with self._connect(write=True) as conn, conn.begin():
            head = conn.execute(_SEL_HEAD_FOR_UPDATE).first()
            if head is None:
                raise StorageError("the log_head row is missing")
            tx = SqlWriteTx(
                conn, self._upserts, size=head.size, last_leaf=Digest(bytes(head.last_leaf))
            )
            try:
                yield tx
                tx._commit_prepare()
            finally:
                tx._open = False
                tx._driver.close()

    def size(self) -> int:
        """Number of entries (the tree size)."""
        with self._connect() as conn:
            row = conn.execute(_SEL_HEAD).first()
        if row is None:
            raise StorageError("the log_head row is missing")
        return int(row.size)

    def entry(self, index: int) -> Entry:
        """The entry at ``index``.

        Raises:
            NotFoundError: no entry at ``index``.
        """
        with self._connect() as conn:
            row = conn.execute(_SEL_ENTRY, {"idx": index}).first()
        if row is None:
            raise NotFoundError(f"no entry at index {index}")
        return _entry(row)

    def entry_by_event_id(self, event_id: Digest) -> Entry | None:
        """The entry whose statement has this event id, if any."""
        with self._connect() as conn:
            row = conn.execute(_SEL_ENTRY_BY_EVENT, {"event_id": event_id}).first()
        return None if row is None else _entry(row)

    def entries(self, begin: int, end: int) -> Iterator[Entry]:
        """Entries with ``begin <= index < end`` in index order.

        Streams :data:`CHUNK_ROWS` rows per query (keyset pagination on the
        index), each chunk in its own short read transaction; memory stays
        constant whatever the range.

        Raises:
            ValueError: ``begin < 0``.
        """
        if begin < 0:
            raise ValueError("begin must be >= 0")
        cursor = begin
        while cursor < end:
            with self._connect() as conn:
                rows = conn.execute(
                    _SEL_ENTRIES, {"lo": cursor, "hi": end, "n": self._chunk_rows}
                ).all()
            for row in rows:
                yield _entry(row)
            if len(rows) < self._chunk_rows:
                return
            cursor = rows[-1].idx + 1

    def leaf_hashes(self, begin: int, end: int) -> Iterator[tuple[int, Digest]]:
        """Stored level-0 node hashes for ``[begin, min(end, size))`` in order, streamed.

        Raises:
            ValueError: ``begin < 0``.
        """
        if begin < 0:
            raise ValueError("begin must be >= 0")
        cursor, end = begin, min(end, self.size())
        while cursor < end:
            with self._connect() as conn:
                rows = conn.execute(
                    _SEL_LEAVES, {"lo": cursor, "hi": end, "n": self._chunk_rows}
                ).all()
            for row in rows:
                yield row.idx, Digest(bytes(row.hash))
            if len(rows) < self._chunk_rows:
                return
            cursor = rows[-1].idx + 1

    def nodes(self, node_ids: Sequence[NodeId]) -> dict[NodeId, Digest]:
        """Hashes of stored nodes, in the order asked.

        Raises:
            NotFoundError: a node is not stored.
        """
        with self._connect() as conn:
            found = _read_nodes(conn, node_ids)
        _require_nodes(node_ids, found)
        return {node_id: found[node_id] for node_id in node_ids}

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """Registry record of a key (as of the newest entry)."""
        with self._connect() as conn:
            row = conn.execute(_SEL_KEY, {"key_id": key_id}).first()
        return None if row is None else _key(row)

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """Registry record of a participant (as of the newest entry)."""
        with self._connect() as conn:
            row = conn.execute(_SEL_PARTICIPANT, {"pid": participant_id}).first()
        return None if row is None else _participant(row)

    def keys(self) -> list[KeyRecord]:
        """Every registered key, by ``(added_at, key_id)``."""
        with self._connect() as conn:
            rows = conn.execute(_SEL_KEYS).all()
        # Sorted here, not in SQL: a database collation must not change the order.
        return sorted((_key(row) for row in rows), key=lambda k: (k.added_at, k.key_id))

    def participants(self) -> list[ParticipantRecord]:
        """Every participant, by ``(enrolled_at, participant_id)``."""
        with self._connect() as conn:
            rows = conn.execute(_SEL_PARTICIPANTS).all()
        return sorted(
            (_participant(row) for row in rows),
            key=lambda p: (p.enrolled_at, p.participant_id),
        )

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size, if any."""
        with self._connect() as conn:
            row = conn.execute(_SEL_LATEST_CHECKPOINT).first()
        return None if row is None else _checkpoint(row)

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint by ascending size, streamed."""
        cursor = 0
        while True:
            with self._connect() as conn:
                rows = conn.execute(_SEL_CHECKPOINTS, {"lo": cursor, "n": self._chunk_rows}).all()
            for row in rows:
                yield _checkpoint(row)
            if len(rows) < self._chunk_rows:
                return
            cursor = rows[-1].size + 1

    def lot(self, lot_id: str) -> LotState | None:
        """A lot's current state, or None."""
        with self._connect() as conn:
            row = conn.execute(_SEL_LOT, {"lot_id": lot_id}).first()
        return None if row is None else _lot(row)

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """A shipment by the event id of its ship statement, or None."""
        with self._connect() as conn:
            row = conn.execute(_SEL_SHIPMENT, {"event_id": event_id}).first()
        return None if row is None else _shipment(row)

    def event(self, event_id: bytes) -> EventRecord | None:
        """A domain statement's record, ``lots`` in the order its statement listed them."""
        with self._connect() as conn:
            row = conn.execute(_SEL_EVENT, {"event_id": event_id}).first()
            if row is None:
                return None
            return _event(row, conn.execute(_SEL_EVENT_LOTS, {"idx": row.idx}).all())

    def edges_into(self, lot_id: str) -> list[Edge]:
        """Edges whose child is ``lot_id``, in log order."""
        with self._connect() as conn:
            return [_edge(row) for row in conn.execute(_SEL_EDGES_INTO, {"lot_id": lot_id})]

    def edges_from(self, lot_id: str) -> list[Edge]:
        """Edges whose parent is ``lot_id``, in log order."""
        with self._connect() as conn:
            return [_edge(row) for row in conn.execute(_SEL_EDGES_FROM, {"lot_id": lot_id})]

    def history(self, lot_id: str) -> list[LotEvent]:
        """The statements that touched a lot, in log order."""
        with self._connect() as conn:
            rows = conn.execute(_SEL_HISTORY, {"lot_id": lot_id}).all()
        return [LotEvent(lot_id=row.lot_id, index=row.idx, kind=row.kind) for row in rows]

    def history_entries(self, lot_id: str) -> list[HistoryEntry]:
        """:meth:`history` with each statement's entry and domain record, in one query.

        The one query runs on the DBAPI cursor of a pooled connection, outside
        an explicit transaction: a single statement reads one snapshot on
        SQLite and PostgreSQL alike, and SQLAlchemy's execution path (and the
        ``BEGIN``/``ROLLBACK`` around it) would cost more than the query.
        """
        query = _raw_history_entries(self._engine.dialect.name)
        rows = self._raw_read(query, {"lot_id": lot_id})
        return [
            HistoryEntry(
                entry=_entry(row),
                has_record=row[5] is not None,
                participant=row[6],
                corrected_by=row[7],
            )
            for row in rows
        ]

    def held_by(self, participant: str) -> list[LotState]:
        """Lots ``participant`` holds now (held or packed), by lot id."""
        with self._connect() as conn:
            rows = conn.execute(_SEL_HELD, {"participant": participant}).all()
        # Sorted here, not in SQL: a database collation must not change the order.
        return sorted((_lot(row) for row in rows), key=lambda s: s.lot_id)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    # -- beyond the protocol -------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A named setting of this database (such as the log origin), if set."""
        with self._connect() as conn:
            row = conn.execute(_SEL_META, {"key": key}).first()
        return None if row is None else str(row.value)

    def set_meta(self, key: str, value: str) -> None:
        """Set a named setting in its own write transaction (serialised like appends)."""
        with self._connect(write=True) as conn, conn.begin():
            conn.execute(_SEL_HEAD_FOR_UPDATE).first()
            conn.execute(self._upserts.meta, {"key": key, "value": value})

    # -- witness cosignatures, off the log (their own transactions) -----------

    def put_cosignatures(self, cosignatures: Sequence[StoredCosignature]) -> None:
        """Store cosignatures (one per size, name and key hash; a later one replaces); commits.

        Raises:
            NotFoundError: a cosignature's checkpoint is not stored (nothing is stored).
        """
        if not cosignatures:
            return
        rows = [
            {
                "size": c.size,
                "name": c.name,
                "key_hash": c.key_hash,
                "line": c.line,
                "timestamp": c.timestamp,
            }
            for c in cosignatures
        ]
        sizes = sorted({c.size for c in cosignatures})
        with self._connect(write=True) as conn, conn.begin():
            stored = set(
                conn.execute(select(CheckpointRow.size).where(CheckpointRow.size.in_(sizes)))
                .scalars()
                .all()
            )
            missing = [size for size in sizes if size not in stored]
            if missing:
                raise NotFoundError(f"no checkpoint of size {missing[0]} is stored")
            conn.execute(self._upserts.cosignatures, rows)

    def cosignatures(self, size: int) -> list[StoredCosignature]:
        """The cosignatures of the checkpoint of ``size``, by (name, key_hash)."""
        with self._connect() as conn:
            rows = conn.execute(_SEL_COSIGNATURES, {"size": size}).all()
        return _by_witness(_cosignature(row) for row in rows)

    def all_cosignatures(self) -> Iterator[StoredCosignature]:
        """Every cosignature by (size, name, key_hash), streamed a chunk of sizes at a time."""
        cursor = 0
        done = False
        while not done:
            with self._connect() as conn:
                rows = conn.execute(
                    _SEL_COSIGNATURES_FROM, {"lo": cursor, "n": self._chunk_rows}
                ).all()
                done = len(rows) < self._chunk_rows
                if not done:
                    last = rows[-1].size
                    if rows[0].size == last:
                        # One checkpoint with a chunk's worth of cosignatures: read it whole.
                        rows = conn.execute(_SEL_COSIGNATURES, {"size": last}).all()
                    else:
                        # The limit may have cut the last size short: read it again next time.
                        rows = [row for row in rows if row.size != last]
                        last -= 1
                    cursor = last + 1
            yield from _by_witness(_cosignature(row) for row in rows)

    def latest_cosigned_checkpoint(self, min_cosignatures: int = 1) -> StoredCheckpoint | None:
        """The largest checkpoint with at least ``min_cosignatures`` (>= 1) cosignatures."""
        if min_cosignatures < 1:
            raise ValueError("min_cosignatures must be >= 1")
        with self._connect() as conn:
            row = conn.execute(_SEL_LATEST_COSIGNED, {"n": min_cosignatures}).first()
        return None if row is None else _checkpoint(row)

    def witness_size(self, name: str, key_hash: bytes) -> int | None:
        """The largest checkpoint size the witness (name, key_hash) has cosigned, if any."""
        with self._connect() as conn:
            size = conn.execute(_SEL_WITNESS_SIZE, {"name": name, "key_hash": key_hash}).scalar()
        return None if size is None else int(size)

    # -- personal data, off the log (its own transactions; never an entry) -----

    def put_personal(self, record: PersonalRecord) -> None:
        """Store or replace one personal value (by participant and field); commits."""
        row = {
            "participant": record.participant,
            "field": record.field,
            "value": record.value,
            "salt": record.salt,
            "public": record.public,
        }
        with self._connect(write=True) as conn, conn.begin():
            conn.execute(self._upserts.personal, row)

    def personal(self, participant_id: str) -> list[PersonalRecord]:
        """A participant's personal values, by field."""
        with self._connect() as conn:
            rows = conn.execute(_SEL_PERSONAL, {"participant": participant_id}).all()
        records = (
            PersonalRecord(
                participant=row.participant,
                field=row.field,
                value=row.value,
                salt=bytes(row.salt),
                public=bool(row.public),
            )
            for row in rows
        )
        return sorted(records, key=lambda r: r.field)

    def erase_personal(self, participant_id: str, field: str | None = None) -> int:
        """Delete a participant's personal values (one field, or all); commits.

        Returns:
            How many values were deleted.
        """
        statement = delete(PersonalRow).where(PersonalRow.participant == participant_id)
        if field is not None:
            statement = statement.where(PersonalRow.field == field)
        with self._connect(write=True) as conn, conn.begin():
            return int(conn.execute(statement).rowcount)


# ---------------------------------------------------------------------------
# Engines, URLs and the schema lifecycle.


def default_sqlite_url(data_dir: Path) -> str:
    """``sqlite:///<absolute data_dir>/ledger.db``."""
    path = data_dir.expanduser().resolve() / "ledger.db"
    return URL.create("sqlite", database=str(path)).render_as_string()


def migrate(url: str) -> None:
    """Bring the schema to the head revision (``alembic upgrade head``).

    Creates the SQLite file and its parent directory when missing. The whole
    upgrade is one transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: under a
    transaction-scoped advisory lock), so concurrent callers do not collide.

    Raises:
        StorageError: the database cannot be reached or the upgrade failed.
    """
    parsed = _normalise_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = _make_engine(parsed, busy_timeout_ms=DEFAULT_BUSY_TIMEOUT_MS)
    try:
        with _TRANSLATE, engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    # Arbitrary constant: "mandi" in ASCII.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(461766878825)")
                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
    finally:
        engine.dispose()


def schema_status(url: str) -> tuple[str | None, str]:
    """The database's current schema revision (None if not initialised) and the head.

    Raises:
        StorageError: the database cannot be reached.
    """
    parsed = _normalise_url(url)
    if _sqlite_file_missing(parsed):
        return None, _head_revision()
    engine = _make_engine(parsed, busy_timeout_ms=DEFAULT_BUSY_TIMEOUT_MS)
    try:
        return _revisions(engine)
    finally:
        engine.dispose()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    return config


def _head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise SchemaError("no schema migrations found in the installed package")
    return head


def _is_ancestor(revision: str, head: str) -> bool:
    script = ScriptDirectory.from_config(_alembic_config())
    return any(rev.revision == revision for rev in script.walk_revisions("base", head))


def _revisions(engine: Engine) -> tuple[str | None, str]:
    with _TRANSLATE, engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, _head_revision()


def _normalise_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"not a database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StorageError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed


def _display(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _not_initialised(url: URL) -> str:
    return f"database at {_display(url)} is not initialised: run `mandi admin init`"


def _sqlite_file_missing(url: URL) -> bool:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    if url.query.get("uri") in ("true", "1"):
        return False
    return not Path(url.database or "").expanduser().exists()


def _make_engine(url: URL, *, busy_timeout_ms: int) -> Engine:
    """An engine with the SQLite pragmas and transaction hooks installed."""
    if url.get_backend_name() != "sqlite":
        return create_engine(url)
    if busy_timeout_ms < 0:
        raise ValueError("busy_timeout_ms must be >= 0")
    # The pool hands a connection to one thread at a time, so sharing across
    # threads is safe; pysqlite's own check would forbid it.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Switch pysqlite's implicit BEGIN off; _on_begin emits our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that
        # upgrades its read lock later can fail with SQLITE_BUSY at once.
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _conforms(store: SqlStore, tx: SqlWriteTx) -> tuple[Store, WriteTx]:  # pragma: no cover
    """Never called: makes mypy check that the classes satisfy the protocols."""
    return store, tx
