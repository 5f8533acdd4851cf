"""The data directory: key files, the default database, and opening a ledger.

A data directory (``--data-dir``, default ``./var``) holds::

    log.key        the log's private key (owner-only permissions)
    log.vkey       the log's C2SP verifier key string (public; give it to auditors)
    operator.key   the operator participant's private key (owner-only)
    ledger.db      the SQLite database, unless --db / MANDI_DATABASE_URL points elsewhere

Private key files use the C2SP/Go ``note`` signer key format,
``PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || 32-byte seed)>``. The log
key is created only by :func:`init_data_dir` (``mandi admin init``), never
implicitly. This module does file and database I/O; the rules are elsewhere.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ledger.admission import LogIdentity
from ledger.checkpoint import NoteVerifier, build_vkey, note_key_hash
from ledger.errors import EncodingError, LedgerError, SchemaError
from ledger.keys import Signer
from ledger.registry import build_enrolment_request
from ledger.service import DEFAULT_CHECKPOINT_DELAY_MS, Ledger, wall_clock_ms
from ledger.statements import check_origin

__all__ = [
    "LOG_KEY_FILE",
    "LOG_VKEY_FILE",
    "OPERATOR_KEY_FILE",
    "DataDirError",
    "InitResult",
    "init_data_dir",
    "load_verifier",
    "open_ledger",
    "read_private_key",
    "resolve_db_url",
    "rfc3339_from_ms",
    "write_private_key",
]

LOG_KEY_FILE = "log.key"
LOG_VKEY_FILE = "log.vkey"
OPERATOR_KEY_FILE = "operator.key"
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_ED25519_TYPE = b"\x01"


class DataDirError(LedgerError):
    """The data directory is missing, not initialised, or unsafe."""

    code = "data_dir"


@dataclass(frozen=True, slots=True, kw_only=True)
class InitResult:
    """What ``admin init`` created."""

    data_dir: Path
    db_url: str
    vkey: str
    operator_id: str
    operator_key_id: str


def rfc3339_from_ms(ms: int) -> str:
    """UTC RFC 3339 with offset, second precision: ``2026-11-28T04:30:00+00:00``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(microsecond=0).isoformat()


def resolve_db_url(data_dir: Path, db_url: str | None) -> str:
    """``db_url`` if given, else ``MANDI_DATABASE_URL``, else SQLite in the data dir."""
    # ledger.storage.sql (SQLAlchemy, Alembic) is imported where a database is used:
    # key and vkey files are read by every CLI command, which must start fast.
    from ledger.storage.sql import default_sqlite_url

    return db_url or os.environ.get("MANDI_DATABASE_URL") or default_sqlite_url(data_dir)


