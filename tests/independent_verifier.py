"""A second, independent verifier of Mandi's byte formats, written from docs/protocol.md.

It imports only ``hashlib``, ``base64``, ``json``, ``cryptography`` and ``typing``:
nothing from ``ledger``, so a shared bug cannot hide in shared code. The test
vectors in tests/vectors/mandi/ are re-derived with it
(tests/ledger/test_protocol_vectors.py). It is deliberately plain: the RFC
algorithms are transcribed step by step, not optimised.

Covered: canonical JSON (RFC 8785 over Mandi's I-JSON subset) and the strict
parser, key ids, the statement envelope and its signature, event ids, entries,
leaf and node hashes, the chain, a registry replay (genesis, enrol, rotate,
revoke and the key validity rule), Merkle roots, RFC 9162 inclusion and
consistency proof verification, C2SP note key hashes, verifier keys, checkpoint
and cosignature verification.

Every check raises :class:`VerifyError`; nothing returns ``False``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

STATEMENT_DOMAIN = b"mandi-statement-v1\n"
REQUEST_DOMAIN = b"mandi-request-v1\n"
MAX_SAFE_INTEGER = 2**53 - 1
MAX_STATEMENT_BYTES = 65536
ENVELOPE_FIELDS = frozenset({"body", "kind", "origin", "signer", "time", "version"})
ENTRY_FIELDS = frozenset({"accepted_ms", "index", "prev", "signature", "statement"})
EMPTY_ROOT = hashlib.sha256(b"").digest()
ZERO_HASH = bytes(32)
SIG_TYPE_ED25519 = 0x01
SIG_TYPE_COSIGNATURE = 0x04
EM_DASH_PREFIX = "\u2014 "


class VerifyError(Exception):
    """The input does not hold: malformed, non-canonical, or a check failed."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise VerifyError(message)


