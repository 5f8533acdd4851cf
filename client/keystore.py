"""Local participant keys: one private key file per name, readable only by its owner.

A key directory (default ``~/.config/mandi/keys``; ``--keys-dir`` or
``MANDI_KEYS_DIR``) holds, per key ``NAME``::

    NAME.key   the private key, mode 0600, created exclusively (never overwritten)
    NAME.pub   {"name", "key_id", "public_key"}: what may be shown to anyone

A private key file is either the data directory's format
(``PRIVATE+KEY+<name>+<hash>+<base64 seed>``, :mod:`ledger.datadir`), or, with
a passphrase, PKCS #8 PEM encrypted with cryptography's
``BestAvailableEncryption`` (``-----BEGIN ENCRYPTED PRIVATE KEY-----``). A key
file readable by group or others is refused, as the server refuses its own.

There is deliberately no way to export a private key: only signatures and the
public half leave the machine. This module does file I/O only; signing is
:class:`ledger.keys.Signer`'s.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.errors import KeyStoreError
from ledger.datadir import DataDirError, read_private_key, write_private_key
from ledger.errors import LedgerError
from ledger.hashing import KeyId, key_id
from ledger.keys import Signer, VerifyingKey, b64encode

__all__ = ["KEY_NAME_RE", "KeyInfo", "KeyStore", "Passphrase"]

KEY_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""Key names look like participant ids (so the default participant id can be the key name)."""

_PEM_ENCRYPTED = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"

Passphrase = str | Callable[[], str] | None
"""A passphrase, a function that asks for one (called only for an encrypted key), or None."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    """The public facts about a local key."""

    name: str
    public_key: bytes
    encrypted: bool
    path: Path

    @property
    def key_id(self) -> KeyId:
        """SHA-256 of the raw public key (as the registry names it)."""
        return key_id(self.public_key)

    def to_json(self) -> dict[str, Any]:
        """Name, key id (hex), public key (base64), whether a passphrase protects it."""
        return {
            "name": self.name,
            "key_id": self.key_id.hex(),
            "public_key": b64encode(self.public_key),
            "encrypted": self.encrypted,
        }


class KeyStore:
    """The key files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _paths(self, name: str) -> tuple[Path, Path]:
        if not KEY_NAME_RE.fullmatch(name):
            raise KeyStoreError(
                f"key name {name!r}: use 1-64 of a-z 0-9 . _ - starting with a letter or digit",
                field="name",
            )
        return self.directory / f"{name}.key", self.directory / f"{name}.pub"

    def create(self, name: str, *, passphrase: str | None = None) -> KeyInfo:
        """Generate a key and write it (owner-only), optionally encrypted with ``passphrase``.

        Raises:
            KeyStoreError: the name is malformed or a key of that name exists.
        """
        private_path, public_path = self._paths(name)
        if private_path.exists():
            raise KeyStoreError(f"key {name!r} exists already ({private_path})", field="name")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        signer = Signer.generate()
        if passphrase:
            _write_exclusive(private_path, _encrypted_pem(signer, passphrase), 0o600)
        else:
            try:
                write_private_key(private_path, name, signer)
            except DataDirError as exc:
                raise KeyStoreError(exc.message, field="name") from exc
        info = KeyInfo(
            name=name, public_key=signer.public.raw, encrypted=bool(passphrase), path=private_path
        )
        public = json.dumps(info.to_json(), indent=2) + "\n"
        public_path.write_text(public, encoding="ascii")
        return info

    def names(self) -> list[str]:
        """Names of the keys in the directory, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.key") if KEY_NAME_RE.fullmatch(p.stem))

    def list(self) -> list[KeyInfo]:
        """Every key's public facts, sorted by name (no private key is opened)."""
        return [self.info(name) for name in self.names()]

    def info(self, name: str) -> KeyInfo:
        """A key's public facts, from its ``.pub`` file (no private key is opened).

        Raises:
            KeyStoreError: no such key, or its public file is damaged.
        """
        private_path, public_path = self._paths(name)
        if not private_path.exists():
            raise KeyStoreError(
                f"no key {name!r} in {self.directory} (create it with `mandi keys new {name}`)",
                field="key",
            )
        try:
            data = json.loads(public_path.read_text(encoding="ascii"))
            public = VerifyingKey.from_base64(str(data["public_key"])).raw
        except (OSError, ValueError, KeyError, TypeError, LedgerError) as exc:
            raise KeyStoreError(f"{public_path}: missing or damaged", field="key") from exc
        return KeyInfo(
            name=name,
            public_key=public,
            encrypted=private_path.read_bytes().startswith(_PEM_ENCRYPTED),
            path=private_path,
        )

    def load(self, name: str, *, passphrase: Passphrase = None) -> Signer:
        """Open a private key to sign with.

        Args:
            name: the key name.
            passphrase: for an encrypted key: the passphrase, or a function that
                asks for it (called only when the key is encrypted).

        Raises:
            KeyStoreError: missing, readable by others, damaged, a passphrase is
                needed and none was given, or it is wrong.
        """
        private_path, _ = self._paths(name)
        try:
            mode = private_path.stat().st_mode
        except FileNotFoundError as exc:
            raise KeyStoreError(
                f"no key {name!r} in {self.directory} (create it with `mandi keys new {name}`)",
                field="key",
            ) from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(f"{private_path} is readable by others; chmod 600 it", field="key")
        data = private_path.read_bytes()
        if data.startswith(_PEM_ENCRYPTED):
            signer = _open_pem(data, name, passphrase)
        else:
            try:
                _, signer = read_private_key(private_path)
            except (DataDirError, ValueError) as exc:
                raise KeyStoreError(f"{private_path}: {exc}", field="key") from exc
        info = self.info(name)
        if info.public_key != signer.public.raw:
            raise KeyStoreError(f"{name}: the .pub file does not match the key", field="key")
        return signer


def _encrypted_pem(signer: Signer, passphrase: str) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(signer.seed())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )


def _open_pem(data: bytes, name: str, passphrase: Passphrase) -> Signer:
    secret = passphrase() if callable(passphrase) else passphrase
    if not secret:
        raise KeyStoreError(
            f"key {name!r} is encrypted: give its passphrase (MANDI_KEY_PASSPHRASE, or at the "
            "prompt)",
            field="passphrase",
        )
    try:
        key = serialization.load_pem_private_key(data, password=secret.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(
            f"key {name!r}: wrong passphrase or damaged file", field="passphrase"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"key {name!r} is not an Ed25519 key", field="key")
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Signer.from_seed(seed)


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise KeyStoreError(f"{path} exists already; refusing to overwrite a key") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
