"""Local keys: owner-only files, optional passphrase, public facts without opening the key."""

from __future__ import annotations

import json
import os
import stat

import pytest

from client.config import load_config
from client.errors import ConfigError, KeyStoreError
from client.keystore import KeyStore
from ledger import Statement, sign_statement

SECRET = "correct horse"  # noqa: S105 - a test passphrase, not a secret


def test_create_writes_owner_only_key_and_public_file(tmp_path):
    store = KeyStore(tmp_path / "keys")
    info = store.create("farm.punjab.1")
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    public = json.loads((tmp_path / "keys" / "farm.punjab.1.pub").read_text())
    assert public == info.to_json()
    assert public["encrypted"] is False
    signer = store.load("farm.punjab.1")
    assert signer.public.raw == info.public_key
    assert signer.key_id == info.key_id
    # The unencrypted file is the data directory's format.
    assert info.path.read_text().startswith("PRIVATE+KEY+farm.punjab.1+")


def test_a_key_is_never_overwritten(tmp_path):
    store = KeyStore(tmp_path)
    first = store.create("k")
    with pytest.raises(KeyStoreError, match="exists already"):
        store.create("k")
    assert store.load("k").public.raw == first.public_key


@pytest.mark.parametrize("name", ["../escape", "UPPER", "", "a/b", ".hidden", "x" * 65])
def test_key_names_are_checked(tmp_path, name):
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path).create(name)


def test_a_key_readable_by_others_is_refused(tmp_path):
    store = KeyStore(tmp_path)
    info = store.create("k")
    os.chmod(info.path, 0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        store.load("k")


def test_passphrase_encrypts_the_key(tmp_path):
    store = KeyStore(tmp_path)
    info = store.create("k", passphrase=SECRET)
    data = info.path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert store.info("k").encrypted is True
    with pytest.raises(KeyStoreError, match="encrypted"):
        store.load("k")
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        store.load("k", passphrase=SECRET[::-1])
    asked: list[bool] = []

    def ask() -> str:
        asked.append(True)
        return SECRET

    signer = store.load("k", passphrase=ask)
    assert asked == [True]
    assert signer.public.raw == info.public_key


def test_the_prompt_is_not_called_for_a_plain_key(tmp_path):
    store = KeyStore(tmp_path)
    store.create("k")

    def never() -> str:
        raise AssertionError("asked for a passphrase of an unencrypted key")

    store.load("k", passphrase=never)


def test_list_and_info_do_not_open_private_keys(tmp_path):
    store = KeyStore(tmp_path)
    store.create("b", passphrase=SECRET)
    store.create("a")
    assert [k.name for k in store.list()] == ["a", "b"]
    with pytest.raises(KeyStoreError, match="no key"):
        store.info("c")
    assert KeyStore(tmp_path / "missing").list() == []


def test_a_damaged_public_file_is_reported(tmp_path):
    store = KeyStore(tmp_path)
    store.create("k")
    (tmp_path / "k.pub").write_text("{}")
    with pytest.raises(KeyStoreError, match="damaged"):
        store.info("k")
    other = KeyStore(tmp_path / "o").create("k")
    (tmp_path / "k.pub").write_text(json.dumps(other.to_json()))
    with pytest.raises(KeyStoreError, match="does not match"):
        store.load("k")


def test_signatures_are_deterministic_so_a_statement_signs_the_same_twice(tmp_path):
    store = KeyStore(tmp_path)
    store.create("k")
    signer = store.load("k")
    statement = Statement.build(
        origin="o.example/log",
        kind="recall",
        signer=signer.key_id,
        time="2026-11-20T09:30:00+05:00",
        body={"lot": "lot:k:p1", "reason": "r"},
    )
    again = KeyStore(tmp_path).load("k")
    assert sign_statement(signer, statement) == sign_statement(again, statement)


# -- configuration -------------------------------------------------------------


def test_config_precedence_flag_env_file_default(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('server = "http://file:1"\nkey = "file-key"\noutbox = "/tmp/file.db"\n')
    env = {"MANDI_CONFIG": str(config), "MANDI_KEY": "env-key", "XDG_CONFIG_HOME": str(tmp_path)}
    cfg = load_config(environ=env)
    assert cfg.server == "http://file:1"
    assert cfg.key == "env-key"
    assert str(cfg.outbox) == "/tmp/file.db"
    assert cfg.keys_dir == tmp_path / "mandi" / "keys"
    assert cfg.config_file == config
    cfg = load_config(server="http://flag:2/", environ=env)
    assert cfg.server == "http://flag:2"
    assert cfg.participant_id() == "env-key"
    cfg = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg.server is None
    assert cfg.outbox == tmp_path / "mandi" / "outbox.db"
    with pytest.raises(ConfigError, match="no server"):
        cfg.require_server()
    with pytest.raises(ConfigError, match="no key"):
        cfg.require_key()
    with pytest.raises(ConfigError, match="no log origin"):
        cfg.require_origin()


def test_config_file_errors_are_named(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('sever = "typo"\n')
    with pytest.raises(ConfigError, match="unknown setting 'sever'"):
        load_config(environ={"MANDI_CONFIG": str(config)})
    config.write_text("server = 8000\n")
    with pytest.raises(ConfigError, match="must be a string"):
        load_config(environ={"MANDI_CONFIG": str(config)})
    config.write_text("server = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(environ={"MANDI_CONFIG": str(config)})


def test_origin_comes_from_the_vkey(tmp_path):
    from ledger.datadir import init_data_dir

    vkey = init_data_dir(tmp_path / "d", origin="coop.example/log").vkey
    cfg = load_config(log_vkey=vkey, environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg.require_origin() == "coop.example/log"
    vkey_file = tmp_path / "d" / "log.vkey"
    assert load_config(log_vkey=str(vkey_file), environ={}).require_origin() == "coop.example/log"
    with pytest.raises(ConfigError, match="differs"):
        load_config(log_vkey=vkey, origin="other.example/log", environ={}).require_origin()
    with pytest.raises(ConfigError, match="log vkey"):
        load_config(log_vkey="nonsense", environ={}).require_origin()
