"""The supply-chain rules: the one place that decides what a domain statement may do.

:func:`domain_changes` takes a statement whose signature and signer the
admission gate (:mod:`ledger.admission`) has already checked, reads the current
domain state through :class:`DomainView`, and either returns the changes the
statement makes or raises:

* :class:`~ledger.errors.EncodingError` when the body breaks its kind's schema
  (:mod:`ledger.domain.kinds`) or the kind is unknown (``unknown_kind``);
* :class:`~ledger.errors.RuleError` when the statement could not have happened
  in the real supply chain, with a stable ``code`` naming the rule, the ``lot``
  and the ``numbers`` (for example ``quantity_exceeds_held`` with
  ``{"held": 900, "requested": 1000, "unit": "g"}``).

The function is pure: it never writes. The server applies the returned
:data:`DomainChange` values to its store, the auditor to a
:class:`~ledger.domain.state.DomainState` while replaying the log, and a client
may call it as a pre-check; all three run this same code. Every change is a
plain upsert or insert keyed by lot id, event id or index, so a SQL store needs
no logic of its own.

What this module does not do: check signatures or key validity (admission),
look at the registry beyond the signer's record and a ``participant_role``
callback, or answer trace queries (:mod:`ledger.domain.trace`). The permission
table and every rule code are listed in docs/domain.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeAlias

from ledger.domain.kinds import (
    DOMAIN_KINDS,
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
    Body,
    CorrectBody,
    HarvestBody,
    InspectBody,
    PackBody,
    RecallBody,
    ReceiveBody,
    SellBody,
    ShipBody,
    StoreBody,
    TransformBody,
    UnpackBody,
    parse_body,
)
from ledger.domain.participants import ROLE_OPERATOR, role_of
from ledger.domain.quantities import Quantity, base_unit
from ledger.errors import EncodingError, RuleError
from ledger.registry import KIND_ENROL, KIND_GENESIS, KIND_REVOKE, KIND_ROTATE, ParticipantRecord
from ledger.statements import Statement, check_time

__all__ = [
    "MAX_CLOCK_SKEW_MS",
    "PERMISSIONS",
    "RULE_CODES",
    "STATUSES",
    "STATUS_CONSUMED",
    "STATUS_HELD",
    "STATUS_IN_TRANSIT",
    "STATUS_PACKED",
    "STATUS_SOLD",
    "UNIT_LOT_CLASS",
    "AddEdge",
    "AddEvent",
    "AddLotEvent",
    "DomainChange",
    "DomainView",
    "EventRecord",
    "LotState",
    "MarkCorrected",
    "PutLot",
    "PutShipment",
    "ShipmentState",
    "domain_changes",
]

MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
"""How far a statement's own time may lie after the server's acceptance time."""

STATUS_HELD = "held"
STATUS_IN_TRANSIT = "in_transit"
STATUS_PACKED = "packed"
STATUS_CONSUMED = "consumed"
STATUS_SOLD = "sold"
STATUSES = (STATUS_HELD, STATUS_IN_TRANSIT, STATUS_PACKED, STATUS_CONSUMED, STATUS_SOLD)

UNIT_LOT_CLASS = "piece"
"""A shipping unit is one piece: ship and receive it as ``{"amount": 1, "unit": "piece"}``.
The quantities of its contents stay on the content lots."""

_REGISTRY_KINDS = frozenset({KIND_GENESIS, KIND_ENROL, KIND_ROTATE, KIND_REVOKE})
_CUSTODY = frozenset(
    {KIND_STORE, KIND_TRANSFORM, KIND_PACK, KIND_UNPACK, KIND_SHIP, KIND_RECEIVE, KIND_CORRECT}
)

PERMISSIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "producer": frozenset(
            {
                KIND_HARVEST,
                KIND_STORE,
                KIND_TRANSFORM,
                KIND_PACK,
                KIND_UNPACK,
                KIND_SHIP,
                KIND_RECALL,
                KIND_CORRECT,
            }
        ),
        "cooperative": _CUSTODY,
        "processor": _CUSTODY,
        "transporter": frozenset({KIND_STORE, KIND_SHIP, KIND_RECEIVE, KIND_CORRECT}),
        "warehouse": frozenset(
            {KIND_STORE, KIND_PACK, KIND_UNPACK, KIND_SHIP, KIND_RECEIVE, KIND_CORRECT}
        ),
        "market": frozenset(
            {KIND_STORE, KIND_PACK, KIND_UNPACK, KIND_SHIP, KIND_RECEIVE, KIND_SELL, KIND_CORRECT}
        ),
        "inspector": frozenset({KIND_INSPECT, KIND_CORRECT}),
        ROLE_OPERATOR: frozenset({KIND_RECALL, KIND_CORRECT}) | _REGISTRY_KINDS,
    }
)
"""role -> the statement kinds it may sign. Registry kinds are listed for the
operator for completeness; their rules are :mod:`ledger.registry`'s."""