# --------------------------------------------------------------------------- canonical JSON


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a value made of dict, list, str, int, bool and None."""
    return _encode(value).encode("utf-8")


def _encode(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        _require(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER, f"integer {value} out of range")
        return str(value)
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        for key in value:
            _require(isinstance(key, str), "object keys must be strings")
            _encode_string(key)  # rejects lone surrogates before sorting
        # RFC 8785 section 3.2.3: sort by UTF-16 code units; big-endian UTF-16
        # bytes compare in exactly that order.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_encode_string(k) + ":" + _encode(value[k]) for k in keys) + "}"
    raise VerifyError(f"{type(value).__name__} is not in Mandi's JSON subset")


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_SHORT_ESCAPES.update({"\f": "\\f", "\r": "\\r"})


def _encode_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise VerifyError("lone surrogate in string")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        _require(key not in result, f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_number(text: str) -> Any:
    raise VerifyError(f"number {text} is not an integer")


def _check_subset(value: Any) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        _require(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER, f"integer {value} out of range")
    elif isinstance(value, str):
        _encode_string(value)
    elif isinstance(value, list):
        for item in value:
            _check_subset(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _encode_string(key)
            _check_subset(item)
    else:
        raise VerifyError(f"{type(value).__name__} is not allowed")


def parse_json(data: bytes) -> Any:
    """Parse strictly: UTF-8, no duplicate keys, no floats/NaN, I-JSON integers, no lone
    surrogates."""
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_reject_number,
            parse_constant=_reject_number,
        )
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise VerifyError(f"not JSON: {exc}") from exc
    _check_subset(value)
    return value


def parse_canonical(data: bytes) -> dict[str, Any]:
    """Parse bytes that must be the canonical form of a JSON object."""
    value: dict[str, Any] = parse_json(data)
    _require(isinstance(value, dict), "expected a JSON object")
    _require(canonical_json(value) == data, "bytes are not RFC 8785 canonical")
    return value


# --------------------------------------------------------------------------- small codecs


def b64decode(text: Any) -> bytes:
    """Canonical standard base64 with padding, nothing else."""
    _require(isinstance(text, str), "base64 value must be a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError as exc:
        raise VerifyError(f"bad base64: {exc}") from exc
    _require(base64.b64encode(raw).decode("ascii") == text, "base64 is not canonical")
    return raw


def b64encode(raw: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(raw).decode("ascii")


def hex32(text: Any) -> bytes:
    """Exactly 64 lowercase hex digits."""
    _require(isinstance(text, str) and len(text) == 64, "expected 64 hex digits")
    _require(all(c in "0123456789abcdef" for c in text), "expected lowercase hex")
    return bytes.fromhex(text)


def sha256(data: bytes) -> bytes:
    """SHA-256."""
    return hashlib.sha256(data).digest()


def key_id(public_key: bytes) -> bytes:
    """SHA-256 of the raw 32-byte Ed25519 public key."""
    _require(len(public_key) == 32, "public key must be 32 bytes")
    return sha256(public_key)


def event_id(statement: bytes) -> bytes:
    """SHA-256 of the statement's canonical bytes."""
    return sha256(statement)


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962: SHA-256(0x00 || entry bytes)."""
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962: SHA-256(0x01 || left || right)."""
    return sha256(b"\x01" + left + right)


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Strict Ed25519 (pyca/cryptography)."""
    _require(len(public_key) == 32, "public key must be 32 bytes")
    _require(len(signature) == 64, "signature must be 64 bytes")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise VerifyError("Ed25519 signature does not verify") from exc


# --------------------------------------------------------------------------- grammars


def check_origin(origin: Any) -> None:
    """1-255 printable ASCII characters (0x21-0x7e), no '+'."""
    _require(isinstance(origin, str) and 1 <= len(origin) <= 255, "origin length")
    _require(all(0x21 <= ord(c) <= 0x7E and c != "+" for c in origin), "origin characters")


def check_kind(kind: Any) -> None:
    """[a-z][a-z0-9_]{0,31}."""
    _require(isinstance(kind, str) and 1 <= len(kind) <= 32, "kind length")
    _require("a" <= kind[0] <= "z", "kind must start with a-z")
    _require(all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in kind), "kind")


def check_participant(pid: Any) -> None:
    """[a-z0-9][a-z0-9._-]{0,63}."""
    _require(isinstance(pid, str) and 1 <= len(pid) <= 64, "participant id length")
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789._-"
    _require(all(c in allowed for c in pid) and pid[0] not in "._-", "participant id")


def _digits(text: str, lo: int, hi: int) -> int:
    _require(text.isascii() and text.isdigit(), f"time: {text!r} is not digits")
    value = int(text)
    _require(lo <= value <= hi, f"time: {text} out of range")
    return value


def check_time(text: Any) -> None:
    """RFC 3339 date-time with a mandatory offset, e.g. 2026-11-28T09:30:00+05:00.

    ``YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)``, a real calendar date,
    year >= 1, hour 00-23, minute and second 00-59 (no leap second).
    """
    _require(isinstance(text, str) and len(text) >= 20, "time: too short")
    _require(text[4] == "-" and text[7] == "-" and text[10] == "T", "time: date shape")
    _require(text[13] == ":" and text[16] == ":", "time: time shape")
    year = _digits(text[0:4], 1, 9999)
    month = _digits(text[5:7], 1, 12)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    _digits(text[8:10], 1, days)
    _digits(text[11:13], 0, 23)
    _digits(text[14:16], 0, 59)
    _digits(text[17:19], 0, 59)
    rest = text[19:]
    if rest.startswith("."):
        digits = len(rest) - len(rest[1:].lstrip("0123456789")) - 1
        _require(1 <= digits <= 9, "time: 1-9 fraction digits")
        rest = rest[1 + digits :]
    if rest == "Z":
        return
    _require(len(rest) == 6 and rest[0] in "+-" and rest[3] == ":", "time: offset")
    _digits(rest[1:3], 0, 23)
    _digits(rest[4:6], 0, 59)


def check_statement(data: bytes) -> dict[str, Any]:
    """Parse and shape-check a statement's canonical bytes; return the object."""
    _require(len(data) <= MAX_STATEMENT_BYTES, "statement too large")
    obj = parse_canonical(data)
    _require(set(obj) == ENVELOPE_FIELDS, f"envelope fields: {sorted(obj)}")
    version = obj["version"]
    _require(isinstance(version, int) and not isinstance(version, bool), "version type")
    _require(version == 1, "version must be 1")
    check_kind(obj["kind"])
    check_origin(obj["origin"])
    hex32(obj["signer"])
    check_time(obj["time"])
    _require(isinstance(obj["body"], dict), "body must be an object")
    return obj


