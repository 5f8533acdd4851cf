"""GS1 identifiers (GTIN, GLN) and the canonical lot id.

A lot is named in one of two ways, and both map to one canonical, URL-path-safe
text used everywhere (statement bodies, API paths, QR codes, the CLI)::

    gtin:{gtin14}:{pct-lot}        GS1: GTIN (AI 01) + batch/lot (AI 10)
    lot:{participant}:{code}       a producer's own lot code under its participant id

``pct-lot`` is the AI (10) value percent-encoded the way GS1 Digital Link 1.2
(section 4.8 and RFC 3986 section 2.1) asks: the RFC 3986 unreserved characters
``A-Za-z0-9-._~`` stay literal, every other byte becomes ``%XX`` with uppercase
hex. The AI (10) value is 1-20 characters of GS1 AI encodable character set 82
(GS1 General Specifications 7.11, figure 7.11-1); anything else is refused,
never altered, so decoding an id always gives back the exact original value.

This module owns the check-digit algorithm (GS1 General Specifications 7.9.1),
the lot-id grammar, and the mapping to and from Digital Link paths
(``/01/{gtin}/10/{lot}``). It does not decide who may create a lot (that is
:mod:`ledger.domain.rules`) and it does not resolve Digital Link URIs (no host,
query or redirect handling).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from ledger.errors import EncodingError
from ledger.registry import check_participant_id

__all__ = [
    "GS1_CHARSET_82",
    "MAX_GS1_LOT_CHARS",
    "LotId",
    "LotRef",
    "check_gln",
    "check_gs1_lot",
    "check_gtin",
    "gs1_check_digit",
    "parse_lot_ref",
    "percent_decode",
    "percent_encode",
]

GS1_CHARSET_82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
"""GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1)."""

MAX_GS1_LOT_CHARS = 20
"""AI (10) batch/lot is X..20: 1-20 characters of character set 82."""

LotRef: TypeAlias = str
"""A lot as it appears in statement bodies and JSON: the canonical lot id text."""

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PRODUCER_CODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_GTIN_LENGTHS = frozenset({8, 12, 13, 14})
_HEX_UPPER = "0123456789ABCDEF"
# What a Digital Link path segment may hold literally (RFC 3986 pchar without '%').
_PCHAR_LITERAL = _UNRESERVED | frozenset("!$&'()*+,;=:@")


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (the data digits, without the check digit).

    Weights 3 and 1 alternate from the rightmost data digit, which has weight 3
    (GS1 General Specifications 7.9.1); the check digit brings the weighted sum
    to a multiple of 10.

    Raises:
        ValueError: ``digits`` is empty or not all ASCII digits.
    """
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("check digit needs a non-empty string of ASCII digits")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def _digits_with_check(value: Any, lengths: frozenset[int], code: str, field: str) -> str:
    if (
        not isinstance(value, str)
        or not value.isascii()
        or not value.isdigit()
        or len(value) not in lengths
    ):
        wanted = "/".join(str(n) for n in sorted(lengths))
        raise EncodingError(f"{field}: must be {wanted} ASCII digits", code=code, field=field)
    if gs1_check_digit(value[:-1]) != int(value[-1]):
        raise EncodingError(
            f"{field}: check digit {value[-1]} is wrong, expected {gs1_check_digit(value[:-1])}",
            code=code,
            field=field,
        )
    return value


def check_gtin(value: Any, *, field: str = "gtin") -> str:
    """Validate a GTIN-8/12/13/14 and return it left-padded with zeros to 14 digits.

    Raises:
        EncodingError: ``bad_gtin`` naming ``field``: wrong length, a non-digit, or a
            wrong check digit.
    """
    return _digits_with_check(value, _GTIN_LENGTHS, "bad_gtin", field).rjust(14, "0")


def check_gln(value: Any, *, field: str = "gln") -> str:
    """Validate a 13-digit GS1 Global Location Number (same check digit as the GTIN).

    Raises:
        EncodingError: ``bad_gln`` naming ``field``.
    """
    return _digits_with_check(value, frozenset({13}), "bad_gln", field)


