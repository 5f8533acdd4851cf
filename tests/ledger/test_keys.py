"""Ed25519: strict verification against Wycheproof and RFC 8032, key ids, base64 edges."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nacl.exceptions
import nacl.signing
import pytest

from ledger.errors import EncodingError, SignatureError
from ledger.hashing import key_id
from ledger.keys import Signer, VerifyingKey, b64decode, verify_signature

VECTORS = Path(__file__).parent.parent / "vectors" / "ed25519"
WYCHEPROOF = json.loads((VECTORS / "wycheproof_ed25519_test.json").read_text())
CASES = [
    (group["publicKey"]["pk"], test)
    for group in WYCHEPROOF["testGroups"]
    for test in group["tests"]
]
RFC8032 = json.loads((VECTORS / "rfc8032_section7_1.json").read_text())["vectors"]


def test_wycheproof_count():
    assert len(CASES) == 151
    assert {t["result"] for _, t in CASES} == {"valid", "invalid"}


@pytest.mark.parametrize(("pk", "case"), CASES, ids=[f"tc{t['tcId']}" for _, t in CASES])
def test_wycheproof(pk, case):
    public = bytes.fromhex(pk)
    msg = bytes.fromhex(case["msg"])
    sig = bytes.fromhex(case["sig"])
    if case["result"] == "valid":
        verify_signature(public, sig, msg)
    else:
        with pytest.raises(SignatureError):
            verify_signature(public, sig, msg)


@pytest.mark.parametrize(("pk", "case"), CASES, ids=[f"tc{t['tcId']}" for _, t in CASES])
def test_libsodium_gives_the_same_answers(pk, case):
    # The bulk auditor may use libsodium only if it answers as cryptography does.
    key = nacl.signing.VerifyKey(bytes.fromhex(pk))
    sig = bytes.fromhex(case["sig"])
    ok = True
    try:
        if len(sig) != 64:
            raise nacl.exceptions.BadSignatureError("length")
        key.verify(bytes.fromhex(case["msg"]), sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        ok = False
    assert ok == (case["result"] == "valid")


@pytest.mark.parametrize("vector", RFC8032, ids=[v["name"] for v in RFC8032])
def test_rfc8032_known_answers(vector):
    signer = Signer.from_seed(bytes.fromhex(vector["secret_key"]))
    assert signer.public.raw.hex() == vector["public_key"]
    message = bytes.fromhex(vector["message"])
    assert signer.sign(message).hex() == vector["signature"]
    signer.public.verify(bytes.fromhex(vector["signature"]), message)


def test_key_id_is_sha256_of_raw_key():
    signer = Signer.from_seed(bytes(range(32)))
    assert signer.key_id == hashlib.sha256(signer.public.raw).digest()
    assert key_id(signer.public.raw) == signer.key_id


def test_key_id_rejects_wrong_length():
    with pytest.raises(ValueError, match="32 bytes"):
        key_id(b"\x00" * 31)


def test_verify_rejects_wrong_length_signature():
    signer = Signer.generate()
    with pytest.raises(SignatureError, match="64 bytes"):
        signer.public.verify(signer.sign(b"m")[:63], b"m")


def test_verify_rejects_tampered_message_and_other_key():
    signer = Signer.generate()
    sig = signer.sign(b"message")
    with pytest.raises(SignatureError):
        signer.public.verify(sig, b"messagE")
    with pytest.raises(SignatureError):
        Signer.generate().public.verify(sig, b"message")


def test_public_key_wrong_length():
    with pytest.raises(EncodingError) as info:
        VerifyingKey.from_bytes(b"\x01" * 33)
    assert info.value.code == "bad_key"


def test_seed_round_trip():
    signer = Signer.generate()
    assert Signer.from_seed(signer.seed()).public == signer.public
    with pytest.raises(ValueError, match="32 bytes"):
        Signer.from_seed(b"short")


@pytest.mark.parametrize("text", ["AAA", "AA==\n", "A=A=", "////", "AB==", "#"])
def test_b64decode_is_strict(text):
    if text == "////":
        assert b64decode(text, field="x") == b"\xff\xff\xff"
        return
    with pytest.raises(EncodingError) as info:
        b64decode(text, field="sig")
    assert info.value.field == "sig"
