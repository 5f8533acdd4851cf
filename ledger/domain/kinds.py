"""Supply-chain statement kinds: body schemas and their EPCIS 2.0 / CBV 2.0 mapping.

Each domain kind has a JSON body with required and optional fields;
:func:`parse_body` checks it and returns a typed, frozen body value. Unknown
fields are refused (``unknown_field``) except under the optional top-level
``ext`` object (a JSON object of at most 2 KiB canonical bytes), so a typo never
passes silently and extensions are explicit. Errors are
:class:`~ledger.errors.EncodingError` naming the JSON path, e.g.
``body.inputs[1].quantity.unit``.

========= ================== =====================================================
kind      CBV bizStep        body
========= ================== =====================================================
harvest   commissioning      lot, crop, variety?, plot, harvest_date, quantity
store     storing            lot, facility, condition?, temperature_dc?
transform transforming       process, inputs[{lot, quantity}],
                             outputs[{lot, crop, variety?, quantity}]
pack      packing            unit, contents[lot]
unpack    unpacking          unit
ship      shipping           lot, to, quantity, transport{mode, vehicle?, carrier?}
receive   receiving          shipment, quantity
inspect   inspecting         lot, inspection, result, grade?, document,
                             certificate?, valid_until?
sell      retail_selling     lot, quantity, price?
recall    holding            lot, reason
correct   (errorDeclaration) corrects, reason, replacement?
========= ================== =====================================================

:data:`EPCIS_MAP` gives each kind's EPCIS event type, action, bizStep and
disposition for the EPCIS export. This module checks shapes only; whether a
statement may happen (custody, quantities, times) is :mod:`ledger.domain.rules`.
The full tables are in docs/domain.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

from ledger.domain.ids import LotRef, parse_lot_ref
from ledger.domain.quantities import Money, Quantity
from ledger.encoding import canonical_bytes
from ledger.errors import EncodingError
from ledger.registry import check_participant_id
from ledger.statements import check_hex_digest

__all__ = [
    "DOMAIN_KINDS",
    "EPCIS_MAP",
    "INSPECTIONS",
    "KIND_CORRECT",
    "KIND_HARVEST",
    "KIND_INSPECT",
    "KIND_PACK",
    "KIND_RECALL",
    "KIND_RECEIVE",
    "KIND_SELL",
    "KIND_SHIP",
    "KIND_STORE",
    "KIND_TRANSFORM",
    "KIND_UNPACK",
    "MAX_CONTENTS",
    "MAX_EXT_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_TRANSFORM_LOTS",
    "PROCESSES",
    "RESULTS",
    "TRANSPORT_MODES",
    "Body",
    "CorrectBody",
    "EpcisMapping",
    "HarvestBody",
    "InspectBody",
    "PackBody",
    "RecallBody",
    "ReceiveBody",
    "SellBody",
    "ShipBody",
    "StoreBody",
    "TransformBody",
    "TransformInput",
    "TransformOutput",
    "Transport",
    "UnpackBody",
    "check_date",
    "check_enum",
    "check_ext",
    "check_object",
    "check_text",
    "epcis_disposition",
    "parse_body",
]

KIND_HARVEST = "harvest"
KIND_STORE = "store"
KIND_TRANSFORM = "transform"
KIND_PACK = "pack"
KIND_UNPACK = "unpack"
KIND_SHIP = "ship"
KIND_RECEIVE = "receive"
KIND_INSPECT = "inspect"
KIND_SELL = "sell"
KIND_RECALL = "recall"
KIND_CORRECT = "correct"

DOMAIN_KINDS = frozenset(
    {
        KIND_HARVEST,
        KIND_STORE,
        KIND_TRANSFORM,
        KIND_PACK,
        KIND_UNPACK,
        KIND_SHIP,
        KIND_RECEIVE,
        KIND_INSPECT,
        KIND_SELL,
        KIND_RECALL,
        KIND_CORRECT,
    }
)
"""Every supply-chain statement kind (registry kinds are :mod:`ledger.registry`'s)."""

MAX_TEXT_CHARS = 200
"""Longest free-text field (crop, plot, facility, reason, ...)."""

MAX_EXT_BYTES = 2048
"""Largest ``ext`` object, in canonical JSON bytes."""

MAX_TRANSFORM_LOTS = 50
"""Most inputs, and most outputs, of one transformation."""

MAX_CONTENTS = 200
"""Most lots packed into one shipping unit by one statement."""

PROCESSES = ("cleaning", "drying", "grading", "merging", "milling", "other", "sorting", "splitting")
TRANSPORT_MODES = ("air", "cart", "other", "rail", "road", "sea")
INSPECTIONS = ("grade", "organic", "other", "phytosanitary", "quality", "residue")
RESULTS = ("fail", "pass")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_INT_MIN_TEMPERATURE_DC = -1000
_INT_MAX_TEMPERATURE_DC = 1000


# ---------------------------------------------------------------------------
# Shape helpers, shared with :mod:`ledger.domain.participants`.


def check_object(
    value: Any,
    *,
    path: str,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> dict[str, Any]:
    """Check that ``value`` is a JSON object with exactly these fields.

    Raises:
        EncodingError: ``bad_type``, ``unknown_field`` or ``missing_field``, naming
            the field's path.
    """
    if not isinstance(value, dict):
        raise EncodingError(f"{path}: must be a JSON object", code="bad_type", field=path)
    required = tuple(required)
    if len(value) == len(required) and all(name in value for name in required):
        return value  # exactly the required fields: the common case, checked cheaply
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise EncodingError(
            f"{path}: unknown field {unknown[0]!r} (extensions go under 'ext')",
            code="unknown_field",
            field=f"{path}.{unknown[0]}",
        )
    for name in required:
        if name not in value:
            raise EncodingError(
                f"{path}: missing field {name!r}", code="missing_field", field=f"{path}.{name}"
            )
    return value


def check_text(value: Any, *, field: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A display string: 1..``max_chars`` characters, no control characters.

    Raises:
        EncodingError: ``bad_string`` or ``too_long`` naming ``field``.
    """
    if not isinstance(value, str) or not value or _CONTROL_RE.search(value):
        raise EncodingError(
            f"{field}: must be a non-empty string without control characters",
            code="bad_string",
            field=field,
        )
    if len(value) > max_chars:
        raise EncodingError(
            f"{field}: at most {max_chars} characters, got {len(value)}",
            code="too_long",
            field=field,
        )
    return value


def check_enum(value: Any, allowed: Iterable[str], *, field: str) -> str:
    """One of ``allowed``.

    Raises:
        EncodingError: ``bad_value`` naming ``field`` and the allowed values.
    """
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise EncodingError(
            f"{field}: must be one of {', '.join(allowed)}", code="bad_value", field=field
        )
    return value


def check_date(value: Any, *, field: str) -> str:
    """A calendar date ``YYYY-MM-DD``.

    Raises:
        EncodingError: ``bad_date`` naming ``field``.
    """
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise EncodingError(f"{field}: must be a date YYYY-MM-DD", code="bad_date", field=field)


def check_ext(value: Any, *, field: str = "body.ext") -> Mapping[str, Any]:
    """The extension object: any JSON object of at most 2 KiB canonical bytes.

    Raises:
        EncodingError: ``bad_type`` or ``too_large`` naming ``field``.
    """
    if not isinstance(value, dict):
        raise EncodingError(f"{field}: must be a JSON object", code="bad_type", field=field)
    size = len(canonical_bytes(value))
    if size > MAX_EXT_BYTES:
        raise EncodingError(
            f"{field}: {size} bytes, at most {MAX_EXT_BYTES}", code="too_large", field=field
        )
    return MappingProxyType(dict(value))


def _optional(obj: dict[str, Any], name: str, check: Callable[..., Any], path: str) -> Any:
    return check(obj[name], field=f"{path}.{name}") if name in obj else None


def _int_in(value: Any, low: int, high: int, *, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise EncodingError(
            f"{field}: must be an integer in [{low}, {high}]", code="out_of_range", field=field
        )
    return value


def _list(value: Any, low: int, high: int, *, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise EncodingError(f"{field}: must be a JSON array", code="bad_type", field=field)
    if not low <= len(value) <= high:
        raise EncodingError(
            f"{field}: must hold {low}..{high} items, got {len(value)}",
            code="bad_count",
            field=field,
        )
    return value


def _distinct(lots: Iterable[str], *, field: str) -> None:
    seen: set[str] = set()
    for i, lot in enumerate(lots):
        if lot in seen:
            raise EncodingError(
                f"{field}[{i}]: lot {lot} is listed twice", code="duplicate_lot", field=field
            )
        seen.add(lot)


# ---------------------------------------------------------------------------
# Typed bodies.


@dataclass(frozen=True, slots=True, kw_only=True)
class HarvestBody:
    """Harvest (CBV commissioning): a producer creates a lot from a plot."""

    KIND: ClassVar[str] = KIND_HARVEST
    lot: LotRef
    crop: str
    variety: str | None
    plot: str
    harvest_date: str
    quantity: Quantity
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreBody:
    """Store (CBV storing): the custodian records where and how the lot is kept."""

    KIND: ClassVar[str] = KIND_STORE
    lot: LotRef
    facility: str
    condition: str | None
    temperature_dc: int | None
    """Tenths of a degree Celsius, in [-1000, 1000]."""
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformInput:
    """One input of a transformation: the lot and the quantity consumed from it."""

    lot: LotRef
    quantity: Quantity


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformOutput:
    """One output of a transformation: a new lot."""

    lot: LotRef
    crop: str
    variety: str | None
    quantity: Quantity


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformBody:
    """Transform (CBV transforming): inputs consumed, new output lots created."""

    KIND: ClassVar[str] = KIND_TRANSFORM
    process: str
    inputs: tuple[TransformInput, ...]
    outputs: tuple[TransformOutput, ...]
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PackBody:
    """Pack (CBV packing, EPCIS aggregation ADD): whole lots into a new shipping unit."""

    KIND: ClassVar[str] = KIND_PACK
    unit: LotRef
    contents: tuple[LotRef, ...]
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpackBody:
    """Unpack (CBV unpacking, EPCIS aggregation DELETE): empty a shipping unit."""

    KIND: ClassVar[str] = KIND_UNPACK
    unit: LotRef
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Transport:
    """How a shipment travels."""

    mode: str
    vehicle: str | None
    carrier: str | None
    """Participant id of the carrier, when it is a participant."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipBody:
    """Ship (CBV shipping): the custodian sends the whole lot to a consignee."""

    KIND: ClassVar[str] = KIND_SHIP
    lot: LotRef
    to: str
    quantity: Quantity
    transport: Transport
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiveBody:
    """Receive (CBV receiving): the consignee takes custody of a shipment."""

    KIND: ClassVar[str] = KIND_RECEIVE
    shipment: bytes
    """Event id (32 bytes) of the ship statement."""
    quantity: Quantity
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectBody:
    """Inspect (CBV inspecting): an inspector's result, with the report's SHA-256."""

    KIND: ClassVar[str] = KIND_INSPECT
    lot: LotRef
    inspection: str
    result: str
    grade: str | None
    document: bytes
    """SHA-256 (32 bytes) of the certificate or lab report, stored off the log."""
    certificate: str | None
    valid_until: str | None
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SellBody:
    """Sell (CBV retail_selling): a market sells some or all of a lot."""

    KIND: ClassVar[str] = KIND_SELL
    lot: LotRef
    quantity: Quantity
    price: Money | None
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecallBody:
    """Recall (disposition recalled): the lot and everything downstream of it."""

    KIND: ClassVar[str] = KIND_RECALL
    lot: LotRef
    reason: str
    ext: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrectBody:
    """Correct (EPCIS errorDeclaration): one's own earlier statement was wrong."""

    KIND: ClassVar[str] = KIND_CORRECT
    corrects: bytes
    reason: str
    replacement: bytes | None
    ext: Mapping[str, Any] | None = None


Body: TypeAlias = (
    HarvestBody
    | StoreBody
    | TransformBody
    | PackBody
    | UnpackBody
    | ShipBody
    | ReceiveBody
    | InspectBody
    | SellBody
    | RecallBody
    | CorrectBody
)


# ---------------------------------------------------------------------------
# Parsers.


def _ext(obj: dict[str, Any], path: str) -> Mapping[str, Any] | None:
    return check_ext(obj["ext"], field=f"{path}.ext") if "ext" in obj else None


def _lot(obj: dict[str, Any], name: str, path: str) -> LotRef:
    return parse_lot_ref(obj[name], field=f"{path}.{name}")


def _text(obj: dict[str, Any], name: str, path: str) -> str:
    return check_text(obj[name], field=f"{path}.{name}")


def _quantity(obj: dict[str, Any], path: str) -> Quantity:
    return Quantity.from_json(obj["quantity"], field=f"{path}.quantity")


def _event_id(obj: dict[str, Any], name: str, path: str) -> bytes:
    return check_hex_digest(obj[name], field=f"{path}.{name}")


def _harvest(obj: dict[str, Any], path: str) -> HarvestBody:
    check_object(
        obj,
        path=path,
        required=("lot", "crop", "plot", "harvest_date", "quantity"),
        optional=("variety", "ext"),
    )
    return HarvestBody(
        lot=_lot(obj, "lot", path),
        crop=_text(obj, "crop", path),
        variety=_optional(obj, "variety", check_text, path),
        plot=_text(obj, "plot", path),
        harvest_date=check_date(obj["harvest_date"], field=f"{path}.harvest_date"),
        quantity=_quantity(obj, path),
        ext=_ext(obj, path),
    )


def _store(obj: dict[str, Any], path: str) -> StoreBody:
    check_object(
        obj,
        path=path,
        required=("lot", "facility"),
        optional=("condition", "temperature_dc", "ext"),
    )
    temperature = None
    if "temperature_dc" in obj:
        temperature = _int_in(
            obj["temperature_dc"],
            _INT_MIN_TEMPERATURE_DC,
            _INT_MAX_TEMPERATURE_DC,
            field=f"{path}.temperature_dc",
        )
    return StoreBody(
        lot=_lot(obj, "lot", path),
        facility=_text(obj, "facility", path),
        condition=_optional(obj, "condition", check_text, path),
        temperature_dc=temperature,
        ext=_ext(obj, path),
    )


def _transform(obj: dict[str, Any], path: str) -> TransformBody:
    check_object(obj, path=path, required=("process", "inputs", "outputs"), optional=("ext",))
    process = check_enum(obj["process"], PROCESSES, field=f"{path}.process")
    inputs: list[TransformInput] = []
    for i, item in enumerate(_list(obj["inputs"], 1, MAX_TRANSFORM_LOTS, field=f"{path}.inputs")):
        at = f"{path}.inputs[{i}]"
        check_object(item, path=at, required=("lot", "quantity"))
        inputs.append(TransformInput(lot=_lot(item, "lot", at), quantity=_quantity(item, at)))
    outputs: list[TransformOutput] = []
    raw_outputs = _list(obj["outputs"], 1, MAX_TRANSFORM_LOTS, field=f"{path}.outputs")
    for i, item in enumerate(raw_outputs):
        at = f"{path}.outputs[{i}]"
        check_object(item, path=at, required=("lot", "crop", "quantity"), optional=("variety",))
        outputs.append(
            TransformOutput(
                lot=_lot(item, "lot", at),
                crop=_text(item, "crop", at),
                variety=_optional(item, "variety", check_text, at),
                quantity=_quantity(item, at),
            )
        )
    _distinct((x.lot for x in inputs), field=f"{path}.inputs")
    _distinct((x.lot for x in outputs), field=f"{path}.outputs")
    input_lots = {x.lot for x in inputs}
    for i, out in enumerate(outputs):
        if out.lot in input_lots:
            raise EncodingError(
                f"{path}.outputs[{i}].lot: an output must be a new lot, not an input",
                code="duplicate_lot",
                field=f"{path}.outputs[{i}].lot",
            )
    return TransformBody(
        process=process, inputs=tuple(inputs), outputs=tuple(outputs), ext=_ext(obj, path)
    )


def _pack(obj: dict[str, Any], path: str) -> PackBody:
    check_object(obj, path=path, required=("unit", "contents"), optional=("ext",))
    unit = _lot(obj, "unit", path)
    raw = _list(obj["contents"], 1, MAX_CONTENTS, field=f"{path}.contents")
    contents = tuple(parse_lot_ref(x, field=f"{path}.contents[{i}]") for i, x in enumerate(raw))
    _distinct(contents, field=f"{path}.contents")
    if unit in contents:
        raise EncodingError(
            f"{path}.unit: a unit cannot contain itself", code="duplicate_lot", field=f"{path}.unit"
        )
    return PackBody(unit=unit, contents=contents, ext=_ext(obj, path))


def _unpack(obj: dict[str, Any], path: str) -> UnpackBody:
    check_object(obj, path=path, required=("unit",), optional=("ext",))
    return UnpackBody(unit=_lot(obj, "unit", path), ext=_ext(obj, path))


def _ship(obj: dict[str, Any], path: str) -> ShipBody:
    check_object(obj, path=path, required=("lot", "to", "quantity", "transport"), optional=("ext",))
    at = f"{path}.transport"
    raw = check_object(
        obj["transport"], path=at, required=("mode",), optional=("vehicle", "carrier")
    )
    transport = Transport(
        mode=check_enum(raw["mode"], TRANSPORT_MODES, field=f"{at}.mode"),
        vehicle=_optional(raw, "vehicle", check_text, at),
        carrier=_optional(raw, "carrier", check_participant_id, at),
    )
    return ShipBody(
        lot=_lot(obj, "lot", path),
        to=check_participant_id(obj["to"], field=f"{path}.to"),
        quantity=_quantity(obj, path),
        transport=transport,
        ext=_ext(obj, path),
    )


def _receive(obj: dict[str, Any], path: str) -> ReceiveBody:
    check_object(obj, path=path, required=("shipment", "quantity"), optional=("ext",))
    return ReceiveBody(
        shipment=_event_id(obj, "shipment", path),
        quantity=_quantity(obj, path),
        ext=_ext(obj, path),
    )


def _inspect(obj: dict[str, Any], path: str) -> InspectBody:
    check_object(
        obj,
        path=path,
        required=("lot", "inspection", "result", "document"),
        optional=("grade", "certificate", "valid_until", "ext"),
    )
    return InspectBody(
        lot=_lot(obj, "lot", path),
        inspection=check_enum(obj["inspection"], INSPECTIONS, field=f"{path}.inspection"),
        result=check_enum(obj["result"], RESULTS, field=f"{path}.result"),
        grade=_optional(obj, "grade", check_text, path),
        document=_event_id(obj, "document", path),
        certificate=_optional(obj, "certificate", check_text, path),
        valid_until=_optional(obj, "valid_until", check_date, path),
        ext=_ext(obj, path),
    )


def _sell(obj: dict[str, Any], path: str) -> SellBody:
    check_object(obj, path=path, required=("lot", "quantity"), optional=("price", "ext"))
    return SellBody(
        lot=_lot(obj, "lot", path),
        quantity=_quantity(obj, path),
        price=Money.from_json(obj["price"], field=f"{path}.price") if "price" in obj else None,
        ext=_ext(obj, path),
    )


def _recall(obj: dict[str, Any], path: str) -> RecallBody:
    check_object(obj, path=path, required=("lot", "reason"), optional=("ext",))
    return RecallBody(
        lot=_lot(obj, "lot", path), reason=_text(obj, "reason", path), ext=_ext(obj, path)
    )


def _correct(obj: dict[str, Any], path: str) -> CorrectBody:
    check_object(obj, path=path, required=("corrects", "reason"), optional=("replacement", "ext"))
    corrects = _event_id(obj, "corrects", path)
    replacement = _event_id(obj, "replacement", path) if "replacement" in obj else None
    if replacement == corrects:
        raise EncodingError(
            f"{path}.replacement: must differ from the corrected statement",
            code="bad_value",
            field=f"{path}.replacement",
        )
    return CorrectBody(
        corrects=corrects,
        reason=_text(obj, "reason", path),
        replacement=replacement,
        ext=_ext(obj, path),
    )


_PARSERS: Mapping[str, Callable[[dict[str, Any], str], Body]] = MappingProxyType(
    {
        KIND_HARVEST: _harvest,
        KIND_STORE: _store,
        KIND_TRANSFORM: _transform,
        KIND_PACK: _pack,
        KIND_UNPACK: _unpack,
        KIND_SHIP: _ship,
        KIND_RECEIVE: _receive,
        KIND_INSPECT: _inspect,
        KIND_SELL: _sell,
        KIND_RECALL: _recall,
        KIND_CORRECT: _correct,
    }
)


def parse_body(kind: str, body: Any, *, path: str = "body") -> Body:
    """Check a domain statement's body against its kind's schema.

    Args:
        kind: one of :data:`DOMAIN_KINDS`.
        body: the decoded JSON body.
        path: the JSON path of ``body``, prefixed to every error's field.

    Returns:
        The typed body (lot ids canonical, event ids as 32 bytes).

    Raises:
        EncodingError: ``unknown_kind`` (field ``kind``), or the first field that
            breaks its rule, named by path (``body.inputs[1].quantity.unit``).
    """
    parser = _PARSERS.get(kind)
    if parser is None:
        raise EncodingError(f"unknown statement kind {kind!r}", code="unknown_kind", field="kind")
    if not isinstance(body, dict):
        raise EncodingError(f"{path}: must be a JSON object", code="bad_type", field=path)
    return parser(body, path)


# ---------------------------------------------------------------------------
# EPCIS 2.0 / CBV 2.0 mapping.


@dataclass(frozen=True, slots=True, kw_only=True)
class EpcisMapping:
    """How one kind maps to an EPCIS 2.0 event.

    ``event_type`` is None for ``correct``: EPCIS expresses a correction as an
    ``errorDeclaration`` on (a copy of) the corrected event, not as an event.
    ``action`` is None where EPCIS has none (TransformationEvent).
    """

    event_type: str | None
    action: str | None
    biz_step: str | None
    disposition: str | None


EPCIS_MAP: Mapping[str, EpcisMapping] = MappingProxyType(
    {
        KIND_HARVEST: EpcisMapping(
            event_type="ObjectEvent", action="ADD", biz_step="commissioning", disposition="active"
        ),
        KIND_STORE: EpcisMapping(
            event_type="ObjectEvent",
            action="OBSERVE",
            biz_step="storing",
            disposition="sellable_not_accessible",
        ),
        KIND_TRANSFORM: EpcisMapping(
            event_type="TransformationEvent",
            action=None,
            biz_step="transforming",
            disposition="active",
        ),
        KIND_PACK: EpcisMapping(
            event_type="AggregationEvent",
            action="ADD",
            biz_step="packing",
            disposition="container_closed",
        ),
        KIND_UNPACK: EpcisMapping(
            event_type="AggregationEvent",
            action="DELETE",
            biz_step="unpacking",
            disposition="container_open",
        ),
        KIND_SHIP: EpcisMapping(
            event_type="ObjectEvent",
            action="OBSERVE",
            biz_step="shipping",
            disposition="in_transit",
        ),
        KIND_RECEIVE: EpcisMapping(
            event_type="ObjectEvent",
            action="OBSERVE",
            biz_step="receiving",
            disposition="in_progress",
        ),
        KIND_INSPECT: EpcisMapping(
            event_type="ObjectEvent",
            action="OBSERVE",
            biz_step="inspecting",
            disposition="conformant",
        ),
        KIND_SELL: EpcisMapping(
            event_type="ObjectEvent",
            action="OBSERVE",
            biz_step="retail_selling",
            disposition="retail_sold",
        ),
        KIND_RECALL: EpcisMapping(
            event_type="ObjectEvent", action="OBSERVE", biz_step="holding", disposition="recalled"
        ),
        KIND_CORRECT: EpcisMapping(event_type=None, action=None, biz_step=None, disposition=None),
    }
)
"""kind -> EPCIS event type, action, CBV bizStep and disposition (short names; the
export prefixes ``https://ref.gs1.org/cbv/BizStep-`` and ``.../Disp-``)."""


def epcis_disposition(body: Body) -> str | None:
    """The CBV disposition of a statement: :data:`EPCIS_MAP`'s, except that a failed
    inspection is ``nonconformant``."""
    if isinstance(body, InspectBody) and body.result == "fail":
        return "nonconformant"
    return EPCIS_MAP[body.KIND].disposition
