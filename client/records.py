"""Statements per kind from flat fields (command-line options, CSV cells), checked before signing.

Every supply-chain kind (docs/domain.md, section 4) is described here by a list
of flat :class:`FieldSpec` values: what the option or CSV column is called, where
it goes in the body, how its text is read, whether it is required, and an
example. ``mandi record KIND`` and ``mandi import`` both go through
:func:`build_body`, so a command-line option and a CSV column always mean the
same thing.

Text is only *read* here (``"1200 kg"`` becomes ``{"amount": 1200, "unit":
"kg"}``); it is *checked* by :func:`ledger.domain.kinds.parse_body` and
:meth:`ledger.statements.Statement.build`, the code the server runs, before
anything is signed. Text that does not read as the field's type is passed on
as it is, so the ledger's own message names the problem (``12.5 kg`` ->
``body.quantity.amount: must be an integer > 0``). :func:`column_for` maps the
ledger's JSON path back to the flat name for messages.

Conventions for cells and options with several parts:

=========  ================================  =====================================
field      written as                        becomes
=========  ================================  =====================================
quantity   ``1200 kg`` (amount, unit)        ``{"amount": 1200, "unit": "kg"}``
price      ``25000 PKR`` (minor units)       ``{"amount_minor": 25000, "currency"}``
input      ``LOT=QUANTITY``                  ``{"lot", "quantity"}``
output     ``LOT=QUANTITY=CROP[=VARIETY]``   ``{"lot", "quantity", "crop", "variety"}``
contents   a lot id (repeat the option)      ``["lot", ...]``
=========  ================================  =====================================

In CSV cells, the items of a list (``inputs``, ``outputs``, ``contents``) are
separated by ``;``. What the rules decide with the log's state (custody,
quantities held, who may sign what) is checked by the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ledger.domain.kinds import (
    DOMAIN_KINDS,
    INSPECTIONS,
    KIND_CORRECT,
    KIND_HARVEST,
    KIND_INSPECT,
    KIND_PACK,
    KIND_RECALL,
    KIND_RECEIVE,
    KIND_SELL,
    KIND_SHIP,
    KIND_STORE,
    KIND_TRANSFORM,
    KIND_UNPACK,
    PROCESSES,
    RESULTS,
    TRANSPORT_MODES,
    parse_body,
)
from ledger.errors import EncodingError
from ledger.hashing import KeyId
from ledger.keys import Signer
from ledger.statements import SignedStatement, Statement, sign_statement

__all__ = [
    "KINDS",
    "KIND_FIELDS",
    "TIME_COLUMN",
    "FieldSpec",
    "FieldType",
    "build_body",
    "build_statement",
    "column_for",
    "record",
    "split_list",
]

FieldType = Literal["text", "int", "quantity", "money", "lots", "inputs", "outputs"]

TIME_COLUMN = "time"
"""The claimed time: an option of every record command and a column of every CSV layout."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One flat field of a kind.

    Attributes:
        name: the CSV column, and the option ``--name`` (``_`` written ``-``).
        path: where its value goes in the body (dotted: ``transport.mode``).
        type: how its text is read (see the module docstring).
        required: whether the body needs it.
        help: one line for ``--help`` and the template.
        example: a value for the template.
    """

    name: str
    path: str
    type: FieldType
    required: bool
    help: str
    example: str

    @property
    def is_list(self) -> bool:
        """Whether it holds several items (a repeated option; ``;`` in a CSV cell)."""
        return self.type in ("lots", "inputs", "outputs")


def _f(
    name: str,
    help: str,
    example: str,
    *,
    type: FieldType = "text",
    required: bool = True,
    path: str | None = None,
) -> FieldSpec:
    return FieldSpec(
        name=name,
        path=path or name,
        type=type,
        required=required,
        help=help,
        example=example,
    )


_LOT = "lot:farm.punjab.1:paddy-2026-11"
_EVENT = "7b78750011665150d2df707e848f22c28edd5d3f16ac4bf1eb6c4aae031057b6"

KIND_FIELDS: Mapping[str, tuple[FieldSpec, ...]] = {
    KIND_HARVEST: (
        _f("lot", "lot id of the new lot (lot:PARTICIPANT:CODE or gtin:GTIN:LOT)", _LOT),
        _f("crop", "crop", "rice"),
        _f("variety", "variety", "basmati-385", required=False),
        _f("plot", "plot or farm", "plot-7"),
        _f("harvest_date", "harvest date YYYY-MM-DD", "2026-11-20"),
        _f("quantity", "quantity harvested, e.g. '1200 kg'", "1200 kg", type="quantity"),
    ),
    KIND_STORE: (
        _f("lot", "lot id", _LOT),
        _f("facility", "where the lot is kept", "warehouse-2"),
        _f("condition", "storage condition", "dry", required=False),
        _f(
            "temperature_dc",
            "temperature in tenths of a degree C (-1000..1000)",
            "185",
            type="int",
            required=False,
        ),
    ),
    KIND_TRANSFORM: (
        _f("process", f"one of {', '.join(PROCESSES)}", "milling"),
        _f(
            "inputs",
            "consumed: LOT=QUANTITY (repeat; ';' between items in CSV)",
            f"{_LOT}=1200 kg",
            type="inputs",
        ),
        _f(
            "outputs",
            "new lots: LOT=QUANTITY=CROP[=VARIETY] (repeat; ';' in CSV)",
            "lot:farm.punjab.1:rice-01=780 kg=rice=basmati-385",
            type="outputs",
        ),
    ),
    KIND_PACK: (
        _f("unit", "lot id of the new shipping unit", "lot:farm.punjab.1:pallet-01"),
        _f("contents", "lot ids packed, whole (repeat; ';' in CSV)", _LOT, type="lots"),
    ),
    KIND_UNPACK: (_f("unit", "lot id of the shipping unit", "lot:farm.punjab.1:pallet-01"),),
    KIND_SHIP: (
        _f("lot", "lot id (shipped whole)", _LOT),
        _f("to", "participant id of the consignee", "coop.punjab"),
        _f("quantity", "the whole lot, e.g. '1200 kg'", "1200 kg", type="quantity"),
        _f(
            "mode", f"transport: one of {', '.join(TRANSPORT_MODES)}", "road", path="transport.mode"
        ),
        _f("vehicle", "vehicle", "LES-1234", required=False, path="transport.vehicle"),
        _f(
            "carrier",
            "participant id of the carrier",
            "transport.gt-road",
            required=False,
            path="transport.carrier",
        ),
    ),
    KIND_RECEIVE: (
        _f("shipment", "event id of the ship statement (64 hex)", _EVENT),
        _f("quantity", "quantity received, e.g. '1180 kg'", "1180 kg", type="quantity"),
    ),
    KIND_INSPECT: (
        _f("lot", "lot id", _LOT),
        _f("inspection", f"one of {', '.join(INSPECTIONS)}", "residue"),
        _f("result", f"one of {', '.join(RESULTS)}", "pass"),
        _f("grade", "grade", "A", required=False),
        _f("document", "SHA-256 (64 hex) of the report, kept off the log", _EVENT),
        _f("certificate", "certificate number", "PK-2026-0042", required=False),
        _f("valid_until", "valid until YYYY-MM-DD", "2027-05-31", required=False),
    ),
    KIND_SELL: (
        _f("lot", "lot id", _LOT),
        _f("quantity", "quantity sold, e.g. '50 kg'", "50 kg", type="quantity"),
        _f(
            "price",
            "price in minor units and currency, e.g. '25000 PKR'",
            "25000 PKR",
            type="money",
            required=False,
        ),
    ),
    KIND_RECALL: (
        _f("lot", "lot id", _LOT),
        _f("reason", "why", "pesticide residue above the MRL"),
    ),
    KIND_CORRECT: (
        _f("corrects", "event id of one's own statement that was wrong", _EVENT),
        _f("reason", "what was wrong", "wrong quantity"),
        _f(
            "replacement",
            "event id of one's own statement that replaces it",
            _EVENT.replace("7b", "8c", 1),
            required=False,
        ),
    ),
}
"""kind -> its flat fields, in body order."""

KINDS = tuple(KIND_FIELDS)
"""Every kind a client records, in the order of docs/domain.md."""

if set(KINDS) != DOMAIN_KINDS:  # pragma: no cover - a new kind needs its fields listed here
    raise RuntimeError(f"client.records lacks fields for {sorted(DOMAIN_KINDS - set(KINDS))}")

_INT_RE = re.compile(r"^[+-]?\d+$")
_AMOUNT_UNIT_RE = re.compile(r"^([^\s]*?\d)\s*([A-Za-z]+)$")

Value = str | Sequence[str] | None
"""A flat field's text: a string, several strings (list fields), or None (absent)."""


