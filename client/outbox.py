"""The offline outbox: signed statements queue in SQLite first, and are pushed in order.

Every statement the client records is signed locally and written here before
anything is sent (``PRAGMA synchronous=FULL``, WAL), so a statement that was
reported as recorded survives a crash or a pulled plug. :func:`push_pending`
sends the pending ones to the server in queue order, in batches, and marks an
item ``accepted`` only after the server has acknowledged it, in the same local
transaction for the whole batch.

Why a ``kill -9`` at any point neither loses nor duplicates anything:

* before the server commits a batch: the items are still ``pending`` locally and
  are sent again next time;
* after the server committed, before the local mark: the items are still
  ``pending``; sent again, the server recognises each statement by its event id
  (the hash of its bytes) and answers with the existing entry (200,
  ``created: false``), which is then marked;
* during the local mark: SQLite rolls the transaction back; as above.

The queue is keyed by event id, so queueing the same statement twice (the
same CSV row imported again) adds nothing. A statement the server refuses is
marked ``refused`` with the server's problem+json, so the rest of the queue
moves on; ``retry_refused`` puts them back. The outbox also keeps what the
auditor (:mod:`client.auditor`) remembers: the pinned log vkey, every
checkpoint seen, and which accepted statements were proven included.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from client.errors import OutboxError, RefusedError
from client.http import Envelope, MandiClient, Submitted
from ledger.hashing import Digest, event_id
from ledger.service import MAX_BATCH, wall_clock_ms
from ledger.statements import SignedStatement

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "STATES",
    "Outbox",
    "OutboxItem",
    "PushReport",
    "StoredCheckpointRecord",
    "push_pending",
]

State = Literal["pending", "accepted", "refused"]
STATES: tuple[State, ...] = ("pending", "accepted", "refused")

DEFAULT_MAX_BATCH_BYTES = 768 * 1024
"""Most base64 bytes per batch request: under the server's 1 MiB body limit with room to spare."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    statement BLOB NOT NULL,
    signature BLOB NOT NULL,
    source TEXT,
    queued_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'refused')),
    attempts INTEGER NOT NULL DEFAULT 0,
    log_index INTEGER,
    accepted_ms INTEGER,
    leaf_hash BLOB,
    created INTEGER,
    proven_size INTEGER,
    refusal TEXT
);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    note TEXT NOT NULL,
    seen_ms INTEGER NOT NULL
);
"""
_COLUMNS = (
    "seq, event_id, kind, statement, signature, source, queued_ms, state, attempts, "
    "log_index, accepted_ms, leaf_hash, created, proven_size, refusal"
)
_ITEM_RE = re.compile(r"^items\[(\d+)\](?:\.(.*))?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """One queued statement and what became of it."""

    seq: int
    event_id: Digest
    kind: str
    statement: bytes
    signature: bytes
    source: str | None
    queued_ms: int
    state: State
    attempts: int
    log_index: int | None
    accepted_ms: int | None
    leaf_hash: Digest | None
    created: bool | None
    """True when this client's submission appended it; False when the log held it already."""
    proven_size: int | None
    """Tree size of the checkpoint its inclusion was verified against."""
    refusal: dict[str, Any] | None
    """The server's problem+json when refused."""

    @property
    def envelope(self) -> Envelope:
        """The statement as it is sent."""
        return Envelope(statement=self.statement, signature=self.signature)

    def to_json(self) -> dict[str, Any]:
        """The item for ``--json`` output (statement bytes left out)."""
        return {
            "seq": self.seq,
            "event_id": self.event_id.hex(),
            "kind": self.kind,
            "source": self.source,
            "queued_ms": self.queued_ms,
            "state": self.state,
            "attempts": self.attempts,
            "log_index": self.log_index,
            "accepted_ms": self.accepted_ms,
            "created": self.created,
            "proven_size": self.proven_size,
            "refusal": self.refusal,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCheckpointRecord:
    """A checkpoint the auditor has verified and remembers."""

    tree_size: int
    root_hash: Digest
    note: str


class Outbox:
    """The outbox database at ``path`` (created on first use, owner-only).

    One instance is one SQLite connection: use it from one thread.

    Raises:
        OutboxError: the file cannot be opened or is not an outbox.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = not path.exists()
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if fresh:
                os.chmod(path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            # Durable at every commit, WAL included: a recorded statement survives power loss.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"{path}: cannot open the outbox: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: {exc}") from exc
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: commit failed: {exc}") from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: {exc}") from exc

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the outbox's sync lock (one ``mandi sync`` at a time; freed if the process dies).

        Raises:
            OutboxError: another process holds it.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise OutboxError(
                    f"another `mandi sync` is using {self.path}; wait for it to finish"
                ) from exc
            yield
        finally:
            os.close(fd)

    # -- queueing --------------------------------------------------------------

    def add(self, signed: SignedStatement | Envelope, *, source: str | None = None) -> bool:
        """Queue one signed statement; False when it is queued (or was sent) already."""
        env = Envelope.of(signed)
        kind = (
            signed.statement.kind
            if isinstance(signed, SignedStatement)
            else str(json.loads(env.statement).get("kind", ""))
        )
        return self.add_many([(env, kind, source)]) == 1

    def add_many(self, items: Iterable[tuple[Envelope, str, str | None]]) -> int:
        """Queue ``(envelope, kind, source)`` items in one transaction; returns how many were new.

        An item whose event id is in the outbox already (in any state) is skipped.
        """
        now = wall_clock_ms()
        rows = [
            (event_id(env.statement), kind, env.statement, env.signature, source, now)
            for env, kind, source in items
        ]
        with self._tx() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO events "
                "(event_id, kind, statement, signature, source, queued_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    # -- reading -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        found = dict(self._query("SELECT state, count(*) FROM events GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}

    def items(
        self, states: Sequence[State] = STATES, *, limit: int | None = None, after_seq: int = 0
    ) -> list[OutboxItem]:
        """Items in the given states, in queue order."""
        marks = ", ".join("?" for _ in states)
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE state IN ({marks}) AND seq > ? "  # noqa: S608 - placeholders only
            "ORDER BY seq"
        )
        params: list[Any] = [*states, after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_item(row) for row in self._query(sql, params)]

    def pending(self, limit: int | None = None) -> list[OutboxItem]:
        """Pending items, oldest first."""
        return self.items(("pending",), limit=limit)

    def get(self, event: bytes) -> OutboxItem | None:
        """The item with this event id, if queued."""
        rows = self._query(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event,))  # noqa: S608 - constant columns
        return _item(rows[0]) if rows else None

    # -- marking -----------------------------------------------------------------

    def mark_accepted(self, results: Sequence[tuple[OutboxItem, Submitted]]) -> None:
        """Record the server's acknowledgement of items (one transaction)."""
        rows = [
            (r.entry.index, r.entry.accepted_ms, r.entry.leaf_hash, int(r.created), item.seq)
            for item, r in results
        ]
        with self._tx() as db:
            db.executemany(
                "UPDATE events SET state = 'accepted', log_index = ?, accepted_ms = ?, "
                "leaf_hash = ?, created = ?, refusal = NULL, attempts = attempts + 1 "
                "WHERE seq = ?",
                rows,
            )

    def mark_refused(self, item: OutboxItem, problem: dict[str, Any]) -> None:
        """Record the server's refusal of an item, with its problem+json."""
        with self._tx() as db:
            db.execute(
                "UPDATE events SET state = 'refused', refusal = ?, attempts = attempts + 1 "
                "WHERE seq = ?",
                (json.dumps(problem, sort_keys=True), item.seq),
            )

    def retry_refused(self) -> int:
        """Put every refused item back in the queue; returns how many."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE events SET state = 'pending', refusal = NULL WHERE state = 'refused'"
            )
            return cursor.rowcount

    # -- what the auditor remembers ------------------------------------------

    def unproven(self, below_size: int, *, limit: int | None = None) -> list[OutboxItem]:
        """Accepted items not yet proven included, whose index is below ``below_size``."""
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE state = 'accepted' "  # noqa: S608 - constant columns
            "AND proven_size IS NULL AND log_index < ? ORDER BY log_index"
        )
        params: list[Any] = [below_size]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_item(row) for row in self._query(sql, params)]

    def count_unproven(self) -> int:
        """Accepted items whose inclusion has not been verified yet."""
        rows = self._query(
            "SELECT count(*) FROM events WHERE state = 'accepted' AND proven_size IS NULL"
        )
        return int(rows[0][0])

    def max_accepted_index(self) -> int | None:
        """The highest log index of an accepted item."""
        rows = self._query("SELECT max(log_index) FROM events WHERE state = 'accepted'")
        return None if rows[0][0] is None else int(rows[0][0])

    def mark_proven(self, seqs: Sequence[int], tree_size: int) -> None:
        """Record that these items' inclusion verified against the checkpoint of ``tree_size``."""
        with self._tx() as db:
            db.executemany(
                "UPDATE events SET proven_size = ? WHERE seq = ?", [(tree_size, s) for s in seqs]
            )

    def newest_checkpoint(self) -> StoredCheckpointRecord | None:
        """The largest checkpoint seen and verified."""
        rows = self._query(
            "SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
        )
        if not rows:
            return None
        size, root, note = rows[0]
        return StoredCheckpointRecord(tree_size=int(size), root_hash=Digest(bytes(root)), note=note)

    def checkpoint_at(self, tree_size: int) -> StoredCheckpointRecord | None:
        """The checkpoint seen at exactly ``tree_size``, if any."""
        rows = self._query(
            "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size = ?", (tree_size,)
        )
        if not rows:
            return None
        size, root, note = rows[0]
        return StoredCheckpointRecord(tree_size=int(size), root_hash=Digest(bytes(root)), note=note)

    def save_checkpoint(self, tree_size: int, root_hash: bytes, note: str) -> None:
        """Remember a verified checkpoint (a size seen before keeps its first note)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO checkpoints (tree_size, root_hash, note, seen_ms) "
                "VALUES (?, ?, ?, ?)",
                (tree_size, root_hash, note, wall_clock_ms()),
            )

    def meta(self, name: str) -> str | None:
        """A remembered setting (``log_vkey``, ``server``)."""
        rows = self._query("SELECT value FROM meta WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, name: str, value: str) -> None:
        """Remember a setting."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )


def _item(row: tuple[Any, ...]) -> OutboxItem:
    (
        seq,
        eid,
        kind,
        statement,
        signature,
        source,
        queued_ms,
        state,
        attempts,
        log_index,
        accepted_ms,
        leaf,
        created,
        proven_size,
        refusal,
    ) = row
    return OutboxItem(
        seq=seq,
        event_id=Digest(bytes(eid)),
        kind=kind,
        statement=bytes(statement),
        signature=bytes(signature),
        source=source,
        queued_ms=queued_ms,
        state=state,
        attempts=attempts,
        log_index=log_index,
        accepted_ms=accepted_ms,
        leaf_hash=Digest(bytes(leaf)) if leaf is not None else None,
        created=None if created is None else bool(created),
        proven_size=proven_size,
        refusal=json.loads(refusal) if refusal else None,
    )


# ---------------------------------------------------------------------------
# Pushing


@dataclass(slots=True)
class PushReport:
    """What one push did."""

    appended: int = 0
    """Accepted and appended by this push (201)."""
    known: int = 0
    """Accepted: the log held them already (a resend after an interruption, or a re-import)."""
    refused: list[tuple[OutboxItem, dict[str, Any]]] = field(default_factory=list)
    """Refused, with the server's problem+json."""
    requests: int = 0

    @property
    def accepted(self) -> int:
        """Appended or known."""
        return self.appended + self.known


def push_pending(
    outbox: Outbox,
    client: MandiClient,
    *,
    batch_size: int = MAX_BATCH,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    progress: Callable[[int], None] | None = None,
    more_coming: threading.Event | None = None,
    on_accepted: Callable[[Sequence[tuple[OutboxItem, Submitted]]], None] | None = None,
) -> PushReport:
    """Send every pending item to the server in queue order, marking each as answered.

    Items go in batches (``POST /v1/events:batch``, all or nothing) of at most
    ``batch_size`` items and ``max_batch_bytes``. When the server refuses an item
    of a batch (its problem names ``items[i]``), the items before it are sent
    again as a batch, the item is marked refused with the problem, and the push
    goes on with the items after it. A refusal naming no item (a size limit)
    falls back to sending that batch one statement at a time.

    Args:
        outbox: the queue.
        client: the server.
        batch_size: most statements per request (the server takes up to 500).
        max_batch_bytes: most base64 bytes per request.
        progress: called with the number of items answered so far.
        more_coming: while set, an empty queue is waited on rather than ending
            the push (another thread is still queueing).
        on_accepted: called with every acknowledged batch, after it is marked.

    Returns:
        What was appended, already known, and refused.

    Raises:
        TransportError: the server cannot be reached (what was answered stays marked).
        ServerError: the server keeps failing.
        AuditError: an answer does not carry the submitted bytes.
    """
    report = PushReport()
    done = 0

    def accepted(pairs: Sequence[tuple[OutboxItem, Submitted]]) -> None:
        nonlocal done
        outbox.mark_accepted(pairs)
        for _, result in pairs:
            if result.created:
                report.appended += 1
            else:
                report.known += 1
        done += len(pairs)
        if on_accepted is not None:
            on_accepted(pairs)
        if progress is not None:
            progress(done)

    def refused(item: OutboxItem, problem: dict[str, Any]) -> None:
        nonlocal done
        outbox.mark_refused(item, problem)
        report.refused.append((item, problem))
        done += 1
        if progress is not None:
            progress(done)

    def send(chunk: Sequence[OutboxItem]) -> None:
        report.requests += 1
        try:
            result = client.submit_batch([item.envelope for item in chunk])
        except RefusedError as exc:
            position, rest = _item_field(exc.field)
            if position is None or position >= len(chunk):
                if len(chunk) == 1:
                    refused(chunk[0], exc.problem)
                else:
                    for item in chunk:
                        send_one(item)
                return
            if position > 0:
                send(chunk[:position])
            refused(chunk[position], {**exc.problem, "field": rest})
            return
        accepted(list(zip(chunk, result.items, strict=True)))

    def send_one(item: OutboxItem) -> None:
        report.requests += 1
        try:
            result = client.submit(item.envelope)
        except RefusedError as exc:
            refused(item, exc.problem)
            return
        accepted([(item, result)])

    # Every item sent leaves the pending state (accepted or refused), so the
    # oldest pending items are always the next to send.
    while True:
        items = outbox.pending(limit=batch_size)
        if not items:
            if more_coming is not None and more_coming.is_set():
                time.sleep(0.01)
                continue
            # The last look, once the producer is done: nothing was queued behind us.
            items = outbox.pending(limit=batch_size)
            if not items:
                break
        send(_fit(items, max_batch_bytes))
    return report


def _fit(items: Sequence[OutboxItem], max_bytes: int) -> list[OutboxItem]:
    chunk: list[OutboxItem] = []
    size = 0
    for item in items:
        # base64 of statement and signature plus the JSON around them.
        cost = (len(item.statement) + 2) // 3 * 4 + 88 + 32
        if chunk and size + cost > max_bytes:
            break
        chunk.append(item)
        size += cost
    return chunk


def _item_field(field_path: str | None) -> tuple[int | None, str | None]:
    if not field_path:
        return None, None
    match = _ITEM_RE.fullmatch(field_path)
    if match is None:
        return None, field_path
    return int(match.group(1)), match.group(2)
