"""C2SP signed notes, transparency-log checkpoints and witness cosignatures.

This module owns the text forms of three C2SP specifications and the Ed25519
signatures over them:

* ``c2sp.org/signed-note`` — a UTF-8 text ending in a newline, a blank line,
  then one or more signature lines ``— <key name> base64(key hash || sig)``;
  and the verifier key string ``<name>+<hex key hash>+base64(type || key)``.
* ``c2sp.org/tlog-checkpoint`` — the note text ``origin\\nsize\\nbase64(root)\\n``
  plus optional extension lines: the signed tree head of an RFC 9162 log.
* ``c2sp.org/tlog-cosignature`` (``cosignature/v1``, signature type ``0x04``) —
  a witness's timestamped Ed25519 signature over a checkpoint it has seen.

Parsing is strict: whatever parses re-serialises to the same text, byte for
byte (base64 must be canonical, sizes have no leading zeros, hex is
lowercase). Malformed text raises :class:`~ledger.errors.EncodingError` with a
``code`` (``bad_note``, ``bad_checkpoint``, ``bad_vkey``) and the ``field``
at fault; a signature that does not verify raises
:class:`~ledger.errors.SignatureError`. ``verify_*`` never returns ``False``.

Signature lines from keys the caller did not pass are carried and ignored, as
signed-note requires ("verifiers MUST ignore signatures from unknown keys");
that is what lets witnesses add cosignatures and logs rotate keys.

Deliberately not here: storing notes or keys (``ledger.storage``, key files),
reading a clock (cosignature timestamps are arguments; how fresh a cosignature
must be is the caller's policy), computing Merkle roots or checking that two
checkpoints are consistent (``ledger.merkle``), and any network I/O. Only the
Ed25519 signature types ``0x01`` and ``0x04`` can be verified.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ledger.errors import EncodingError, SignatureError, VerificationError
from ledger.hashing import HASH_SIZE, sha256
from ledger.keys import SIGNATURE_SIZE, Signer, VerifyingKey, b64decode, b64encode

__all__ = [
    "KEY_HASH_SIZE",
    "MAX_COSIGNATURE_TIMESTAMP",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "Checkpoint",
    "Cosignature",
    "NoteSignature",
    "NoteVerifier",
    "SignedNote",
    "VerifiedCheckpoint",
    "build_vkey",
    "build_witness_vkey",
    "cosign_checkpoint",
    "note_key_hash",
    "open_checkpoint",
    "open_cosignature",
    "sign_checkpoint",
    "sign_note",
    "verify_note",
    "verify_note_signed_by",
]

SIG_TYPE_ED25519 = 0x01
"""signed-note "Signature types": plain Ed25519 over the note text."""

SIG_TYPE_COSIGNATURE_V1 = 0x04
"""signed-note "Signature types": tlog-cosignature ``cosignature/v1`` (Ed25519)."""

KEY_HASH_SIZE = 4
"""Bytes of the key ID that opens every note signature (a big-endian uint32)."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (signed-note asks for at least 16)."""

MAX_NOTE_SIZE = 128 * 1024
"""Most UTF-8 bytes accepted in one note; room for 16 post-quantum witness lines."""

MAX_TREE_SIZE = 2**64 - 1
"""Largest checkpoint size accepted: a uint64, as in the tlog-cosignature structs."""

