"""Domain-separated SHA-256: leaf and node hashes (RFC 6962), event ids, key ids.

The chain and the Merkle tree share one hash: an entry's ``prev`` is the leaf
hash of the entry before it. This module only hashes bytes; it does not know
how entries or statements are built.
"""

from __future__ import annotations

import hashlib
from typing import NewType

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ZERO_HASH",
    "Digest",
    "KeyId",
    "digest_from_hex",
    "event_id",
    "key_id",
    "leaf_hash",
    "node_hash",
    "sha256",
]

Digest = NewType("Digest", bytes)
"""A 32-byte SHA-256 value."""

KeyId = NewType("KeyId", bytes)
"""SHA-256 of a raw 32-byte Ed25519 public key."""

HASH_SIZE = 32
ZERO_HASH = Digest(bytes(HASH_SIZE))
"""``prev`` of entry 0."""

EMPTY_ROOT = Digest(hashlib.sha256(b"").digest())
"""Root hash of the empty tree (RFC 9162 section 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def sha256(data: bytes) -> Digest:
    """Plain SHA-256."""
    return Digest(hashlib.sha256(data).digest())


def leaf_hash(entry_bytes: bytes) -> Digest:
    """RFC 9162 section 2.1.1: SHA-256(0x00 || leaf data)."""
    return Digest(hashlib.sha256(_LEAF_PREFIX + entry_bytes).digest())


def node_hash(left: bytes, right: bytes) -> Digest:
    """RFC 9162 section 2.1.1: SHA-256(0x01 || left || right)."""
    return Digest(hashlib.sha256(_NODE_PREFIX + left + right).digest())


def event_id(statement_bytes: bytes) -> Digest:
    """Event id: SHA-256 of the statement's canonical bytes (not of its signature)."""
    return Digest(hashlib.sha256(statement_bytes).digest())


def key_id(public_key: bytes) -> KeyId:
    """Key id: SHA-256 of the raw 32-byte Ed25519 public key.

    Not the 4-byte key hash of a C2SP signed note (see :mod:`ledger.checkpoint`).
    """
    if len(public_key) != 32:
        raise ValueError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    return KeyId(hashlib.sha256(public_key).digest())


def digest_from_hex(text: str) -> Digest:
    """Parse 64 lowercase hex digits into a digest.

    Raises:
        ValueError: not exactly 64 lowercase hex digits.
    """
    if len(text) != 2 * HASH_SIZE or text != text.lower():
        raise ValueError("expected 64 lowercase hex digits")
    return Digest(bytes.fromhex(text))