def write_private_key(path: Path, name: str, signer: Signer) -> None:
    """Write a private key file readable only by its owner; never overwrite one.

    Raises:
        DataDirError: the file exists already.
    """
    key_hash = note_key_hash(name, signer.public.raw)
    encoded = base64.b64encode(_ED25519_TYPE + signer.seed()).decode("ascii")
    text = f"{_PRIVATE_PREFIX}{name}+{key_hash.hex()}+{encoded}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise DataDirError(f"{path} exists already; refusing to overwrite a key") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def read_private_key(path: Path) -> tuple[str, Signer]:
    """Read a private key file written by :func:`write_private_key`.

    Raises:
        DataDirError: missing, readable by others, or malformed.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise DataDirError(f"{path} not found: run `mandi admin init` first") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DataDirError(f"{path} is readable by others; chmod 600 it")
    text = path.read_text(encoding="ascii").strip()
    # The base64 key may itself hold '+': split off at most the four name fields.
    parts = text.split("+", 4)
    if len(parts) != 5 or text[: len(_PRIVATE_PREFIX)] != _PRIVATE_PREFIX:
        raise DataDirError(f"{path}: not a PRIVATE+KEY+name+hash+key string")
    name, hash_hex, b64 = parts[2], parts[3], parts[4]
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise DataDirError(f"{path}: not an Ed25519 key")
    signer = Signer.from_seed(raw[1:])
    if note_key_hash(name, signer.public.raw).hex() != hash_hex:
        raise DataDirError(f"{path}: key hash does not match the key")
    return name, signer


def load_verifier(value: str) -> NoteVerifier:
    """A verifier key from a ``name+hash+base64`` string or a file holding one.

    Raises:
        EncodingError: neither a readable file nor a valid verifier key.
    """
    text = value.strip()
    if "+" not in text or os.path.exists(text):
        path = Path(text)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EncodingError(
                f"--log-vkey: {value!r} is neither a verifier key nor a readable file",
                code="bad_vkey",
                field="log_vkey",
            ) from exc
    return NoteVerifier.from_vkey(text)


def init_data_dir(
    data_dir: Path,
    *,
    origin: str,
    db_url: str | None = None,
    operator_id: str = "operator",
    operator_profile: dict[str, str] | None = None,
    clock: Callable[[], int] = wall_clock_ms,
) -> InitResult:
    """Create the log key, the operator key, the schema and the genesis entry.

    Raises:
        DataDirError: the directory is initialised already.
        EncodingError: the origin or operator id breaks its rule.
    """
    check_origin(origin)
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / LOG_KEY_FILE).exists():
        raise DataDirError(f"{data_dir} is initialised already ({LOG_KEY_FILE} exists)")
    url = resolve_db_url(data_dir, db_url)
    from ledger.storage.sql import SqlStore, migrate

    migrate(url)
    store = SqlStore.open(url)
    try:
        if store.size() != 0:
            raise DataDirError(f"the database at {url} already holds a log")
        log_signer = Signer.generate()
        operator = Signer.generate()
        write_private_key(data_dir / LOG_KEY_FILE, origin, log_signer)
        write_private_key(data_dir / OPERATOR_KEY_FILE, operator_id, operator)
        vkey = build_vkey(origin, log_signer.public)
        (data_dir / LOG_VKEY_FILE).write_text(vkey + "\n", encoding="ascii")
        now = rfc3339_from_ms(clock())
        request = build_enrolment_request(
            origin=origin,
            participant_id=operator_id,
            signer=operator,
            time=now,
            profile={"role": "operator", **(operator_profile or {})},
        )
        Ledger.initialise(
            store,
            origin=origin,
            log_signer=log_signer,
            operator_request=request,
            time=now,
            clock=clock,
        )
    finally:
        store.close()
    return InitResult(
        data_dir=data_dir,
        db_url=url,
        vkey=vkey,
        operator_id=operator_id,
        operator_key_id=operator.key_id.hex(),
    )


def open_ledger(
    data_dir: Path,
    *,
    db_url: str | None = None,
    clock: Callable[[], int] = wall_clock_ms,
    checkpoint_delay_ms: int = DEFAULT_CHECKPOINT_DELAY_MS,
) -> Ledger:
    """Open an initialised data directory's ledger with its log key.

    Raises:
        DataDirError: no log key (not initialised).
        SchemaError: database missing or out of date.
    """
    name, log_signer = read_private_key(data_dir / LOG_KEY_FILE)
    from ledger.storage.sql import SqlStore

    url = resolve_db_url(data_dir, db_url)
    store = SqlStore.open(url)
    if store.size() == 0:
        store.close()
        raise SchemaError(f"the database at {url} holds no log: run `mandi admin init`")
    log = LogIdentity(origin=name, log_key=log_signer.public)
    return Ledger(
        store, log=log, log_signer=log_signer, clock=clock, checkpoint_delay_ms=checkpoint_delay_ms
    )


def read_operator(data_dir: Path) -> tuple[str, Signer]:
    """The operator participant id and key from ``operator.key``."""
    return read_private_key(data_dir / OPERATOR_KEY_FILE)
