"""Small builders for tests: a fresh in-memory ledger with an operator and participants."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ledger.admission import LogIdentity
from ledger.checkpoint import NoteVerifier, build_vkey
from ledger.keys import Signer, VerifyingKey
from ledger.registry import build_enrolment, build_enrolment_request
from ledger.service import Ledger
from ledger.statements import SignedStatement, Statement, sign_statement
from ledger.storage import Store
from ledger.storage.memory import MemoryStore

ORIGIN = "test.mandi.example/log"
TIME = "2026-11-28T09:30:00+05:00"
BASE_MS = 1_795_843_800_000


def valid_profile(pid: str, role: str = "producer", **extra: Any) -> dict[str, Any]:
    """A profile the domain accepts: role, a local id and a location."""
    profile: dict[str, Any] = {"role": role}
    if role != "operator":
        profile["local_id"] = pid
        profile["location"] = {"district": "Lahore", "province": "Punjab"}
    profile.update(extra)
    return profile


def harvest_body(lot: str, amount: int = 1000, unit: str = "kg") -> dict[str, Any]:
    """A valid harvest body for a producer lot id."""
    return {
        "crop": "rice",
        "harvest_date": "2026-11-27",
        "lot": lot,
        "plot": "plot-1",
        "quantity": {"amount": amount, "unit": unit},
    }


def count_verifications(monkeypatch: Any) -> list[int]:
    """Count calls of :meth:`VerifyingKey.verify` (the writer's check) from now on: ``[n]``."""
    calls = [0]
    original = VerifyingKey.verify

    def counting(self: VerifyingKey, signature: bytes, message: bytes) -> None:
        calls[0] += 1
        original(self, signature, message)

    monkeypatch.setattr(VerifyingKey, "verify", counting)
    return calls


def seeded(n: int) -> Signer:
    return Signer.from_seed(bytes([n]) * 32)


@dataclass
class Clock:
    now: int = BASE_MS
    step: int = 1

    def __call__(self) -> int:
        self.now += self.step
        return self.now


@dataclass
class World:
    ledger: Ledger
    store: Store
    log_signer: Signer
    operator: Signer
    clock: Clock
    signers: dict[str, Signer] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(build_vkey(ORIGIN, self.log_signer.public))

    @property
    def identity(self) -> LogIdentity:
        return self.ledger.log

    def enrol(
        self, pid: str, signer: Signer | None = None, role: str = "producer", **profile: Any
    ) -> Signer:
        signer = signer or Signer.generate()
        request = build_enrolment_request(
            origin=ORIGIN,
            participant_id=pid,
            signer=signer,
            time=TIME,
            profile=valid_profile(pid, role, **profile),
        )
        self.ledger.append(
            build_enrolment(origin=ORIGIN, operator=self.operator, request=request, time=TIME)
        )
        self.signers[pid] = signer
        return signer

    def statement(
        self, pid: str, kind: str = "harvest", body: dict[str, Any] | None = None
    ) -> SignedStatement:
        signer = self.signers[pid]
        return self.statement_by(signer, kind, body)

    def statement_by(
        self, signer: Signer, kind: str = "harvest", body: dict[str, Any] | None = None
    ) -> SignedStatement:
        if body is None:
            owner = next((p for p, s in self.signers.items() if s.public == signer.public), "x")
            body = harvest_body(f"lot:{owner}:h{next(self.counter)}")
        stmt = Statement.build(origin=ORIGIN, kind=kind, signer=signer.key_id, time=TIME, body=body)
        return sign_statement(signer, stmt)


def new_world(store: Store | None = None, *, checkpoint_delay_ms: int = 0) -> World:
    store = store if store is not None else MemoryStore()
    log_signer = seeded(1)
    operator = seeded(2)
    clock = Clock()
    request = build_enrolment_request(
        origin=ORIGIN,
        participant_id="operator",
        signer=operator,
        time=TIME,
        profile={"role": "operator"},
    )
    ledger = Ledger.initialise(
        store,
        origin=ORIGIN,
        log_signer=log_signer,
        operator_request=request,
        time=TIME,
        clock=clock,
        checkpoint_delay_ms=checkpoint_delay_ms,
    )
    return World(ledger=ledger, store=store, log_signer=log_signer, operator=operator, clock=clock)
