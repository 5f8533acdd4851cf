"""Wire models: the JSON shapes of the HTTP API, and their conversion to and from core values.

Hex and base64 exist only here: the ledger works with bytes. Request models
refuse unknown fields (``extra="forbid"``) and parse only *shapes*; whether a
statement is canonical, well signed and admissible is decided by the ledger
(:meth:`Envelope.to_signed` hands the base64 text to
:meth:`ledger.SignedStatement.from_wire`). Every model carries an example for
the OpenAPI document; the examples come from the worked example log of
docs/protocol.md.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger import (
    MAX_BATCH,
    Digest,
    EncodingError,
    Entry,
    KeyRecord,
    ParticipantRecord,
    SignedStatement,
)

__all__ = [
    "BatchItemOut",
    "BatchOut",
    "BatchRequest",
    "ConsistencyProofOut",
    "EntriesPage",
    "EntryOut",
    "Envelope",
    "FieldErrorOut",
    "HealthOut",
    "InclusionProofOut",
    "KeyOut",
    "LogInfoOut",
    "ParticipantOut",
    "ParticipantPage",
    "ParticipantWriteOut",
    "Problem",
    "ReadyOut",
    "RegistryOut",
    "RootOut",
    "b64",
    "participant_out",
]

HEX64 = r"^[0-9a-f]{64}$"


def b64(raw: bytes) -> str:
    """Standard padded base64 (RFC 4648 section 4)."""
    return base64.b64encode(raw).decode("ascii")


def _hex(raw: bytes) -> str:
    return raw.hex()


# The example log of docs/protocol.md: entry 2, a harvest by farm-1.
_EX_STATEMENT = (
    "eyJib2R5Ijp7ImxvdCI6ImZhcm0tMS8yMDI2LTExLTI4L0EiLCJwbGFjZSI6IlNoZWlraHVwdXJhLCDZvtmG2KzYp9io"
    "IiwicHJvZHVjdCI6ImJhc21hdGkgcGFkZHkiLCJxdWFudGl0eV9nIjoxMjAwMDAwfSwia2luZCI6ImhhcnZlc3QiLCJv"
    "cmlnaW4iOiJtYW5kaS5leGFtcGxlL2xvZyIsInNpZ25lciI6IjAzMzk2MjE5MjM3Zjc1YTY0ZjEyYWViN2YzOTcyM2Fi"
    "ZjQwMGIxNjBjMzY0OTgwYTc2NWRhYzI0YWViYTI0NjQiLCJ0aW1lIjoiMjAyNi0xMS0yOFQwOTozMDowMCswNTowMCIs"
    "InZlcnNpb24iOjF9"
)
_EX_SIGNATURE = (
    "SPM/vUWeb3kFupsehi95mZSPkiEuSh30cY1pCcEbogKLSgfMwrfADucDx/YiOgbquHtunB8NLu/dD77PDkZ/AA=="
)
_EX_ENTRY = Entry(
    index=2,
    accepted_ms=1795843800000,
    prev=Digest(bytes.fromhex("a4a73db90d8e6b728d2d0b944ee03e6ba16b9aea62a4f5b95b102fb5f9e4f8eb")),
    statement=base64.b64decode(_EX_STATEMENT),
    signature=base64.b64decode(_EX_SIGNATURE),
)
_EX_FARM_KEY_ID = "03396219237f75a64f12aeb7f39723abf400b160c364980a765dac24aeba2464"
_EX_HASH = "7127ae242db753b41a7652b21dedad783a7765402c34096d7cf05f0868cd46a2"
_EX_ROOT = "03a675af8076e52e26b5260b296f6fe8d96f7b4eab80040b8907b0c92d2e6b7e"
_EX_ROOT_2 = "9117f5eaf375881136721ca57505433a90283e044e0f893eee3add81a6afd6ad"
_EX_VKEY = "mandi.example/log+fb3bfb1f+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"


def _entry_json(entry: Entry) -> dict[str, Any]:
    raw = entry.to_bytes()
    return {
        "index": entry.index,
        "accepted_ms": entry.accepted_ms,
        "prev": _hex(entry.prev),
        "event_id": _hex(entry.event_id),
        "leaf_hash": _hex(entry.leaf_hash),
        "statement": b64(entry.statement),
        "signature": b64(entry.signature),
        "entry_bytes": b64(raw),
    }


_EX_ENTRY_JSON = _entry_json(_EX_ENTRY)

# ---------------------------------------------------------------------------
# Requests


class Envelope(BaseModel):
    """A signed statement on the wire: its exact canonical bytes and its signature."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"statement": _EX_STATEMENT, "signature": _EX_SIGNATURE}]},
    )

    statement: str = Field(
        description="Standard padded base64 of the statement's RFC 8785 canonical bytes "
        "(at most 65536 bytes before encoding).",
    )
    signature: str = Field(
        description="Standard padded base64 of the 64-byte Ed25519 signature over "
        "'mandi-statement-v1\\n' || statement bytes.",
    )

    def to_signed(self) -> SignedStatement:
        """Decode and shape-check (raises the ledger's EncodingError naming the field)."""
        try:
            return SignedStatement.from_wire(self.statement, self.signature)
        except RecursionError as exc:
            # Python's json recurses per nesting level; a deeply nested statement
            # must be a refusal, not a server error.
            raise EncodingError(
                "statement: JSON nested too deeply", code="too_deep", field="statement"
            ) from exc


