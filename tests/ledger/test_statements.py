"""Statements and entries: envelope rules, event ids, signatures, entry bytes."""

from __future__ import annotations

import base64
import hashlib

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger.encoding import canonical_bytes
from ledger.errors import EncodingError, SignatureError
from ledger.hashing import ZERO_HASH, leaf_hash
from ledger.statements import (
    STATEMENT_DOMAIN,
    Entry,
    SignedStatement,
    Statement,
    sign_statement,
)
from tests.ledger.builders import ORIGIN, TIME, seeded

SIGNER = seeded(7)


def envelope(**overrides):
    obj = {
        "body": {"lot": "x"},
        "kind": "harvest",
        "origin": ORIGIN,
        "signer": SIGNER.key_id.hex(),
        "time": TIME,
        "version": 1,
    }
    obj.update(overrides)
    return {k: v for k, v in obj.items() if v is not ...}


def test_build_is_canonical_and_ids_are_sha256():
    stmt = Statement.build(
        origin=ORIGIN, kind="harvest", signer=SIGNER.key_id, time=TIME, body={"b": 1, "a": 2}
    )
    assert stmt.raw == rfc8785.dumps(envelope(body={"a": 2, "b": 1}))
    assert stmt.event_id == hashlib.sha256(stmt.raw).digest()
    assert stmt.signing_input() == STATEMENT_DOMAIN + stmt.raw
    assert STATEMENT_DOMAIN == b"mandi-statement-v1\n"


def test_event_id_does_not_depend_on_signature():
    stmt = Statement.build(origin=ORIGIN, kind="harvest", signer=SIGNER.key_id, time=TIME, body={})
    signed = sign_statement(SIGNER, stmt)
    other = SignedStatement(statement=stmt, signature=bytes(64))
    assert signed.event_id == other.event_id


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"extra": 1}, "extra", "unknown_field"),
        ({"kind": ...}, "kind", "missing_field"),
        ({"version": 2}, "version", "bad_version"),
        ({"version": True}, "version", "bad_version"),
        ({"kind": "Harvest"}, "kind", "bad_kind"),
        ({"origin": "has space"}, "origin", "bad_origin"),
        ({"origin": ""}, "origin", "bad_origin"),
        ({"signer": "ABC"}, "signer", "bad_hex"),
        ({"signer": "A" * 64}, "signer", "bad_hex"),
        ({"time": "2026-11-28T09:30:00"}, "time", "bad_time"),
        ({"time": "2026-11-28 09:30:00Z"}, "time", "bad_time"),
        ({"time": "2026-13-28T09:30:00Z"}, "time", "bad_time"),
        ({"body": []}, "body", "bad_body"),
    ],
)
def test_envelope_rules(overrides, field, code):
    with pytest.raises(EncodingError) as info:
        Statement.from_bytes(canonical_bytes(envelope(**overrides)))
    assert info.value.code == code
    assert info.value.field == field


def test_non_canonical_statement_rejected():
    data = canonical_bytes(envelope()).replace(b'"kind"', b' "kind"')
    with pytest.raises(EncodingError) as info:
        Statement.from_bytes(data)
    assert info.value.code == "not_canonical"


def test_oversized_statement_rejected():
    with pytest.raises(EncodingError) as info:
        Statement.from_bytes(canonical_bytes(envelope(body={"pad": "x" * 70_000})))
    assert info.value.code == "too_large"


def test_signature_verifies_and_names_signer():
    stmt = Statement.build(origin=ORIGIN, kind="harvest", signer=SIGNER.key_id, time=TIME, body={})
    signed = sign_statement(SIGNER, stmt)
    signed.verify(SIGNER.public)
    with pytest.raises(SignatureError):
        signed.verify(seeded(8).public)
    forged = SignedStatement(statement=stmt, signature=seeded(8).sign(stmt.signing_input()))
    with pytest.raises(SignatureError):
        forged.verify(SIGNER.public)
    # Without the domain prefix the same key's signature must not verify.
    bare = SignedStatement(statement=stmt, signature=SIGNER.sign(stmt.raw))
    with pytest.raises(SignatureError):
        bare.verify(SIGNER.public)


def test_sign_statement_refuses_other_signer():
    stmt = Statement.build(origin=ORIGIN, kind="harvest", signer=SIGNER.key_id, time=TIME, body={})
    with pytest.raises(ValueError, match="signer"):
        sign_statement(seeded(8), stmt)


def test_from_wire_checks_base64_and_length():
    stmt = Statement.build(origin=ORIGIN, kind="harvest", signer=SIGNER.key_id, time=TIME, body={})
    signed = sign_statement(SIGNER, stmt)
    wire = SignedStatement.from_wire(
        base64.b64encode(stmt.raw).decode(), base64.b64encode(signed.signature).decode()
    )
    assert wire == signed
    with pytest.raises(EncodingError) as info:
        SignedStatement.from_wire(base64.b64encode(stmt.raw).decode(), "AAAA")
    assert info.value.field == "signature"
    with pytest.raises(EncodingError) as info:
        SignedStatement.from_wire("not base64!", base64.b64encode(signed.signature).decode())
    assert info.value.field == "statement"


@given(
    index=st.integers(0, 2**53 - 1),
    accepted=st.integers(0, 2**53 - 1),
    prev=st.binary(min_size=32, max_size=32),
    statement=st.binary(max_size=200),
    signature=st.binary(min_size=64, max_size=64),
)
def test_entry_fast_bytes_equal_rfc8785(index, accepted, prev, statement, signature):
    entry = Entry(
        index=index, accepted_ms=accepted, prev=prev, statement=statement, signature=signature
    )
    expected = rfc8785.dumps(
        {
            "accepted_ms": accepted,
            "index": index,
            "prev": prev.hex(),
            "signature": base64.b64encode(signature).decode(),
            "statement": base64.b64encode(statement).decode(),
        }
    )
    assert entry.to_bytes() == expected
    assert entry.leaf_hash == leaf_hash(expected)
    assert Entry.from_bytes(expected) == entry


def test_entry_from_bytes_rules():
    entry = Entry(index=0, accepted_ms=1, prev=ZERO_HASH, statement=b"s", signature=bytes(64))
    obj = {
        "accepted_ms": 1,
        "index": 0,
        "prev": ZERO_HASH.hex(),
        "signature": base64.b64encode(bytes(64)).decode(),
        "statement": base64.b64encode(b"s").decode(),
    }
    assert Entry.from_bytes(canonical_bytes(obj)) == entry
    with pytest.raises(EncodingError) as info:
        Entry.from_bytes(canonical_bytes({**obj, "extra": 1}))
    assert info.value.field == "extra"
    with pytest.raises(EncodingError) as info:
        Entry.from_bytes(canonical_bytes({**obj, "index": -1}))
    assert info.value.field == "index"
    with pytest.raises(EncodingError) as info:
        Entry.from_bytes(canonical_bytes({**obj, "prev": "00"}))
    assert info.value.field == "prev"
    with pytest.raises(ValueError, match="index"):
        Entry(index=-1, accepted_ms=1, prev=ZERO_HASH, statement=b"", signature=b"")


@pytest.mark.parametrize("offset", ["+05:99", "+24:00", "-12:60"])
def test_time_offset_must_be_valid(offset):
    with pytest.raises(EncodingError) as info:
        Statement.from_bytes(canonical_bytes(envelope(time=f"2026-11-28T09:30:00{offset}")))
    assert info.value.field == "time"
