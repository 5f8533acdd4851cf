"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ledger.encoding import MAX_SAFE_INTEGER

# Text without lone surrogates (they are not valid UTF-8 and are rejected).
json_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER),
    json_text,
)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value Mandi accepts (no floats)."""
    return st.recursive(
        json_scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(json_text, children, max_size=4),
        ),
        max_leaves=12,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object Mandi accepts."""
    return st.dictionaries(json_text, json_values(), max_size=5)