RULE_CODES = (
    "already_corrected",
    "already_received",
    "already_recalled",
    "harvest_date_in_future",
    "in_transit",
    "lot_closed",
    "lot_exists",
    "lot_is_unit",
    "lot_packed",
    "lot_prefix",
    "not_a_unit",
    "not_consignee",
    "not_custodian",
    "not_own_statement",
    "not_permitted",
    "quantity_exceeds_held",
    "received_exceeds_shipped",
    "ship_quantity_mismatch",
    "time_before_inputs",
    "time_in_future",
    "transform_creates_mass",
    "unit_mismatch",
    "unknown_event",
    "unknown_lot",
    "unknown_participant",
    "consignee_cannot_receive",
    "unknown_shipment",
)
"""Every :class:`~ledger.errors.RuleError` code :func:`domain_changes` raises."""


# ---------------------------------------------------------------------------
# State values.


@dataclass(frozen=True, slots=True, kw_only=True)
class LotState:
    """A lot (or shipping unit) as the rules see it now.

    Attributes:
        lot_id: the canonical lot id.
        crop: the crop; ``mixed`` for a unit whose contents differ.
        unit_class: ``mass`` or a count unit; fixed at creation.
        quantity: what the lot holds now, in base units of ``unit_class``
            (grams for mass); 0 once consumed or sold. A unit holds 1 piece.
        custodian: who holds it; None while it (or the unit it is packed in)
            is in transit. For consumed and sold lots, the last holder.
        status: ``held``, ``in_transit``, ``packed``, ``consumed`` or ``sold``.
        producer: who created it (the harvesting producer, the transforming
            participant for outputs, the packer for units).
        created_at: log index of the creating statement.
        last_time: RFC 3339 time of the latest statement on the lot.
        recalled_at: log index of its recall, if recalled.
        recall_reason: the recall's reason.
        unit: the unit it is packed in, while packed.
        contents: for a shipping unit, the lots packed in it (empty once unpacked).
        shipment: hex event id of the open shipment while in transit.
    """

    lot_id: str
    crop: str
    unit_class: str
    quantity: int
    custodian: str | None
    status: str
    producer: str
    created_at: int
    last_time: str
    recalled_at: int | None = None
    recall_reason: str | None = None
    unit: str | None = None
    contents: tuple[str, ...] = ()
    shipment: str | None = None

    @property
    def is_unit(self) -> bool:
        """Whether this is a shipping unit that currently holds lots."""
        return bool(self.contents)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentState:
    """A shipment: the ship statement's event id, and what happened to it.

    ``quantity``, ``received_quantity`` and ``loss`` are in base units of the
    lot's unit class; ``loss = quantity - received_quantity`` once received.
    """

    event_id: bytes
    lot: str
    sender: str
    consignee: str
    quantity: int
    shipped_at: int
    received_at: int | None = None
    received_quantity: int | None = None
    loss: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """A domain statement in the log: who signed what kind at which index.

    ``lots`` are the lots whose history lists the statement; ``corrected_by``
    is the index of the ``correct`` statement that declared it erroneous.
    """

    event_id: bytes
    index: int
    kind: str
    participant: str
    time: str
    lots: tuple[str, ...] = ()
    corrected_by: int | None = None


class DomainView(Protocol):
    """Read access to the domain state before the statement being checked."""

    def lot(self, lot_id: str) -> LotState | None:
        """The lot's state, or None when no statement created it."""
        ...

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """The shipment made by ship statement ``event_id``, or None."""
        ...

    def event(self, event_id: bytes) -> EventRecord | None:
        """The domain statement with this event id, or None."""
        ...


