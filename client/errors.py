"""The client's exception family: every error the client raises on purpose.

All of them derive from :class:`ClientError`, itself a
:class:`ledger.errors.LedgerError`, so the CLI catches one root and a caller of
the client never sees an httpx, sqlite3 or cryptography exception::

    LedgerError
    └── ClientError
        ├── TransportError         the server could not be reached (after retries)
        ├── ProblemError           the server answered with an error (problem+json)
        │   ├── RefusedError       4xx: the request or statement was refused
        │   └── ServerError        5xx (after retries)
        ├── AuditError             the server showed a log that contradicts itself
        ├── ConfigError            missing or malformed configuration
        ├── KeyStoreError          local key files: missing, unsafe, wrong passphrase
        ├── OutboxError            the local outbox database
        └── ImportRowsError        a CSV file with invalid rows (every row error listed)

This module only defines the types; it raises nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.errors import LedgerError

__all__ = [
    "AuditError",
    "ClientError",
    "ConfigError",
    "ImportRowsError",
    "KeyStoreError",
    "OutboxError",
    "ProblemError",
    "RefusedError",
    "RowError",
    "ServerError",
    "TransportError",
]


class ClientError(LedgerError):
    """Root of the client's errors."""

    code = "client_error"


class TransportError(ClientError):
    """The server could not be reached, or did not answer in time, after every retry."""

    code = "unreachable"


class ProblemError(ClientError):
    """The server answered with an error; carries its problem+json body (RFC 9457).

    Attributes:
        status: the HTTP status.
        problem: the problem+json body as the server sent it (or one made up from
            the status when the body was not problem+json).
        rule: the specific rule broken (problem ``rule``).
        lot: the lot a supply-chain rule refusal concerns, if any.
        numbers: the numbers of a supply-chain rule refusal.
    """

    code = "http_error"

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        code = problem.get("code")
        field = problem.get("field")
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(
            str(detail),
            code=code if isinstance(code, str) and code else f"http_{status}",
            field=field if isinstance(field, str) else None,
        )
        self.status = status
        self.problem: dict[str, Any] = dict(problem)
        rule = problem.get("rule")
        self.rule = rule if isinstance(rule, str) else None
        lot = problem.get("lot")
        self.lot = lot if isinstance(lot, str) else None
        numbers = problem.get("numbers")
        self.numbers: dict[str, Any] = dict(numbers) if isinstance(numbers, dict) else {}


class RefusedError(ProblemError):
    """4xx: the server refused the request; resending it unchanged will not help."""


class ServerError(ProblemError):
    """5xx: the server failed (after retries); the request may be sent again later."""


class AuditError(ClientError):
    """The server showed a log inconsistent with what it showed before, or with what we sent.

    Never retried and never silenced: a log that shrinks, forks, rewrites an
    entry or answers with a proof that does not verify is evidence of
    misbehaviour (or of a different log under the same address).
    """

    code = "audit_failed"


class ConfigError(ClientError):
    """A required setting is missing or malformed (names the flag or variable)."""

    code = "config"


class KeyStoreError(ClientError):
    """A local key is missing, unsafe (readable by others), exists already, or will not open."""

    code = "keystore"


class OutboxError(ClientError):
    """The local outbox database is unusable, or belongs to another log."""

    code = "outbox"


@dataclass(frozen=True, slots=True, kw_only=True)
class RowError:
    """One invalid CSV row: its line number, the column at fault and why."""

    line: int
    column: str | None
    code: str
    message: str

    def to_text(self) -> str:
        """``line 7, column quantity: bad_unit: ...``."""
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.code}: {self.message}"


class ImportRowsError(ClientError):
    """A CSV file has invalid rows; ``rows`` lists every one, and nothing was signed."""

    code = "invalid_rows"

    def __init__(self, message: str, rows: Sequence[RowError]) -> None:
        super().__init__(message)
        self.rows = tuple(rows)
