"""The core CLI: admin init, demo, verify (exit codes 0/1/2), checkpoint."""

from __future__ import annotations

import json
import sqlite3
import stat

import pytest
from typer.testing import CliRunner

from client.cli.main import app

runner = CliRunner()


@pytest.fixture
def demo_dir(tmp_path):
    data_dir = tmp_path / "var"
    result = runner.invoke(app, ["demo", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    return data_dir


def db_url(data_dir):
    return f"sqlite:///{data_dir / 'ledger.db'}"


def test_admin_init_creates_keys_and_genesis(tmp_path):
    data_dir = tmp_path / "d"
    result = runner.invoke(
        app, ["admin", "init", "--data-dir", str(data_dir), "--origin", "coop.example/log"]
    )
    assert result.exit_code == 0, result.output
    for name in ("log.key", "operator.key"):
        mode = (data_dir / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    vkey = (data_dir / "log.vkey").read_text().strip()
    assert vkey.startswith("coop.example/log+")
    assert vkey in result.output
    again = runner.invoke(
        app, ["admin", "init", "--data-dir", str(data_dir), "--origin", "coop.example/log"]
    )
    assert again.exit_code == 1
    assert "initialised already" in again.output


def test_admin_init_rejects_bad_origin(tmp_path):
    result = runner.invoke(
        app, ["admin", "init", "--data-dir", str(tmp_path / "d"), "--origin", "has space"]
    )
    assert result.exit_code == 1
    assert "bad_origin" in result.output
    assert not (tmp_path / "d" / "log.key").exists()


def test_demo_summary_json(demo_dir):
    conn = sqlite3.connect(demo_dir / "ledger.db")
    assert conn.execute("select count(*) from entries").fetchone()[0] > 10


def test_verify_clean_exit_0_and_json(demo_dir):
    result = runner.invoke(
        app,
        ["verify", "--db", db_url(demo_dir), "--log-vkey", str(demo_dir / "log.vkey"), "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["findings"] == []


def test_verify_vkey_from_env_string(demo_dir, monkeypatch):
    monkeypatch.setenv("MANDI_LOG_VKEY", (demo_dir / "log.vkey").read_text().strip())
    result = runner.invoke(app, ["verify", "--db", db_url(demo_dir)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout


def test_verify_tampered_exit_1_names_index(demo_dir):
    conn = sqlite3.connect(demo_dir / "ledger.db")
    conn.execute("update entries set accepted_ms = accepted_ms + 1 where idx = 5")
    conn.commit()
    result = runner.invoke(
        app,
        ["verify", "--db", db_url(demo_dir), "--log-vkey", str(demo_dir / "log.vkey"), "--json"],
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["first_damaged_index"] == 5


def test_verify_usage_errors_exit_2(demo_dir):
    no_anchor = runner.invoke(app, ["verify", "--db", db_url(demo_dir)], env={"MANDI_LOG_VKEY": ""})
    assert no_anchor.exit_code == 2
    assert "--log-vkey" in no_anchor.output
    bad_anchor = runner.invoke(app, ["verify", "--db", db_url(demo_dir), "--log-vkey", "nonsense"])
    assert bad_anchor.exit_code == 2
    unknown_flag = runner.invoke(app, ["verify", "--frobnicate"])
    assert unknown_flag.exit_code == 2


def test_verify_uninitialised_db_is_a_clear_error(tmp_path, demo_dir):
    result = runner.invoke(
        app,
        [
            "verify",
            "--db",
            f"sqlite:///{tmp_path / 'none.db'}",
            "--log-vkey",
            str(demo_dir / "log.vkey"),
        ],
    )
    assert result.exit_code == 1
    assert "not initialised" in result.output


def test_checkpoint_saved_then_truncation_caught(demo_dir, tmp_path):
    saved = tmp_path / "cp.txt"
    result = runner.invoke(app, ["checkpoint", "--db", db_url(demo_dir), "-o", str(saved)])
    assert result.exit_code == 0, result.output
    text = saved.read_text()
    assert text.startswith("demo.mandi.example/log\n")
    conn = sqlite3.connect(demo_dir / "ledger.db")
    size = conn.execute("select count(*) from entries").fetchone()[0]
    # An operator that cuts the tail and its checkpoints, and re-signs nothing: the
    # stored data now looks like a smaller, valid log.
    conn.execute("delete from entries where idx >= ?", (size - 2,))
    conn.execute("delete from merkle_nodes where (idx + 1) * (1 << level) > ?", (size - 2,))
    conn.execute("delete from checkpoints where size > ?", (size - 2,))
    conn.execute("update log_head set size = ?", (size - 2,))
    conn.commit()
    alone = runner.invoke(
        app, ["verify", "--db", db_url(demo_dir), "--log-vkey", str(demo_dir / "log.vkey")]
    )
    assert alone.exit_code == 0, alone.output
    with_saved = runner.invoke(
        app,
        [
            "verify",
            "--db",
            db_url(demo_dir),
            "--log-vkey",
            str(demo_dir / "log.vkey"),
            "--checkpoint",
            str(saved),
            "--json",
        ],
    )
    assert with_saved.exit_code == 1
    report = json.loads(with_saved.stdout)
    assert "log_truncated" in report["checks_failed"]
    assert report["first_damaged_index"] == size - 2