def build_body(kind: str, values: Mapping[str, Value]) -> dict[str, Any]:
    """Put flat field texts into a body for ``kind`` (read, not checked).

    Absent fields (None, ``""`` or an empty list) are left out; the schema
    then names a missing required one. Unknown names are refused.

    Raises:
        EncodingError: ``unknown_kind``, or ``unknown_field`` naming a flat field
            that ``kind`` does not have.
    """
    specs = _specs(kind)
    known = {spec.name for spec in specs}
    for name in values:
        if name not in known:
            raise EncodingError(
                f"{kind} has no field {name!r} (fields: {', '.join(sorted(known))})",
                code="unknown_field",
                field=name,
            )
    body: dict[str, Any] = {}
    for spec in specs:
        raw = values.get(spec.name)
        items = _items(raw, spec)
        if items is None:
            continue
        value: Any
        if spec.type == "text":
            value = items[0]
        elif spec.type == "int":
            value = int(items[0]) if _INT_RE.fullmatch(items[0]) else items[0]
        elif spec.type == "quantity":
            value = _quantity(items[0])
        elif spec.type == "money":
            value = _money(items[0])
        elif spec.type == "lots":
            value = list(items)
        elif spec.type == "inputs":
            value = [_input(item) for item in items]
        else:
            value = [_output(item) for item in items]
        _put(body, spec.path, value)
    return body


