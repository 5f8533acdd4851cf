"""The one exception hierarchy of Mandi.

Every error the ledger raises on purpose derives from :class:`LedgerError`, so a
caller that catches ``LedgerError`` never sees a foreign library exception.
Programmer errors (a key of the wrong length, a negative index) stay
``ValueError``/``TypeError``.

::

    LedgerError
    ├── VerificationError
    │   ├── SignatureError
    │   ├── ChainError            (expected and actual previous link)
    │   ├── ProofError            (inclusion or consistency)
    │   └── RootMismatchError     (expected and calculated roots)
    ├── EncodingError             (malformed or non-canonical input; names field and rule)
    ├── StatementError            (a well-formed statement the log refuses: unknown signer,
    │                              revoked key, wrong origin, bad registry request)
    ├── RuleError                 (supply-chain rules; stable code, lot, numbers)
    └── StorageError
        ├── NotFoundError
        ├── ConflictError         (sequence gap, fork, concurrent append)
        └── SchemaError           (database missing, not initialised or out of date)
"""

from __future__ import annotations

__all__ = [
    "ChainError",
    "ConflictError",
    "EncodingError",
    "LedgerError",
    "NotFoundError",
    "ProofError",
    "RootMismatchError",
    "RuleError",
    "SchemaError",
    "SignatureError",
    "StatementError",
    "StorageError",
    "VerificationError",
]


class LedgerError(Exception):
    """Root of every error Mandi raises on purpose.

    Attributes:
        code: a stable, machine-readable reason (``snake_case``), used as the
            problem+json ``type`` suffix and in audit findings.
        field: the JSON path of the offending field, when there is one.
    """

    code: str = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.field = field

    @property
    def message(self) -> str:
        """The human-readable message, without the code."""
        return str(self.args[0]) if self.args else ""


class VerificationError(LedgerError):
    """Something that should verify does not."""

    code = "verification_failed"


class SignatureError(VerificationError):
    """An Ed25519 or note signature does not verify."""

    code = "bad_signature"


class ChainError(VerificationError):
    """An entry's ``prev`` does not equal the leaf hash of the entry before it."""

    code = "chain_broken"

    def __init__(self, message: str, *, expected: bytes, actual: bytes) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class ProofError(VerificationError):
    """An inclusion or consistency proof is malformed or does not verify."""

    code = "bad_proof"


class RootMismatchError(ProofError):
    """A proof recomputes a root different from the expected one."""

    code = "root_mismatch"

    def __init__(self, message: str, *, expected: bytes, calculated: bytes) -> None:
        super().__init__(message)
        self.expected = expected
        self.calculated = calculated


class EncodingError(LedgerError):
    """Input that is malformed, not canonical, or breaks a format rule."""

    code = "bad_encoding"


class StatementError(LedgerError):
    """A well-formed statement that the log refuses to append."""

    code = "statement_refused"


class RuleError(LedgerError):
    """A refusal by a supply-chain rule.

    Attributes:
        lot: the lot the rule is about, if any.
        numbers: the quantities or counts that broke the rule.
    """

    code = "rule_violated"

    def __init__(
        self,
        message: str,
        *,
        code: str,
        lot: str | None = None,
        field: str | None = None,
        numbers: dict[str, int | str] | None = None,
    ) -> None:
        super().__init__(message, code=code, field=field)
        self.lot = lot
        self.numbers = dict(numbers or {})


class StorageError(LedgerError):
    """The store failed or holds something impossible."""

    code = "storage_error"


class NotFoundError(StorageError):
    """The requested entry, event, node or checkpoint is not stored."""

    code = "not_found"


class ConflictError(StorageError):
    """An append would fork the log or leave a gap, or lost a race."""

    code = "conflict"


class SchemaError(StorageError):
    """The database is missing, not initialised, or its schema is out of date."""

    code = "schema_error"