# ---------------------------------------------------------------------------
# Changes: plain upserts and inserts.


@dataclass(frozen=True, slots=True, kw_only=True)
class AddEvent:
    """Insert: the statement itself (first change of every domain statement)."""

    event_id: bytes
    index: int
    kind: str
    participant: str
    time: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PutLot:
    """Upsert: the full new state of one lot."""

    state: LotState


@dataclass(frozen=True, slots=True, kw_only=True)
class PutShipment:
    """Upsert: the full new state of one shipment."""

    state: ShipmentState


@dataclass(frozen=True, slots=True, kw_only=True)
class AddLotEvent:
    """Insert: statement ``index`` appears in the history of ``lot_id``."""

    lot_id: str
    index: int
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AddEdge:
    """Insert: ``child`` was made from ``parent`` (transform) or holds it (pack)."""

    parent: str
    child: str
    index: int
    kind: Literal["transform", "pack"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkCorrected:
    """Update: statement ``event_id`` was declared erroneous at ``by_index``."""

    event_id: bytes
    by_index: int


DomainChange: TypeAlias = AddEvent | PutLot | PutShipment | AddLotEvent | AddEdge | MarkCorrected


# ---------------------------------------------------------------------------
# The entry point.


def domain_changes(
    statement: Statement,
    *,
    event_id: bytes,
    index: int,
    accepted_ms: int,
    participant: ParticipantRecord,
    view: DomainView,
    participant_role: Callable[[str], str | None],
) -> list[DomainChange]:
    """Check a domain statement against the rules and return the changes it makes.

    Args:
        statement: the statement, shape-checked by :class:`~ledger.statements.Statement`.
        event_id: its event id (32 bytes).
        index: the log index it takes.
        accepted_ms: the server's acceptance time (Unix ms) recorded in the entry.
        participant: the signer's registry record (its profile carries the role).
        view: the domain state before this statement.
        participant_role: the role of an enrolled participant, None when the id
            is not enrolled (the registry, which ``view`` cannot see).

    Returns:
        The changes, in order; ``[]`` for registry kinds (genesis, enrol, rotate,
        revoke), which :func:`ledger.registry.registry_changes` handles.

    Raises:
        EncodingError: ``unknown_kind``, or a body field that breaks its schema.
        RuleError: a refused statement; ``code`` is one of :data:`RULE_CODES`.
        ValueError: ``event_id`` is not 32 bytes.
    """
    kind = statement.kind
    if kind in _REGISTRY_KINDS:
        return []
    if kind not in DOMAIN_KINDS:
        raise EncodingError(f"unknown statement kind {kind!r}", code="unknown_kind", field="kind")
    if len(event_id) != 32:
        raise ValueError("event_id must be 32 bytes")
    body = parse_body(kind, statement.body)
    pid = participant.participant_id
    role = role_of(participant)
    if role is None or kind not in PERMISSIONS.get(role, frozenset()):
        raise RuleError(
            f"a {role or 'participant without a role'} may not record {kind}",
            code="not_permitted",
            field="kind",
            numbers={"role": role or "", "kind": kind},
        )
    moment = check_time(statement.time)
    time_ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    if time_ms > accepted_ms + MAX_CLOCK_SKEW_MS:
        raise RuleError(
            f"statement time {statement.time} is after its acceptance (+5 min skew)",
            code="time_in_future",
            field="time",
            numbers={"time_ms": time_ms, "accepted_ms": accepted_ms, "skew_ms": MAX_CLOCK_SKEW_MS},
        )
    batch = _Batch(
        view=view,
        participant=pid,
        role=role,
        index=index,
        event_id=bytes(event_id),
        kind=kind,
        time=statement.time,
        moment=moment,
        participant_role=participant_role,
    )
    _apply_rules(batch, body)
    return batch.changes()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------
# The working set one statement builds up before it is returned as changes.


@dataclass(slots=True, kw_only=True)
class _Batch:
    view: DomainView
    participant: str
    role: str
    index: int
    event_id: bytes
    kind: str
    time: str
    moment: datetime
    participant_role: Callable[[str], str | None]
    lots: dict[str, LotState] = field(default_factory=dict)
    touched: dict[str, None] = field(default_factory=dict)  # ordered set
    shipments: list[ShipmentState] = field(default_factory=list)
    edges: list[AddEdge] = field(default_factory=list)
    extra: list[DomainChange] = field(default_factory=list)

    def get(self, lot_id: str) -> LotState | None:
        return self.lots.get(lot_id) or self.view.lot(lot_id)

    def require(self, lot_id: str, where: str) -> LotState:
        state = self.get(lot_id)
        if state is None:
            raise RuleError(
                f"{where}: lot {lot_id} does not exist", code="unknown_lot", lot=lot_id, field=where
            )
        return state

    def touch(self, state: LotState, where: str) -> LotState:
        """Record the statement in the lot's history; it may not predate the lot's last event."""
        if state.lot_id not in self.touched:
            if check_time(state.last_time) > self.moment:
                raise RuleError(
                    f"{where}: statement time {self.time} is before the lot's latest event "
                    f"({state.last_time})",
                    code="time_before_inputs",
                    lot=state.lot_id,
                    field="time",
                    numbers={"time": self.time, "last_time": state.last_time},
                )
            self.touched[state.lot_id] = None
        return self.put(replace(state, last_time=self.time))

    def put(self, state: LotState) -> LotState:
        self.lots[state.lot_id] = state
        return state

    def create(self, lot_id: str, where: str, **fields: Any) -> LotState:
        """A new lot, custodian and producer the signer."""
        if self.get(lot_id) is not None:
            raise RuleError(
                f"{where}: lot {lot_id} already exists", code="lot_exists", lot=lot_id, field=where
            )
        if lot_id.startswith("lot:"):
            prefix = lot_id.split(":", 2)[1]
            if prefix != self.participant:
                raise RuleError(
                    f"{where}: lot:{prefix}:... lots belong to {prefix}, not {self.participant}",
                    code="lot_prefix",
                    lot=lot_id,
                    field=where,
                    numbers={"prefix": prefix, "participant": self.participant},
                )
        state = LotState(
            lot_id=lot_id,
            custodian=self.participant,
            status=STATUS_HELD,
            producer=self.participant,
            created_at=self.index,
            last_time=self.time,
            **fields,
        )
        self.touched[lot_id] = None
        return self.put(state)

    def descendants(self, state: LotState) -> list[LotState]:
        """Every lot packed in ``state``, recursively (units inside units)."""
        out: list[LotState] = []
        stack = list(reversed(state.contents))
        while stack:
            child = self.require(stack.pop(), "contents")
            out.append(child)
            stack.extend(reversed(child.contents))
        return out

    def changes(self) -> list[DomainChange]:
        out: list[DomainChange] = [
            AddEvent(
                event_id=self.event_id,
                index=self.index,
                kind=self.kind,
                participant=self.participant,
                time=self.time,
            )
        ]
        out.extend(PutLot(state=self.lots[lot_id]) for lot_id in sorted(self.lots))
        out.extend(PutShipment(state=s) for s in self.shipments)
        out.extend(AddLotEvent(lot_id=x, index=self.index, kind=self.kind) for x in self.touched)
        out.extend(self.edges)
        out.extend(self.extra)
        return out


# ---------------------------------------------------------------------------
# Shared checks.


def _held_by_signer(b: _Batch, state: LotState, where: str) -> None:
    """The lot is held (not in transit, packed, consumed or sold) by the signer."""
    lot = state.lot_id
    if state.status == STATUS_IN_TRANSIT:
        raise RuleError(
            f"{where}: lot {lot} is in transit (shipment {state.shipment})",
            code="in_transit",
            lot=lot,
            field=where,
            numbers={"shipment": state.shipment or ""},
        )
    if state.status == STATUS_PACKED:
        raise RuleError(
            f"{where}: lot {lot} is packed in {state.unit}; act on the unit or unpack it",
            code="lot_packed",
            lot=lot,
            field=where,
            numbers={"unit": state.unit or ""},
        )
    if state.status != STATUS_HELD:
        raise RuleError(
            f"{where}: lot {lot} is {state.status}",
            code="lot_closed",
            lot=lot,
            field=where,
            numbers={"status": state.status},
        )
    if state.custodian != b.participant:
        raise RuleError(
            f"{where}: {b.participant} is not the custodian of {lot} ({state.custodian} is)",
            code="not_custodian",
            lot=lot,
            field=where,
            numbers={"custodian": state.custodian or "", "participant": b.participant},
        )


def _not_unit(state: LotState, where: str) -> None:
    if state.is_unit:
        raise RuleError(
            f"{where}: {state.lot_id} is a shipping unit; unpack it first",
            code="lot_is_unit",
            lot=state.lot_id,
            field=where,
        )


def _base(state: LotState, quantity: Quantity, where: str) -> int:
    """``quantity`` in the lot's base units; its unit must be of the lot's class."""
    if quantity.unit_class != state.unit_class:
        raise RuleError(
            f"{where}: {quantity.unit} is not a unit of {state.lot_id}'s class {state.unit_class}",
            code="unit_mismatch",
            lot=state.lot_id,
            field=f"{where}.unit",
            numbers={"lot_unit_class": state.unit_class, "unit": quantity.unit},
        )
    return quantity.base_amount


def _within_held(state: LotState, requested: int, where: str) -> None:
    if requested > state.quantity:
        raise RuleError(
            f"{where}: {requested} {base_unit(state.unit_class)} requested, "
            f"{state.lot_id} holds {state.quantity}",
            code="quantity_exceeds_held",
            lot=state.lot_id,
            field=where,
            numbers={
                "held": state.quantity,
                "requested": requested,
                "unit": base_unit(state.unit_class),
            },
        )


def _after_removal(state: LotState, removed: int, closed_status: str) -> LotState:
    left = state.quantity - removed
    return replace(state, quantity=left, status=closed_status if left == 0 else state.status)


def _require_participant(b: _Batch, participant_id: str, where: str) -> str:
    role = b.participant_role(participant_id)
    if role is None:
        raise RuleError(
            f"{where}: {participant_id} is not an enrolled participant",
            code="unknown_participant",
            field=where,
            numbers={"participant": participant_id},
        )
    return role


# ---------------------------------------------------------------------------
# One function per kind.


def _harvest(b: _Batch, body: HarvestBody) -> None:
    statement_date = b.moment.date().isoformat()
    if body.harvest_date > statement_date:
        raise RuleError(
            f"body.harvest_date {body.harvest_date} is after the statement's date {statement_date}",
            code="harvest_date_in_future",
            lot=body.lot,
            field="body.harvest_date",
            numbers={"harvest_date": body.harvest_date, "date": statement_date},
        )
    b.create(
        body.lot,
        "body.lot",
        crop=body.crop,
        unit_class=body.quantity.unit_class,
        quantity=body.quantity.base_amount,
    )


def _store(b: _Batch, body: StoreBody) -> None:
    state = b.require(body.lot, "body.lot")
    _held_by_signer(b, state, "body.lot")
    b.touch(state, "body.lot")


def _transform(b: _Batch, body: TransformBody) -> None:
    consumed: list[tuple[LotState, int]] = []
    for i, item in enumerate(body.inputs):
        where = f"body.inputs[{i}]"
        state = b.require(item.lot, f"{where}.lot")
        _not_unit(state, f"{where}.lot")
        _held_by_signer(b, state, f"{where}.lot")
        amount = _base(state, item.quantity, f"{where}.quantity")
        _within_held(state, amount, f"{where}.quantity")
        consumed.append((state, amount))
    classes = {s.unit_class for s, _ in consumed} | {o.quantity.unit_class for o in body.outputs}
    if len(classes) == 1:
        total_in = sum(amount for _, amount in consumed)
        total_out = sum(o.quantity.base_amount for o in body.outputs)
        if total_out > total_in:
            unit = base_unit(classes.pop())
            raise RuleError(
                f"transform outputs {total_out} {unit} from inputs of {total_in} {unit}",
                code="transform_creates_mass",
                lot=body.outputs[0].lot,
                field="body.outputs",
                numbers={"input": total_in, "output": total_out, "unit": unit},
            )
    for state, amount in consumed:
        touched = b.touch(state, "body.inputs")
        b.put(_after_removal(touched, amount, STATUS_CONSUMED))
    for i, out in enumerate(body.outputs):
        b.create(
            out.lot,
            f"body.outputs[{i}].lot",
            crop=out.crop,
            unit_class=out.quantity.unit_class,
            quantity=out.quantity.base_amount,
        )
        for state, _ in consumed:
            b.edges.append(
                AddEdge(parent=state.lot_id, child=out.lot, index=b.index, kind="transform")
            )


def _pack(b: _Batch, body: PackBody) -> None:
    contents: list[LotState] = []
    for i, lot_id in enumerate(body.contents):
        where = f"body.contents[{i}]"
        state = b.require(lot_id, where)
        _held_by_signer(b, state, where)
        contents.append(b.touch(state, where))
    crops = {s.crop for s in contents}
    b.create(
        body.unit,
        "body.unit",
        crop=crops.pop() if len(crops) == 1 else "mixed",
        unit_class=UNIT_LOT_CLASS,
        quantity=1,
        contents=body.contents,
    )
    for state in contents:
        b.put(replace(state, status=STATUS_PACKED, unit=body.unit))
        b.edges.append(AddEdge(parent=state.lot_id, child=body.unit, index=b.index, kind="pack"))


def _unpack(b: _Batch, body: UnpackBody) -> None:
    unit = b.require(body.unit, "body.unit")
    if not unit.is_unit:
        raise RuleError(
            f"body.unit: {unit.lot_id} is not a shipping unit holding lots",
            code="not_a_unit",
            lot=unit.lot_id,
            field="body.unit",
        )
    _held_by_signer(b, unit, "body.unit")
    b.touch(unit, "body.unit")
    for lot_id in unit.contents:
        child = b.touch(b.require(lot_id, "body.unit"), "body.unit")
        b.put(replace(child, status=STATUS_HELD, unit=None))
    b.put(replace(b.lots[unit.lot_id], status=STATUS_CONSUMED, contents=(), quantity=0))


def _ship(b: _Batch, body: ShipBody) -> None:
    state = b.require(body.lot, "body.lot")
    _held_by_signer(b, state, "body.lot")
    amount = _base(state, body.quantity, "body.quantity")
    _within_held(state, amount, "body.quantity")
    if amount != state.quantity:
        unit = base_unit(state.unit_class)
        raise RuleError(
            f"body.quantity: ship the whole lot ({state.quantity} {unit}), not {amount}; "
            "split it with a transform first",
            code="ship_quantity_mismatch",
            lot=state.lot_id,
            field="body.quantity",
            numbers={"held": state.quantity, "requested": amount, "unit": unit},
        )
    consignee_role = _require_participant(b, body.to, "body.to")
    if KIND_RECEIVE not in PERMISSIONS.get(consignee_role, frozenset()):
        # The lot would stay in transit for good: nobody could ever receive it.
        raise RuleError(
            f"body.to: a {consignee_role} may not receive shipments",
            code="consignee_cannot_receive",
            lot=state.lot_id,
            field="body.to",
            numbers={"participant": body.to, "role": consignee_role},
        )
    if body.transport.carrier is not None:
        _require_participant(b, body.transport.carrier, "body.transport.carrier")
    shipment = b.event_id.hex()
    for child in b.descendants(state):
        b.put(replace(b.touch(child, "body.lot"), custodian=None, shipment=shipment))
    moved = b.touch(state, "body.lot")
    b.put(replace(moved, status=STATUS_IN_TRANSIT, custodian=None, shipment=shipment))
    b.shipments.append(
        ShipmentState(
            event_id=b.event_id,
            lot=state.lot_id,
            sender=b.participant,
            consignee=body.to,
            quantity=amount,
            shipped_at=b.index,
        )
    )


def _receive(b: _Batch, body: ReceiveBody) -> None:
    shipment = b.view.shipment(body.shipment)
    if shipment is None:
        raise RuleError(
            f"body.shipment: {body.shipment.hex()} is not a ship statement",
            code="unknown_shipment",
            field="body.shipment",
        )
    lot = shipment.lot
    if shipment.consignee != b.participant:
        raise RuleError(
            f"shipment of {lot} is consigned to {shipment.consignee}, not {b.participant}",
            code="not_consignee",
            lot=lot,
            field="body.shipment",
            numbers={"consignee": shipment.consignee, "participant": b.participant},
        )
    if shipment.received_at is not None:
        raise RuleError(
            f"shipment of {lot} was already received at index {shipment.received_at}",
            code="already_received",
            lot=lot,
            field="body.shipment",
            numbers={"received_at": shipment.received_at},
        )
    state = b.require(lot, "body.shipment")
    received = _base(state, body.quantity, "body.quantity")
    if received > shipment.quantity:
        unit = base_unit(state.unit_class)
        raise RuleError(
            f"received {received} {unit} of {lot}, but {shipment.quantity} were shipped",
            code="received_exceeds_shipped",
            lot=lot,
            field="body.quantity",
            numbers={"shipped": shipment.quantity, "received": received, "unit": unit},
        )
    for child in b.descendants(state):
        b.put(replace(b.touch(child, "body.shipment"), custodian=b.participant, shipment=None))
    arrived = b.touch(state, "body.shipment")
    b.put(
        replace(
            arrived,
            status=STATUS_HELD,
            custodian=b.participant,
            shipment=None,
            quantity=received,
        )
    )
    b.shipments.append(
        replace(
            shipment,
            received_at=b.index,
            received_quantity=received,
            loss=shipment.quantity - received,
        )
    )


def _inspect(b: _Batch, body: InspectBody) -> None:
    b.touch(b.require(body.lot, "body.lot"), "body.lot")


def _sell(b: _Batch, body: SellBody) -> None:
    state = b.require(body.lot, "body.lot")
    _not_unit(state, "body.lot")
    _held_by_signer(b, state, "body.lot")
    amount = _base(state, body.quantity, "body.quantity")
    _within_held(state, amount, "body.quantity")
    b.put(_after_removal(b.touch(state, "body.lot"), amount, STATUS_SOLD))


def _recall(b: _Batch, body: RecallBody) -> None:
    state = b.require(body.lot, "body.lot")
    if b.role != ROLE_OPERATOR and state.producer != b.participant:
        raise RuleError(
            f"only the operator or {state.producer}, who produced {state.lot_id}, may recall it",
            code="not_permitted",
            lot=state.lot_id,
            field="body.lot",
            numbers={"producer": state.producer, "participant": b.participant},
        )
    if state.recalled_at is not None:
        raise RuleError(
            f"{state.lot_id} was already recalled at index {state.recalled_at}",
            code="already_recalled",
            lot=state.lot_id,
            field="body.lot",
            numbers={"recalled_at": state.recalled_at},
        )
    recalled = b.touch(state, "body.lot")
    b.put(replace(recalled, recalled_at=b.index, recall_reason=body.reason))


def _own_event(b: _Batch, event_id: bytes, where: str) -> EventRecord:
    record = b.view.event(event_id)
    if record is None:
        raise RuleError(
            f"{where}: {event_id.hex()} is not a domain statement in this log",
            code="unknown_event",
            field=where,
        )
    if record.participant != b.participant:
        raise RuleError(
            f"{where}: statement {record.index} was signed by {record.participant}; "
            "only its signer may correct it",
            code="not_own_statement",
            field=where,
            numbers={"index": record.index, "signer": record.participant},
        )
    return record


def _correct(b: _Batch, body: CorrectBody) -> None:
    record = _own_event(b, body.corrects, "body.corrects")
    if record.corrected_by is not None:
        raise RuleError(
            f"statement {record.index} was already corrected at index {record.corrected_by}",
            code="already_corrected",
            field="body.corrects",
            numbers={"index": record.index, "corrected_by": record.corrected_by},
        )
    if body.replacement is not None:
        _own_event(b, body.replacement, "body.replacement")
    # A correction changes no lot: it is listed in the history of every lot the
    # corrected statement touched, and the statement is marked.
    b.touched.update(dict.fromkeys(record.lots))
    b.extra.append(MarkCorrected(event_id=body.corrects, by_index=b.index))


def _apply_rules(b: _Batch, body: Body) -> None:
    match body:
        case HarvestBody():
            _harvest(b, body)
        case StoreBody():
            _store(b, body)
        case TransformBody():
            _transform(b, body)
        case PackBody():
            _pack(b, body)
        case UnpackBody():
            _unpack(b, body)
        case ShipBody():
            _ship(b, body)
        case ReceiveBody():
            _receive(b, body)
        case InspectBody():
            _inspect(b, body)
        case SellBody():
            _sell(b, body)
        case RecallBody():
            _recall(b, body)
        case CorrectBody():
            _correct(b, body)
