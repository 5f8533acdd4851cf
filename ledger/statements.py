"""Statements (what a participant signs) and entries (what the log appends).

A statement is a canonical JSON object with exactly these envelope fields::

    {"body": {...}, "kind": str, "origin": str, "signer": hex key id,
     "time": RFC 3339 with offset, "version": 1}

It names no log position, so it can be signed offline and submitted later.
Signature = Ed25519 over ``STATEMENT_DOMAIN || canonical bytes``; event id =
SHA-256 of the canonical bytes. An entry is the canonical JSON object::

    {"accepted_ms": int, "index": int, "prev": hex, "signature": base64,
     "statement": base64}

whose leaf hash is SHA-256(0x00 || entry bytes); ``prev`` of entry i is the leaf
hash of entry i-1 (32 zero bytes for entry 0). The byte-exact description and
worked examples are in docs/protocol.md.

This module builds, parses and checks the shape of these values and the
signature over them. Which signer may sign what is :mod:`ledger.registry`'s
business, and what a kind's body means belongs to its own module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.encoding import MAX_SAFE_INTEGER, canonical_bytes, decode_canonical
from ledger.errors import EncodingError
from ledger.hashing import ZERO_HASH, Digest, KeyId, event_id, leaf_hash
from ledger.keys import Signer, VerifyingKey, b64decode, b64encode

__all__ = [
    "ENVELOPE_FIELDS",
    "MAX_STATEMENT_BYTES",
    "STATEMENT_DOMAIN",
    "STATEMENT_VERSION",
    "Entry",
    "SignedStatement",
    "Statement",
    "check_origin",
    "check_time",
    "sign_statement",
]

STATEMENT_VERSION = 1
STATEMENT_DOMAIN = b"mandi-statement-v1\n"
"""Domain-separation prefix of every statement signature."""

MAX_STATEMENT_BYTES = 64 * 1024
"""Statements are small facts; documents go off the log, addressed by hash."""

ENVELOPE_FIELDS = frozenset({"body", "kind", "origin", "signer", "time", "version"})

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_ORIGIN_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
# RFC 3339 date-time with a mandatory offset (Z or +hh:mm); fractions allowed.
_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
)


def check_origin(origin: object, *, field: str = "origin") -> str:
    """A log origin: 1-255 printable ASCII characters without spaces (C2SP origin line).

    Raises:
        EncodingError: naming ``field``.
    """
    if not isinstance(origin, str) or not _ORIGIN_RE.fullmatch(origin) or "+" in origin:
        raise EncodingError(
            f"{field}: must be 1-255 printable ASCII characters without spaces or '+'",
            code="bad_origin",
            field=field,
        )
    return origin


def check_time(text: Any, *, field: str = "time") -> datetime:
    """Parse an RFC 3339 date-time that carries an explicit offset.

    Raises:
        EncodingError: naming ``field`` when the text is not RFC 3339 with offset.
    """
    if not isinstance(text, str) or not _RFC3339_RE.fullmatch(text):
        raise EncodingError(
            f"{field}: must be an RFC 3339 date-time with offset, e.g. 2026-11-28T09:30:00+05:00",
            code="bad_time",
            field=field,
        )
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EncodingError(f"{field}: {exc}", code="bad_time", field=field) from exc


def check_hex_digest(text: Any, *, field: str) -> bytes:
    """64 lowercase hex digits -> 32 bytes.

    Raises:
        EncodingError: naming ``field``.
    """
    if not isinstance(text, str) or not _HEX64_RE.fullmatch(text):
        raise EncodingError(
            f"{field}: must be 64 lowercase hex digits", code="bad_hex", field=field
        )
    return bytes.fromhex(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    """A parsed, shape-checked statement together with its exact canonical bytes.

    Build one with :meth:`build` (for signing) or :meth:`from_bytes` (for checking
    what arrived); either way ``raw`` is the canonical encoding of the fields.
    """

    origin: str
    kind: str
    signer: KeyId
    time: str
    body: dict[str, Any]
    raw: bytes

    @classmethod
    def build(
        cls, *, origin: str, kind: str, signer: KeyId, time: str, body: dict[str, Any]
    ) -> Statement:
        """Assemble and canonicalise a statement.

        Raises:
            EncodingError: a field breaks its format rule.
        """
        obj = {
            "body": body,
            "kind": kind,
            "origin": origin,
            "signer": signer.hex(),
            "time": time,
            "version": STATEMENT_VERSION,
        }
        return cls.from_bytes(canonical_bytes(obj))

    @classmethod
    def from_bytes(cls, data: bytes) -> Statement:
        """Parse canonical statement bytes and check the envelope.

        Raises:
            EncodingError: not canonical JSON, an unknown or missing envelope field,
                or a field that breaks its rule (the error names the field).
        """
        if len(data) > MAX_STATEMENT_BYTES:
            raise EncodingError(
                f"statement is {len(data)} bytes, limit {MAX_STATEMENT_BYTES}",
                code="too_large",
                field="statement",
            )
        try:
            obj = decode_canonical(data)
        except EncodingError as exc:
            # The bytes as a whole are at fault: name them, so callers can point at them.
            if exc.field is None:
                exc.field = "statement"
            raise
        return cls._from_object(obj, data)

    @classmethod
    def _from_object(cls, obj: dict[str, Any], data: bytes) -> Statement:
        if obj.keys() != ENVELOPE_FIELDS:  # one comparison on the hot path; details if not
            unknown = sorted(set(obj) - ENVELOPE_FIELDS)
            if unknown:
                raise EncodingError(
                    f"unknown envelope field {unknown[0]!r}",
                    code="unknown_field",
                    field=unknown[0],
                )
            missing = sorted(ENVELOPE_FIELDS - set(obj))
            raise EncodingError(
                f"missing envelope field {missing[0]!r}", code="missing_field", field=missing[0]
            )
        if obj["version"] != STATEMENT_VERSION or isinstance(obj["version"], bool):
            raise EncodingError(
                f"version: must be {STATEMENT_VERSION}", code="bad_version", field="version"
            )
        kind = obj["kind"]
        if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
            raise EncodingError(
                "kind: must match [a-z][a-z0-9_]{0,31}", code="bad_kind", field="kind"
            )
        check_origin(obj["origin"])
        signer = KeyId(check_hex_digest(obj["signer"], field="signer"))
        check_time(obj["time"])
        if not isinstance(obj["body"], dict):
            raise EncodingError("body: must be a JSON object", code="bad_body", field="body")
        return cls(
            origin=obj["origin"],
            kind=kind,
            signer=signer,
            time=obj["time"],
            body=obj["body"],
            raw=bytes(data),
        )

    @property
    def event_id(self) -> Digest:
        """SHA-256 of the canonical bytes."""
        return event_id(self.raw)

    def signing_input(self) -> bytes:
        """The exact bytes the Ed25519 signature covers."""
        return STATEMENT_DOMAIN + self.raw


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedStatement:
    """A statement and the signature its signer made over it."""

    statement: Statement
    signature: bytes

    @classmethod
    def from_bytes(cls, statement: bytes, signature: bytes) -> SignedStatement:
        """Parse the statement; the signature is checked by :meth:`verify`."""
        if len(signature) != 64:
            raise EncodingError(
                f"signature: must be 64 bytes, got {len(signature)}",
                code="bad_signature_length",
                field="signature",
            )
        return cls(statement=Statement.from_bytes(statement), signature=bytes(signature))

    @classmethod
    def from_wire(cls, statement_b64: str, signature_b64: str) -> SignedStatement:
        """Parse the base64 wire form (``statement`` and ``signature`` fields)."""
        return cls.from_bytes(
            b64decode(statement_b64, field="statement"),
            b64decode(signature_b64, field="signature"),
        )

    @property
    def event_id(self) -> Digest:
        """The statement's event id."""
        return self.statement.event_id

    def verify(self, key: VerifyingKey) -> None:
        """Check the signature with ``key``, which must be the named signer.

        Raises:
            SignatureError: wrong key or the signature does not verify.
        """
        from ledger.errors import SignatureError

        if key.key_id != self.statement.signer:
            raise SignatureError("statement names a different signer than the key given")
        key.verify(self.signature, self.statement.signing_input())