MAX_COSIGNATURE_TIMESTAMP = 2**63 - 1
"""tlog-cosignature: the timestamp "MUST NOT exceed 2^63 - 1"."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_TIMESTAMP_SIZE = 8
_COSIGNATURE_SIZE = _TIMESTAMP_SIZE + SIGNATURE_SIZE
_KNOWN_TYPES = frozenset({SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1})
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # every C0 control except newline
_DECIMAL = re.compile("0|[1-9][0-9]*")
_KEY_HASH_HEX = re.compile("[0-9a-f]{8}")
_MAX_SIZE_DIGITS = len(str(MAX_TREE_SIZE))


# -- text rules shared by names, note texts and checkpoint lines ------------------


def _is_utf8(text: str) -> bool:
    # A Python str may hold lone surrogates, which have no UTF-8 encoding.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_chars(text: str, *, code: str, field: str) -> None:
    """signed-note "Format": valid UTF-8, no ASCII control character but newline."""
    found = _CONTROL.search(text)
    if found is not None:
        raise EncodingError(
            f"{field}: control character U+{ord(found.group()):04X} at offset {found.start()}",
            code=code,
            field=field,
        )
    if not _is_utf8(text):
        raise EncodingError(f"{field}: not valid UTF-8", code=code, field=field)


def _check_name(name: str, *, code: str, field: str) -> None:
    """signed-note "Format": key names are non-empty, without spaces or ``+``."""
    if not name:
        raise EncodingError(f"{field}: key name is empty", code=code, field=field)
    if "+" in name:
        raise EncodingError(f"{field}: key name contains '+'", code=code, field=field)
    if any(ch.isspace() for ch in name):
        raise EncodingError(f"{field}: key name contains a space", code=code, field=field)
    _check_chars(name, code=code, field=field)


def _check_note_text(text: str, *, code: str, field: str) -> None:
    """signed-note "Format": the note text ends in a newline."""
    if not text.endswith("\n"):
        raise EncodingError(f"{field}: note text must end with a newline", code=code, field=field)
    _check_chars(text, code=code, field=field)


def _check_line(line: str, *, field: str) -> None:
    """tlog-checkpoint "Note text": every line is non-empty and holds no newline."""
    if not line:
        raise EncodingError(f"{field}: line is empty", code="bad_checkpoint", field=field)
    if "\n" in line:
        raise EncodingError(f"{field}: contains a newline", code="bad_checkpoint", field=field)
    _check_chars(line, code="bad_checkpoint", field=field)


# -- verifier keys ------------------------------------------------------------------


def note_key_hash(name: str, public: bytes, sig_type: int = SIG_TYPE_ED25519) -> bytes:
    """The 4-byte key ID of a note verifier key.

    signed-note "Signatures": ``SHA-256(key name || 0x0A || type || public key)[:4]``;
    tlog-cosignature uses the same rule with type ``0x04``.

    Args:
        name: the key name (encoded as UTF-8).
        public: the public key bytes (32 bytes for Ed25519).
        sig_type: the signature type byte, 0 <= sig_type <= 255.

    Returns:
        The first four bytes of the hash, in big-endian order as on the wire.

    Raises:
        ValueError: ``sig_type`` is not a byte, or ``name`` is not encodable.
    """
    if not 0 <= sig_type <= 0xFF:
        raise ValueError(f"signature type must be a byte, got {sig_type}")
    data = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public
    return sha256(data)[:KEY_HASH_SIZE]


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteVerifier:
    """A trusted note key: name, key ID, Ed25519 public key and signature type.

    An instance is always consistent: the name follows the signed-note rules,
    the type is ``0x01`` (note signatures) or ``0x04`` (``cosignature/v1``),
    and ``key_hash`` equals :func:`note_key_hash` of the other three.

    Attributes:
        name: the key name; for a log key, the checkpoint origin.
        key_hash: the 4-byte key ID.
        public: the Ed25519 public key.
        sig_type: :data:`SIG_TYPE_ED25519` or :data:`SIG_TYPE_COSIGNATURE_V1`.
    """

    name: str
    key_hash: bytes
    public: VerifyingKey
    sig_type: int = SIG_TYPE_ED25519

    def __post_init__(self) -> None:
        _check_name(self.name, code="bad_vkey", field="name")
        if self.sig_type not in _KNOWN_TYPES:
            raise EncodingError(
                f"sig_type: unsupported signature type 0x{self.sig_type:02x}",
                code="bad_vkey",
                field="sig_type",
            )
        expected = note_key_hash(self.name, self.public.raw, self.sig_type)
        if self.key_hash != expected:
            raise EncodingError(
                f"key_hash: {self.key_hash.hex()} does not match the key ({expected.hex()})",
                code="bad_vkey",
                field="key_hash",
            )

    @classmethod
    def from_key(
        cls, name: str, public: VerifyingKey, sig_type: int = SIG_TYPE_ED25519
    ) -> NoteVerifier:
        """Build the verifier for ``public`` under ``name``, computing its key ID.

        Raises:
            EncodingError: ``bad_vkey``; the name breaks a signed-note rule or the
                type is not supported.
        """
        _check_name(name, code="bad_vkey", field="name")
        if sig_type not in _KNOWN_TYPES:
            raise EncodingError(
                f"sig_type: unsupported signature type 0x{sig_type:02x}",
                code="bad_vkey",
                field="sig_type",
            )
        return cls(
            name=name,
            key_hash=note_key_hash(name, public.raw, sig_type),
            public=public,
            sig_type=sig_type,
        )

    @classmethod
    def from_vkey(cls, text: str) -> NoteVerifier:
        """Parse a verifier key ``<name>+<hex key ID>+base64(type || public key)``.

        signed-note "Verifier keys". Stricter than the Go reference in one way:
        the key ID must be 8 *lowercase* hex digits, so that ``to_vkey`` gives
        back the same text.

        Raises:
            EncodingError: ``bad_vkey``, with ``field`` one of ``vkey`` (shape),
                ``name``, ``key_hash`` (not 8 lowercase hex digits, or not the
                hash of the key), ``key`` (base64 or key length), ``sig_type``.
        """
        parts = text.split("+", 2)  # names hold no '+'; base64 may
        if len(parts) != 3:
            raise EncodingError(
                "vkey: expected <name>+<key hash>+<base64 key>", code="bad_vkey", field="vkey"
            )
        name, hash_hex, key_b64 = parts
        _check_name(name, code="bad_vkey", field="name")
        if _KEY_HASH_HEX.fullmatch(hash_hex) is None:
            raise EncodingError(
                "key_hash: must be 8 lowercase hex digits", code="bad_vkey", field="key_hash"
            )
        try:
            key = b64decode(key_b64, field="key")
            if not key:
                raise EncodingError("key: empty", code="bad_vkey", field="key")
            if key[0] not in _KNOWN_TYPES:
                raise EncodingError(
                    f"sig_type: unsupported signature type 0x{key[0]:02x}",
                    code="bad_vkey",
                    field="sig_type",
                )
            public = VerifyingKey.from_bytes(key[1:])
        except EncodingError as exc:
            if exc.code == "bad_vkey":
                raise
            raise EncodingError(f"key: {exc.message}", code="bad_vkey", field="key") from exc
        return cls(name=name, key_hash=bytes.fromhex(hash_hex), public=public, sig_type=key[0])

    def to_vkey(self) -> str:
        """The verifier key string; ``from_vkey(v.to_vkey()) == v``."""
        encoded = b64encode(bytes([self.sig_type]) + self.public.raw)
        return f"{self.name}+{self.key_hash.hex()}+{encoded}"

    def _verify(self, text: str, signature: bytes) -> int | None:
        """Check one signature (the bytes after the key ID) over the note text.

        Returns:
            The cosignature timestamp for type ``0x04``; None for type ``0x01``.

        Raises:
            SignatureError: wrong length, timestamp out of range, or not valid.
        """
        if self.sig_type == SIG_TYPE_COSIGNATURE_V1:
            return self._verify_cosignature(text, signature)
        self.public.verify(signature, text.encode("utf-8"))
        return None

    def _verify_cosignature(self, text: str, signature: bytes) -> int:
        # tlog-cosignature: timestamped_signature = u64 timestamp || ed25519 signature.
        if len(signature) != _COSIGNATURE_SIZE:
            raise SignatureError(
                f"cosignature must be {_COSIGNATURE_SIZE} bytes, got {len(signature)}"
            )
        timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
        if timestamp > MAX_COSIGNATURE_TIMESTAMP:
            raise SignatureError(f"cosignature timestamp {timestamp} exceeds 2^63 - 1")
        self.public.verify(signature[_TIMESTAMP_SIZE:], _cosignature_message(text, timestamp))
        return timestamp


def build_vkey(name: str, public: VerifyingKey) -> str:
    """The signed-note verifier key (type ``0x01``) for a log or note key.

    Raises:
        EncodingError: ``bad_vkey``; the name breaks a signed-note rule.
    """
    return NoteVerifier.from_key(name, public, SIG_TYPE_ED25519).to_vkey()


def build_witness_vkey(name: str, public: VerifyingKey) -> str:
    """The tlog-cosignature verifier key (type ``0x04``) for a witness.

    Raises:
        EncodingError: ``bad_vkey``; the name breaks a signed-note rule.
    """
    return NoteVerifier.from_key(name, public, SIG_TYPE_COSIGNATURE_V1).to_vkey()


# -- signed notes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteSignature:
    """One signature line of a signed note, decoded.

    Attributes:
        name: the key name on the line.
        key_hash: the 4-byte key ID that opens the decoded signature.
        signature: the bytes after the key ID (for ``0x01``, a 64-byte Ed25519
            signature; for ``0x04``, an 8-byte timestamp and then one).
    """

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name, code="bad_note", field="name")
        if len(self.key_hash) != KEY_HASH_SIZE:
            raise EncodingError(
                f"key_hash: must be {KEY_HASH_SIZE} bytes, got {len(self.key_hash)}",
                code="bad_note",
                field="key_hash",
            )
        if not self.signature:
            raise EncodingError("signature: empty", code="bad_note", field="signature")

    @property
    def line(self) -> str:
        """The line as it appears in the note: ``— <name> <base64>\\n``."""
        return f"{_SIG_PREFIX}{self.name} {b64encode(self.key_hash + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse exactly one signature line, including its final newline.

        Raises:
            EncodingError: ``bad_note``; not one newline-terminated line, or the
                line is malformed (see :meth:`SignedNote.from_text`).
        """
        if not line.endswith("\n") or line.count("\n") != 1:
            raise EncodingError(
                "signature: expected one line ending in a newline",
                code="bad_note",
                field="signature",
            )
        return _parse_signature_line(line[:-1], field="signature")


