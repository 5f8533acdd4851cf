"""Participant profiles: role, identifier, location and personal-data commitments.

The profile is the ``profile`` object of a registry enrolment request
(:mod:`ledger.registry`), so it is signed by the participant and replayed by
every auditor::

    {"role": "producer", "name"?: str, "gln": "9506000000005" | "local_id": str,
     "location": {"district": str, "province": str, "lat_e6"?: int, "lon_e6"?: int},
     "personal"?: {"name"?: hex, "phone"?: hex, "national_id"?: hex},
     "ext"?: {...}}

* ``role`` decides which statement kinds the participant may sign
  (:data:`ledger.domain.rules.PERMISSIONS`).
* ``name`` is a public display name, meant for organisations (a cooperative, a
  mill, a market). A smallholder's own name goes under ``personal`` instead.
* exactly one of ``gln`` (GS1 GLN, check digit validated) and ``local_id`` is
  required; an operator may have either or neither.
* ``location`` (district, province, optional micro-degree coordinates) is
  required except for the operator.
* ``personal`` holds only salted commitments (:mod:`ledger.domain.personal`);
  the clear values live off the log.

Fields not listed here go under ``ext``; anything else is ``unknown_field``.
This module checks the shape; it does not enrol anyone (that is the registry)
and stores nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ledger.domain.ids import check_gln
from ledger.domain.kinds import check_enum, check_ext, check_object, check_text
from ledger.domain.personal import PERSONAL_FIELDS, check_commitment
from ledger.errors import EncodingError
from ledger.registry import ParticipantRecord

__all__ = [
    "MAX_NAME_CHARS",
    "ROLES",
    "ROLE_OPERATOR",
    "Location",
    "Profile",
    "role_of",
    "validate_profile",
]

ROLE_OPERATOR = "operator"
ROLES = (
    "cooperative",
    "inspector",
    "market",
    "operator",
    "processor",
    "producer",
    "transporter",
    "warehouse",
)
"""Every participant role."""

MAX_NAME_CHARS = 120
_LOCAL_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_LAT_E6 = 90_000_000
_LON_E6 = 180_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a participant is: district and province, optionally coordinates.

    ``lat_e6``/``lon_e6`` are micro-degrees (WGS 84 degrees x 10^6), integers
    because canonical JSON has no floats.
    """

    district: str
    province: str
    lat_e6: int | None = None
    lon_e6: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {"district": self.district, "province": self.province}
        if self.lat_e6 is not None:
            out["lat_e6"] = self.lat_e6
        if self.lon_e6 is not None:
            out["lon_e6"] = self.lon_e6
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """A checked enrolment profile."""

    role: str
    name: str | None = None
    gln: str | None = None
    local_id: str | None = None
    location: Location | None = None
    personal: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Committed personal fields: field name -> 64-hex commitment."""
    ext: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form (what goes into the enrolment request)."""
        out: dict[str, Any] = {"role": self.role}
        for name in ("name", "gln", "local_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.location is not None:
            out["location"] = self.location.to_json()
        if self.personal:
            out["personal"] = dict(self.personal)
        if self.ext is not None:
            out["ext"] = dict(self.ext)
        return out


def _micro_degrees(value: Any, limit: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -limit <= value <= limit:
        raise EncodingError(
            f"{field}: must be an integer in [-{limit}, {limit}] (micro-degrees)",
            code="out_of_range",
            field=field,
        )
    return value


def _location(value: Any, path: str) -> Location:
    check_object(value, path=path, required=("district", "province"), optional=("lat_e6", "lon_e6"))
    lat = value.get("lat_e6")
    lon = value.get("lon_e6")
    if (lat is None) != (lon is None):
        missing = "lon_e6" if lon is None else "lat_e6"
        raise EncodingError(
            f"{path}: lat_e6 and lon_e6 come together",
            code="missing_field",
            field=f"{path}.{missing}",
        )
    return Location(
        district=check_text(value["district"], field=f"{path}.district", max_chars=MAX_NAME_CHARS),
        province=check_text(value["province"], field=f"{path}.province", max_chars=MAX_NAME_CHARS),
        lat_e6=None if lat is None else _micro_degrees(lat, _LAT_E6, f"{path}.lat_e6"),
        lon_e6=None if lon is None else _micro_degrees(lon, _LON_E6, f"{path}.lon_e6"),
    )


def validate_profile(profile: Any, path: str = "body.request.profile") -> Profile:
    """Check an enrolment profile.

    Args:
        profile: the decoded ``profile`` object.
        path: its JSON path, prefixed to every error's field.

    Returns:
        The checked :class:`Profile`.

    Raises:
        EncodingError: naming the field path: ``unknown_field``, ``missing_field``,
            ``bad_value`` (role), ``bad_gln``, ``bad_local_id``, ``ambiguous_id``,
            ``bad_commitment``, ``out_of_range``, ``bad_string``, ``too_long``...
    """
    check_object(
        profile,
        path=path,
        required=("role",),
        optional=("name", "gln", "local_id", "location", "personal", "ext"),
    )
    role = check_enum(profile["role"], ROLES, field=f"{path}.role")
    operator = role == ROLE_OPERATOR
    name = None
    if "name" in profile:
        name = check_text(profile["name"], field=f"{path}.name", max_chars=MAX_NAME_CHARS)
    gln = check_gln(profile["gln"], field=f"{path}.gln") if "gln" in profile else None
    local_id = None
    if "local_id" in profile:
        local_id = profile["local_id"]
        if not isinstance(local_id, str) or not _LOCAL_ID_RE.fullmatch(local_id):
            raise EncodingError(
                f"{path}.local_id: must match [A-Za-z0-9._-]{{1,40}}",
                code="bad_local_id",
                field=f"{path}.local_id",
            )
    if gln is not None and local_id is not None:
        raise EncodingError(
            f"{path}: give either gln or local_id, not both",
            code="ambiguous_id",
            field=f"{path}.local_id",
        )
    if gln is None and local_id is None and not operator:
        raise EncodingError(
            f"{path}: a {role} needs a gln or a local_id", code="missing_field", field=f"{path}.gln"
        )
    location = None
    if "location" in profile:
        location = _location(profile["location"], f"{path}.location")
    elif not operator:
        raise EncodingError(
            f"{path}: a {role} needs a location", code="missing_field", field=f"{path}.location"
        )
    personal: dict[str, str] = {}
    if "personal" in profile:
        at = f"{path}.personal"
        check_object(profile["personal"], path=at, required=(), optional=PERSONAL_FIELDS)
        for key, value in sorted(profile["personal"].items()):
            personal[key] = check_commitment(value, field=f"{at}.{key}")
    ext = check_ext(profile["ext"], field=f"{path}.ext") if "ext" in profile else None
    return Profile(
        role=role,
        name=name,
        gln=gln,
        local_id=local_id,
        location=location,
        personal=MappingProxyType(personal),
        ext=ext,
    )


def role_of(participant: ParticipantRecord) -> str | None:
    """The role a participant acts in, or None when its profile names no known role.

    The profile's ``role`` decides; a registry operator record whose profile
    names no role (an older genesis) acts as ``operator``.
    """
    role = participant.profile.get("role")
    if isinstance(role, str) and role in ROLES:
        return role
    return ROLE_OPERATOR if participant.operator else None
