"""Canonical JSON bytes (RFC 8785, JCS) and the strict decoder that goes with it.

Everything Mandi hashes or signs is a JSON object serialised with the JSON
Canonicalization Scheme through the ``rfc8785`` package. This module owns the
I-JSON subset that makes the encoding a bijection: no duplicate names, no
non-finite numbers, no floats at all (quantities are integers in stated units),
no integers beyond +/-(2**53 - 1), no lone surrogates. It does not know what the
objects mean; that is :mod:`ledger.statements`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import rfc8785

from ledger.errors import EncodingError

__all__ = [
    "MAX_SAFE_INTEGER",
    "JSONValue",
    "canonical_bytes",
    "decode_canonical",
    "decode_json",
    "is_canonical",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer an IEEE-754 double holds exactly (RFC 7493 section 2.2)."""

JSONValue = Any
"""A decoded JSON value: dict, list, str, int, bool or None (never float)."""


def _reject_float(text: str) -> float:
    raise EncodingError(
        f"number {text} is not an integer: quantities are integers in stated units",
        code="float_not_allowed",
    )


def _reject_constant(name: str) -> float:
    raise EncodingError(f"{name} is not JSON (non-finite number)", code="non_finite_number")


def _checked_int(text: str) -> int:
    value = int(text)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise EncodingError(f"integer {text} is beyond +/-(2^53-1)", code="integer_out_of_range")
    return value


# Built once: json.loads/json.dumps with options build a new coder on every call.
_FAST_DECODER = json.JSONDecoder(
    parse_float=_reject_float, parse_int=_checked_int, parse_constant=_reject_constant
)
# check_circular=False: the encoder only ever sees values a JSON decoder just built,
# which cannot hold a cycle (and the check costs a sixth of the encoding).
_FAST_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)

# Only an escaped surrogate (\ud800-\udfff) can put a lone surrogate into a string
# decoded from valid UTF-8; without one, the full walk of the value is not needed.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
# A 4-byte UTF-8 lead byte: the only way a key can lie outside the BMP.
_ASTRAL_LEAD = re.compile(rb"[\xf0-\xf4]")


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EncodingError(f"duplicate key {key!r}", code="duplicate_key", field=key)
        result[key] = value
    return result


def _check_value(value: Any, path: str) -> None:
    """Check the I-JSON rules that ``json`` does not enforce while parsing."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise EncodingError(
                f"{path or 'value'}: integer {value} is beyond +/-(2^53-1)",
                code="integer_out_of_range",
                field=path or None,
            )
        return
    if isinstance(value, float):
        code = "non_finite_number" if not math.isfinite(value) else "float_not_allowed"
        raise EncodingError(
            f"{path or 'value'}: floats are not allowed", code=code, field=path or None
        )
    if isinstance(value, str):
        _check_string(value, path)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(
                    f"{path or 'object'}: key {key!r} is not a string", code="bad_key"
                )
            _check_string(key, path)
            _check_value(item, f"{path}.{key}" if path else key)
        return
    raise TypeError(f"{path or 'value'}: {type(value).__name__} is not a JSON type")


def _check_string(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError(
            f"{path or 'string'}: lone surrogate in string",
            code="lone_surrogate",
            field=path or None,
        ) from exc


def canonical_bytes(value: Mapping[str, Any]) -> bytes:
    """Serialise a JSON object with RFC 8785 after checking the I-JSON rules.

    Args:
        value: a mapping of str to JSON values (no floats).

    Returns:
        The canonical UTF-8 bytes.

    Raises:
        EncodingError: a value cannot round-trip (float, big integer, lone surrogate).
    """
    _check_value(value, "")
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, ValueError) as exc:  # pragma: no cover - pre-checked
        raise EncodingError(f"cannot canonicalise: {exc}", code="not_canonicalisable") from exc


def decode_json(data: bytes) -> JSONValue:
    """Parse JSON strictly: UTF-8, no duplicate keys, no floats, no NaN, I-JSON integers.

    Raises:
        EncodingError: naming the rule (``invalid_json``, ``duplicate_key``, ...).
    """
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise EncodingError("not valid UTF-8", code="invalid_utf8") from exc
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs_without_duplicates,
            parse_float=_reject_float,
            parse_int=_checked_int,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise EncodingError(
            f"invalid JSON: {exc.msg} at offset {exc.pos}", code="invalid_json"
        ) from exc
    except RecursionError as exc:
        raise EncodingError("JSON nested too deeply", code="too_deep") from exc
    if _SURROGATE_ESCAPE.search(data):
        _check_value(value, "")
    return value


def decode_canonical(data: bytes) -> dict[str, Any]:
    """Parse bytes that must be the canonical encoding of a JSON object.

    Raises:
        EncodingError: the bytes are not JSON, not an object, or not canonical
            (``not_canonical``: re-encoding gives different bytes).
    """
    fast = _canonical_object_fast(data)
    if fast is not None:
        return fast
    return _decode_canonical_strict(data)


def _decode_canonical_strict(data: bytes) -> dict[str, Any]:
    """:func:`decode_canonical` without the fast path: every rule checked on its own."""
    value = decode_json(data)
    if not isinstance(value, dict):
        raise EncodingError("expected a JSON object", code="not_an_object")
    if not is_canonical(value, data):
        raise EncodingError("bytes are not the RFC 8785 canonical form", code="not_canonical")
    return value


def _canonical_object_fast(data: bytes) -> dict[str, Any] | None:
    """The object ``data`` encodes when it is canonical; None when :func:`decode_json` must decide.

    Every statement and entry is decoded on the write path and by every audit,
    so the common case skips the per-object duplicate-key hook: when the bytes
    re-encode to themselves, no key was dropped (a duplicate would shorten the
    re-encoding), no float or out-of-range integer was admitted (the hooks
    refuse them), and no lone surrogate survived (encoding it to UTF-8 fails).
    On any doubt the ordinary decoder runs, so its value or its error is the answer.
    """
    try:
        value = _FAST_DECODER.decode(data.decode("utf-8"))
        if type(value) is dict and is_canonical(value, data):
            return value
    except (EncodingError, ValueError, RecursionError):  # UnicodeError is a ValueError
        pass
    return None


def is_canonical(value: dict[str, Any], data: bytes) -> bool:
    """Whether ``data`` is the canonical encoding of the already-checked ``value``.

    The fast path uses ``json.dumps`` with sorted keys, which equals RFC 8785 for
    the float-free, surrogate-free values :func:`decode_json` admits except when a
    key holds a character outside the Basic Multilingual Plane (JCS sorts by
    UTF-16 code units, Python by code points). When the fast form differs we ask
    ``rfc8785`` itself, so the answer is always RFC 8785's.
    """
    fast = _FAST_ENCODER.encode(value)
    if fast.encode("utf-8") == data:
        # isascii first: a C scan, a fifth of the cost of the regex search.
        return data.isascii() or _ASTRAL_LEAD.search(data) is None or _keys_sort_same(value)
    return bytes(rfc8785.dumps(value)) == data


def _keys_sort_same(value: Any) -> bool:
    """True unless some object key lies outside the BMP (where JCS order may differ)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if any(ord(ch) > 0xFFFF for ch in key):
                return _slow_equal(value)
            if not _keys_sort_same(item):
                return False
        return True
    if isinstance(value, list):
        return all(_keys_sort_same(item) for item in value)
    return True


def _slow_equal(value: dict[str, Any]) -> bool:
    fast = _FAST_ENCODER.encode(value)
    return bytes(rfc8785.dumps(value)) == fast.encode("utf-8")