def _parse_signature_line(line: str, *, field: str) -> NoteSignature:
    """signed-note "Format": em dash, space, key name, space, base64 (no newline)."""
    if not line.startswith(_SIG_PREFIX):
        raise EncodingError(
            f"{field}: signature line must start with '\u2014 '", code="bad_note", field=field
        )
    name, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    if not space or not encoded:
        raise EncodingError(
            f"{field}: expected '\u2014 <name> <base64>'", code="bad_note", field=field
        )
    _check_name(name, code="bad_note", field=field)
    try:
        raw = b64decode(encoded, field=field)
    except EncodingError as exc:
        raise EncodingError(f"{exc.message}", code="bad_note", field=field) from exc
    if len(raw) <= KEY_HASH_SIZE:
        raise EncodingError(
            f"{field}: signature shorter than key ID plus one byte", code="bad_note", field=field
        )
    return NoteSignature(name=name, key_hash=raw[:KEY_HASH_SIZE], signature=raw[KEY_HASH_SIZE:])


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedNote:
    """A signed note (c2sp.org/signed-note): text plus signature lines.

    An instance is always well-formed: the text ends in a newline and holds no
    control character but newline; there are 1 to :data:`MAX_SIGNATURES`
    signatures, no two with the same key name and key ID; and the whole note
    fits in :data:`MAX_NOTE_SIZE` bytes. Nothing here says the signatures
    verify: see :func:`verify_note`.

    Attributes:
        text: the note text, including its final newline but not the blank line.
        signatures: the signature lines in note order.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_note_text(self.text, code="bad_note", field="text")
        if not self.signatures:
            raise EncodingError("signatures: none", code="bad_note", field="signatures")
        if len(self.signatures) > MAX_SIGNATURES:
            raise EncodingError(
                f"signatures: more than {MAX_SIGNATURES}", code="bad_note", field="signatures"
            )
        seen: set[tuple[str, bytes]] = set()
        for i, sig in enumerate(self.signatures):
            key = (sig.name, sig.key_hash)
            if key in seen:
                # One key signing twice is at best noise; at worst it would count
                # twice toward a witness quorum.
                raise EncodingError(
                    f"signatures[{i}]: second signature by {sig.name}+{sig.key_hash.hex()}",
                    code="bad_note",
                    field=f"signatures[{i}]",
                )
            seen.add(key)
        size = len(self.to_bytes())
        if size > MAX_NOTE_SIZE:
            raise EncodingError(
                f"note: {size} bytes exceeds {MAX_NOTE_SIZE}", code="bad_note", field="note"
            )

    @classmethod
    def from_text(cls, note: str) -> SignedNote:
        """Parse a signed note strictly (c2sp.org/signed-note, "Format").

        The text is everything up to the *last* blank line (the text may itself
        contain empty lines); after it come one or more lines
        ``— <name> base64(key ID || signature)``, each ending in a newline.

        Raises:
            EncodingError: ``bad_note``, with ``field`` naming the part: ``note``
                (too large, control character, no blank line, truncated),
                ``signatures`` (none or too many), ``signatures[i]`` (malformed
                line, bad base64, too short, repeated key).
        """
        if len(note) > MAX_NOTE_SIZE:  # chars <= bytes: a cheap early bound
            raise EncodingError(
                f"note: exceeds {MAX_NOTE_SIZE} bytes", code="bad_note", field="note"
            )
        _check_chars(note, code="bad_note", field="note")
        split = note.rfind("\n\n")
        if split < 0:
            raise EncodingError(
                "note: no blank line between text and signatures", code="bad_note", field="note"
            )
        text, block = note[: split + 1], note[split + 2 :]
        if not block:
            raise EncodingError("signatures: none", code="bad_note", field="signatures")
        if not block.endswith("\n"):
            raise EncodingError(
                "note: truncated (last signature line has no newline)",
                code="bad_note",
                field="note",
            )
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise EncodingError(
                f"signatures: more than {MAX_SIGNATURES}", code="bad_note", field="signatures"
            )
        signatures = tuple(
            _parse_signature_line(line, field=f"signatures[{i}]") for i, line in enumerate(lines)
        )
        return cls(text=text, signatures=signatures)

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedNote:
        """Parse a signed note from its UTF-8 bytes (see :meth:`from_text`).

        Raises:
            EncodingError: ``bad_note``; not UTF-8, or as :meth:`from_text`.
        """
        if len(data) > MAX_NOTE_SIZE:
            raise EncodingError(
                f"note: exceeds {MAX_NOTE_SIZE} bytes", code="bad_note", field="note"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncodingError("note: not valid UTF-8", code="bad_note", field="note") from exc
        return cls.from_text(text)

    def to_text(self) -> str:
        """The note exactly as parsed: text, blank line, signature lines."""
        return self.text + "\n" + "".join(sig.line for sig in self.signatures)

    def to_bytes(self) -> bytes:
        """UTF-8 of :meth:`to_text`."""
        return self.to_text().encode("utf-8")

    def with_signatures(self, lines: str) -> SignedNote:
        """This note with more signature lines appended (e.g. witness cosignatures).

        Args:
            lines: one or more signature lines, each ending in a newline, as
                returned by :func:`sign_note` or :func:`cosign_checkpoint`.

        Raises:
            EncodingError: ``bad_note``; a malformed line, a key that already
                signed, or the note grows past a limit.
        """
        if not lines.endswith("\n"):
            raise EncodingError(
                "signatures: lines must end with a newline", code="bad_note", field="signatures"
            )
        offset = len(self.signatures)
        added = tuple(
            _parse_signature_line(line, field=f"signatures[{offset + i}]")
            for i, line in enumerate(lines[:-1].split("\n"))
        )
        return SignedNote(text=self.text, signatures=self.signatures + added)


def _sign(text: str, name: str, signer: Signer) -> NoteSignature:
    _check_note_text(text, code="bad_note", field="text")
    _check_name(name, code="bad_note", field="name")
    key_hash = note_key_hash(name, signer.public.raw, SIG_TYPE_ED25519)
    return NoteSignature(name=name, key_hash=key_hash, signature=signer.sign(text.encode("utf-8")))


def sign_note(text: str, name: str, signer: Signer) -> str:
    """Sign a note text with an Ed25519 key (signed-note, type ``0x01``).

    Args:
        text: the note text, ending in a newline.
        name: the key name to put on the line.
        signer: the private key.

    Returns:
        The signature line ``— <name> base64(key ID || signature)\\n``; the
        signed note is ``text + "\\n" + line``.

    Raises:
        EncodingError: ``bad_note``; the text or the name breaks a signed-note rule.
    """
    return _sign(text, name, signer).line


def _index(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    index: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_hash)
        known = index.get(key)
        if known is not None and known != verifier:
            raise ValueError(
                f"two different verifiers share name and key ID "
                f"{verifier.name}+{verifier.key_hash.hex()}"
            )
        index[key] = verifier
    return index


def _verify_known(
    note: SignedNote, index: dict[tuple[str, bytes], NoteVerifier]
) -> list[tuple[NoteVerifier, int | None]]:
    """Verify every signature whose name and key ID are known; skip the rest.

    signed-note "Signatures": unknown keys MUST be ignored; a known key's
    signature MUST be verified, and if it fails the whole note is rejected.
    """
    verified: list[tuple[NoteVerifier, int | None]] = []
    for i, sig in enumerate(note.signatures):
        verifier = index.get((sig.name, sig.key_hash))
        if verifier is None:
            continue
        try:
            timestamp = verifier._verify(note.text, sig.signature)
        except SignatureError as exc:
            raise SignatureError(
                f"signatures[{i}]: signature by {sig.name}+{sig.key_hash.hex()} "
                f"does not verify ({exc.message})",
                field=f"signatures[{i}]",
            ) from exc
        verified.append((verifier, timestamp))
    return verified


def verify_note(note: SignedNote, verifiers: Sequence[NoteVerifier]) -> list[NoteVerifier]:
    """Verify a note against the trusted keys (c2sp.org/signed-note, "Signatures").

    Lines whose key name and key ID match no verifier are ignored. Every line
    that matches one must verify.

    Args:
        note: the parsed note.
        verifiers: the trusted keys; two with the same name and key ID must be
            the same key.

    Returns:
        The verifiers whose signatures verified, in note order (never empty).

    Raises:
        SignatureError: a known key's signature does not verify (``field`` names
            the line), or no known key signed (code ``missing_signature``).
        ValueError: two different verifiers share a name and key ID.
    """
    verified = _verify_known(note, _index(verifiers))
    if not verified:
        raise SignatureError("note: no signature from a known key", code="missing_signature")
    return [verifier for verifier, _ in verified]


def verify_note_signed_by(note: SignedNote, verifier: NoteVerifier) -> None:
    """Require a valid signature on ``note`` by ``verifier``.

    Raises:
        SignatureError: the key's signature does not verify, or it is absent
            (code ``missing_signature``).
    """
    if not _verify_known(note, _index([verifier])):
        raise SignatureError(
            f"note: not signed by {verifier.name}+{verifier.key_hash.hex()}",
            code="missing_signature",
        )


# -- checkpoints --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The note text of a transparency-log checkpoint (c2sp.org/tlog-checkpoint).

    An instance is always well-formed: a non-empty origin line, 0 <= size <=
    :data:`MAX_TREE_SIZE`, a 32-byte RFC 9162 root hash, and extension lines
    that are non-empty and free of newlines and control characters.

    Attributes:
        origin: the log's identity; for Mandi, also the log key's name.
        size: the tree size (number of leaves).
        root_hash: the RFC 9162 Merkle tree hash at ``size``.
        extensions: opaque extension lines (NOT RECOMMENDED by the spec).
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, field="origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise TypeError(f"size must be an int, got {type(self.size).__name__}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise EncodingError(
                f"size: must satisfy 0 <= size <= 2^64 - 1, got {self.size}",
                code="bad_checkpoint",
                field="size",
            )
        if not isinstance(self.root_hash, bytes):
            raise TypeError(f"root_hash must be bytes, got {type(self.root_hash).__name__}")
        if len(self.root_hash) != HASH_SIZE:
            raise EncodingError(
                f"root_hash: must be {HASH_SIZE} bytes, got {len(self.root_hash)}",
                code="bad_checkpoint",
                field="root_hash",
            )
        for i, line in enumerate(self.extensions):
            _check_line(line, field=f"extensions[{i}]")

    def to_text(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` then extension lines."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (tlog-checkpoint, "Note text").

        At least three non-empty newline-terminated lines: origin; tree size in
        ASCII decimal without leading zeros ("0" for the empty tree); standard
        base64 of a 32-byte root hash; then optional extension lines.

        Raises:
            EncodingError: ``bad_checkpoint``, with ``field`` one of ``text``
                (final newline, fewer than three lines), ``origin``, ``size``,
                ``root_hash``, ``extensions[i]``.
        """
        if not text.endswith("\n"):
            raise EncodingError(
                "text: checkpoint must end with a newline", code="bad_checkpoint", field="text"
            )
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise EncodingError(
                f"text: checkpoint needs at least 3 lines, got {len(lines)}",
                code="bad_checkpoint",
                field="text",
            )
        origin, size_text, root_text, *extensions = lines
        if len(size_text) > _MAX_SIZE_DIGITS or _DECIMAL.fullmatch(size_text) is None:
            raise EncodingError(
                "size: must be an ASCII decimal uint64 without leading zeros",
                code="bad_checkpoint",
                field="size",
            )
        try:
            root_hash = b64decode(root_text, field="root_hash")
        except EncodingError as exc:
            raise EncodingError(exc.message, code="bad_checkpoint", field="root_hash") from exc
        return cls(
            origin=origin, size=int(size_text), root_hash=root_hash, extensions=tuple(extensions)
        )