def verify_statement(data: bytes, signature: bytes, public_key: bytes) -> dict[str, Any]:
    """Check a statement's shape, that it names ``public_key``, and its signature."""
    obj = check_statement(data)
    _require(obj["signer"] == key_id(public_key).hex(), "statement names another signer")
    verify_ed25519(public_key, signature, STATEMENT_DOMAIN + data)
    return obj


# --------------------------------------------------------------------------- entries


def entry_bytes(
    *, index: int, accepted_ms: int, prev: bytes, statement: bytes, signature: bytes
) -> bytes:
    """The canonical entry object."""
    return canonical_json(
        {
            "accepted_ms": accepted_ms,
            "index": index,
            "prev": prev.hex(),
            "signature": b64encode(signature),
            "statement": b64encode(statement),
        }
    )


def parse_entry(data: bytes) -> dict[str, Any]:
    """Parse canonical entry bytes; base64 and hex fields are decoded."""
    obj = parse_canonical(data)
    _require(set(obj) == ENTRY_FIELDS, f"entry fields: {sorted(obj)}")
    for name in ("index", "accepted_ms"):
        value = obj[name]
        _require(isinstance(value, int) and not isinstance(value, bool), f"{name} type")
        _require(value >= 0, f"{name} must be >= 0")
    signature = b64decode(obj["signature"])
    _require(len(signature) == 64, "entry signature must be 64 bytes")
    return {
        "index": obj["index"],
        "accepted_ms": obj["accepted_ms"],
        "prev": hex32(obj["prev"]),
        "statement": b64decode(obj["statement"]),
        "signature": signature,
    }


# --------------------------------------------------------------------------- registry replay


class KeyState:
    """A registered key: who holds it, and the half-open index range it may sign in."""

    def __init__(self, participant: str, public: bytes, added_at: int) -> None:
        self.participant = participant
        self.public = public
        self.added_at = added_at
        self.revoked_at: int | None = None

    def valid_at(self, index: int) -> bool:
        """added_at < index and (revoked_at is None or index < revoked_at)."""
        return self.added_at < index and (self.revoked_at is None or index < self.revoked_at)


def _exact(obj: Any, fields: set[str], what: str) -> dict[str, Any]:
    _require(isinstance(obj, dict) and set(obj) == fields, f"{what}: fields must be {fields}")
    result: dict[str, Any] = obj
    return result


def _check_enrol_request(carrier: Any, origin: str) -> tuple[dict[str, Any], bytes]:
    carrier = _exact(carrier, {"request", "signatures"}, "enrol carrier")
    fields = {"key", "origin", "participant", "profile", "time", "type"}
    request = _exact(carrier["request"], fields, "enrol request")
    _require(request["type"] == "enrol", "request type must be enrol")
    _require(request["origin"] == origin, "request origin differs")
    check_participant(request["participant"])
    check_time(request["time"])
    _require(isinstance(request["profile"], dict), "profile must be an object")
    public = b64decode(request["key"])
    _require(len(public) == 32, "key must be 32 bytes")
    sigs = _exact(carrier["signatures"], {"key"}, "signatures")
    verify_ed25519(public, b64decode(sigs["key"]), REQUEST_DOMAIN + canonical_json(request))
    return request, public


def replay(
    entries: list[bytes], *, origin: str, log_public_key: bytes
) -> tuple[list[bytes], dict[bytes, KeyState], dict[str, dict[str, Any]]]:
    """Verify a whole log from entry 0: chain, statements, signatures, registry rules.

    Returns:
        The leaf hashes, the keys (key id -> state) and the participants.
    """
    keys: dict[bytes, KeyState] = {}
    participants: dict[str, dict[str, Any]] = {}
    leaves: list[bytes] = []
    prev = ZERO_HASH
    for position, data in enumerate(entries):
        entry = parse_entry(data)
        _require(entry["index"] == position, f"entry {position}: wrong index")
        _require(entry["prev"] == prev, f"entry {position}: chain broken")
        stmt = check_statement(entry["statement"])
        _require(stmt["origin"] == origin, f"entry {position}: wrong origin")
        signer = bytes.fromhex(stmt["signer"])
        kind = stmt["kind"]
        _require((kind == "genesis") == (position == 0), f"entry {position}: genesis placement")
        if position == 0:
            public = log_public_key
            _require(signer == key_id(public), "genesis must be signed by the log key")
        else:
            state = keys.get(signer)
            _require(state is not None, f"entry {position}: unknown signer")
            assert state is not None
            _require(state.valid_at(position), f"entry {position}: key not valid here")
            public = state.public
        verify_statement(entry["statement"], entry["signature"], public)
        _apply(kind, stmt, position, signer, keys, participants, log_public_key)
        prev = leaf_hash(data)
        leaves.append(prev)
    return leaves, keys, participants