def check_gs1_lot(value: Any, *, field: str = "batch") -> str:
    """Validate an AI (10) batch/lot value: 1-20 characters of character set 82.

    Raises:
        EncodingError: ``bad_gs1_lot`` naming ``field`` and the first bad character.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_GS1_LOT_CHARS:
        raise EncodingError(
            f"{field}: must be 1-{MAX_GS1_LOT_CHARS} characters of GS1 character set 82",
            code="bad_gs1_lot",
            field=field,
        )
    for ch in value:
        if ch not in GS1_CHARSET_82:
            raise EncodingError(
                f"{field}: {ch!r} is not in GS1 AI encodable character set 82",
                code="bad_gs1_lot",
                field=field,
            )
    return value


def percent_encode(value: str) -> str:
    """Percent-encode every byte of UTF-8 ``value`` except RFC 3986 unreserved characters.

    Hex digits are uppercase (RFC 3986 section 2.1), so the result is unique.
    """
    out: list[str] = []
    for ch in value:
        if ch in _UNRESERVED:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def percent_decode(text: str, *, field: str, strict: bool = True) -> str:
    """Decode ``%XX`` escapes in ``text`` (UTF-8).

    Args:
        text: the encoded text.
        field: named in errors.
        strict: require the canonical form :func:`percent_encode` produces
            (uppercase hex, only unreserved characters literal). With
            ``strict=False`` lowercase hex, escaped unreserved characters and
            literal RFC 3986 path characters are accepted too (what other Digital
            Link encoders may emit); the decoded value is the same either way.

    Raises:
        EncodingError: ``bad_percent_encoding`` naming ``field``.
    """
    raw = bytearray()
    i = 0
    allowed = _UNRESERVED if strict else _PCHAR_LITERAL
    while i < len(text):
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            digits = _HEX_UPPER if strict else _HEX_UPPER + "abcdef"
            if len(pair) != 2 or any(c not in digits for c in pair):
                raise EncodingError(
                    f"{field}: '%' must be followed by two uppercase hex digits",
                    code="bad_percent_encoding",
                    field=field,
                )
            raw.append(int(pair, 16))
            i += 3
        elif ch in allowed:
            raw.append(ord(ch))
            i += 1
        else:
            raise EncodingError(
                f"{field}: {ch!r} must be percent-encoded",
                code="bad_percent_encoding",
                field=field,
            )
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(
            f"{field}: escapes do not decode as UTF-8",
            code="bad_percent_encoding",
            field=field,
        ) from exc
    if strict and percent_encode(decoded) != text:
        raise EncodingError(
            f"{field}: not the canonical percent-encoding (escape only what is not unreserved)",
            code="bad_percent_encoding",
            field=field,
        )
    return decoded


@dataclass(frozen=True, slots=True, kw_only=True)
class LotId:
    """A canonical lot id, parsed.

    Exactly one form is filled in: ``gtin`` and ``batch`` for GS1 lots,
    ``producer`` and ``code`` for producer lots. Build one with :meth:`parse`,
    :meth:`from_gs1`, :meth:`from_producer` or :meth:`from_digital_link_path`;
    the constructor re-checks that the parts match ``text``.
    """

    text: str
    gtin: str | None = None
    batch: str | None = None
    """The decoded AI (10) value, exactly as printed on the label."""
    producer: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        try:
            parts = _split(self.text, "lot")
        except EncodingError as exc:
            raise ValueError(f"not a canonical lot id: {self.text!r}") from exc
        if parts != (self.gtin, self.batch, self.producer, self.code):
            raise ValueError(f"LotId parts do not match its text {self.text!r}")

    @classmethod
    def parse(cls, text: Any, *, field: str = "lot") -> LotId:
        """Parse canonical lot id text (strict: the canonical form only).

        Raises:
            EncodingError: ``bad_lot_id`` naming ``field``; the message says which
                part is wrong (check digit, character set, percent-encoding, ...).
        """
        gtin, batch, producer, code = _checked_parts(text, field)
        return cls(text=text, gtin=gtin, batch=batch, producer=producer, code=code)

    @classmethod
    def from_gs1(cls, *, gtin: str, batch: str) -> LotId:
        """The lot id of GTIN ``gtin`` (8/12/13/14 digits) and AI (10) value ``batch``.

        Raises:
            EncodingError: ``bad_gtin`` or ``bad_gs1_lot``.
        """
        gtin14 = check_gtin(gtin)
        check_gs1_lot(batch)
        return cls(text=f"gtin:{gtin14}:{percent_encode(batch)}", gtin=gtin14, batch=batch)

    @classmethod
    def from_producer(cls, *, participant_id: str, code: str) -> LotId:
        """The lot id of a producer's own lot ``code`` under ``participant_id``.

        Raises:
            EncodingError: ``bad_lot_id``.
        """
        return cls.parse(f"lot:{participant_id}:{code}")

    @classmethod
    def from_digital_link_path(cls, path: Any, *, field: str = "path") -> LotId:
        """Parse a Digital Link path: ``/01/{gtin}/10/{lot}`` or ``/l/{lot id}``.

        The GTIN may have 8, 12, 13 or 14 digits (Digital Link resolvers accept
        all and normalise to 14). The AI (10) segment may use any valid
        percent-encoding; the canonical id re-encodes it. ``/l/`` takes the
        canonical lot id text as is. A path with further
        key qualifiers (``/21/...``) or a query is refused.

        Raises:
            EncodingError: ``bad_lot_id`` for the path's shape or a ``/l/`` id,
                ``bad_gtin``, ``bad_gs1_lot`` or ``bad_percent_encoding`` for the parts.
        """
        if not isinstance(path, str):
            raise EncodingError(f"{field}: must be a string", code="bad_lot_id", field=field)
        segments = path.split("/")
        if len(segments) == 3 and segments[0] == "" and segments[1] == "l":
            return cls.parse(segments[2], field=field)
        if len(segments) == 5 and segments[0] == "" and segments[1:4:2] == ["01", "10"]:
            batch = percent_decode(segments[4], field=field, strict=False)
            return cls.from_gs1(gtin=check_gtin(segments[2], field=field), batch=batch)
        raise EncodingError(
            f"{field}: must be /01/{{gtin}}/10/{{lot}} or /l/{{lot id}}",
            code="bad_lot_id",
            field=field,
        )

    @property
    def is_gs1(self) -> bool:
        """Whether this lot is named by GTIN + batch/lot."""
        return self.gtin is not None

    def digital_link_path(self) -> str:
        """The Digital Link path: ``/01/{gtin14}/10/{lot}``; ``/l/{lot id}`` for producer lots."""
        if self.gtin is not None and self.batch is not None:
            return f"/01/{self.gtin}/10/{percent_encode(self.batch)}"
        return f"/l/{self.text}"

    def to_json(self) -> LotRef:
        """The JSON form: the canonical lot id text."""
        return self.text

    @classmethod
    def from_json(cls, value: Any, *, field: str = "lot") -> LotId:
        """Same as :meth:`parse`."""
        return cls.parse(value, field=field)

    def __str__(self) -> str:
        return self.text


def parse_lot_ref(value: Any, *, field: str) -> LotRef:
    """Check that ``value`` is a canonical lot id and return it.

    Raises:
        EncodingError: naming ``field``.
    """
    # The text is the reference: checking it is enough, no LotId to build (a hot path).
    _checked_parts(value, field)
    return cast(str, value)


def _checked_parts(text: Any, field: str) -> tuple[str | None, str | None, str | None, str | None]:
    """:func:`_split`, every refusal reported as ``bad_lot_id``."""
    try:
        return _split(text, field)
    except EncodingError as exc:
        if exc.code == "bad_lot_id":
            raise
        raise EncodingError(f"{exc.message} ({exc.code})", code="bad_lot_id", field=field) from exc


def _split(text: Any, field: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(gtin, batch, producer, code) of canonical lot id ``text``."""
    if not isinstance(text, str):
        raise EncodingError(f"{field}: lot id must be a string", code="bad_lot_id", field=field)
    scheme, sep, rest = text.partition(":")
    if sep and scheme == "gtin":
        gtin, sep2, encoded = rest.partition(":")
        if sep2 and len(gtin) == 14:
            check_gtin(gtin, field=field)
            batch = check_gs1_lot(percent_decode(encoded, field=field), field=field)
            return gtin, batch, None, None
    elif sep and scheme == "lot":
        producer, sep2, code = rest.partition(":")
        if sep2:
            check_participant_id(producer, field=field)
            if _PRODUCER_CODE_RE.fullmatch(code):
                return None, None, producer, code
    raise EncodingError(
        f"{field}: lot id must be gtin:{{14 digits}}:{{lot}} or lot:{{participant}}:{{code}}",
        code="bad_lot_id",
        field=field,
    )