def sign_checkpoint(checkpoint: Checkpoint, name: str, signer: Signer) -> SignedNote:
    """Sign a checkpoint as the log (signed-note type ``0x01``).

    tlog-checkpoint says the key name SHOULD match the origin line, and
    :func:`open_checkpoint` requires it; this function does not check it.

    Raises:
        EncodingError: ``bad_note``; the name breaks a signed-note rule.
    """
    text = checkpoint.to_text()
    return SignedNote(text=text, signatures=(_sign(text, name, signer),))


# -- cosignatures -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Cosignature:
    """A verified ``cosignature/v1`` (c2sp.org/tlog-cosignature).

    Attributes:
        name: the witness's key name.
        key_hash: the witness's 4-byte key ID (type ``0x04``).
        timestamp: POSIX seconds at which the witness cosigned, as it claims.
    """

    name: str
    key_hash: bytes
    timestamp: int


def _cosignature_message(text: str, timestamp: int) -> bytes:
    # tlog-cosignature "Ed25519 signed message": header line, time line, note body.
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign_checkpoint(signer: Signer, name: str, body_text: str, timestamp: int) -> str:
    """Cosign a checkpoint as a witness (tlog-cosignature, ``cosignature/v1``).

    The caller decides that the checkpoint is consistent with what the witness
    saw before, and passes the time: this module reads no clock.

    Args:
        signer: the witness's private key.
        name: the witness's key name.
        body_text: the checkpoint note text (no signature lines).
        timestamp: POSIX seconds, 0 <= timestamp <= 2^63 - 1.

    Returns:
        The line ``— <name> base64(key ID || u64 timestamp || signature)\\n``.

    Raises:
        EncodingError: ``bad_checkpoint`` for a body that is not a checkpoint,
            ``bad_note`` for a bad name.
        TypeError, ValueError: ``timestamp`` is not an int in range.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be an int, got {type(timestamp).__name__}")
    if not 0 <= timestamp <= MAX_COSIGNATURE_TIMESTAMP:
        raise ValueError(f"timestamp must satisfy 0 <= timestamp <= 2^63 - 1, got {timestamp}")
    Checkpoint.from_text(body_text)  # also enforces the signed-note text rules
    _check_name(name, code="bad_note", field="name")
    key_hash = note_key_hash(name, signer.public.raw, SIG_TYPE_COSIGNATURE_V1)
    signature = signer.sign(_cosignature_message(body_text, timestamp))
    stamped = timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature
    return NoteSignature(name=name, key_hash=key_hash, signature=stamped).line


def open_cosignature(body_text: str, line: str, witness: NoteVerifier) -> Cosignature:
    """Verify one witness's cosignature line over a checkpoint body.

    Args:
        body_text: the checkpoint note text the witness was asked to cosign.
        line: one signature line, as returned by :func:`cosign_checkpoint`.
        witness: the witness key (type ``0x04``).

    Returns:
        The verified cosignature with its timestamp.

    Raises:
        EncodingError: ``bad_note``; the line or the body is malformed.
        SignatureError: the line is by another key (code ``missing_signature``)
            or does not verify.
        ValueError: ``witness`` is not a ``cosignature/v1`` key.
    """
    if witness.sig_type != SIG_TYPE_COSIGNATURE_V1:
        raise ValueError("witness must be a cosignature/v1 (type 0x04) verifier")
    sig = NoteSignature.from_line(line)
    _check_note_text(body_text, code="bad_note", field="text")
    if (sig.name, sig.key_hash) != (witness.name, witness.key_hash):
        raise SignatureError(
            f"signature: by {sig.name}+{sig.key_hash.hex()}, "
            f"not {witness.name}+{witness.key_hash.hex()}",
            code="missing_signature",
        )
    timestamp = witness._verify_cosignature(body_text, sig.signature)
    return Cosignature(name=sig.name, key_hash=sig.key_hash, timestamp=timestamp)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature and witness cosignatures have verified.

    Only :func:`open_checkpoint` makes these; holding one means the checks ran.

    Attributes:
        checkpoint: the parsed note text.
        note: the whole signed note, including lines from unknown keys.
        cosignatures: the verified witness cosignatures, in note order.
    """

    checkpoint: Checkpoint
    note: SignedNote
    cosignatures: tuple[Cosignature, ...] = ()

    @property
    def witnesses_verified(self) -> tuple[str, ...]:
        """Names of the witnesses whose cosignatures verified, in note order."""
        return tuple(cosig.name for cosig in self.cosignatures)


