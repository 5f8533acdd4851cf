"""``ledger.__all__`` is sorted and complete, as httpx keeps its own."""

from __future__ import annotations

import importlib

import ledger

PUBLIC_MODULES = [
    "admission",
    "audit",
    "checkpoint",
    "errors",
    "hashing",
    "keys",
    "merkle",
    "registry",
    "service",
    "statements",
    "storage",
]


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    if name.isupper() or (name.upper() == name and "_" in name):
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted():
    assert ledger.__all__ == sorted(ledger.__all__, key=_isort_key)


def test_all_is_complete():
    expected = {"__version__"}
    for name in PUBLIC_MODULES:
        expected |= set(importlib.import_module(f"ledger.{name}").__all__)
    assert set(ledger.__all__) == expected
    for name in ledger.__all__:
        assert hasattr(ledger, name), name