def build_statement(
    kind: str, values: Mapping[str, Value], *, time: str, origin: str, signer: KeyId
) -> Statement:
    """Build and check a statement from flat fields, ready to sign.

    Runs the ledger's own checks: the body against its kind's schema
    (:func:`parse_body`), then the envelope (origin, claimed time) as
    :meth:`Statement.build` canonicalises it.

    Raises:
        EncodingError: naming the JSON path (``body.quantity.unit``, ``time``).
    """
    body = build_body(kind, values)
    parse_body(kind, body)
    return Statement.build(origin=origin, kind=kind, signer=signer, time=time, body=body)


def record(
    kind: str, values: Mapping[str, Value], *, time: str, origin: str, signer: Signer
) -> SignedStatement:
    """Check, then sign: the statement :func:`build_statement` makes, signed by ``signer``."""
    statement = build_statement(kind, values, time=time, origin=origin, signer=signer.key_id)
    return sign_statement(signer, statement)


def column_for(kind: str, field: str | None) -> str | None:
    """The flat field (option / CSV column) a ledger error's JSON path points into.

    ``body.transport.mode`` -> ``mode``; ``body.inputs[1].quantity`` -> ``inputs``;
    ``time`` -> ``time``; None when no field matches.
    """
    if field is None:
        return None
    if field == TIME_COLUMN:
        return TIME_COLUMN
    path = field.removeprefix("body.")
    best: FieldSpec | None = None
    for spec in KIND_FIELDS.get(kind, ()):
        inside = path == spec.path or path.startswith((spec.path + ".", spec.path + "["))
        if inside and (best is None or len(spec.path) > len(best.path)):
            best = spec
    if best is None:
        # A missing parent object (``body.transport``): its first field.
        best = next((s for s in KIND_FIELDS.get(kind, ()) if s.path.startswith(path + ".")), None)
    return best.name if best is not None else None


def split_list(cell: str) -> list[str]:
    """A CSV cell of a list field: items separated by ``;``, blanks dropped."""
    return [item.strip() for item in cell.split(";") if item.strip()]


# ---------------------------------------------------------------------------


def _specs(kind: str) -> tuple[FieldSpec, ...]:
    specs = KIND_FIELDS.get(kind)
    if specs is None:
        raise EncodingError(
            f"unknown statement kind {kind!r} (kinds: {', '.join(KINDS)})",
            code="unknown_kind",
            field="kind",
        )
    return specs


def _items(raw: Value, spec: FieldSpec) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        items = split_list(raw) if spec.is_list else ([raw.strip()] if raw.strip() else [])
    else:
        items = [item.strip() for item in raw if item.strip()]
    return items or None


def _number(text: str) -> int | str:
    return int(text) if _INT_RE.fullmatch(text) else text


def _quantity(text: str) -> dict[str, Any]:
    amount, unit = _amount_and_word(text)
    out: dict[str, Any] = {"amount": _number(amount)}
    if unit is not None:
        out["unit"] = unit
    return out


def _money(text: str) -> dict[str, Any]:
    amount, currency = _amount_and_word(text)
    out: dict[str, Any] = {"amount_minor": _number(amount)}
    if currency is not None:
        out["currency"] = currency
    return out


def _amount_and_word(text: str) -> tuple[str, str | None]:
    parts = text.split()
    if len(parts) == 2:
        return parts[0], parts[1]
    match = _AMOUNT_UNIT_RE.fullmatch(text.strip())
    if match:
        return match.group(1), match.group(2)
    return text.strip(), None


def _input(text: str) -> dict[str, Any]:
    lot, sep, quantity = text.partition("=")
    item: dict[str, Any] = {"lot": lot.strip()}
    if sep:
        item["quantity"] = _quantity(quantity.strip())
    return item


def _output(text: str) -> dict[str, Any]:
    parts = [part.strip() for part in text.split("=")]
    item: dict[str, Any] = {"lot": parts[0]}
    if len(parts) > 1:
        item["quantity"] = _quantity(parts[1])
    if len(parts) > 2:
        item["crop"] = parts[2]
    if len(parts) > 3:
        item["variety"] = "=".join(parts[3:])
    return item


def _put(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = body
    for name in parents:
        target = target.setdefault(name, {})
    target[last] = value
