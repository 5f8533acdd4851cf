"""In-memory domain state: lots, shipments, events, lot histories and the lot graph.

:class:`DomainState` implements :class:`~ledger.domain.rules.DomainView` (what
the rules read) and :class:`~ledger.domain.trace.EdgeView` (what traces read),
and applies the :data:`~ledger.domain.rules.DomainChange` values the rules
return. The auditor replays a log into one; tests use it as the reference the
SQL store must match. :class:`DomainOverlay` stages changes on top of another
view, for a batch of statements checked before any is stored.

Mutable on purpose, like :class:`ledger.registry.Registry`: it is the state a
replay accumulates. It holds no rules of its own; every decision was made by
:func:`~ledger.domain.rules.domain_changes`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ledger.domain.rules import (
    STATUS_HELD,
    STATUS_PACKED,
    AddEdge,
    AddEvent,
    AddLotEvent,
    DomainChange,
    DomainView,
    EventRecord,
    LotState,
    MarkCorrected,
    PutLot,
    PutShipment,
    ShipmentState,
)
from ledger.domain.trace import Edge

__all__ = ["DomainOverlay", "DomainState", "LotEvent"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LotEvent:
    """One line of a lot's history: the statement at ``index`` of ``kind``."""

    lot_id: str
    index: int
    kind: str


@dataclass(slots=True)
class DomainState:
    """The domain state replayed from domain changes (see the module docstring)."""

    lots: dict[str, LotState] = field(default_factory=dict)
    shipments: dict[bytes, ShipmentState] = field(default_factory=dict)
    events: dict[bytes, EventRecord] = field(default_factory=dict)
    event_ids: dict[int, bytes] = field(default_factory=dict)
    event_lots: dict[int, list[str]] = field(default_factory=dict)
    histories: dict[str, list[LotEvent]] = field(default_factory=dict)
    parents: dict[str, list[Edge]] = field(default_factory=dict)
    children: dict[str, list[Edge]] = field(default_factory=dict)

    # -- DomainView -----------------------------------------------------------

    def lot(self, lot_id: str) -> LotState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self.lots.get(lot_id)

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self.shipments.get(event_id)

    def event(self, event_id: bytes) -> EventRecord | None:
        """See :class:`~ledger.domain.rules.DomainView`; ``lots`` filled from the histories."""
        record = self.events.get(event_id)
        if record is None:
            return None
        return replace(record, lots=tuple(self.event_lots.get(record.index, ())))

    # -- EdgeView -------------------------------------------------------------

    def edges_into(self, lot_id: str) -> list[Edge]:
        """See :class:`~ledger.domain.trace.EdgeView`."""
        return list(self.parents.get(lot_id, ()))

    def edges_from(self, lot_id: str) -> list[Edge]:
        """See :class:`~ledger.domain.trace.EdgeView`."""
        return list(self.children.get(lot_id, ()))

    # -- Queries --------------------------------------------------------------

    def history(self, lot_id: str) -> list[LotEvent]:
        """The statements on ``lot_id``, in log order (corrections included)."""
        return list(self.histories.get(lot_id, ()))

    def held_by(self, participant: str) -> list[LotState]:
        """What ``participant`` holds now (held or packed), by lot id."""
        return sorted(
            (
                s
                for s in self.lots.values()
                if s.custodian == participant and s.status in (STATUS_HELD, STATUS_PACKED)
            ),
            key=lambda s: s.lot_id,
        )

    def copy(self) -> DomainState:
        """An independent deep copy (a snapshot to compare against)."""
        return copy.deepcopy(self)

    # -- Changes --------------------------------------------------------------

    def apply(self, changes: Iterable[DomainChange]) -> None:
        """Apply changes returned by :func:`~ledger.domain.rules.domain_changes`, in order."""
        for change in changes:
            match change:
                case AddEvent():
                    self.events[change.event_id] = EventRecord(
                        event_id=change.event_id,
                        index=change.index,
                        kind=change.kind,
                        participant=change.participant,
                        time=change.time,
                    )
                    self.event_ids[change.index] = change.event_id
                case PutLot():
                    self.lots[change.state.lot_id] = change.state
                case PutShipment():
                    self.shipments[change.state.event_id] = change.state
                case AddLotEvent():
                    self.histories.setdefault(change.lot_id, []).append(
                        LotEvent(lot_id=change.lot_id, index=change.index, kind=change.kind)
                    )
                    self.event_lots.setdefault(change.index, []).append(change.lot_id)
                case AddEdge():
                    edge = Edge(
                        parent=change.parent,
                        child=change.child,
                        index=change.index,
                        kind=change.kind,
                    )
                    self.parents.setdefault(change.child, []).append(edge)
                    self.children.setdefault(change.parent, []).append(edge)
                case MarkCorrected():
                    old = self.events[change.event_id]
                    self.events[change.event_id] = replace(old, corrected_by=change.by_index)


class DomainOverlay:
    """A :class:`~ledger.domain.rules.DomainView` of ``base`` with staged changes on top.

    For a batch of statements checked one after another before any is stored:
    the rules read through the overlay, which answers from the staged changes
    first. Only the rule-facing view is overlaid (lots, shipments, events).
    """

    def __init__(self, base: DomainView) -> None:
        self._base = base
        self._pending = DomainState()

    def lot(self, lot_id: str) -> LotState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self._pending.lot(lot_id) or self._base.lot(lot_id)

    def shipment(self, event_id: bytes) -> ShipmentState | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self._pending.shipment(event_id) or self._base.shipment(event_id)

    def event(self, event_id: bytes) -> EventRecord | None:
        """See :class:`~ledger.domain.rules.DomainView`."""
        return self._pending.event(event_id) or self._base.event(event_id)

    def apply(self, changes: Iterable[DomainChange]) -> None:
        """Stage changes; marking a base event corrected copies its record first."""
        staged = list(changes)
        for change in staged:
            if isinstance(change, MarkCorrected) and change.event_id not in self._pending.events:
                base = self._base.event(change.event_id)
                if base is not None:
                    self._pending.events[change.event_id] = base
                    self._pending.event_lots.setdefault(base.index, []).extend(base.lots)
        self._pending.apply(staged)
