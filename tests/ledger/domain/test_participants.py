"""Enrolment profiles, roles, and salted commitments to personal data."""

from __future__ import annotations

import hashlib

import pytest

from ledger.domain.participants import Location, Profile, role_of, validate_profile
from ledger.domain.personal import (
    PERSONAL_DOMAIN,
    check_commitment,
    commit,
    verify_commitment,
)
from ledger.errors import EncodingError, VerificationError
from ledger.registry import ParticipantRecord

SALT = bytes(range(16))
PATH = "body.request.profile"


def producer(**overrides):
    profile = {
        "role": "producer",
        "local_id": "PB-LHR-0042",
        "location": {"district": "Sheikhupura", "province": "Punjab"},
        "personal": {"name": commit("Allah Ditta", SALT), "phone": commit("+923001234567", SALT)},
    }
    profile.update(overrides)
    return {k: v for k, v in profile.items() if v is not None}


def test_smallholder_profile():
    profile = validate_profile(producer())
    assert profile.role == "producer"
    assert profile.local_id == "PB-LHR-0042"
    assert profile.name is None
    assert profile.location == Location(district="Sheikhupura", province="Punjab")
    assert set(profile.personal) == {"name", "phone"}
    assert validate_profile(profile.to_json()) == profile


def test_organisation_profile_with_gln_and_coordinates():
    obj = {
        "role": "market",
        "name": "Badami Bagh Sabzi Mandi",
        "gln": "9506000000008",
        "location": {
            "district": "Lahore", "province": "Punjab", "lat_e6": 31_582_000, "lon_e6": 74_322_000,
        },
        "ext": {"stalls": 40},
    }  # fmt: skip
    profile = validate_profile(obj)
    assert (profile.gln, profile.location.lat_e6, profile.ext["stalls"]) == (
        "9506000000008", 31_582_000, 40,
    )  # fmt: skip
    assert profile.to_json() == obj


def test_operator_needs_neither_id_nor_location():
    assert validate_profile({"role": "operator"}) == Profile(role="operator")


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"role": "farmer"}, "bad_value", f"{PATH}.role"),
        ({"gln": "9506000000005", "local_id": None}, "bad_gln", f"{PATH}.gln"),
        ({"gln": "9506000000008"}, "ambiguous_id", f"{PATH}.local_id"),
        ({"local_id": None}, "missing_field", f"{PATH}.gln"),
        ({"local_id": "has space"}, "bad_local_id", f"{PATH}.local_id"),
        ({"location": None}, "missing_field", f"{PATH}.location"),
        ({"location": {"district": "X"}}, "missing_field", f"{PATH}.location.province"),
        (
            {"location": {"district": "X", "province": "Y", "lat_e6": 91_000_000, "lon_e6": 0}},
            "out_of_range",
            f"{PATH}.location.lat_e6",
        ),
        (
            {"location": {"district": "X", "province": "Y", "lat_e6": 1}},
            "missing_field",
            f"{PATH}.location.lon_e6",
        ),
        (
            {"location": {"district": "X", "province": "Y", "lat_e6": 0, "lon_e6": -180_000_001}},
            "out_of_range",
            f"{PATH}.location.lon_e6",
        ),
        ({"phone": "+923001234567"}, "unknown_field", f"{PATH}.phone"),
        ({"personal": {"phone": "+923001234567"}}, "bad_commitment", f"{PATH}.personal.phone"),
        ({"personal": {"email": "ab" * 32}}, "unknown_field", f"{PATH}.personal.email"),
        ({"name": "x" * 121}, "too_long", f"{PATH}.name"),
        ({"name": ""}, "bad_string", f"{PATH}.name"),
        ({"ext": {"blob": "x" * 3000}}, "too_large", f"{PATH}.ext"),
        ({"ext": []}, "bad_type", f"{PATH}.ext"),
    ],
)
def test_bad_profiles(overrides, code, field):
    with pytest.raises(EncodingError) as info:
        validate_profile(producer(**overrides))
    assert (info.value.code, info.value.field) == (code, field)


def test_profile_must_be_an_object():
    with pytest.raises(EncodingError) as info:
        validate_profile(["producer"], path="p")
    assert (info.value.code, info.value.field) == ("bad_type", "p")


def test_role_of():
    def rec(profile, operator=False):
        return ParticipantRecord(
            participant_id="x", profile=profile, enrolled_at=1, operator=operator
        )

    assert role_of(rec({"role": "market"})) == "market"
    assert role_of(rec({}, operator=True)) == "operator"
    assert role_of(rec({"role": "wizard"})) is None
    assert role_of(rec({})) is None


# ---------------------------------------------------------------------------
# Personal data commitments.


def test_commitment_recipe():
    # Recipe: sha256(b"mandi-personal-v1\n" + bytes(range(16)) + b"+923001234567").hexdigest()
    expected = hashlib.sha256(b"mandi-personal-v1\n" + SALT + b"+923001234567").hexdigest()
    assert PERSONAL_DOMAIN == b"mandi-personal-v1\n"
    assert commit("+923001234567", SALT) == expected
    verify_commitment(expected, "+923001234567", SALT)


def test_per_value_salt_changes_the_commitment():
    assert commit("35202-1234567-1", SALT) != commit("35202-1234567-1", bytes(16))


@pytest.mark.parametrize(
    ("value", "salt"),
    [("+923001234568", SALT), ("+923001234567", bytes(16))],
    ids=["wrong value", "wrong salt"],
)
def test_commitment_mismatch(value, salt):
    with pytest.raises(VerificationError) as info:
        verify_commitment(commit("+923001234567", SALT), value, salt)
    assert info.value.code == "commitment_mismatch"


def test_salt_must_be_16_bytes():
    with pytest.raises(ValueError, match="16 bytes"):
        commit("x", bytes(15))


def test_check_commitment():
    assert check_commitment("ab" * 32, field="f") == "ab" * 32
    for bad in ("AB" * 32, "ab" * 31, 7):
        with pytest.raises(EncodingError):
            check_commitment(bad, field="f")
