"""Personal data stays off the log: commitments in profiles, values in an off-log table.

Runs on every store (memory, SQLite, PostgreSQL when configured) through the
``store`` fixture of tests/conftest.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from client.personal import personal_commitments
from ledger.audit import audit_log
from ledger.domain.personal import PersonalRecord, commit
from ledger.errors import EncodingError, NotFoundError, VerificationError
from ledger.storage.memory import MemoryStore
from tests.ledger.builders import new_world

NAME = "Allah Ditta"
PHONE = "+923001234567"
CNIC = "3520212345679"
SALTS = {
    "name": bytes(range(16)),
    "phone": bytes(range(16, 32)),
    "national_id": bytes(range(32, 48)),
}


@pytest.fixture
def world(store):
    world = new_world(store)
    personal = {
        "name": commit(NAME, SALTS["name"]),
        "phone": commit(PHONE, SALTS["phone"]),
        "national_id": commit(CNIC, SALTS["national_id"]),
    }
    world.enrol("farm-1", personal=personal)
    world.enrol("mill-1", role="processor")
    world.ledger.append(world.statement("farm-1"))  # a harvest, so the log has domain state
    return world


def put_all(world, public=("name",)):
    for field, value in (("name", NAME), ("phone", PHONE), ("national_id", CNIC)):
        world.ledger.put_personal("farm-1", field, value, SALTS[field], field in public)


def audit(world):
    store = world.store
    size = store.size()
    return audit_log(
        store.entries(0, size),
        (cp.note for cp in store.checkpoints()),
        log_verifier=world.verifier,
        stored_leaves=store.leaf_hashes(0, size),
    )


def test_values_that_open_the_commitments_are_stored_off_the_log(world):
    size, root = world.ledger.size(), world.ledger.root_hash(world.ledger.size())
    put_all(world, public=("name",))
    records = world.store.personal("farm-1")
    assert [r.field for r in records] == ["name", "national_id", "phone"]
    assert {r.field: (r.value, r.salt, r.public) for r in records}["phone"] == (
        PHONE, SALTS["phone"], False,
    )  # fmt: skip
    assert world.ledger.public_personal("farm-1") == {"name": NAME}
    assert world.ledger.public_personal("mill-1") == {}
    # Nothing reached the log.
    assert (world.ledger.size(), world.ledger.root_hash(size)) == (size, root)


def test_setting_a_field_again_replaces_it(world):
    world.ledger.put_personal("farm-1", "phone", PHONE, SALTS["phone"], False)
    world.ledger.put_personal("farm-1", "phone", PHONE, SALTS["phone"], True)
    assert world.ledger.public_personal("farm-1") == {"phone": PHONE}
    assert len(world.store.personal("farm-1")) == 1


@pytest.mark.parametrize(
    ("value", "salt"),
    [
        ("+923001234568", SALTS["phone"]),  # another number
        (PHONE, SALTS["name"]),  # the salt of another value
        (PHONE + " ", SALTS["phone"]),  # not normalised: the commitment covers the exact string
    ],
)
def test_a_value_that_does_not_open_the_commitment_is_refused(world, value, salt):
    with pytest.raises(VerificationError) as info:
        world.ledger.put_personal("farm-1", "phone", value, salt, True)
    assert (info.value.code, info.value.field) == ("commitment_mismatch", "personal.phone")
    assert world.store.personal("farm-1") == []


def test_a_field_the_profile_does_not_commit_to_is_refused(world):
    with pytest.raises(VerificationError) as info:
        world.ledger.put_personal("mill-1", "phone", PHONE, SALTS["phone"], False)
    assert (info.value.code, info.value.field) == ("not_committed", "personal.phone")
    assert world.store.personal("mill-1") == []


def test_unknown_participants_and_bad_records_are_refused(world):
    for call in (
        lambda: world.ledger.put_personal("ghost", "phone", PHONE, SALTS["phone"], False),
        lambda: world.ledger.erase_personal("ghost"),
        lambda: world.ledger.public_personal("ghost"),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert info.value.code == "unknown_participant"
    cases = [
        ("email", PHONE, SALTS["phone"], "bad_value"),
        ("phone", "", SALTS["phone"], "bad_string"),
        ("phone", PHONE, b"short", "bad_salt"),
    ]
    for field, value, salt, code in cases:
        with pytest.raises(EncodingError) as enc:
            world.ledger.put_personal("farm-1", field, value, salt, False)
        assert enc.value.code == code
    with pytest.raises(EncodingError, match="field"):
        world.ledger.erase_personal("farm-1", "email")


def test_erase_one_field_then_all(world):
    put_all(world, public=("name", "phone"))
    assert world.ledger.erase_personal("farm-1", "phone") == 1
    assert world.ledger.public_personal("farm-1") == {"name": NAME}
    assert world.ledger.erase_personal("farm-1", "phone") == 0
    assert world.ledger.erase_personal("farm-1") == 2
    assert world.store.personal("farm-1") == []
    assert world.ledger.public_personal("farm-1") == {}
    assert world.ledger.erase_personal("farm-1") == 0


def test_erasing_leaves_the_log_verifiable_and_the_values_nowhere(world):
    put_all(world)
    before = audit(world)
    assert before.ok, before.to_text()
    assert world.ledger.erase_personal("farm-1") == 3
    after = audit(world)
    assert after.ok, after.to_text()
    assert (after.entries_checked, after.root_hash) == (before.entries_checked, before.root_hash)
    # The commitment stays in the log (the signed profile) and still checks as a hash...
    profile = world.store.participant("farm-1").profile
    assert profile["personal"]["phone"] == commit(PHONE, SALTS["phone"])
    enrolment = b"".join(e.statement for e in world.store.entries(0, world.store.size()))
    assert commit(PHONE, SALTS["phone"]).encode() in enrolment
    # ...but neither a clear value nor a salt is stored anywhere any more.
    secrets = [NAME, PHONE, CNIC, *SALTS.values()]
    for cell in every_stored_value(world.store):
        for secret in secrets:
            needle = secret.encode() if isinstance(secret, str) else secret
            haystack = cell.encode() if isinstance(cell, str) else cell
            assert needle not in haystack


def every_stored_value(store):
    """Every str/bytes cell of every table (SQL) or of the entries and records (memory)."""
    if isinstance(store, MemoryStore):
        for entry in store.entries(0, store.size()):
            yield entry.statement
        for pid in ("farm-1", "mill-1"):
            for record in store.personal(pid):
                yield record.value
                yield record.salt
        return
    with store.engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        assert "personal_data" in tables
        for table in tables:
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 - test code, names from the schema
                for cell in row:
                    if isinstance(cell, str | bytes | memoryview):
                        yield bytes(cell) if isinstance(cell, memoryview) else cell


def test_two_people_with_one_phone_get_different_commitments(world):
    first, first_records = personal_commitments({"phone": PHONE}, participant="farm-2")
    second, second_records = personal_commitments({"phone": PHONE}, participant="farm-3")
    assert first["phone"] != second["phone"]
    assert first_records[0].salt != second_records[0].salt
    world.enrol("farm-2", personal=first)
    world.enrol("farm-3", personal=second)
    # Each value and salt opens only its own participant's commitment.
    mine = first_records[0]
    with pytest.raises(VerificationError, match="do not open"):
        world.ledger.put_personal("farm-3", "phone", mine.value, mine.salt, False)
    world.ledger.put_personal("farm-2", "phone", mine.value, mine.salt, True)
    world.ledger.put_personal(
        "farm-3", "phone", second_records[0].value, second_records[0].salt, False
    )
    assert world.ledger.public_personal("farm-2") == {"phone": PHONE}
    assert world.ledger.public_personal("farm-3") == {}


def test_personal_commitments_draws_one_salt_per_value():
    drawn = []

    def source(n):
        drawn.append(bytes([len(drawn) + 1]) * n)
        return drawn[-1]

    values = {"name": NAME, "phone": PHONE, "national_id": CNIC}
    profile, records = personal_commitments(
        values, {"name"}, participant="farm-9", random_bytes=source
    )
    assert len(drawn) == 3
    assert sorted(r.salt for r in records) == sorted(drawn)
    assert [r.field for r in records] == ["name", "national_id", "phone"]
    for r in records:
        assert profile[r.field] == commit(values[r.field], r.salt)
        assert r.public == (r.field == "name")
        assert r.participant == "farm-9"
    with pytest.raises(ValueError, match="own"):
        personal_commitments(values, participant="farm-9", random_bytes=lambda n: bytes(n))
    with pytest.raises(ValueError, match="phone"):
        personal_commitments({"name": NAME}, {"phone"}, participant="farm-9")
    with pytest.raises(EncodingError):
        personal_commitments({"email": "a@b.c"}, participant="farm-9")


def test_a_record_never_shows_its_value_or_salt():
    record = PersonalRecord(participant="farm-1", field="phone", value=PHONE, salt=SALTS["phone"])
    assert PHONE not in repr(record)
    assert repr(SALTS["phone"]) not in repr(record)
    assert record.commitment == commit(PHONE, SALTS["phone"])
    with pytest.raises(EncodingError) as info:
        PersonalRecord(participant="Farm 1", field="phone", value=PHONE, salt=SALTS["phone"])
    assert info.value.code == "bad_participant_id"
