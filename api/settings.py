"""The HTTP server's settings: where the ledger lives and the limits it enforces.

A frozen dataclass read from ``MANDI_*`` environment variables by
:meth:`Settings.from_env` (``mandi serve`` passes its options to the uvicorn
workers that way). It holds no secret: the log key is read from the data
directory by :func:`ledger.datadir.open_ledger`. It opens nothing, except that without
``MANDI_WITNESSES`` it reads the witness list from ``witnesses.txt`` in the data
directory, when that file exists.

=============================  =================================  ==========
variable                       meaning                            default
=============================  =================================  ==========
``MANDI_DATA_DIR``             data directory (keys, SQLite)      ``var``
``MANDI_DATABASE_URL``         SQLAlchemy URL of the ledger DB    SQLite in the data dir
``MANDI_PUBLIC_BASE_URL``      URL the public reaches us at       ``http://127.0.0.1:8000``
``MANDI_CHECKPOINT_DELAY_MS``  longest wait for a checkpoint      1000
``MANDI_MAX_BODY_BYTES``       largest request body               1048576 (1 MiB)
``MANDI_MAX_PAGE_SIZE``        most entries/participants a page   1000
``MANDI_CORS_ORIGINS``         comma-separated origins for GET    ``*``
``MANDI_WITNESSES``            witnesses to push checkpoints to   ``<data dir>/witnesses.txt``
``MANDI_WITNESS_RETRY_S``      seconds between retries of a push  10
=============================  =================================  ==========

``MANDI_WITNESSES`` (and ``witnesses.txt``) list one witness per line,
``URL VKEY`` or ``URL=VKEY`` (blank lines and ``#`` comments are skipped), or
hold a JSON array whose items are ``"URL=VKEY"`` strings or
``{"url": URL, "vkey": VKEY}`` objects. ``URL`` is the witness's tlog-witness
prefix (``/add-checkpoint`` is appended) and ``VKEY`` its ``cosignature/v1``
verifier key. Set ``MANDI_WITNESSES`` to an empty string to ignore the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ledger import DEFAULT_CHECKPOINT_DELAY_MS, MAX_BATCH, LedgerError, NoteVerifier
from ledger.cosigning import WitnessEndpoint, parse_witness_list

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_PAGE_SIZE",
    "DEFAULT_WITNESS_RETRY_S",
    "HARD_MAX_PAGE_SIZE",
    "WITNESSES_FILE",
    "Settings",
    "SettingsError",
    "parse_witnesses",
]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_PAGE_SIZE = 1000
HARD_MAX_PAGE_SIZE = 10_000
DEFAULT_WITNESS_RETRY_S = 10
WITNESSES_FILE = "witnesses.txt"
"""The data directory's witness list, read when ``MANDI_WITNESSES`` is not set."""


class SettingsError(ValueError):
    """A setting is malformed or out of range (names the variable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Configuration of one API process."""

    data_dir: Path = Path("var")
    database_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    checkpoint_delay_ms: int = DEFAULT_CHECKPOINT_DELAY_MS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE
    max_batch: int = MAX_BATCH
    cors_origins: tuple[str, ...] = ("*",)
    run_checkpointer: bool = True
    witnesses: tuple[WitnessEndpoint, ...] = ()
    """Witnesses the checkpoints are pushed to (api.witnessing); their keys go to the lot page."""
    witness_retry_s: int = DEFAULT_WITNESS_RETRY_S

    def __post_init__(self) -> None:
        _in_range("witness_retry_s", self.witness_retry_s, 1, 86_400)
        keys = [(w.verifier.name, w.verifier.key_hash) for w in self.witnesses]
        if len(set(keys)) != len(keys):
            raise SettingsError("witnesses: the same witness key is configured twice")
        _in_range("checkpoint_delay_ms", self.checkpoint_delay_ms, 0, 3_600_000)
        _in_range("max_body_bytes", self.max_body_bytes, 1024, 64 * 1024 * 1024)
        _in_range("max_page_size", self.max_page_size, 1, HARD_MAX_PAGE_SIZE)
        _in_range("max_batch", self.max_batch, 1, MAX_BATCH)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``MANDI_*`` variables (see the module docstring).

        Raises:
            SettingsError: a variable is not a valid value.
        """
        env = os.environ if environ is None else environ
        origins = env.get("MANDI_CORS_ORIGINS", "*")
        data_dir = Path(env.get("MANDI_DATA_DIR", "var"))
        witnesses_text = env.get("MANDI_WITNESSES")
        source = "MANDI_WITNESSES"
        if witnesses_text is None:
            path = data_dir / WITNESSES_FILE
            source = str(path)
            try:
                witnesses_text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                witnesses_text = ""
            except OSError as exc:
                raise SettingsError(f"{source}: {exc.strerror or exc}") from exc
        return cls(
            data_dir=data_dir,
            database_url=env.get("MANDI_DATABASE_URL") or None,
            public_base_url=env.get("MANDI_PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
            checkpoint_delay_ms=_int(env, "MANDI_CHECKPOINT_DELAY_MS", DEFAULT_CHECKPOINT_DELAY_MS),
            max_body_bytes=_int(env, "MANDI_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            max_page_size=_int(env, "MANDI_MAX_PAGE_SIZE", DEFAULT_MAX_PAGE_SIZE),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            witnesses=parse_witnesses(witnesses_text, source=source),
            witness_retry_s=_int(env, "MANDI_WITNESS_RETRY_S", DEFAULT_WITNESS_RETRY_S),
        )


def parse_witnesses(text: str, *, source: str = "MANDI_WITNESSES") -> tuple[WitnessEndpoint, ...]:
    """Parse a witness list (see the module docstring): lines or a JSON array.

    Raises:
        SettingsError: naming ``source`` and the item; a malformed item, URL or vkey.
    """
    try:
        items = parse_witness_list(text)
    except ValueError as exc:
        raise SettingsError(f"{source}: {exc}") from exc
    witnesses = []
    for url, vkey in items:
        try:
            witnesses.append(WitnessEndpoint(url=url, verifier=NoteVerifier.from_vkey(vkey)))
        except (LedgerError, ValueError) as exc:
            raise SettingsError(f"{source}: witness {url}: {exc}") from exc
    return tuple(witnesses)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise SettingsError(f"{name}: must be an integer, got {text!r}") from exc


def _in_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise SettingsError(f"{name}: must be in [{low}, {high}], got {value}")
