"""Tests of ledger.domain, and the small world builder they share.

:class:`World` runs statements straight through ``domain_changes`` into a
``DomainState``: no signatures or log, since the admission gate is tested
elsewhere and the rules take an already-checked statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ledger.domain import DomainState, domain_changes
from ledger.domain.rules import DomainChange
from ledger.hashing import KeyId
from ledger.registry import ParticipantRecord
from ledger.statements import Statement

ORIGIN = "test.mandi.example/log"
BASE_MS = 1_795_843_800_000  # 2026-11-28T04:30:00Z
PKT = timezone(timedelta(hours=5))
SIGNER = KeyId(bytes(32))

ROLES = {
    "farm-a": "producer",
    "farm-b": "producer",
    "coop": "cooperative",
    "mill": "processor",
    "truck": "transporter",
    "depot": "warehouse",
    "market-lhr": "market",
    "market-khi": "market",
    "lab": "inspector",
    "op": "operator",
}


def rfc3339(ms: int) -> str:
    """Unix ms -> RFC 3339 in Pakistan time (+05:00), second precision."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).astimezone(PKT).isoformat()


def record(pid: str) -> ParticipantRecord:
    role = ROLES[pid]
    return ParticipantRecord(
        participant_id=pid, profile={"role": role}, enrolled_at=1, operator=role == "operator"
    )


def q(amount: int, unit: str = "kg") -> dict[str, Any]:
    return {"amount": amount, "unit": unit}


@dataclass
class World:
    """A domain state, a log index and a clock that moves one minute per statement."""

    state: DomainState = field(default_factory=DomainState)
    index: int = 10
    now_ms: int = BASE_MS

    def statement(self, kind: str, body: dict[str, Any], time: str | None = None) -> Statement:
        return Statement.build(
            origin=ORIGIN, kind=kind, signer=SIGNER, time=time or rfc3339(self.now_ms), body=body
        )

    def changes(
        self,
        pid: str,
        kind: str,
        body: dict[str, Any],
        *,
        time: str | None = None,
        accepted_ms: int | None = None,
    ) -> tuple[bytes, list[DomainChange]]:
        """Check without applying: (event id, changes)."""
        statement = self.statement(kind, body, time)
        event_id = bytes(statement.event_id)
        changes = domain_changes(
            statement,
            event_id=event_id,
            index=self.index,
            accepted_ms=self.now_ms if accepted_ms is None else accepted_ms,
            participant=record(pid),
            view=self.state,
            participant_role=ROLES.get,
        )
        return event_id, changes

    def do(self, pid: str, kind: str, body: dict[str, Any], **kw: Any) -> bytes:
        """Check, apply, advance; returns the event id."""
        event_id, changes = self.changes(pid, kind, body, **kw)
        self.state.apply(changes)
        self.index += 1
        self.now_ms += 60_000
        return event_id

    def harvest(
        self, pid: str, code: str, amount: int, unit: str = "kg", crop: str = "rice"
    ) -> str:
        lot = f"lot:{pid}:{code}"
        self.do(
            pid,
            "harvest",
            {
                "lot": lot,
                "crop": crop,
                "plot": "plot 7",
                "harvest_date": "2026-11-27",
                "quantity": q(amount, unit),
            },
        )
        return lot

    def ship(self, pid: str, lot: str, to: str, amount: int, unit: str = "kg") -> bytes:
        body = {"lot": lot, "to": to, "quantity": q(amount, unit), "transport": {"mode": "road"}}
        return self.do(pid, "ship", body)

    def receive(self, pid: str, shipment: bytes, amount: int, unit: str = "kg") -> bytes:
        return self.do(pid, "receive", {"shipment": shipment.hex(), "quantity": q(amount, unit)})