def _apply(
    kind: str,
    stmt: dict[str, Any],
    index: int,
    signer: bytes,
    keys: dict[bytes, KeyState],
    participants: dict[str, dict[str, Any]],
    log_public_key: bytes,
) -> None:
    body = stmt["body"]
    origin = stmt["origin"]
    if kind == "genesis":
        body = _exact(body, {"log_key", "operator"}, "genesis body")
        _require(b64decode(body["log_key"]) == log_public_key, "genesis names another log key")
        request, public = _check_enrol_request(body["operator"], origin)
        pid = request["participant"]
        participants[pid] = {"enrolled_at": index, "operator": True, "profile": request["profile"]}
        keys[key_id(public)] = KeyState(pid, public, index)
        return
    if kind not in ("enrol", "rotate", "revoke"):
        return  # other kinds: free-form bodies for now
    holder = keys[signer].participant
    _require(participants[holder]["operator"], f"{kind}: signer is not the operator")
    if kind == "enrol":
        request, public = _check_enrol_request(body, origin)
        _require(key_id(public) not in keys, "enrol: key already registered")
        pid = request["participant"]
        if pid not in participants:
            participants[pid] = {
                "enrolled_at": index,
                "operator": False,
                "profile": request["profile"],
            }
        keys[key_id(public)] = KeyState(pid, public, index)
    elif kind == "rotate":
        body = _exact(body, {"request", "signatures"}, "rotate body")
        fields = {"new_key", "old_key_id", "origin", "participant", "time", "type"}
        request = _exact(body["request"], fields, "rotate request")
        _require(request["type"] == "rotate" and request["origin"] == origin, "rotate request")
        check_time(request["time"])
        old = keys.get(hex32(request["old_key_id"]))
        _require(old is not None and old.participant == request["participant"], "old key")
        assert old is not None
        _require(old.revoked_at is None, "old key already revoked")
        new_public = b64decode(request["new_key"])
        _require(len(new_public) == 32 and key_id(new_public) not in keys, "new key")
        sigs = _exact(body["signatures"], {"new", "old"}, "rotate signatures")
        message = REQUEST_DOMAIN + canonical_json(request)
        verify_ed25519(old.public, b64decode(sigs["old"]), message)
        verify_ed25519(new_public, b64decode(sigs["new"]), message)
        old.revoked_at = index
        keys[key_id(new_public)] = KeyState(old.participant, new_public, index)
    else:
        body = _exact(body, {"key_id", "participant", "reason"}, "revoke body")
        _require(isinstance(body["reason"], str) and len(body["reason"]) <= 500, "reason")
        target = keys.get(hex32(body["key_id"]))
        _require(target is not None and target.participant == body["participant"], "revoke key")
        assert target is not None
        _require(target.revoked_at is None, "key already revoked")
        target.revoked_at = index


# --------------------------------------------------------------------------- Merkle tree