class BatchRequest(BaseModel):
    """Up to MAX_BATCH signed statements, appended in order, all or none."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"items": [{"statement": _EX_STATEMENT, "signature": _EX_SIGNATURE}]}]
        },
    )

    items: list[Envelope] = Field(
        min_length=1,
        description=f"1 to {MAX_BATCH} statements; more is refused with 422 batch_too_large.",
        json_schema_extra={"maxItems": MAX_BATCH},
    )


# ---------------------------------------------------------------------------
# Entries and events


class EntryOut(BaseModel):
    """A log entry: the signed statement, where it sits, and its exact bytes."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EX_ENTRY_JSON]})

    index: int = Field(ge=0, description="0-based position in the log (the Merkle leaf index).")
    accepted_ms: int = Field(ge=0, description="When the log accepted it, ms since the epoch.")
    prev: str = Field(pattern=HEX64, description="Leaf hash of the previous entry (hex).")
    event_id: str = Field(pattern=HEX64, description="SHA-256 of the statement bytes (hex).")
    leaf_hash: str = Field(pattern=HEX64, description="SHA-256(0x00 || entry_bytes) (hex).")
    statement: str = Field(description="Base64 of the exact statement bytes.")
    signature: str = Field(description="Base64 of the statement signature.")
    entry_bytes: str = Field(description="Base64 of the entry's canonical bytes (the leaf).")

    @classmethod
    def from_entry(cls, entry: Entry) -> EntryOut:
        """Convert a core entry."""
        return cls(**_entry_json(entry))


class BatchItemOut(BaseModel):
    """One statement of a batch: its entry, and whether this request created it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"created": True, "entry": _EX_ENTRY_JSON}]}
    )

    created: bool
    entry: EntryOut


class BatchOut(BaseModel):
    """The entries of an accepted batch, in request order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"created": 1, "items": [{"created": True, "entry": _EX_ENTRY_JSON}]}]
        }
    )

    created: int = Field(ge=0, description="How many statements this request appended.")
    items: list[BatchItemOut]


class EntriesPage(BaseModel):
    """Entries ``[start, end)`` as JSON (the JSON Lines form carries ``entry_bytes`` only)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"start": 2, "end": 3, "tree_size": 6, "entries": [_EX_ENTRY_JSON]}]
        }
    )

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    tree_size: int = Field(ge=0, description="Log size when the page was read.")
    entries: list[EntryOut]


# ---------------------------------------------------------------------------
# Participants and the registry


class KeyOut(BaseModel):
    """A participant key and the log indices that bound its validity."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key_id": _EX_FARM_KEY_ID,
                    "public_key": "JUO5L/EJVRFHatyDadtt3JM2ZaEZeN2hQE7hBmypVZ0=",
                    "added_at": 1,
                    "revoked_at": 3,
                }
            ]
        }
    )

    key_id: str = Field(pattern=HEX64, description="SHA-256 of the raw public key (hex).")
    public_key: str = Field(description="Base64 of the 32-byte Ed25519 public key.")
    added_at: int = Field(ge=0, description="Index of the statement that added it.")
    revoked_at: int | None = Field(
        default=None, ge=0, description="Index of its revocation or rotation, if any."
    )


