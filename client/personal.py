"""Personal data at a cooperative: commit to it for the log, keep the values for the server.

When a cooperative enrols a smallholder, the name, phone number and national
ID go into the enrolment profile only as salted commitments
(:mod:`ledger.domain.personal`); the clear values and their salts are handed to
the server's off-log table (``Ledger.put_personal``, ``mandi admin personal
set``). :func:`personal_commitments` does both halves at once, drawing one
fresh salt per value: a salt shared between values, or between people, would
let anyone hash every phone number and match the log.

This module draws randomness and nothing else: it stores nothing and talks to
no server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Set

from ledger.domain.personal import SALT_SIZE, PersonalRecord

__all__ = ["personal_commitments"]


def personal_commitments(
    values: Mapping[str, str],
    public: Set[str] = frozenset(),
    *,
    participant: str,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> tuple[dict[str, str], list[PersonalRecord]]:
    """Commit to a participant's personal values, each under its own fresh salt.

    Args:
        values: field (``name``, ``national_id``, ``phone``) -> clear value,
            exactly as it will be shown later (phone numbers in E.164).
        public: the fields the participant allows on the public page.
        participant: the participant id the values belong to.
        random_bytes: the salt source (``os.urandom``; tests inject their own).

    Returns:
        ``(profile_personal, records)``: the ``personal`` object of the
        enrolment profile (field -> 64-hex commitment), and the off-log
        records (value and salt) for the server, sorted by field.

    Raises:
        EncodingError: a field that is not a personal field, or a bad value
            (see :class:`~ledger.domain.personal.PersonalRecord`).
        ValueError: ``public`` names a field not in ``values``, or the salt
            source returned the same salt twice.
    """
    extra = sorted(set(public) - set(values))
    if extra:
        raise ValueError(f"public names fields without a value: {', '.join(extra)}")
    records: list[PersonalRecord] = []
    salts: set[bytes] = set()
    for field in sorted(values):
        salt = random_bytes(SALT_SIZE)
        if salt in salts:
            raise ValueError("the salt source repeated a salt; every value needs its own")
        salts.add(salt)
        records.append(
            PersonalRecord(
                participant=participant,
                field=field,
                value=values[field],
                salt=salt,
                public=field in public,
            )
        )
    return {r.field: r.commitment for r in records}, records