def _split(n: int) -> int:
    """Largest power of two smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1 MTH, recursively."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def verify_inclusion(
    leaf: bytes, leaf_index: int, tree_size: int, proof: list[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2, step by step."""
    _require(0 <= leaf_index < tree_size, "leaf_index out of range")
    _require(len(leaf) == 32 and len(root) == 32, "leaf and root hashes must be 32 bytes")
    _require(all(len(p) == 32 for p in proof), "proof hashes must be 32 bytes")
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in proof:
        _require(sn != 0, "inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    _require(sn == 0, "inclusion proof too short")
    _require(r == root, "inclusion proof leads to another root")


def verify_consistency(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    """RFC 9162 section 2.1.4.2, step by step (with the trivial cases first)."""
    _require(0 <= size1 <= size2, "sizes out of order")
    _require(all(len(p) == 32 for p in proof), "proof hashes must be 32 bytes")
    if size1 == 0:
        # Every tree extends the empty one, whose only root is SHA-256("").
        _require(not proof and root1 == EMPTY_ROOT, "proof from the empty tree must be empty")
        _require(len(root2) == 32 and (size2 > 0 or root2 == EMPTY_ROOT), "root2 of size2")
        return
    if size1 == size2:
        _require(not proof and root1 == root2, "equal sizes need an empty proof, equal roots")
        return
    _require(len(root1) == 32 and len(root2) == 32, "roots must be 32 bytes")
    _require(bool(proof), "empty consistency proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        _require(sn != 0, "consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    _require(sn == 0, "consistency proof too short")
    _require(fr == root1, "consistency proof does not give root1")
    _require(sr == root2, "consistency proof does not give root2")


# --------------------------------------------------------------------------- C2SP notes


def note_key_hash(name: str, sig_type: int, public_key: bytes) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key)[:4]


def build_vkey(name: str, sig_type: int, public_key: bytes) -> str:
    """``<name>+<hex key ID>+<base64(type || public key)>``."""
    key_hash = note_key_hash(name, sig_type, public_key).hex()
    return f"{name}+{key_hash}+{b64encode(bytes([sig_type]) + public_key)}"


def parse_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """Return (name, key ID, signature type, public key) after checking the key ID."""
    parts = vkey.split("+", 2)
    _require(len(parts) == 3, "vkey shape")
    name, hash_hex, encoded = parts
    _require(bool(name) and " " not in name, "vkey name")
    raw = b64decode(encoded)
    _require(len(raw) == 33 and raw[0] in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE), "vkey key")
    key_hash = note_key_hash(name, raw[0], raw[1:])
    _require(hash_hex == key_hash.hex(), "vkey key ID does not match the key")
    return name, key_hash, raw[0], raw[1:]


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Split a signed note into its text and its (name, key ID, signature) lines."""
    _require(all(c == "\n" or ord(c) >= 0x20 for c in note), "control character in note")
    cut = note.rfind("\n\n")
    _require(cut >= 0, "no blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    _require(block.endswith("\n") and len(block) > 1, "signature block")
    lines = []
    for line in block[:-1].split("\n"):
        _require(line.startswith(EM_DASH_PREFIX), "signature line must start with an em dash")
        name, _, encoded = line[len(EM_DASH_PREFIX) :].partition(" ")
        raw = b64decode(encoded)
        _require(bool(name) and len(raw) > 4, "signature line")
        lines.append((name, raw[:4], raw[4:]))
    return text, lines


def parse_checkpoint_body(text: str) -> tuple[str, int, bytes]:
    """tlog-checkpoint: origin LF size LF base64(root) LF (no extension lines here)."""
    _require(text.endswith("\n"), "checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    _require(len(lines) == 3, "checkpoint must have 3 lines")
    origin, size_text, root_text = lines
    check_origin(origin)
    _require(size_text.isascii() and size_text.isdigit(), "size must be decimal")
    _require(size_text == "0" or not size_text.startswith("0"), "size has a leading zero")
    root = b64decode(root_text)
    _require(len(root) == 32, "root hash must be 32 bytes")
    return origin, int(size_text), root


def verify_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Verify the log's signature on a checkpoint note; return (origin, size, root)."""
    name, key_hash, sig_type, public = parse_vkey(vkey)
    _require(sig_type == SIG_TYPE_ED25519, "log vkey must be type 0x01")
    text, lines = split_note(note)
    mine = [sig for (n, h, sig) in lines if (n, h) == (name, key_hash)]
    _require(len(mine) == 1, "note must carry exactly one signature by the log key")
    verify_ed25519(public, mine[0], text.encode("utf-8"))
    origin, size, root = parse_checkpoint_body(text)
    _require(origin == name, "checkpoint origin is not the log key's name")
    return origin, size, root


def cosignature_message(body: str, timestamp: int) -> bytes:
    """tlog-cosignature cosignature/v1 signed message."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def verify_cosignature(note: str, witness_vkey: str) -> int:
    """Verify a witness's cosignature line on a checkpoint note; return its timestamp."""
    name, key_hash, sig_type, public = parse_vkey(witness_vkey)
    _require(sig_type == SIG_TYPE_COSIGNATURE, "witness vkey must be type 0x04")
    text, lines = split_note(note)
    mine = [sig for (n, h, sig) in lines if (n, h) == (name, key_hash)]
    _require(len(mine) == 1 and len(mine[0]) == 72, "one 72-byte cosignature expected")
    timestamp = int.from_bytes(mine[0][:8], "big")
    _require(timestamp < 2**63, "timestamp out of range")
    verify_ed25519(public, mine[0][8:], cosignature_message(text, timestamp))
    return timestamp
