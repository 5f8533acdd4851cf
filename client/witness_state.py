"""A witness's memory: the SQLite state file of ``mandi witness serve``.

It owns one file (stdlib :mod:`sqlite3`, WAL, ``synchronous=FULL``), created
on first use, and the one operation that makes a witness safe: a
compare-and-swap of the newest tree it cosigned for a log
(:meth:`WitnessState.commit`). The witness checks a request against what it
read, then asks to store the new tree *only if the stored one is still what it
read*; the check and the write happen inside one ``BEGIN IMMEDIATE``
transaction, so two requests (two threads, or two processes on the same file)
can never both advance the same tree, and a restart starts from what was
committed. Nothing is cosigned before it is stored.

The schema is internal (docs/witness.md describes it)::

    meta(key, value)                  format version; the witness's vkey once it served
    logs(origin, vkey, added_at)      the logs witnessed; the vkey's name is the origin
    trees(origin, size, root_hash,    the newest tree cosigned per origin (the CAS row)
          note, cosigned_at)
    cosigned(origin, size, root_hash, every checkpoint cosigned, one row per size
             note, cosigned_at)       (re-cosigning the same tree refreshes its row)
    evidence(id, origin, received_at, refused requests the log had signed that conflict
             status, code, message,   with what this witness cosigned (409
             request, cosigned_note)  conflicting_root, 422); id = SHA-256(request)

Sizes are stored as decimal text: a checkpoint may name any uint64 size, more
than SQLite's signed 64-bit integers hold. Times are POSIX seconds.

Deliberately not here: the witness's checks (:func:`ledger.witness.check_add_checkpoint`,
pure), signing (the caller holds the key), and HTTP (:mod:`client.witness_app`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.errors import ClientError
from ledger.checkpoint import SIG_TYPE_ED25519, NoteVerifier
from ledger.errors import ConflictError, LedgerError
from ledger.hashing import EMPTY_ROOT, sha256
from ledger.witness import WitnessedTree

__all__ = [
    "STATE_FORMAT",
    "Evidence",
    "StaleTreeError",
    "WitnessState",
    "WitnessStateError",
    "is_state_file",
    "origin_hash",
]

STATE_FORMAT = "mandi-witness-state/1"
"""The ``meta.format`` value of a state file this module wrote."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    vkey TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trees (
    origin TEXT PRIMARY KEY REFERENCES logs(origin),
    size TEXT NOT NULL,
    root_hash BLOB NOT NULL,
    note TEXT NOT NULL,
    cosigned_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT NOT NULL REFERENCES logs(origin),
    size TEXT NOT NULL,
    root_hash BLOB NOT NULL,
    note TEXT NOT NULL,
    cosigned_at INTEGER NOT NULL,
    PRIMARY KEY (origin, size)
);
CREATE TABLE IF NOT EXISTS evidence (
    id BLOB PRIMARY KEY,
    origin TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    status INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    request BLOB NOT NULL,
    cosigned_note TEXT
);
"""


class WitnessStateError(ClientError):
    """The state file cannot be opened, is not a witness state file, or contradicts the flags."""

    code = "witness_state"


class StaleTreeError(ConflictError):
    """The compare-and-swap lost: the stored tree is no longer the one the request was checked
    against (another request advanced it first).

    Attributes:
        known_size: the size now stored (0 when none), for the 409 answer.
    """

    code = "stale_tree"

    def __init__(self, message: str, *, known_size: int) -> None:
        super().__init__(message, field="old")
        self.known_size = known_size


def origin_hash(origin: str) -> str:
    """Lowercase hex SHA-256 of the origin's UTF-8 bytes: how the endpoints name a log."""
    return sha256(origin.encode("utf-8")).hex()


