"""Client configuration: server URL, log origin and vkey, key, participant, outbox, key dir.

Each setting comes from the first of these that has it:

1. a command-line flag (``--server``, ``--log-vkey``, ``--key``, ...);
2. an environment variable;
3. the config file: ``$MANDI_CONFIG``, else ``$XDG_CONFIG_HOME/mandi/config.toml``
   (``~/.config/mandi/config.toml``), read with :mod:`tomllib`;
4. the default.

================  ====================  ===============  ==================================
setting           variable              config key       default
================  ====================  ===============  ==================================
server URL        ``MANDI_SERVER``      ``server``       none (offline: record and queue)
log origin        ``MANDI_ORIGIN``      ``origin``       the name in the log vkey
log vkey          ``MANDI_LOG_VKEY``    ``log_vkey``     none: pinned from the server once
key name          ``MANDI_KEY``         ``key``          none
participant id    ``MANDI_PARTICIPANT`` ``participant``  the key name
outbox database   ``MANDI_OUTBOX``      ``outbox``       ``~/.config/mandi/outbox.db``
key directory     ``MANDI_KEYS_DIR``    ``keys_dir``     ``~/.config/mandi/keys``
================  ====================  ===============  ==================================

This module reads files and the environment and validates shapes; it contacts
no server and opens no key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from client.errors import ConfigError
from ledger.checkpoint import NoteVerifier
from ledger.datadir import load_verifier
from ledger.errors import LedgerError
from ledger.statements import check_origin

__all__ = [
    "CONFIG_KEYS",
    "ClientConfig",
    "config_dir",
    "default_config_file",
    "load_config",
]

CONFIG_KEYS = ("server", "origin", "log_vkey", "key", "participant", "outbox", "keys_dir")
"""The keys a config file may set (any other key is refused, so a typo is not ignored)."""

_ENV = {
    "server": "MANDI_SERVER",
    "origin": "MANDI_ORIGIN",
    "log_vkey": "MANDI_LOG_VKEY",
    "key": "MANDI_KEY",
    "participant": "MANDI_PARTICIPANT",
    "outbox": "MANDI_OUTBOX",
    "keys_dir": "MANDI_KEYS_DIR",
}


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/mandi``, else ``~/.config/mandi``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mandi"


def default_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$MANDI_CONFIG``, else ``config.toml`` in :func:`config_dir`."""
    env = os.environ if environ is None else environ
    explicit = env.get("MANDI_CONFIG")
    return Path(explicit) if explicit else config_dir(env) / "config.toml"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """The resolved settings (see the module docstring for where each comes from)."""

    server: str | None
    origin: str | None
    log_vkey: str | None
    key: str | None
    participant: str | None
    outbox: Path
    keys_dir: Path
    config_file: Path | None = None
    """The config file that was read, if one existed."""

    def require_server(self) -> str:
        """The server URL.

        Raises:
            ConfigError: none configured.
        """
        if not self.server:
            raise ConfigError(
                "no server configured: pass --server URL, set MANDI_SERVER, or put "
                'server = "URL" in the config file',
                field="server",
            )
        return self.server

    def require_key(self) -> str:
        """The key name.

        Raises:
            ConfigError: none configured.
        """
        if not self.key:
            raise ConfigError(
                'no key configured: pass --key NAME, set MANDI_KEY, or put key = "NAME" '
                "in the config file (create one with `mandi keys new NAME`)",
                field="key",
            )
        return self.key

    def verifier(self) -> NoteVerifier | None:
        """The configured log vkey (string or file), or None.

        Raises:
            ConfigError: it is neither a readable file nor a valid vkey.
        """
        if not self.log_vkey:
            return None
        try:
            return load_verifier(self.log_vkey)
        except LedgerError as exc:
            raise ConfigError(f"log vkey: {exc.message}", field="log_vkey") from exc

    def require_origin(self) -> str:
        """The log origin statements are signed for: configured, else the vkey's name.

        Raises:
            ConfigError: neither an origin nor a vkey is configured, or they disagree.
        """
        verifier = self.verifier()
        origin = self.origin or (verifier.name if verifier is not None else None)
        if not origin:
            raise ConfigError(
                "no log origin configured: pass --origin or --log-vkey (or set MANDI_ORIGIN "
                "or MANDI_LOG_VKEY); statements are signed for one log",
                field="origin",
            )
        if verifier is not None and origin != verifier.name:
            raise ConfigError(
                f"origin {origin!r} differs from the log vkey's name {verifier.name!r}",
                field="origin",
            )
        try:
            return check_origin(origin)
        except LedgerError as exc:
            raise ConfigError(f"origin: {exc.message}", field="origin") from exc

    def participant_id(self) -> str:
        """The participant this client records for: configured, else the key name.

        Raises:
            ConfigError: neither is configured.
        """
        if self.participant:
            return self.participant
        if self.key:
            return self.key
        raise ConfigError(
            "no participant configured: pass --participant ID or set MANDI_PARTICIPANT "
            "(default: the key name)",
            field="participant",
        )


def load_config(
    *,
    server: str | None = None,
    origin: str | None = None,
    log_vkey: str | None = None,
    key: str | None = None,
    participant: str | None = None,
    outbox: Path | None = None,
    keys_dir: Path | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Resolve every setting: flags (the arguments), then environment, then file, then default.

    Raises:
        ConfigError: the config file is not valid TOML, has an unknown key, or a
            value that is not a string.
    """
    env = os.environ if environ is None else environ
    path = config_file if config_file is not None else default_config_file(env)
    file_values = _read_file(path)
    flags: dict[str, str | Path | None] = {
        "server": server,
        "origin": origin,
        "log_vkey": log_vkey,
        "key": key,
        "participant": participant,
        "outbox": outbox,
        "keys_dir": keys_dir,
    }

    def pick(name: str) -> str | None:
        flag = flags[name]
        if flag is not None and str(flag) != "":
            return str(flag)
        return env.get(_ENV[name]) or file_values.get(name) or None

    home = config_dir(env)
    server_url = pick("server")
    return ClientConfig(
        server=server_url.rstrip("/") if server_url else None,
        origin=pick("origin"),
        log_vkey=pick("log_vkey"),
        key=pick("key"),
        participant=pick("participant"),
        outbox=Path(pick("outbox") or home / "outbox.db").expanduser(),
        keys_dir=Path(pick("keys_dir") or home / "keys").expanduser(),
        config_file=path if path.exists() else None,
    )


def _read_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", field="config") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", field="config") from exc
    values: dict[str, str] = {}
    for name, value in data.items():
        if name not in CONFIG_KEYS:
            raise ConfigError(
                f"{path}: unknown setting {name!r} (known: {', '.join(CONFIG_KEYS)})",
                field=name,
            )
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {name} must be a string", field=name)
        values[name] = value
    return values
