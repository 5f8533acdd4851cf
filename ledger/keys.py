"""Ed25519 signing and strict verification, key ids, raw key load/dump.

Signing and verifying go through pyca ``cryptography``; its verifier rejects
non-canonical ``S`` (malleability) and small-order / non-canonical points the way
the Wycheproof vectors expect. Verification asks libsodium (PyNaCl) first, which
is about twice as fast here and releases the GIL; it must agree with
``cryptography`` on every Wycheproof vector (tests hold it to that), and
``cryptography`` still gives the verdict on anything libsodium refuses, so
libsodium can save work but not change an answer. ``verify_*`` raises
:class:`SignatureError` and never returns ``False``. This module holds no file
I/O (the key files live in :mod:`ledger.keyfiles`) and knows nothing about what
is signed.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.errors import EncodingError, SignatureError
from ledger.hashing import KeyId, key_id

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "Signer",
    "VerifyingKey",
    "libsodium_accepts",
    "verify_signature",
]

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64


def libsodium_accepts(public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether libsodium verifies ``signature`` (Ed25519) over ``message`` with ``public``.

    The fast verifier behind :meth:`VerifyingKey.verify` and the parallel audit:
    True is a valid signature; False means "ask ``cryptography``".
    """
    if len(signature) != SIGNATURE_SIZE or len(public) != PUBLIC_KEY_SIZE:
        return False
    sign_open, refused = _sodium()
    try:
        sign_open(signature + message, public)
    except refused:
        return False
    return True


@functools.cache
def _sodium() -> tuple[Callable[[bytes, bytes], bytes], tuple[type[Exception], ...]]:
    # Imported on first use: a CLI command that verifies nothing should not load it.
    import nacl.bindings
    import nacl.exceptions

    return nacl.bindings.crypto_sign_open, (nacl.exceptions.CryptoError, ValueError)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyingKey:
    """A raw 32-byte Ed25519 public key and its key id."""

    raw: bytes
    _key: Ed25519PublicKey = field(repr=False, compare=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyingKey:
        """Load a raw public key.

        Raises:
            EncodingError: not 32 bytes or not a valid point encoding.
        """
        if len(raw) != PUBLIC_KEY_SIZE:
            raise EncodingError(
                f"public key must be {PUBLIC_KEY_SIZE} bytes, got {len(raw)}", code="bad_key"
            )
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:  # pragma: no cover - cryptography accepts any 32 bytes
            raise EncodingError(f"invalid Ed25519 public key: {exc}", code="bad_key") from exc
        return cls(raw=bytes(raw), _key=key)

    @classmethod
    def from_base64(cls, text: str) -> VerifyingKey:
        """Load a public key from standard base64 (the wire form)."""
        return cls.from_bytes(b64decode(text, field="key"))

    @property
    def key_id(self) -> KeyId:
        """SHA-256 of the raw key."""
        return key_id(self.raw)

    def to_base64(self) -> str:
        """Standard base64 of the raw key."""
        return base64.b64encode(self.raw).decode("ascii")

    def verify(self, signature: bytes, message: bytes) -> None:
        """Verify an Ed25519 signature strictly.

        Raises:
            SignatureError: wrong length or the signature does not verify.
        """
        if len(signature) != SIGNATURE_SIZE:
            raise SignatureError(f"signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}")
        if libsodium_accepts(self.raw, signature, message):
            return
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise SignatureError("Ed25519 signature does not verify") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    """An Ed25519 private key. Keep it where it was made; only signatures leave."""

    _key: Ed25519PrivateKey = field(repr=False, compare=False)
    public: VerifyingKey

    @classmethod
    def generate(cls) -> Signer:
        """A fresh random key."""
        return cls._from_private(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        """Derive the key from a 32-byte seed (RFC 8032 secret key)."""
        if len(seed) != SEED_SIZE:
            raise ValueError(f"Ed25519 seed must be {SEED_SIZE} bytes, got {len(seed)}")
        return cls._from_private(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def _from_private(cls, key: Ed25519PrivateKey) -> Signer:
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(_key=key, public=VerifyingKey.from_bytes(raw))

    @property
    def key_id(self) -> KeyId:
        """Key id of the public half."""
        return self.public.key_id

    def seed(self) -> bytes:
        """The 32-byte seed, for writing to an owner-only key file."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``message`` (deterministic)."""
        return self._key.sign(message)


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Verify ``signature`` over ``message`` with a raw public key.

    Raises:
        SignatureError: the signature does not verify or has the wrong length.
        EncodingError: the public key is malformed.
    """
    VerifyingKey.from_bytes(public_key).verify(signature, message)


def b64decode(text: str, *, field: str) -> bytes:
    """Decode canonical standard base64 (padding required, no whitespace).

    Raises:
        EncodingError: naming ``field`` when the text is not canonical base64.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise EncodingError(f"{field}: not valid base64", code="bad_base64", field=field) from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise EncodingError(f"{field}: base64 is not canonical", code="bad_base64", field=field)
    return raw


def b64encode(raw: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(raw).decode("ascii")
