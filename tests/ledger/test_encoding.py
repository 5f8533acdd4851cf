"""Canonical bytes: RFC 8785 vectors, the I-JSON rejections, and round-trip properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger.encoding import (
    MAX_SAFE_INTEGER,
    _canonical_object_fast,
    _decode_canonical_strict,
    canonical_bytes,
    decode_canonical,
    decode_json,
    is_canonical,
)
from ledger.errors import EncodingError
from tests.strategies import json_objects

JCS = Path(__file__).parent.parent / "vectors" / "rfc8785-jcs" / "testdata"
JCS_CASES = sorted(p.stem for p in (JCS / "input").glob("*.json"))


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def test_all_jcs_vectors_present():
    assert JCS_CASES == ["arrays", "french", "structures", "unicode", "values", "weird"]


@pytest.mark.parametrize("case", JCS_CASES)
def test_jcs_vector(case):
    raw_input = (JCS / "input" / f"{case}.json").read_bytes()
    expected = (JCS / "output" / f"{case}.json").read_bytes()
    assert bytes.fromhex((JCS / "outhex" / f"{case}.txt").read_text().replace(" ", "")) == expected
    value = json.loads(raw_input)
    # The library itself must produce the published bytes...
    assert rfc8785.dumps(value) == expected
    if _has_float(value):
        # ...but Mandi refuses floats: quantities are integers in stated units.
        with pytest.raises(EncodingError) as info:
            decode_json(raw_input)
        assert info.value.code == "float_not_allowed"
    elif isinstance(value, dict):
        assert canonical_bytes(value) == expected
        assert decode_canonical(expected) == value
        assert is_canonical(value, expected)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b'{"qty":1,"qty":900}', "duplicate_key"),
        (b'{"a":{"b":1,"b":2}}', "duplicate_key"),
        (b'{"a":NaN}', "non_finite_number"),
        (b'{"a":Infinity}', "non_finite_number"),
        (b'{"a":-Infinity}', "non_finite_number"),
        (b'{"a":1.5}', "float_not_allowed"),
        (b'{"a":1e3}', "float_not_allowed"),
        (b'{"a":9007199254740992}', "integer_out_of_range"),
        (b'{"a":-9007199254740992}', "integer_out_of_range"),
        (b'{"a":"\\ud800"}', "lone_surrogate"),
        (b'{"\\udfff":1}', "lone_surrogate"),
        (b'{"a":1', "invalid_json"),
        (b"\xff\xfe", "invalid_utf8"),
    ],
)
def test_decode_rejects_what_cannot_round_trip(text, code):
    with pytest.raises(EncodingError) as info:
        decode_json(text)
    assert info.value.code == code


def test_safe_integer_bounds_accepted():
    data = f'{{"a":{MAX_SAFE_INTEGER},"b":{-MAX_SAFE_INTEGER}}}'.encode()
    assert decode_canonical(data) == {"a": MAX_SAFE_INTEGER, "b": -MAX_SAFE_INTEGER}


@pytest.mark.parametrize(
    "value",
    [{"a": 1.0}, {"a": float("nan")}, {"a": 2**53}, {"a": "\udc00"}, {"a": [{"b": 2**60}]}],
)
def test_canonical_bytes_rejects(value):
    with pytest.raises(EncodingError):
        canonical_bytes(value)


@pytest.mark.parametrize(
    "text",
    [b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":1} ', b'{"a":"\\u0041"}', b'{"a":"\\/"}'],
)
def test_non_canonical_bytes_rejected(text):
    with pytest.raises(EncodingError) as info:
        decode_canonical(text)
    assert info.value.code == "not_canonical"


def test_not_an_object_rejected():
    with pytest.raises(EncodingError) as info:
        decode_canonical(b"[1,2]")
    assert info.value.code == "not_an_object"


def test_astral_keys_sort_by_utf16():
    # U+1F600 sorts before U+FF21 in UTF-16 code units (0xD83D < 0xFF21) but after it by
    # code point: the fast path must defer to rfc8785 here.
    value = {"\U0001f600": 1, "\uff21": 2}
    data = canonical_bytes(value)
    assert data == rfc8785.dumps(value)
    assert data.index("\U0001f600".encode()) < data.index("\uff21".encode())
    assert decode_canonical(data) == value
    python_order = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert not is_canonical(value, python_order.encode())


@given(json_objects())
def test_round_trip(value):
    data = canonical_bytes(value)
    assert decode_canonical(data) == value
    assert canonical_bytes(decode_json(data)) == data


@given(json_objects(), st.randoms())
def test_independent_of_key_order(value, rnd):
    items = list(value.items())
    rnd.shuffle(items)
    assert canonical_bytes(dict(items)) == canonical_bytes(value)


@given(json_objects())
def test_fast_canonical_check_agrees_with_rfc8785(value):
    data = rfc8785.dumps(value)
    assert is_canonical(value, data)
    pretty = json.dumps(value, indent=1).encode()
    assert is_canonical(value, pretty) == (pretty == data)


def test_deep_nesting_is_an_encoding_error_not_a_crash():
    data = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(EncodingError) as info:
        decode_json(data)
    assert info.value.code == "too_deep"


def _outcome(decode, data: bytes) -> object:
    try:
        return ("value", decode(data))
    except EncodingError as exc:
        return ("error", exc.code, exc.message, exc.field)


_TRICKY = [
    b'{"a":1,"a":1}',  # a duplicate that re-encodes shorter
    b'{"a":1,"a":2}',
    b'{"a":1.0}',
    b'{"a":NaN}',
    b'{"a":9007199254740992}',
    b'{"a":-0}',
    b'{"a":"\\ud800"}',  # a lone surrogate
    b'{"\\ud83d\\ude00":1}',
    b' {"a":1}',
    b'{"a":1} ',
    b'[{"a":1}]',
    b'"a"',
    b'{"a":"\xff"}',  # not UTF-8
    b'{"b":1,"a":2}',  # unsorted
    b'{"a":[1,{"c":2,"b":3}]}',
]


@pytest.mark.parametrize("data", _TRICKY)
def test_decode_canonical_fast_path_answers_as_the_strict_decoder(data):
    assert _outcome(decode_canonical, data) == _outcome(_decode_canonical_strict, data)
    fast = _canonical_object_fast(data)
    if fast is not None:
        assert _decode_canonical_strict(data) == fast


@given(json_objects(), st.integers(0, 10_000), st.integers(0, 255))
def test_decode_canonical_fast_path_agrees_on_damaged_bytes(value, where, byte):
    data = bytes(rfc8785.dumps(value))
    position = where % len(data)
    damaged = data[:position] + bytes([byte]) + data[position + 1 :]
    for candidate in (data, damaged):
        assert _outcome(decode_canonical, candidate) == _outcome(
            _decode_canonical_strict, candidate
        )
