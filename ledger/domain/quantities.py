"""Quantities with units, and money.

A quantity is ``{"amount": int > 0, "unit": str}``. Mass units convert to grams
(``g`` 1, ``kg`` 1000, ``t`` 1 000 000); each count unit (``crate``, ``sack``,
``bag``, ``box``, ``bunch``, ``piece``) is its own class and base, because a
crate of mangoes has no fixed mass. A lot's *unit class* (``mass`` or one count
unit) is fixed when the lot is created, and the rules keep every lot's quantity
in base units of that class. Conversions stay within 2^53-1 so every number
round-trips through canonical JSON (RFC 8785 / I-JSON).

Money is ``{"amount_minor": int >= 0, "currency": ISO 4217 code}`` in the
currency's minor unit (paisa for PKR); never a float.

This module parses and converts; it does not decide how much a participant
holds (that is :mod:`ledger.domain.rules`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ledger.encoding import MAX_SAFE_INTEGER
from ledger.errors import EncodingError

__all__ = [
    "COUNT_UNITS",
    "MASS",
    "MASS_UNITS",
    "UNITS",
    "Money",
    "Quantity",
    "base_unit",
    "to_base",
]

MASS = "mass"
"""The unit class of every mass unit; its base unit is the gram."""

MASS_UNITS: Mapping[str, int] = MappingProxyType({"g": 1, "kg": 1000, "t": 1_000_000})
"""Mass unit -> grams."""

COUNT_UNITS = ("bag", "box", "bunch", "crate", "piece", "sack")
"""Count units; each is its own class with factor 1."""

UNITS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {**{u: (MASS, f) for u, f in MASS_UNITS.items()}, **{u: (u, 1) for u in COUNT_UNITS}}
)
"""unit -> (unit class, factor to the class's base unit)."""

_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def base_unit(unit_class: str) -> str:
    """The base unit of a unit class: ``g`` for mass, the count unit itself otherwise.

    Raises:
        ValueError: unknown unit class.
    """
    if unit_class == MASS:
        return "g"
    if unit_class in COUNT_UNITS:
        return unit_class
    raise ValueError(f"unknown unit class {unit_class!r}")


def _exact_object(value: Any, names: tuple[str, str], field: str) -> None:
    if not isinstance(value, dict):
        raise EncodingError(f"{field}: must be an object", code="bad_type", field=field)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise EncodingError(
            f"{field}: unknown field {unknown[0]!r}",
            code="unknown_field",
            field=f"{field}.{unknown[0]}",
        )
    for name in names:
        if name not in value:
            raise EncodingError(
                f"{field}: missing field {name!r}", code="missing_field", field=f"{field}.{name}"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quantity:
    """A positive integer amount of a known unit whose base amount is <= 2^53-1."""

    amount: int
    unit: str

    def __post_init__(self) -> None:
        if not _is_int(self.amount) or self.amount <= 0:
            raise ValueError("amount must be an integer > 0")
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}")
        if self.amount * UNITS[self.unit][1] > MAX_SAFE_INTEGER:
            raise ValueError("quantity beyond 2^53-1 base units")

    @classmethod
    def from_json(cls, value: Any, *, field: str = "quantity") -> Quantity:
        """Parse ``{"amount": int > 0, "unit": str}``.

        Raises:
            EncodingError: naming the field: ``bad_type``, ``unknown_field``,
                ``missing_field``, ``bad_amount``, ``bad_unit`` or
                ``quantity_too_large``.
        """
        _exact_object(value, ("amount", "unit"), field)
        amount, unit = value["amount"], value["unit"]
        if not _is_int(amount) or amount <= 0:
            raise EncodingError(
                f"{field}.amount: must be an integer > 0",
                code="bad_amount",
                field=f"{field}.amount",
            )
        if not isinstance(unit, str) or unit not in UNITS:
            raise EncodingError(
                f"{field}.unit: must be one of {', '.join(sorted(UNITS))}",
                code="bad_unit",
                field=f"{field}.unit",
            )
        if amount * UNITS[unit][1] > MAX_SAFE_INTEGER:
            raise EncodingError(
                f"{field}: {amount} {unit} is beyond 2^53-1 {base_unit(UNITS[unit][0])}",
                code="quantity_too_large",
                field=field,
            )
        return cls(amount=amount, unit=unit)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"amount": self.amount, "unit": self.unit}

    @property
    def unit_class(self) -> str:
        """``mass`` or the count unit."""
        return UNITS[self.unit][0]

    @property
    def base_amount(self) -> int:
        """The amount in base units of the class (grams for mass)."""
        return self.amount * UNITS[self.unit][1]


def to_base(quantity: Quantity) -> tuple[str, int]:
    """``(unit class, amount in base units)``, e.g. 2 kg -> ("mass", 2000)."""
    return quantity.unit_class, quantity.base_amount


@dataclass(frozen=True, slots=True, kw_only=True)
class Money:
    """An amount in the minor unit of an ISO 4217 currency."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not _is_int(self.amount_minor) or not 0 <= self.amount_minor <= MAX_SAFE_INTEGER:
            raise ValueError("amount_minor must be an integer in [0, 2^53-1]")
        if not _CURRENCY_RE.fullmatch(self.currency):
            raise ValueError("currency must be three uppercase letters")

    @classmethod
    def from_json(cls, value: Any, *, field: str = "price") -> Money:
        """Parse ``{"amount_minor": int >= 0, "currency": "PKR"}``.

        Raises:
            EncodingError: naming the field: ``bad_type``, ``unknown_field``,
                ``missing_field``, ``bad_amount`` or ``bad_currency``.
        """
        _exact_object(value, ("amount_minor", "currency"), field)
        amount, currency = value["amount_minor"], value["currency"]
        if not _is_int(amount) or not 0 <= amount <= MAX_SAFE_INTEGER:
            raise EncodingError(
                f"{field}.amount_minor: must be an integer >= 0",
                code="bad_amount",
                field=f"{field}.amount_minor",
            )
        if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
            raise EncodingError(
                f"{field}.currency: must be an ISO 4217 code (three uppercase letters)",
                code="bad_currency",
                field=f"{field}.currency",
            )
        return cls(amount_minor=amount, currency=currency)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"amount_minor": self.amount_minor, "currency": self.currency}
