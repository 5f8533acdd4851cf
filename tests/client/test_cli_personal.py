"""`mandi admin personal set|erase` over a real SQLite data directory."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from client.cli.main import app
from client.personal import personal_commitments
from ledger.datadir import open_ledger, read_operator
from ledger.registry import build_enrolment, build_enrolment_request
from tests.ledger.builders import TIME, seeded, valid_profile

runner = CliRunner()
PHONE = "+923001234567"
NAME = "Allah Ditta"


@pytest.fixture
def data_dir(tmp_path):
    """An initialised data directory with farm-1 enrolled, committing to a name and phone."""
    data_dir = tmp_path / "var"
    result = runner.invoke(
        app, ["admin", "init", "--data-dir", str(data_dir), "--origin", "coop.example/log"]
    )
    assert result.exit_code == 0, result.output
    personal, records = personal_commitments(
        {"name": NAME, "phone": PHONE}, {"name"}, participant="farm-1"
    )
    ledger = open_ledger(data_dir)
    try:
        _, operator = read_operator(data_dir)
        request = build_enrolment_request(
            origin=ledger.log.origin,
            participant_id="farm-1",
            signer=seeded(7),
            time=TIME,
            profile=valid_profile("farm-1", personal=personal),
        )
        ledger.append(
            build_enrolment(origin=ledger.log.origin, operator=operator, request=request, time=TIME)
        )
    finally:
        ledger.store.close()
    return data_dir, {r.field: r for r in records}


def run(data_dir, *args, **kw):
    return runner.invoke(app, ["admin", "personal", *args, "--data-dir", str(data_dir)], **kw)


def rows(data_dir):
    conn = sqlite3.connect(data_dir / "ledger.db")
    try:
        return conn.execute(
            "select participant, field, value, salt, public from personal_data order by field"
        ).fetchall()
    finally:
        conn.close()


def test_set_stores_a_value_that_opens_the_commitment(data_dir):
    data_dir, records = data_dir
    phone = records["phone"]
    result = run(data_dir, "set", "farm-1", "--field", "phone", "--value", PHONE,
                 "--salt", phone.salt.hex())  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "stored phone of farm-1" in result.output
    assert PHONE not in result.output
    name = records["name"]
    result = run(data_dir, "set", "farm-1", "--field", "name", "--value", "-",
                 "--salt", name.salt.hex(), "--public", input=NAME + "\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert rows(data_dir) == [
        ("farm-1", "name", NAME, name.salt, 1),
        ("farm-1", "phone", PHONE, phone.salt, 0),
    ]
    ledger = open_ledger(data_dir)
    try:
        assert ledger.public_personal("farm-1") == {"name": NAME}
    finally:
        ledger.store.close()


def test_set_refuses_a_value_that_does_not_open_the_commitment(data_dir):
    data_dir, records = data_dir
    result = run(data_dir, "set", "farm-1", "--field", "phone", "--value", "+923009999999",
                 "--salt", records["phone"].salt.hex())  # fmt: skip
    assert result.exit_code == 1
    assert "commitment_mismatch [personal.phone]" in result.output
    assert rows(data_dir) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ghost", "--field", "phone", "--salt", "00" * 16], 1, "unknown_participant"),
        (["farm-1", "--field", "phone", "--salt", "00" * 15], 2, "--salt must be 32 hex"),
        (["farm-1", "--field", "phone", "--salt", "zz" * 16], 2, "--salt must be 32 hex"),
        (["farm-1", "--field", "email", "--salt", "00" * 16], 1, "bad_value [field]"),
        (["farm-1", "--field", "national_id", "--salt", "00" * 16], 1, "not_committed"),
    ],
)
def test_set_errors(data_dir, args, code, message):
    data_dir, _ = data_dir
    result = run(data_dir, "set", *args, "--value", PHONE)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_erase_one_field_then_all_and_the_log_still_verifies(data_dir):
    data_dir, records = data_dir
    for field, value in (("name", NAME), ("phone", PHONE)):
        result = run(data_dir, "set", "farm-1", "--field", field, "--value", value,
                     "--salt", records[field].salt.hex())  # fmt: skip
        assert result.exit_code == 0, result.output
    result = run(data_dir, "erase", "farm-1", "--field", "phone")
    assert result.exit_code == 0, result.output
    assert "erased 1 phone value(s) of farm-1" in result.output
    assert [r[1] for r in rows(data_dir)] == ["name"]
    result = run(data_dir, "erase", "farm-1")
    assert result.exit_code == 0, result.output
    assert "erased 1 personal value(s)" in result.output
    assert rows(data_dir) == []
    db = f"sqlite:///{data_dir / 'ledger.db'}"
    vkey = (data_dir / "log.vkey").read_text().strip()
    verify = runner.invoke(app, ["verify", "--db", db, "--log-vkey", vkey])
    assert verify.exit_code == 0, verify.output
    assert "OK" in verify.output


def test_erase_an_unknown_participant_fails(data_dir):
    data_dir, _ = data_dir
    result = run(data_dir, "erase", "ghost")
    assert result.exit_code == 1
    assert "unknown_participant" in result.output
