"""Salted hash commitments to personal data, so that it never enters the log in clear.

A smallholder's name, phone number and national ID number are recorded in the
log only as commitments::

    commitment = hex(SHA-256("mandi-personal-v1" LF || salt || UTF-8(value)))

with a fresh random 16-byte ``salt`` for every value. A per-value salt matters:
phone and national ID numbers come from small spaces, so with a shared or no
salt anyone could hash every possible number and match the log. The clear value
and its salt live off the log (the server's personal-data table); showing them
to someone lets that person check the commitment with :func:`verify_commitment`.
Erasing a person's data deletes the clear value and the salt; the log keeps the
commitment, which stays verifiable as a hash but no longer reveals or confirms
anything.

:class:`PersonalRecord` is the off-log row itself (participant, field, clear
value, salt, and whether the participant allowed it on the public page), as a
:class:`~ledger.storage.Store` keeps it.

This module is pure: it never draws randomness (the caller passes the salt,
e.g. ``secrets.token_bytes(SALT_SIZE)``) and it stores nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from typing import Any

from ledger.errors import EncodingError, VerificationError

__all__ = [
    "PERSONAL_DOMAIN",
    "PERSONAL_FIELDS",
    "SALT_SIZE",
    "PersonalRecord",
    "check_commitment",
    "commit",
    "verify_commitment",
]

PERSONAL_DOMAIN = b"mandi-personal-v1\n"
"""Domain-separation prefix of every personal-data commitment."""

SALT_SIZE = 16
"""Bytes of random salt per committed value."""

PERSONAL_FIELDS = ("name", "national_id", "phone")
"""The personal values a profile may commit to (under ``profile.personal``)."""

_MAX_VALUE_CHARS = 200
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_PARTICIPANT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def commit(value: str, salt: bytes) -> str:
    """The commitment to ``value`` under ``salt``: 64 lowercase hex digits.

    Args:
        value: the clear value, exactly as it will later be shown (normalise
            phone numbers to E.164 first; the commitment covers the exact string).
        salt: 16 random bytes, fresh for this value.

    Raises:
        ValueError: ``salt`` is not 16 bytes.
    """
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes")
    return hashlib.sha256(PERSONAL_DOMAIN + bytes(salt) + value.encode("utf-8")).hexdigest()


def verify_commitment(commitment: str, value: str, salt: bytes) -> None:
    """Check that ``commitment`` commits to ``value`` under ``salt``.

    Raises:
        VerificationError: ``commitment_mismatch``.
        ValueError: ``salt`` is not 16 bytes.
    """
    if not hmac.compare_digest(commit(value, salt), commitment):
        raise VerificationError(
            "personal value and salt do not match the commitment", code="commitment_mismatch"
        )


def check_commitment(value: Any, *, field: str) -> str:
    """A commitment as it appears in a profile: 64 lowercase hex digits.

    Raises:
        EncodingError: ``bad_commitment`` naming ``field``.
    """
    if not isinstance(value, str) or not _HEX64_RE.fullmatch(value):
        raise EncodingError(
            f"{field}: must be a 64-hex commitment, never the clear value",
            code="bad_commitment",
            field=field,
        )
    return value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PersonalRecord:
    """One personal value kept off the log, with the salt of its commitment.

    The clear ``value`` and the ``salt`` are left out of ``repr`` so that a log
    line or a traceback never prints them.

    Attributes:
        participant: the participant id the value belongs to.
        field: one of :data:`PERSONAL_FIELDS` (``name``, ``national_id``, ``phone``).
        value: the clear value, exactly the committed string (1-200 characters).
        salt: the 16-byte salt of this value's commitment (never shared).
        public: the participant allowed the value on the public page.

    Raises:
        EncodingError: ``bad_participant_id``, ``bad_value`` (field),
            ``bad_string`` (value) or ``bad_salt``, naming the attribute.
    """

    participant: str
    field: str
    value: str = dataclasses.field(repr=False)
    salt: bytes = dataclasses.field(repr=False)
    public: bool = False

    def __post_init__(self) -> None:
        if not _PARTICIPANT_RE.fullmatch(self.participant):
            raise EncodingError(
                "participant: must match [a-z0-9][a-z0-9._-]{0,63}",
                code="bad_participant_id",
                field="participant",
            )
        if self.field not in PERSONAL_FIELDS:
            raise EncodingError(
                f"field: must be one of {', '.join(PERSONAL_FIELDS)}",
                code="bad_value",
                field="field",
            )
        if not 1 <= len(self.value) <= _MAX_VALUE_CHARS:
            raise EncodingError(
                f"{self.field}: the value must be 1-{_MAX_VALUE_CHARS} characters",
                code="bad_string",
                field=self.field,
            )
        if len(self.salt) != SALT_SIZE:
            raise EncodingError(
                f"{self.field}: the salt must be {SALT_SIZE} bytes", code="bad_salt", field="salt"
            )

    @property
    def commitment(self) -> str:
        """The commitment this record opens (what the profile carries)."""
        return commit(self.value, self.salt)