def sign_statement(signer: Signer, statement: Statement) -> SignedStatement:
    """Sign a statement whose ``signer`` field names this key.

    Raises:
        ValueError: the statement names another key.
    """
    if statement.signer != signer.key_id:
        raise ValueError("statement.signer is not this signer's key id")
    return SignedStatement(statement=statement, signature=signer.sign(statement.signing_input()))


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One log entry: a signed statement at an index, chained to its predecessor."""

    index: int
    accepted_ms: int
    prev: Digest
    statement: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.index <= MAX_SAFE_INTEGER:
            raise ValueError("index must be in [0, 2^53-1]")
        if not 0 <= self.accepted_ms <= MAX_SAFE_INTEGER:
            raise ValueError("accepted_ms must be in [0, 2^53-1]")
        if len(self.prev) != 32:
            raise ValueError("prev must be 32 bytes")

    def to_bytes(self) -> bytes:
        """The entry's canonical JSON bytes (RFC 8785).

        Built directly: every value is an integer or an ASCII string without
        characters that need escaping, and the keys are written in sorted order,
        so this equals ``rfc8785.dumps`` (a test holds it to that).
        """
        return (
            f'{{"accepted_ms":{self.accepted_ms},"index":{self.index},'
            f'"prev":"{self.prev.hex()}","signature":"{b64encode(self.signature)}",'
            f'"statement":"{b64encode(self.statement)}"}}'
        ).encode("ascii")

    @property
    def leaf_hash(self) -> Digest:
        """SHA-256(0x00 || entry bytes); the next entry's ``prev``."""
        return leaf_hash(self.to_bytes())

    @property
    def event_id(self) -> Digest:
        """SHA-256 of the stored statement bytes."""
        return event_id(self.statement)

    @classmethod
    def from_bytes(cls, data: bytes) -> Entry:
        """Parse canonical entry bytes.

        Raises:
            EncodingError: naming the field that breaks the entry format.
        """
        obj = decode_canonical(data)
        expected = {"accepted_ms", "index", "prev", "signature", "statement"}
        if set(obj) != expected:
            extra = sorted(set(obj) ^ expected)
            raise EncodingError(
                f"entry fields must be exactly {sorted(expected)}; offending {extra[0]!r}",
                code="unknown_field",
                field=extra[0],
            )
        for name in ("index", "accepted_ms"):
            if not isinstance(obj[name], int) or isinstance(obj[name], bool) or obj[name] < 0:
                raise EncodingError(
                    f"{name}: must be a non-negative integer", code="bad_integer", field=name
                )
        return cls(
            index=obj["index"],
            accepted_ms=obj["accepted_ms"],
            prev=Digest(check_hex_digest(obj["prev"], field="prev")),
            statement=b64decode(_str(obj, "statement"), field="statement"),
            signature=b64decode(_str(obj, "signature"), field="signature"),
        )

    def signed_statement(self) -> SignedStatement:
        """Parse the stored statement bytes and signature."""
        return SignedStatement.from_bytes(self.statement, self.signature)


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise EncodingError(f"{name}: must be a string", code="bad_type", field=name)
    return value


GENESIS_PREV = ZERO_HASH
