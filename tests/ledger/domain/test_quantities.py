"""Quantities with units, base-unit conversion, and money."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.quantities import (
    COUNT_UNITS,
    MASS,
    UNITS,
    Money,
    Quantity,
    base_unit,
    to_base,
)
from ledger.encoding import MAX_SAFE_INTEGER
from ledger.errors import EncodingError


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        (1, "g", (MASS, 1)),
        (2, "kg", (MASS, 2000)),
        (3, "t", (MASS, 3_000_000)),
        (4, "crate", ("crate", 4)),
        (5, "sack", ("sack", 5)),
        (6, "piece", ("piece", 6)),
    ],
)
def test_to_base(amount, unit, expected):
    quantity = Quantity.from_json({"amount": amount, "unit": unit})
    assert to_base(quantity) == expected
    assert (quantity.unit_class, quantity.base_amount) == expected


def test_every_count_unit_is_its_own_class():
    for unit in COUNT_UNITS:
        assert UNITS[unit] == (unit, 1)
        assert base_unit(unit) == unit
    assert base_unit(MASS) == "g"
    with pytest.raises(ValueError, match="unit class"):
        base_unit("litre")


@given(st.integers(min_value=1, max_value=MAX_SAFE_INTEGER), st.sampled_from(sorted(UNITS)))
def test_json_round_trip_or_refusal(amount, unit):
    obj = {"amount": amount, "unit": unit}
    if amount * UNITS[unit][1] > MAX_SAFE_INTEGER:
        with pytest.raises(EncodingError) as info:
            Quantity.from_json(obj)
        assert info.value.code == "quantity_too_large"
    else:
        assert Quantity.from_json(obj).to_json() == obj


def test_largest_quantities():
    assert Quantity.from_json({"amount": MAX_SAFE_INTEGER, "unit": "g"}).base_amount == 2**53 - 1
    assert Quantity.from_json({"amount": MAX_SAFE_INTEGER // 1000, "unit": "kg"})
    with pytest.raises(EncodingError) as info:
        Quantity.from_json({"amount": MAX_SAFE_INTEGER // 1000 + 1, "unit": "kg"}, field="body.q")
    assert (info.value.code, info.value.field) == ("quantity_too_large", "body.q")


@pytest.mark.parametrize(
    ("value", "code", "field"),
    [
        ({"amount": 0, "unit": "kg"}, "bad_amount", "q.amount"),
        ({"amount": -1, "unit": "kg"}, "bad_amount", "q.amount"),
        ({"amount": True, "unit": "kg"}, "bad_amount", "q.amount"),
        ({"amount": 1.5, "unit": "kg"}, "bad_amount", "q.amount"),
        ({"amount": "1", "unit": "kg"}, "bad_amount", "q.amount"),
        ({"amount": 1, "unit": "tonne"}, "bad_unit", "q.unit"),
        ({"amount": 1, "unit": "KG"}, "bad_unit", "q.unit"),
        ({"amount": 1}, "missing_field", "q.unit"),
        ({"amount": 1, "unit": "kg", "grade": "A"}, "unknown_field", "q.grade"),
        ([1, "kg"], "bad_type", "q"),
    ],
)
def test_bad_quantities(value, code, field):
    with pytest.raises(EncodingError) as info:
        Quantity.from_json(value, field="q")
    assert (info.value.code, info.value.field) == (code, field)


def test_quantity_constructor_checks():
    for kwargs in (
        {"amount": 0, "unit": "kg"},
        {"amount": 1, "unit": "oz"},
        {"amount": MAX_SAFE_INTEGER, "unit": "t"},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - three different messages
            Quantity(**kwargs)


def test_money():
    price = Money.from_json({"amount_minor": 250_00, "currency": "PKR"})
    assert (price.amount_minor, price.currency) == (25000, "PKR")
    assert price.to_json() == {"amount_minor": 25000, "currency": "PKR"}
    assert Money.from_json({"amount_minor": 0, "currency": "USD"}).amount_minor == 0


@pytest.mark.parametrize(
    ("value", "code", "field"),
    [
        ({"amount_minor": -1, "currency": "PKR"}, "bad_amount", "price.amount_minor"),
        ({"amount_minor": 2.5, "currency": "PKR"}, "bad_amount", "price.amount_minor"),
        ({"amount_minor": False, "currency": "PKR"}, "bad_amount", "price.amount_minor"),
        ({"amount_minor": 1, "currency": "pkr"}, "bad_currency", "price.currency"),
        ({"amount_minor": 1, "currency": "RUPEE"}, "bad_currency", "price.currency"),
        ({"amount_minor": 1}, "missing_field", "price.currency"),
        ({"amount_minor": 1, "currency": "PKR", "x": 1}, "unknown_field", "price.x"),
        ("25 PKR", "bad_type", "price"),
    ],
)
def test_bad_money(value, code, field):
    with pytest.raises(EncodingError) as info:
        Money.from_json(value)
    assert (info.value.code, info.value.field) == (code, field)


def test_money_constructor_checks():
    with pytest.raises(ValueError, match="amount_minor"):
        Money(amount_minor=-1, currency="PKR")
    with pytest.raises(ValueError, match="currency"):
        Money(amount_minor=1, currency="Rs")
