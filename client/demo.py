"""Demo and synthetic ledgers for `mandi demo` and the benchmarks.

The demo plays every participant the way a real client would: each one signs
its own statements locally and the log only sees signatures. Keys of the demo
participants are derived from fixed seeds so a demo is reproducible; they are
demo keys, not secrets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ledger.keys import Signer
from ledger.registry import (
    build_enrolment,
    build_enrolment_request,
    build_revocation,
    build_rotation,
    build_rotation_request,
)
from ledger.service import Ledger
from ledger.statements import SignedStatement, Statement, sign_statement

__all__ = ["DEMO_PARTICIPANTS", "DemoSummary", "demo_signer", "run_demo", "synthetic_statements"]

DEMO_PARTICIPANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("farm.punjab.1", {"role": "producer", "district": "Sheikhupura", "province": "Punjab"}),
    ("farm.sindh.1", {"role": "producer", "district": "Hyderabad", "province": "Sindh"}),
    ("coop.punjab", {"role": "cooperative", "district": "Lahore", "province": "Punjab"}),
    ("mill.gujranwala", {"role": "processor", "district": "Gujranwala", "province": "Punjab"}),
    ("transport.gt-road", {"role": "transporter", "district": "Lahore", "province": "Punjab"}),
    ("market.lahore", {"role": "market", "district": "Lahore", "province": "Punjab"}),
    ("market.karachi", {"role": "market", "district": "Karachi", "province": "Sindh"}),
)


def demo_signer(participant_id: str, generation: int = 0) -> Signer:
    """The deterministic demo key of a participant (demo only; never for real keys)."""
    seed = hashlib.sha256(f"mandi-demo-key/{participant_id}/{generation}".encode()).digest()
    return Signer.from_seed(seed)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSummary:
    """What the demo recorded."""

    participants: tuple[str, ...]
    statements: int
    log_size: int


def run_demo(
    ledger: Ledger,
    *,
    operator_id: str,
    operator: Signer,
    time: Callable[[], str],
) -> DemoSummary:
    """Enrol the demo participants and record a small farm-to-market story."""
    origin = ledger.log.origin
    appended = 0
    for pid, profile in DEMO_PARTICIPANTS:
        request = build_enrolment_request(
            origin=origin, participant_id=pid, signer=demo_signer(pid), time=time(), profile=profile
        )
        ledger.append(
            build_enrolment(origin=origin, operator=operator, request=request, time=time())
        )
        appended += 1

    def record(pid: str, kind: str, body: dict[str, object], generation: int = 0) -> None:
        nonlocal appended
        signer = demo_signer(pid, generation)
        statement = Statement.build(
            origin=origin, kind=kind, signer=signer.key_id, time=time(), body=body
        )
        ledger.append(sign_statement(signer, statement))
        appended += 1

    record(
        "farm.punjab.1",
        "harvest",
        {
            "lot": "farm.punjab.1:basmati-2026-01",
            "crop": "rice",
            "quantity": {"amount": 12000, "unit": "kg"},
        },
    )
    record(
        "farm.sindh.1",
        "harvest",
        {
            "lot": "farm.sindh.1:sindhri-2026-07",
            "crop": "mango",
            "quantity": {"amount": 400, "unit": "crate"},
        },
    )
    record(
        "farm.punjab.1", "ship", {"lot": "farm.punjab.1:basmati-2026-01", "to": "mill.gujranwala"}
    )
    record(
        "mill.gujranwala",
        "receive",
        {"lot": "farm.punjab.1:basmati-2026-01", "quantity": {"amount": 11950, "unit": "kg"}},
    )
    # The transporter's phone was lost: rotate is impossible without the old key,
    # so the operator revokes it and enrols a new key after checking identity.
    lost = demo_signer("transport.gt-road")
    ledger.append(
        build_revocation(
            origin=origin,
            operator=operator,
            participant_id="transport.gt-road",
            key_id=lost.key_id,
            reason="phone lost",
            time=time(),
        )
    )
    renewed = build_enrolment_request(
        origin=origin,
        participant_id="transport.gt-road",
        signer=demo_signer("transport.gt-road", 1),
        time=time(),
        profile=dict(DEMO_PARTICIPANTS[4][1]),
    )
    ledger.append(build_enrolment(origin=origin, operator=operator, request=renewed, time=time()))
    record(
        "transport.gt-road",
        "ship",
        {"lot": "farm.sindh.1:sindhri-2026-07", "to": "market.karachi"},
        generation=1,
    )
    # The market rotates its key routinely, with both keys signing the request.
    rotation = build_rotation_request(
        origin=origin,
        participant_id="market.karachi",
        old=demo_signer("market.karachi"),
        new=demo_signer("market.karachi", 1),
        time=time(),
    )
    ledger.append(build_rotation(origin=origin, operator=operator, request=rotation, time=time()))
    record(
        "market.karachi",
        "receive",
        {"lot": "farm.sindh.1:sindhri-2026-07", "quantity": {"amount": 396, "unit": "crate"}},
        generation=1,
    )
    appended += 3
    ledger.flush_checkpoint()
    return DemoSummary(
        participants=tuple(pid for pid, _ in DEMO_PARTICIPANTS),
        statements=appended,
        log_size=ledger.size(),
    )


def synthetic_statements(
    *, origin: str, count: int, time: str, start: int = 0
) -> Iterator[SignedStatement]:
    """``count`` distinct signed statements from the demo producers, for benchmarks.

    The demo participants must be enrolled (run :func:`run_demo` first).
    """
    signers = [
        demo_signer(pid) for pid, profile in DEMO_PARTICIPANTS if profile["role"] == "producer"
    ]
    for n in range(start, start + count):
        signer = signers[n % len(signers)]
        statement = Statement.build(
            origin=origin,
            kind="harvest",
            signer=signer.key_id,
            time=time,
            body={
                "lot": f"synthetic:{n:09d}",
                "crop": "rice",
                "quantity": {"amount": 1000 + n % 500, "unit": "kg"},
            },
        )
        yield sign_statement(signer, statement)
