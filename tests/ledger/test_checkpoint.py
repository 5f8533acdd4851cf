"""Tests for ledger.checkpoint: C2SP signed-note, tlog-checkpoint, tlog-cosignature."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import (
    MAX_COSIGNATURE_TIMESTAMP,
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    MAX_TREE_SIZE,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Checkpoint,
    NoteSignature,
    NoteVerifier,
    SignedNote,
    build_vkey,
    build_witness_vkey,
    cosign_checkpoint,
    note_key_hash,
    open_checkpoint,
    open_cosignature,
    sign_checkpoint,
    sign_note,
    verify_note,
    verify_note_signed_by,
)
from ledger.errors import EncodingError, LedgerError, SignatureError, VerificationError
from ledger.keys import Signer, b64decode, b64encode

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "signed-note"
C2SP = json.loads((VECTORS / "c2sp_signed_note_example.json").read_text(encoding="utf-8"))

ORIGIN = "mandi.example/log"
LOG = Signer.from_seed(bytes(range(32)))
W1 = Signer.from_seed(bytes(range(32, 64)))
W2 = Signer.from_seed(bytes(range(64, 96)))
W3 = Signer.from_seed(bytes(range(96, 128)))
OTHER = Signer.from_seed(bytes(range(128, 160)))
LOG_V = NoteVerifier.from_key(ORIGIN, LOG.public)
W1_V = NoteVerifier.from_key("witness.example/w1", W1.public, SIG_TYPE_COSIGNATURE_V1)
W2_V = NoteVerifier.from_key("witness.example/w2", W2.public, SIG_TYPE_COSIGNATURE_V1)
W3_V = NoteVerifier.from_key("witness.example/w3", W3.public, SIG_TYPE_COSIGNATURE_V1)
CP = Checkpoint(origin=ORIGIN, size=1234, root_hash=bytes(range(32, 64)))
T1, T2 = 1_700_000_000, 1_700_000_007

# Recipe: sign_checkpoint(CP, ORIGIN, LOG).to_text(), with CP, ORIGIN and LOG as defined above.
GOLDEN_NOTE = (
    "mandi.example/log\n"
    "1234\n"
    "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n"
    "\n"
    "\u2014 mandi.example/log +zv7H8uijjQD8SDlatfysga38i+/VPzI1mS63IAvUtGBmqm2JvdacP+HIm"
    "AqKs+WDYRZktmU1U6ZZvwcbkZZOTjPXwo=\n"
)
# Recipe: build_vkey(ORIGIN, LOG.public), with ORIGIN and LOG as defined above.
GOLDEN_LOG_VKEY = "mandi.example/log+fb3bfb1f+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
# Recipe: build_witness_vkey("witness.example/w1", W1.public), with W1 as defined above.
GOLDEN_W1_VKEY = "witness.example/w1+20324abe+BCmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X"
# Recipe: cosign_checkpoint(W1, "witness.example/w1", CP.to_text(), T1), names as defined above.
GOLDEN_W1_COSIGNATURE = (
    "\u2014 witness.example/w1 IDJKvgAAAABlU/EAQ5w+d29aYWzW81VXXoD6ViLz6dK7+u52O5dl1gSLYV2s9Svt"
    "Is15y07WUtqK5zQNHhPrd9t3hZRO1isizGNIDA==\n"
)


def _signed(checkpoint: Checkpoint = CP) -> str:
    return sign_checkpoint(checkpoint, ORIGIN, LOG).to_text()


def _cosigned(*witnesses: tuple[Signer, NoteVerifier, int]) -> str:
    note = sign_checkpoint(CP, ORIGIN, LOG)
    for signer, verifier, timestamp in witnesses:
        line = cosign_checkpoint(signer, verifier.name, note.text, timestamp)
        note = note.with_signatures(line)
    return note.to_text()


def _line(name: str, raw: bytes) -> str:
    return f"\u2014 {name} {b64encode(raw)}\n"


def _flip(raw: bytes, index: int) -> bytes:
    return raw[:index] + bytes([raw[index] ^ 0x01]) + raw[index + 1 :]


# -- the C2SP example (tests/vectors/signed-note) ---------------------------------


def test_c2sp_vkey_key_hash_recomputes():
    name, hash_hex, key_b64 = C2SP["verifier_key"].split("+", 2)
    key = b64decode(key_b64, field="key")
    independent = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    assert independent.hex() == hash_hex == C2SP["expected"]["key_id_hex"]
    verifier = NoteVerifier.from_vkey(C2SP["verifier_key"])
    assert verifier.name == C2SP["expected"]["key_name"]
    assert verifier.sig_type == C2SP["expected"]["signature_type"] == SIG_TYPE_ED25519
    assert verifier.key_hash.hex() == hash_hex
    assert note_key_hash(name, key[1:]) == verifier.key_hash
    assert verifier.to_vkey() == C2SP["verifier_key"]


def test_c2sp_note_verifies():
    verifier = NoteVerifier.from_vkey(C2SP["verifier_key"])
    note = SignedNote.from_text(C2SP["signed_note"])
    assert note.text == C2SP["note_text"]
    assert note.to_text() == C2SP["signed_note"]
    assert verify_note(note, [verifier]) == [verifier]
    verify_note_signed_by(note, verifier)


def test_c2sp_note_one_byte_change_of_text_fails():
    verifier = NoteVerifier.from_vkey(C2SP["verifier_key"])
    tampered = C2SP["signed_note"].replace("example message", "example messagE", 1)
    with pytest.raises(SignatureError) as info:
        verify_note(SignedNote.from_text(tampered), [verifier])
    assert info.value.field == "signatures[0]"


def test_c2sp_note_one_byte_change_of_signature_fails():
    verifier = NoteVerifier.from_vkey(C2SP["verifier_key"])
    sig = SignedNote.from_text(C2SP["signed_note"]).signatures[0]
    tampered = C2SP["note_text"] + "\n" + _line(sig.name, sig.key_hash + _flip(sig.signature, 10))
    with pytest.raises(SignatureError) as info:
        verify_note(SignedNote.from_text(tampered), [verifier])
    assert info.value.code == "bad_signature"


def test_c2sp_note_one_byte_change_of_key_id_is_an_unknown_key():
    verifier = NoteVerifier.from_vkey(C2SP["verifier_key"])
    sig = SignedNote.from_text(C2SP["signed_note"]).signatures[0]
    tampered = C2SP["note_text"] + "\n" + _line(sig.name, _flip(sig.key_hash, 0) + sig.signature)
    with pytest.raises(SignatureError) as info:
        verify_note(SignedNote.from_text(tampered), [verifier])
    assert info.value.code == "missing_signature"


def test_c2sp_note_extra_line_from_unknown_key_is_ignored():
    verifier = NoteVerifier.from_vkey(C2SP["verifier_key"])
    extra = sign_note(C2SP["note_text"], "witness.example/unknown", OTHER)
    # Same name as the known key but another key ID: still unknown, still ignored.
    same_name = _line(C2SP["expected"]["key_name"], b"\x00\x00\x00\x00" + bytes(64))
    text = C2SP["signed_note"] + extra + same_name
    note = SignedNote.from_text(text)
    assert len(note.signatures) == 3
    assert note.to_text() == text
    assert verify_note(note, [verifier]) == [verifier]


def test_c2sp_checkpoint_example_parses_but_proves_nothing():
    example = C2SP["checkpoint_format_example_unverifiable"]["text"]
    note = SignedNote.from_text(example)
    assert note.to_text() == example
    checkpoint = Checkpoint.from_text(note.text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.to_text() == note.text
    with pytest.raises(SignatureError) as info:
        verify_note(note, [LOG_V])
    assert info.value.code == "missing_signature"


# -- golden values ------------------------------------------------------------------


def test_golden_checkpoint_note():
    assert _signed() == GOLDEN_NOTE
    assert build_vkey(ORIGIN, LOG.public) == GOLDEN_LOG_VKEY
    assert LOG_V.to_vkey() == GOLDEN_LOG_VKEY


def test_golden_checkpoint_note_verifies_independently():
    # PyNaCl (libsodium) and hashlib, not the code under test, check the bytes.
    body, sig_line = GOLDEN_NOTE.split("\n\n")
    raw = b64decode(sig_line.split(" ")[2].rstrip("\n"), field="sig")
    public = LOG.public.raw
    assert raw[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    nacl.signing.VerifyKey(public).verify((body + "\n").encode(), raw[4:])


def test_golden_witness_cosignature():
    body = CP.to_text()
    assert cosign_checkpoint(W1, W1_V.name, body, T1) == GOLDEN_W1_COSIGNATURE
    assert build_witness_vkey(W1_V.name, W1.public) == GOLDEN_W1_VKEY
    raw = b64decode(GOLDEN_W1_COSIGNATURE.split(" ")[2].rstrip("\n"), field="sig")
    public = W1.public.raw
    assert raw[:4] == hashlib.sha256(W1_V.name.encode() + b"\n\x04" + public).digest()[:4]
    assert int.from_bytes(raw[4:12], "big") == T1
    message = f"cosignature/v1\ntime {T1}\n".encode() + body.encode()
    nacl.signing.VerifyKey(public).verify(message, raw[12:])
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(public).verify(body.encode(), raw[12:])


def test_every_single_character_mutation_of_the_golden_note_fails():
    for i, ch in enumerate(GOLDEN_NOTE):
        mutated = GOLDEN_NOTE[:i] + chr(ord(ch) ^ 0x01) + GOLDEN_NOTE[i + 1 :]
        with pytest.raises(LedgerError):
            open_checkpoint(mutated, LOG_V)


# -- checkpoints: text form and round trip ------------------------------------------


def test_checkpoint_text_is_exact():
    text = CP.to_text()
    assert text.encode() == (
        b"mandi.example/log\n1234\nICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n"
    )
    assert Checkpoint.from_text(text) == CP


def test_checkpoint_extensions_round_trip():
    checkpoint = Checkpoint(origin=ORIGIN, size=0, root_hash=bytes(32), extensions=("a b", "c"))
    text = checkpoint.to_text()
    assert text.endswith("\na b\nc\n")
    assert Checkpoint.from_text(text) == checkpoint
    opened = open_checkpoint(_signed(checkpoint), LOG_V)
    assert opened.checkpoint == checkpoint


def test_sign_open_round_trip():
    opened = open_checkpoint(_signed(), LOG_V)
    assert opened.checkpoint == CP
    assert opened.note.to_text() == _signed()
    assert opened.witnesses_verified == ()
    assert opened.cosignatures == ()


def test_from_bytes_round_trip():
    note = SignedNote.from_bytes(GOLDEN_NOTE.encode())
    assert note.to_bytes() == GOLDEN_NOTE.encode()


@given(
    origin=st.text(
        alphabet=st.characters(
            blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
            blacklist_characters="+\x85",
        ),
        min_size=1,
        max_size=40,
    ),
    size=st.integers(min_value=0, max_value=MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
)
def test_sign_parse_round_trip_property(origin, size, root):
    checkpoint = Checkpoint(origin=origin, size=size, root_hash=root)
    assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint
    text = sign_checkpoint(checkpoint, origin, LOG).to_text()
    assert SignedNote.from_text(text).to_text() == text
    verifier = NoteVerifier.from_key(origin, LOG.public)
    assert NoteVerifier.from_vkey(verifier.to_vkey()) == verifier
    assert open_checkpoint(text, verifier).checkpoint == checkpoint


# -- cosignatures and quorum --------------------------------------------------------


@pytest.mark.parametrize("quorum", [0, 1, 2])
def test_two_witnesses_meet_quorum(quorum):
    note = _cosigned((W1, W1_V, T1), (W2, W2_V, T2))
    opened = open_checkpoint(note, LOG_V, [W1_V, W2_V], quorum=quorum)
    assert opened.witnesses_verified == (W1_V.name, W2_V.name)
    assert [(c.name, c.timestamp) for c in opened.cosignatures] == [
        (W1_V.name, T1),
        (W2_V.name, T2),
    ]


def test_quorum_of_three_with_two_cosignatures_fails():
    note = _cosigned((W1, W1_V, T1), (W2, W2_V, T2))
    with pytest.raises(SignatureError) as info:
        open_checkpoint(note, LOG_V, [W1_V, W2_V, W3_V], quorum=3)
    assert info.value.code == "quorum_not_met"


def test_quorum_larger_than_the_witness_set_is_a_programmer_error():
    note = _cosigned((W1, W1_V, T1), (W2, W2_V, T2))
    with pytest.raises(ValueError, match="quorum"):
        open_checkpoint(note, LOG_V, [W1_V, W2_V], quorum=3)
    with pytest.raises(ValueError, match="quorum"):
        open_checkpoint(note, LOG_V, [W1_V, W2_V], quorum=-1)


def test_witness_listed_twice_counts_once():
    note = _cosigned((W1, W1_V, T1))
    with pytest.raises(ValueError, match="quorum"):
        open_checkpoint(note, LOG_V, [W1_V, W1_V], quorum=2)
    assert open_checkpoint(note, LOG_V, [W1_V, W1_V], quorum=1).witnesses_verified == (W1_V.name,)


def test_unconfigured_witness_does_not_count():
    note = _cosigned((W1, W1_V, T1), (W3, W3_V, T2))
    with pytest.raises(SignatureError) as info:
        open_checkpoint(note, LOG_V, [W1_V, W2_V], quorum=2)
    assert info.value.code == "quorum_not_met"


def test_tampered_cosignature_rejects_the_note_even_without_quorum():
    line = cosign_checkpoint(W1, W1_V.name, CP.to_text(), T1)
    sig = NoteSignature.from_line(line)
    bad = _line(sig.name, sig.key_hash + _flip(sig.signature, 20))
    note = sign_checkpoint(CP, ORIGIN, LOG).with_signatures(bad).to_text()
    with pytest.raises(SignatureError) as info:
        open_checkpoint(note, LOG_V, [W1_V], quorum=0)
    assert info.value.field == "signatures[1]"


def test_cosignature_with_changed_timestamp_fails():
    sig = NoteSignature.from_line(cosign_checkpoint(W1, W1_V.name, CP.to_text(), T1))
    stamped = (T1 + 1).to_bytes(8, "big") + sig.signature[8:]
    line = _line(sig.name, sig.key_hash + stamped)
    with pytest.raises(SignatureError):
        open_cosignature(CP.to_text(), line, W1_V)


def test_cosignature_timestamp_above_2_63_fails():
    # Signed correctly over "time 2^63", which the spec forbids.
    timestamp = MAX_COSIGNATURE_TIMESTAMP + 1
    message = f"cosignature/v1\ntime {timestamp}\n{CP.to_text()}".encode()
    raw = W1_V.key_hash + timestamp.to_bytes(8, "big") + W1.sign(message)
    with pytest.raises(SignatureError, match="2\\^63"):
        open_cosignature(CP.to_text(), _line(W1_V.name, raw), W1_V)


def test_cosignature_of_wrong_length_fails():
    raw = W1_V.key_hash + T1.to_bytes(8, "big") + bytes(63)
    with pytest.raises(SignatureError, match="72 bytes"):
        open_cosignature(CP.to_text(), _line(W1_V.name, raw), W1_V)


def test_open_cosignature_returns_timestamp():
    line = cosign_checkpoint(W2, W2_V.name, CP.to_text(), T2)
    cosig = open_cosignature(CP.to_text(), line, W2_V)
    assert (cosig.name, cosig.key_hash, cosig.timestamp) == (W2_V.name, W2_V.key_hash, T2)


def test_open_cosignature_from_another_witness_fails():
    line = cosign_checkpoint(W2, W2_V.name, CP.to_text(), T2)
    with pytest.raises(SignatureError) as info:
        open_cosignature(CP.to_text(), line, W1_V)
    assert info.value.code == "missing_signature"


def test_open_cosignature_needs_a_witness_key():
    line = cosign_checkpoint(W1, W1_V.name, CP.to_text(), T1)
    with pytest.raises(ValueError, match="0x04"):
        open_cosignature(CP.to_text(), line, LOG_V)


def test_plain_note_signature_is_not_a_cosignature():
    # Same key and name, type 0x01 instead of 0x04: another key ID, so ignored.
    plain = NoteVerifier.from_key(W1_V.name, W1.public)
    note = sign_checkpoint(CP, ORIGIN, LOG).with_signatures(sign_note(CP.to_text(), plain.name, W1))
    with pytest.raises(SignatureError) as info:
        open_checkpoint(note.to_text(), LOG_V, [W1_V], quorum=1)
    assert info.value.code == "quorum_not_met"


def test_witnesses_must_be_cosignature_keys():
    plain = NoteVerifier.from_key(W1_V.name, W1.public)
    with pytest.raises(ValueError, match="type 0x04"):
        open_checkpoint(_signed(), LOG_V, [plain])


def test_witness_may_not_collide_with_the_log_key():
    log_as_witness = NoteVerifier.from_key(ORIGIN, LOG.public)
    with pytest.raises(ValueError, match="log key"):
        open_checkpoint(_signed(), LOG_V, [log_as_witness])


@pytest.mark.parametrize("timestamp", [-1, MAX_COSIGNATURE_TIMESTAMP + 1])
def test_cosign_timestamp_out_of_range(timestamp):
    with pytest.raises(ValueError, match="timestamp"):
        cosign_checkpoint(W1, W1_V.name, CP.to_text(), timestamp)


def test_cosign_timestamp_must_be_int():
    with pytest.raises(TypeError, match="timestamp"):
        cosign_checkpoint(W1, W1_V.name, CP.to_text(), True)


def test_cosign_refuses_a_body_that_is_not_a_checkpoint():
    with pytest.raises(EncodingError) as info:
        cosign_checkpoint(W1, W1_V.name, "hello\n", T1)
    assert info.value.code == "bad_checkpoint"


# -- open_checkpoint failures, one per kind ------------------------------------------


def test_wrong_origin():
    other = Checkpoint(origin="other.example/log", size=CP.size, root_hash=CP.root_hash)
    note = sign_checkpoint(other, ORIGIN, LOG).to_text()
    with pytest.raises(VerificationError) as info:
        open_checkpoint(note, LOG_V)
    assert not isinstance(info.value, SignatureError)
    assert (info.value.code, info.value.field) == ("origin_mismatch", "origin")


def test_wrong_key():
    note = sign_checkpoint(CP, ORIGIN, OTHER).to_text()
    with pytest.raises(SignatureError) as info:
        open_checkpoint(note, LOG_V)
    assert info.value.code == "missing_signature"


def test_forged_signature_under_the_log_key_id():
    raw = LOG_V.key_hash + OTHER.sign(CP.to_text().encode())
    note = CP.to_text() + "\n" + _line(ORIGIN, raw)
    with pytest.raises(SignatureError) as info:
        open_checkpoint(note, LOG_V)
    assert (info.value.code, info.value.field) == ("bad_signature", "signatures[0]")


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(-1, id="final-newline"),
        pytest.param(-20, id="mid-signature"),
        pytest.param(GOLDEN_NOTE.index("\u2014"), id="after-blank-line"),
        pytest.param(GOLDEN_NOTE.index("\n\n") + 1, id="before-blank-line"),
        pytest.param(5, id="mid-origin"),
    ],
)
def test_truncated_note(cut):
    with pytest.raises(EncodingError) as info:
        open_checkpoint(GOLDEN_NOTE[:cut], LOG_V)
    assert info.value.code == "bad_note"


def test_missing_blank_line():
    note = GOLDEN_NOTE.replace("\n\n", "\n", 1)
    with pytest.raises(EncodingError) as info:
        SignedNote.from_text(note)
    assert (info.value.code, info.value.field) == ("bad_note", "note")
    assert "blank line" in info.value.message


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param("not base64!", id="alphabet"),
        pytest.param("AAAAAAA", id="no-padding"),
        pytest.param("AAAAAB==", id="non-canonical-bits"),
        pytest.param("AAAA AAAA", id="space"),
    ],
)
def test_bad_base64_in_signature_line(encoded):
    with pytest.raises(EncodingError) as info:
        SignedNote.from_text(CP.to_text() + "\n\u2014 " + ORIGIN + " " + encoded + "\n")
    assert (info.value.code, info.value.field) == ("bad_note", "signatures[0]")


def test_bad_base64_root_hash():
    text = CP.to_text().replace("Pj8=", "Pj9=")  # same length, non-canonical last bits
    with pytest.raises(EncodingError) as info:
        Checkpoint.from_text(text)
    assert (info.value.code, info.value.field) == ("bad_checkpoint", "root_hash")


def test_malformed_checkpoint_body_is_reported_after_the_signature_verifies():
    text = CP.to_text().replace("\n1234\n", "\n01234\n")
    note = text + "\n" + sign_note(text, ORIGIN, LOG)
    with pytest.raises(EncodingError) as info:
        open_checkpoint(note, LOG_V)
    assert (info.value.code, info.value.field) == ("bad_checkpoint", "size")


@pytest.mark.parametrize(
    "size_text",
    [
        pytest.param("01234", id="leading-zero"),
        pytest.param("00", id="double-zero"),
        pytest.param("-1", id="negative"),
        pytest.param("+5", id="plus-sign"),
        pytest.param(" 5", id="space"),
        pytest.param("1e3", id="exponent"),
        pytest.param("\u0661\u0662", id="non-ascii-digits"),
        pytest.param("", id="empty"),
        pytest.param(str(MAX_TREE_SIZE + 1), id="above-uint64"),
        pytest.param("1" * 5000, id="huge"),
    ],
)
def test_bad_size(size_text):
    text = f"{ORIGIN}\n{size_text}\n{b64encode(bytes(32))}\n"
    with pytest.raises(EncodingError) as info:
        Checkpoint.from_text(text)
    assert (info.value.code, info.value.field) == ("bad_checkpoint", "size")


def test_size_zero_and_max_are_accepted():
    for size in (0, MAX_TREE_SIZE):
        text = f"{ORIGIN}\n{size}\n{b64encode(bytes(32))}\n"
        assert Checkpoint.from_text(text).size == size


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_root_of_wrong_length(length):
    text = f"{ORIGIN}\n5\n{b64encode(bytes(length))}\n"
    with pytest.raises(EncodingError) as info:
        Checkpoint.from_text(text)
    assert (info.value.code, info.value.field) == ("bad_checkpoint", "root_hash")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param(f"\n5\n{b64encode(bytes(32))}\n", "origin", id="empty-origin"),
        pytest.param(f"{ORIGIN}\n5\n", "text", id="two-lines"),
        pytest.param(f"{ORIGIN}\n5\n{b64encode(bytes(32))}", "text", id="no-final-newline"),
        pytest.param(f"{ORIGIN}\n5\n{b64encode(bytes(32))}\n\n", "extensions[0]", id="empty-ext"),
        pytest.param(f"{ORIGIN}\r\n5\n{b64encode(bytes(32))}\n", "origin", id="carriage-return"),
    ],
)
def test_malformed_checkpoint_text(text, field):
    with pytest.raises(EncodingError) as info:
        Checkpoint.from_text(text)
    assert (info.value.code, info.value.field) == ("bad_checkpoint", field)


def test_checkpoint_constructor_checks_values():
    with pytest.raises(EncodingError) as info:
        Checkpoint(origin=ORIGIN, size=-1, root_hash=bytes(32))
    assert info.value.field == "size"
    with pytest.raises(TypeError, match="size"):
        Checkpoint(origin=ORIGIN, size=True, root_hash=bytes(32))
    with pytest.raises(TypeError, match="root_hash"):
        Checkpoint(origin=ORIGIN, size=1, root_hash="00" * 32)  # type: ignore[arg-type]
    with pytest.raises(EncodingError) as info:
        Checkpoint(origin=ORIGIN, size=1, root_hash=bytes(32), extensions=("a\nb",))
    assert info.value.field == "extensions[0]"


def test_duplicate_signatures():
    line = GOLDEN_NOTE.split("\n\n")[1]
    with pytest.raises(EncodingError) as info:
        SignedNote.from_text(GOLDEN_NOTE + line)
    assert (info.value.code, info.value.field) == ("bad_note", "signatures[1]")


def test_duplicate_cosignature_cannot_be_appended():
    line = cosign_checkpoint(W1, W1_V.name, CP.to_text(), T1)
    again = cosign_checkpoint(W1, W1_V.name, CP.to_text(), T2)  # other time, same key
    note = sign_checkpoint(CP, ORIGIN, LOG).with_signatures(line)
    with pytest.raises(EncodingError) as info:
        note.with_signatures(again)
    assert (info.value.code, info.value.field) == ("bad_note", "signatures[2]")


# -- signed-note parsing limits -----------------------------------------------------


def test_control_character_in_note():
    note = GOLDEN_NOTE.replace("1234", "12\t34")
    with pytest.raises(EncodingError) as info:
        SignedNote.from_text(note)
    assert (info.value.code, info.value.field) == ("bad_note", "note")


def test_lone_surrogate_in_note():
    with pytest.raises(EncodingError, match="UTF-8"):
        SignedNote.from_text("\ud800" + GOLDEN_NOTE)


def test_invalid_utf8_bytes():
    with pytest.raises(EncodingError, match="UTF-8"):
        SignedNote.from_bytes(b"\xff" + GOLDEN_NOTE.encode())


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("- mandi.example/log AAAAAAA=", id="hyphen-not-em-dash"),
        pytest.param("\u2014mandi.example/log AAAAAAA=", id="no-space-after-dash"),
        pytest.param("\u2014 mandi.example/log", id="no-signature"),
        pytest.param("\u2014 mandi.example/log ", id="empty-signature"),
        pytest.param("\u2014  AAAAAAA=", id="empty-name"),
        pytest.param("\u2014 a+b AAAAAAA=", id="plus-in-name"),
        pytest.param("\u2014 mandi.example/log AAAA", id="too-short"),
        pytest.param("", id="empty-line"),
    ],
)
def test_malformed_signature_line(line):
    with pytest.raises(EncodingError) as info:
        SignedNote.from_text(CP.to_text() + "\n" + line + "\n")
    assert info.value.code == "bad_note"
    assert info.value.field is not None
    assert info.value.field.startswith("signatures")


def test_note_text_may_contain_empty_lines():
    text = "first\n\nthird\n"
    note = SignedNote.from_text(text + "\n" + sign_note(text, ORIGIN, LOG))
    assert note.text == text
    assert verify_note(note, [LOG_V]) == [LOG_V]


def test_too_many_signatures():
    text = "hello\n"
    lines = "".join(_line(f"k{i}", bytes(68)) for i in range(MAX_SIGNATURES + 1))
    with pytest.raises(EncodingError) as info:
        SignedNote.from_text(text + "\n" + lines)
    assert (info.value.code, info.value.field) == ("bad_note", "signatures")
    ok = "".join(_line(f"k{i}", bytes(68)) for i in range(MAX_SIGNATURES))
    assert len(SignedNote.from_text(text + "\n" + ok).signatures) == MAX_SIGNATURES


def test_note_too_large():
    text = "x" * MAX_NOTE_SIZE + "\n"
    with pytest.raises(EncodingError, match="exceeds"):
        SignedNote.from_text(text + "\n" + sign_note(text, ORIGIN, LOG))
    with pytest.raises(EncodingError, match="exceeds"):
        SignedNote.from_bytes(text.encode() + b"\n")
    # Under the character bound, over the byte bound (3 bytes per character).
    wide = "\u0905" * (MAX_NOTE_SIZE // 2) + "\n"
    with pytest.raises(EncodingError, match="exceeds"):
        SignedNote.from_text(wide + "\n" + sign_note(wide, ORIGIN, LOG))


def test_signed_note_constructor_checks_signature_count():
    with pytest.raises(EncodingError) as info:
        SignedNote(text="hello\n", signatures=())
    assert info.value.field == "signatures"
    many = tuple(
        NoteSignature(name=f"k{i}", key_hash=bytes(4), signature=bytes(64))
        for i in range(MAX_SIGNATURES + 1)
    )
    with pytest.raises(EncodingError) as info:
        SignedNote(text="hello\n", signatures=many)
    assert info.value.field == "signatures"


def test_with_signatures_needs_newline_terminated_lines():
    note = sign_checkpoint(CP, ORIGIN, LOG)
    with pytest.raises(EncodingError, match="newline"):
        note.with_signatures(cosign_checkpoint(W1, W1_V.name, CP.to_text(), T1).rstrip("\n"))


@pytest.mark.parametrize("line", ["no newline", "two\nlines\n"])
def test_note_signature_from_line_needs_one_line(line):
    with pytest.raises(EncodingError, match="one line"):
        NoteSignature.from_line(line)


def test_note_signature_constructor_checks_values():
    with pytest.raises(EncodingError) as info:
        NoteSignature(name=ORIGIN, key_hash=bytes(3), signature=bytes(64))
    assert info.value.field == "key_hash"
    with pytest.raises(EncodingError) as info:
        NoteSignature(name=ORIGIN, key_hash=bytes(4), signature=b"")
    assert info.value.field == "signature"


# -- signing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "field"),
    [
        pytest.param("no newline", ORIGIN, "text", id="text-without-newline"),
        pytest.param("bell\a\n", ORIGIN, "text", id="control-char"),
        pytest.param("ok\n", "has space", "name", id="space-in-name"),
        pytest.param("ok\n", "nbsp\u00a0name", "name", id="unicode-space-in-name"),
        pytest.param("ok\n", "", "name", id="empty-name"),
    ],
)
def test_sign_note_refuses_malformed_input(text, name, field):
    with pytest.raises(EncodingError) as info:
        sign_note(text, name, LOG)
    assert (info.value.code, info.value.field) == ("bad_note", field)


def test_verify_note_signed_by_absent_key():
    note = SignedNote.from_text(_signed())
    verify_note_signed_by(note, LOG_V)
    other = NoteVerifier.from_key(ORIGIN, OTHER.public)
    with pytest.raises(SignatureError) as info:
        verify_note_signed_by(note, other)
    assert info.value.code == "missing_signature"


def test_verify_note_returns_every_known_signer_in_note_order():
    text = "hello\n"
    second = NoteVerifier.from_key("second.example", OTHER.public)
    note_text = text + "\n" + sign_note(text, ORIGIN, LOG) + sign_note(text, second.name, OTHER)
    note = SignedNote.from_text(note_text)
    assert verify_note(note, [second, LOG_V]) == [LOG_V, second]


# -- verifier keys ------------------------------------------------------------------


def test_witness_vkey_round_trip():
    verifier = NoteVerifier.from_vkey(GOLDEN_W1_VKEY)
    assert verifier == W1_V
    assert verifier.sig_type == SIG_TYPE_COSIGNATURE_V1
    independent = hashlib.sha256(b"witness.example/w1\n\x04" + W1.public.raw).digest()[:4]
    assert verifier.key_hash == independent == note_key_hash(W1_V.name, W1.public.raw, 0x04)


def _vkey(name: str, hash_hex: str, key: bytes) -> str:
    return f"{name}+{hash_hex}+{b64encode(key)}"


_PUB = LOG.public.raw
_HASH = note_key_hash(ORIGIN, _PUB).hex()


@pytest.mark.parametrize(
    ("vkey", "field"),
    [
        pytest.param("no-plus-signs", "vkey", id="one-part"),
        pytest.param(f"{ORIGIN}+{_HASH}", "vkey", id="two-parts"),
        pytest.param(_vkey("", _HASH, b"\x01" + _PUB), "name", id="empty-name"),
        pytest.param(_vkey("a b", _HASH, b"\x01" + _PUB), "name", id="space-in-name"),
        pytest.param(_vkey(ORIGIN, _HASH.upper(), b"\x01" + _PUB), "key_hash", id="upper-hex"),
        pytest.param(_vkey(ORIGIN, _HASH[:6], b"\x01" + _PUB), "key_hash", id="short-hash"),
        pytest.param(_vkey(ORIGIN, "00000000", b"\x01" + _PUB), "key_hash", id="wrong-hash"),
        pytest.param(f"{ORIGIN}+{_HASH}+AQ", "key", id="bad-base64"),
        pytest.param(_vkey(ORIGIN, _HASH, b""), "key", id="empty-key"),
        pytest.param(_vkey(ORIGIN, _HASH, b"\x02" + _PUB), "sig_type", id="ecdsa-type"),
        pytest.param(_vkey(ORIGIN, _HASH, b"\x01" + _PUB[:31]), "key", id="short-key"),
        pytest.param(_vkey(ORIGIN, _HASH, b"\x04" + _PUB), "key_hash", id="type-not-hashed"),
    ],
)
def test_bad_vkey(vkey, field):
    with pytest.raises(EncodingError) as info:
        NoteVerifier.from_vkey(vkey)
    assert (info.value.code, info.value.field) == ("bad_vkey", field)


def test_verifier_constructor_checks_key_hash_and_type():
    with pytest.raises(EncodingError) as info:
        NoteVerifier(name=ORIGIN, key_hash=bytes(4), public=LOG.public)
    assert info.value.field == "key_hash"
    with pytest.raises(EncodingError) as info:
        NoteVerifier.from_key(ORIGIN, LOG.public, sig_type=0x02)
    assert info.value.field == "sig_type"
    with pytest.raises(EncodingError) as info:
        NoteVerifier(name=ORIGIN, key_hash=bytes(4), public=LOG.public, sig_type=0x05)
    assert info.value.field == "sig_type"


def test_note_key_hash_needs_a_byte_type():
    with pytest.raises(ValueError, match="byte"):
        note_key_hash(ORIGIN, _PUB, 256)