class ParticipantOut(BaseModel):
    """A participant: id, public profile, where it was enrolled, and its keys."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "participant_id": "farm-1",
                    "profile": {"name": "Farm One", "region": "Punjab"},
                    "enrolled_at": 1,
                    "operator": False,
                    "keys": [
                        {
                            "key_id": _EX_FARM_KEY_ID,
                            "public_key": "JUO5L/EJVRFHatyDadtt3JM2ZaEZeN2hQE7hBmypVZ0=",
                            "added_at": 1,
                            "revoked_at": None,
                        }
                    ],
                }
            ]
        }
    )

    participant_id: str
    profile: dict[str, Any]
    enrolled_at: int = Field(ge=0)
    operator: bool
    keys: list[KeyOut]


def _key_out(key: KeyRecord, *, tree_size: int | None = None) -> KeyOut:
    revoked = key.revoked_at
    if tree_size is not None and revoked is not None and revoked >= tree_size:
        revoked = None
    return KeyOut(
        key_id=_hex(key.key_id),
        public_key=b64(key.public),
        added_at=key.added_at,
        revoked_at=revoked,
    )


def participant_out(
    record: ParticipantRecord, keys: Iterable[KeyRecord], *, tree_size: int | None = None
) -> ParticipantOut:
    """A participant with its keys; with ``tree_size``, as the first ``tree_size`` entries left it.

    A key exists at size N iff ``added_at < N`` and is revoked iff
    ``revoked_at < N`` (callers pass only keys that exist at that size).
    """
    return ParticipantOut(
        participant_id=record.participant_id,
        profile=dict(record.profile),
        enrolled_at=record.enrolled_at,
        operator=record.operator,
        keys=[_key_out(k, tree_size=tree_size) for k in keys],
    )


class ParticipantPage(BaseModel):
    """A page of participants, by enrolment index."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"offset": 0, "limit": 100, "total": 0, "items": []}]}
    )

    offset: int = Field(ge=0)
    limit: int = Field(ge=1)
    total: int = Field(ge=0)
    items: list[ParticipantOut]


class ParticipantWriteOut(BaseModel):
    """The outcome of an enrol, rotate or revoke: the entry and the participant after it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": True,
                    "entry": _EX_ENTRY_JSON,
                    "participant": {
                        "participant_id": "farm-1",
                        "profile": {},
                        "enrolled_at": 1,
                        "operator": False,
                        "keys": [],
                    },
                }
            ]
        }
    )

    created: bool
    entry: EntryOut
    participant: ParticipantOut | None


class RegistryOut(BaseModel):
    """The participant registry as the first ``tree_size`` entries define it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tree_size": 1, "participants": []}]}
    )

    tree_size: int = Field(ge=0)
    participants: list[ParticipantOut]


# ---------------------------------------------------------------------------
# Log, proofs


class LogInfoOut(BaseModel):
    """What this log is and how far it has grown."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "origin": "mandi.example/log",
                    "tree_size": 6,
                    "checkpoint_size": 6,
                    "vkey": _EX_VKEY,
                }
            ]
        }
    )

    origin: str
    tree_size: int = Field(ge=0)
    checkpoint_size: int | None = Field(default=None, ge=0)
    vkey: str


class InclusionProofOut(BaseModel):
    """RFC 9162 inclusion proof of one leaf in the tree of ``tree_size`` leaves."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "leaf_index": 1,
                    "tree_size": 3,
                    "leaf_hash": "a4a73db90d8e6b728d2d0b944ee03e6ba16b9aea62a4f5b95b102fb5f9e4f8eb",
                    "event_id": _EX_HASH,
                    "root_hash": _EX_ROOT,
                    "proof": [
                        "a748711911a8f0c3644243654e49c77ecefadca02f66e53b8e051e60547a4694",
                        _EX_HASH,
                    ],
                }
            ]
        }
    )

    leaf_index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    leaf_hash: str = Field(pattern=HEX64)
    event_id: str = Field(pattern=HEX64)
    root_hash: str = Field(pattern=HEX64)
    proof: list[str] = Field(description="Sibling hashes from the leaf up (hex).")


class ConsistencyProofOut(BaseModel):
    """RFC 9162 consistency proof between the trees of ``first`` and ``second`` leaves."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first": 2,
                    "second": 3,
                    "first_root": _EX_ROOT_2,
                    "second_root": _EX_ROOT,
                    "proof": [_EX_HASH],
                }
            ]
        }
    )

    first: int = Field(ge=0)
    second: int = Field(ge=0)
    first_root: str = Field(pattern=HEX64)
    second_root: str = Field(pattern=HEX64)
    proof: list[str]


class RootOut(BaseModel):
    """The Merkle root of the first ``tree_size`` entries."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tree_size": 3, "root_hash": _EX_ROOT}]}
    )

    tree_size: int = Field(ge=0)
    root_hash: str = Field(pattern=HEX64)


# ---------------------------------------------------------------------------
# Health and problems


class HealthOut(BaseModel):
    """Liveness."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class ReadyOut(BaseModel):
    """Readiness: the database answers and its schema is current."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ready", "tree_size": 6}]})

    status: str
    tree_size: int = Field(ge=0)


class FieldErrorOut(BaseModel):
    """One schema violation of a request (validation_failed problems)."""

    field: str
    code: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details, with Mandi's stable ``code``, ``field`` and ``rule``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://mandi.example/problems/bad_signature",
                    "title": "Signature does not verify",
                    "status": 403,
                    "detail": "statement signature does not verify with the signer's key",
                    "code": "bad_signature",
                    "field": "signature",
                    "rule": "bad_signature",
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None
    rule: str
    errors: list[FieldErrorOut] | None = None
    lot: str | None = None
    numbers: dict[str, int | str] | None = None