def open_checkpoint(
    note_text: str,
    log_verifier: NoteVerifier,
    witnesses: Sequence[NoteVerifier] = (),
    quorum: int = 0,
) -> VerifiedCheckpoint:
    """Parse and verify a signed checkpoint and its witness cosignatures.

    Steps, in order: parse the note (signed-note); verify every line from a
    known key, i.e. the log key or one of ``witnesses`` (ignore the rest);
    require the log's signature; only then parse the text as a checkpoint
    (tlog-checkpoint), whose origin must equal the log key's name; finally
    require at least ``quorum`` distinct witness cosignatures
    (tlog-cosignature).

    Args:
        note_text: the signed checkpoint note.
        log_verifier: the log's key; its name is the expected origin.
        witnesses: trusted witness keys, each of type ``0x04``.
        quorum: how many of them must have cosigned, 0 <= quorum <= number of
            distinct witnesses.

    Returns:
        The checkpoint, the note and the verified cosignatures with timestamps.

    Raises:
        EncodingError: ``bad_note`` or ``bad_checkpoint``; malformed text.
        SignatureError: a known key's line does not verify; the log signature is
            missing (``missing_signature``); too few witnesses
            (``quorum_not_met``).
        VerificationError: the origin is not the log key's name (``origin_mismatch``).
        ValueError: a witness is not type ``0x04`` or collides with the log key,
            or ``quorum`` is out of range.
    """
    witness_index = _index(witnesses)
    log_key = (log_verifier.name, log_verifier.key_hash)
    if log_key in witness_index:
        raise ValueError("a witness has the same name and key ID as the log key")
    if any(w.sig_type != SIG_TYPE_COSIGNATURE_V1 for w in witness_index.values()):
        raise ValueError("witnesses must be cosignature/v1 (type 0x04) verifiers")
    if not 0 <= quorum <= len(witness_index):
        raise ValueError(
            f"quorum must satisfy 0 <= quorum <= {len(witness_index)} witnesses, got {quorum}"
        )
    note = SignedNote.from_text(note_text)
    verified = _verify_known(note, {**witness_index, log_key: log_verifier})
    if not any((v.name, v.key_hash) == log_key for v, _ in verified):
        raise SignatureError(
            f"checkpoint: not signed by the log key "
            f"{log_verifier.name}+{log_verifier.key_hash.hex()}",
            code="missing_signature",
        )
    # The text means nothing until the log's signature has verified (signed-note).
    checkpoint = Checkpoint.from_text(note.text)
    if checkpoint.origin != log_verifier.name:
        raise VerificationError(
            f"origin: {checkpoint.origin!r} is not the log {log_verifier.name!r}",
            code="origin_mismatch",
            field="origin",
        )
    cosignatures = tuple(
        Cosignature(name=v.name, key_hash=v.key_hash, timestamp=timestamp)
        for v, timestamp in verified
        if (v.name, v.key_hash) != log_key and timestamp is not None
    )
    if len(cosignatures) < quorum:
        raise SignatureError(
            f"checkpoint: {len(cosignatures)} witness cosignatures, {quorum} required",
            code="quorum_not_met",
        )
    return VerifiedCheckpoint(checkpoint=checkpoint, note=note, cosignatures=cosignatures)