def is_state_file(path: Path) -> bool:
    """True when ``path`` is an SQLite file (the caller then opens it as a state file)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A refused request the log had signed, kept because it conflicts with a cosigned tree.

    Attributes:
        id: SHA-256 of the request body (the same request is kept once).
        origin: the log.
        received_at: POSIX seconds.
        status: the HTTP status answered (409 or 422).
        code: the refusal code (``conflicting_root``, ``bad_consistency_proof``).
        message: the refusal message.
        request: the add-checkpoint request body, byte for byte.
        cosigned_note: the checkpoint this witness had cosigned and the request
            conflicts with (None if it had cosigned none).
    """

    id: bytes
    origin: str
    received_at: int
    status: int
    code: str
    message: str
    request: bytes
    cosigned_note: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: ``id`` hex, ``request`` as UTF-8 text (it is a text format)."""
        return {
            "id": self.id.hex(),
            "origin": self.origin,
            "received_at": self.received_at,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request": self.request.decode("utf-8", errors="replace"),
            "cosigned_note": self.cosigned_note,
        }


def _tree(row: Any) -> WitnessedTree:
    return WitnessedTree(size=int(row[0]), root_hash=bytes(row[1]))


def _normal(tree: WitnessedTree | None) -> WitnessedTree:
    # No row and a stored empty tree mean the same thing to the checks.
    return tree if tree is not None else WitnessedTree(size=0, root_hash=EMPTY_ROOT)


class WitnessState:
    """One witness state file. Every method opens its own short connection, so one
    instance may be shared by the threads of a server.

    Args:
        path: the SQLite file.
        create: create the file and schema if missing (``False``: open read-only,
            for ``mandi witness compare``).

    Raises:
        WitnessStateError: the file cannot be opened or created, or is not a
            witness state file.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._read_only = not create
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WitnessStateError(f"{path}: cannot create: {exc.strerror}") from exc
            self._initialise()
        elif not is_state_file(path):
            raise WitnessStateError(f"{path}: not an SQLite witness state file", field="state")
        with self._connect() as conn:
            fmt = self._meta(conn, "format")
        if fmt != STATE_FORMAT:
            raise WitnessStateError(
                f"{path}: not a witness state file (format {fmt!r}, expected {STATE_FORMAT!r})",
                field="state",
            )

    # -- connections ---------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._read_only:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                )
            else:
                conn = sqlite3.connect(
                    self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
        except sqlite3.Error as exc:
            raise WitnessStateError(f"{self.path}: cannot open: {exc}", field="state") from exc
        with closing(conn):
            try:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA foreign_keys = ON")
                if not self._read_only:
                    conn.execute("PRAGMA synchronous = FULL")
                yield conn
            except sqlite3.Error as exc:
                raise WitnessStateError(f"{self.path}: {exc}", field="state") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: it holds the write lock from its first read."""
        if self._read_only:
            raise WitnessStateError(f"{self.path}: opened read-only", field="state")
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _initialise(self) -> None:
        if self.path.exists() and self.path.stat().st_size and not is_state_file(self.path):
            raise WitnessStateError(f"{self.path}: not an SQLite witness state file", field="state")
        # The schema first, so a foreign SQLite file is refused before anything changes in it.
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            if exists is None and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise WitnessStateError(
                    f"{self.path}: an SQLite file that is not a witness state file",
                    field="state",
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if exists is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (STATE_FORMAT,))
        with self._connect() as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise WitnessStateError(f"{self.path}: cannot switch to WAL (got {mode})")

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> str | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    # -- the witness and its logs ---------------------------------------------

    def bind_witness(self, vkey: str) -> None:
        """Record the witness's cosignature vkey on first use; refuse another one later.

        A state file is one witness's memory: serving it under another key would
        let a second identity inherit (or lose) what the first one promised.

        Raises:
            WitnessStateError: the file belongs to a witness with another vkey.
        """
        with self._write() as conn:
            known = self._meta(conn, "witness_vkey")
            if known is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('witness_vkey', ?)", (vkey,))
            elif known != vkey:
                raise WitnessStateError(
                    f"{self.path} belongs to the witness {known}, not {vkey}", field="key"
                )

    def witness_vkey(self) -> str | None:
        """The vkey of the witness that served this file, if one has."""
        with self._connect() as conn:
            return self._meta(conn, "witness_vkey")

    def add_log(self, verifier: NoteVerifier, *, now: int) -> None:
        """Witness a log from now on (idempotent for the same vkey).

        Raises:
            WitnessStateError: the key is not a type ``0x01`` note key, or the
                origin is witnessed already with another vkey (a log key cannot be
                swapped under a witness's history).
        """
        if verifier.sig_type != SIG_TYPE_ED25519:
            raise WitnessStateError(
                f"the log key {verifier.name!r} is not an Ed25519 (type 0x01) note key",
                field="log",
            )
        vkey = verifier.to_vkey()
        with self._write() as conn:
            row = conn.execute(
                "SELECT vkey FROM logs WHERE origin = ?", (verifier.name,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO logs (origin, vkey, added_at) VALUES (?, ?, ?)",
                    (verifier.name, vkey, now),
                )
            elif str(row[0]) != vkey:
                raise WitnessStateError(
                    f"the log {verifier.name!r} is witnessed with the key {row[0]} in "
                    f"{self.path}, not {vkey}",
                    field="log",
                )

    def logs(self) -> list[NoteVerifier]:
        """The logs witnessed, by origin.

        Raises:
            WitnessStateError: a stored vkey no longer parses (a damaged file).
        """
        with self._connect() as conn:
            rows = conn.execute("SELECT origin, vkey FROM logs ORDER BY origin").fetchall()
        verifiers = []
        for origin, vkey in rows:
            try:
                verifier = NoteVerifier.from_vkey(str(vkey))
            except LedgerError as exc:
                raise WitnessStateError(
                    f"{self.path}: the stored key of {origin!r} is damaged: {exc.message}",
                    field="log",
                ) from exc
            verifiers.append(verifier)
        return verifiers

    def origin_for_hash(self, hex_hash: str) -> str | None:
        """The witnessed origin whose :func:`origin_hash` is ``hex_hash``, if any."""
        with self._connect() as conn:
            rows = conn.execute("SELECT origin FROM logs").fetchall()
        for (origin,) in rows:
            if origin_hash(str(origin)) == hex_hash:
                return str(origin)
        return None

    # -- trees -----------------------------------------------------------------

    def latest(self, origin: str) -> WitnessedTree | None:
        """The newest tree cosigned for ``origin`` (None if none)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT size, root_hash FROM trees WHERE origin = ?", (origin,)
            ).fetchone()
        return None if row is None else _tree(row)

    def latest_note(self, origin: str) -> str | None:
        """The newest checkpoint cosigned for ``origin``: the log's signature and this
        witness's cosignature (None if none)."""
        with self._connect() as conn:
            row = conn.execute("SELECT note FROM trees WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else str(row[0])

    def history(self, origin: str) -> list[str]:
        """Every checkpoint cosigned for ``origin``, oldest first (sizes only grow)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT note FROM cosigned WHERE origin = ? ORDER BY rowid", (origin,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def commit(
        self,
        origin: str,
        *,
        expected: WitnessedTree | None,
        tree: WitnessedTree,
        note: str,
        cosigned_at: int,
    ) -> None:
        """Store a newly cosigned tree if the stored one is still ``expected`` (compare-and-swap).

        Args:
            origin: a witnessed log.
            expected: the tree the request was checked against (None: none stored;
                an empty tree counts as none).
            tree: the new tree; the caller checked it extends ``expected``.
            note: the checkpoint with the log's signature and the new cosignature.
            cosigned_at: the cosignature's timestamp.

        Raises:
            StaleTreeError: the stored tree is no longer ``expected``; carries the
                size now stored. Nothing was written.
            WitnessStateError: the origin is not a witnessed log.
        """
        size = str(tree.size)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM logs WHERE origin = ?", (origin,)).fetchone() is None:
                raise WitnessStateError(f"{origin!r} is not a witnessed log", field="origin")
            row = conn.execute(
                "SELECT size, root_hash FROM trees WHERE origin = ?", (origin,)
            ).fetchone()
            current = _normal(None if row is None else _tree(row))
            if current != _normal(expected):
                raise StaleTreeError(
                    f"old: the tree of {origin!r} moved to size {current.size} meanwhile",
                    known_size=current.size,
                )
            conn.execute(
                "INSERT INTO trees (origin, size, root_hash, note, cosigned_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET size = excluded.size, "
                "root_hash = excluded.root_hash, note = excluded.note, "
                "cosigned_at = excluded.cosigned_at",
                (origin, size, tree.root_hash, note, cosigned_at),
            )
            conn.execute(
                "INSERT INTO cosigned (origin, size, root_hash, note, cosigned_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin, size) DO UPDATE SET "
                "note = excluded.note, cosigned_at = excluded.cosigned_at",
                (origin, size, tree.root_hash, note, cosigned_at),
            )

    # -- evidence --------------------------------------------------------------

    def add_evidence(
        self,
        *,
        origin: str,
        received_at: int,
        status: int,
        code: str,
        message: str,
        request: bytes,
        cosigned_note: str | None,
    ) -> bytes:
        """Keep a refused, log-signed, conflicting request (kept once per request body).

        Returns:
            The evidence id, SHA-256 of ``request``.
        """
        evidence_id = sha256(request)
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO evidence (id, origin, received_at, status, code, message, "
                "request, cosigned_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (evidence_id, origin, received_at, status, code, message, request, cosigned_note),
            )
        return evidence_id

    def evidence(self, origin: str) -> list[Evidence]:
        """The evidence kept against ``origin``, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, origin, received_at, status, code, message, request, cosigned_note "
                "FROM evidence WHERE origin = ? ORDER BY rowid",
                (origin,),
            ).fetchall()
        return [
            Evidence(
                id=bytes(row[0]),
                origin=str(row[1]),
                received_at=int(row[2]),
                status=int(row[3]),
                code=str(row[4]),
                message=str(row[5]),
                request=bytes(row[6]),
                cosigned_note=None if row[7] is None else str(row[7]),
            )
            for row in rows
        ]
