"""`mandi log push-witnesses` and `mandi serve --witness`, against an in-process witness."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from client.cli import logcmd
from client.cli.main import app
from ledger import NoteVerifier, open_checkpoint
from ledger.datadir import open_ledger
from tests.api.witness_support import FakeWitness
from tests.ledger.builders import seeded

runner = CliRunner()
URL = "http://witness.test/w"


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "var"
    result = runner.invoke(
        app, ["admin", "init", "--data-dir", str(d), "--origin", "t.example/log"]
    )
    assert result.exit_code == 0, result.output
    return d


@pytest.fixture
def witness(data_dir, monkeypatch):
    log_vkey = NoteVerifier.from_vkey((data_dir / "log.vkey").read_text().strip())
    fake = FakeWitness(log_vkey, seeded(80))
    monkeypatch.setattr(
        logcmd, "_new_client", lambda timeout: httpx.Client(transport=fake.transport())
    )
    monkeypatch.delenv("MANDI_WITNESSES", raising=False)
    monkeypatch.delenv("MANDI_DATABASE_URL", raising=False)
    return fake


def push(data_dir, *extra: str):
    return runner.invoke(
        app, ["log", "push-witnesses", "--data-dir", str(data_dir), "--json", *extra]
    )


def test_push_stores_a_verified_cosignature_then_is_up_to_date(data_dir, witness, tmp_path):
    vkey_file = tmp_path / "w.vkey"
    vkey_file.write_text(witness.vkey + "\n")
    first = push(data_dir, "--witness", f"{URL}={vkey_file}")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["outcome"] == "cosigned"
    ledger = open_ledger(data_dir)
    try:
        note = ledger.cosigned_checkpoint(1).note
        log_vkey = NoteVerifier.from_vkey((data_dir / "log.vkey").read_text().strip())
        assert open_checkpoint(note, log_vkey, [witness.verifier], 1)
    finally:
        ledger.store.close()
    again = push(data_dir, "--witness", f"{URL}={witness.vkey}")
    assert json.loads(again.stdout)["outcome"] == "up_to_date"
    assert len(witness.requests) == 1


def test_witnesses_txt_is_the_default_and_failures_exit_1(data_dir, witness):
    (data_dir / "witnesses.txt").write_text(f"# ours\n{URL} {witness.vkey}\n")
    witness.mode = "status:403"
    result = push(data_dir)
    assert result.exit_code == 1
    assert json.loads(result.stdout) | {"message": ""} == {
        "witness": witness.name,
        "url": URL,
        "outcome": "refused",
        "size": 1,
        "message": "",
    }
    witness.mode = "bad_line"
    result = push(data_dir)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["outcome"] == "invalid_cosignature"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no witness"),
        (["--witness", URL], "URL=VKEY"),
        (["--witness", f"{URL}=nonexistent.vkey"], "--witness"),
    ],
)
def test_push_usage_errors(data_dir, witness, args, message):
    result = push(data_dir, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_serve_refuses_a_bad_witness_before_starting(data_dir, witness):
    log_vkey = (data_dir / "log.vkey").read_text().strip()
    result = runner.invoke(
        app, ["serve", "--data-dir", str(data_dir), "--witness", f"{URL}={log_vkey}"]
    )
    assert result.exit_code == 1
    assert "cosignature/v1" in result.output
