"""Demo and synthetic ledgers for `mandi demo` and the benchmarks.

The demo plays every participant the way a real client would: each one signs
its own statements locally and the log only sees signatures. Keys of the demo
participants are derived from fixed seeds so a demo is reproducible; they are
demo keys, never to be used for anything real.

The story: basmati paddy from three farms in Punjab goes through the Punjab
cooperative to a rice mill in Gujranwala, is milled, tested and shipped by
road to the market in Lahore; Sindhri mangoes from three farms in Sindh are
graded and palletised by the Sindh cooperative and shipped to Karachi. A
residue test fails on one farm's paddy, its producer recalls it, and the
recall reaches the milled rice made from it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.domain.trace import recalled_upstream
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

__all__ = [
    "DEMO_PARTICIPANTS",
    "DemoLot",
    "DemoSummary",
    "demo_signer",
    "run_demo",
    "synthetic_statements",
]

_PUNJAB_FARMS = ("farm.punjab.1", "farm.punjab.2", "farm.punjab.3")
_SINDH_FARMS = ("farm.sindh.1", "farm.sindh.2", "farm.sindh.3")


def _where(district: str, province: str) -> dict[str, str]:
    return {"district": district, "province": province}


DEMO_PARTICIPANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("farm.punjab.1", {"role": "producer", "location": _where("Sheikhupura", "Punjab")}),
    ("farm.punjab.2", {"role": "producer", "location": _where("Gujranwala", "Punjab")}),
    ("farm.punjab.3", {"role": "producer", "location": _where("Hafizabad", "Punjab")}),
    ("farm.sindh.1", {"role": "producer", "location": _where("Mirpur Khas", "Sindh")}),
    ("farm.sindh.2", {"role": "producer", "location": _where("Hyderabad", "Sindh")}),
    ("farm.sindh.3", {"role": "producer", "location": _where("Tando Allahyar", "Sindh")}),
    (
        "coop.punjab",
        {
            "role": "cooperative",
            "name": "Punjab Growers Cooperative",
            "location": _where("Lahore", "Punjab"),
        },
    ),
    (
        "coop.sindh",
        {
            "role": "cooperative",
            "name": "Sindh Mango Cooperative",
            "location": _where("Hyderabad", "Sindh"),
        },
    ),
    (
        "mill.gujranwala",
        {
            "role": "processor",
            "name": "Gujranwala Rice Mill",
            "location": _where("Gujranwala", "Punjab"),
        },
    ),
    (
        "transport.gt-road",
        {"role": "transporter", "name": "GT Road Haulage", "location": _where("Lahore", "Punjab")},
    ),
    (
        "transport.indus",
        {"role": "transporter", "name": "Indus Freight", "location": _where("Karachi", "Sindh")},
    ),
    (
        "market.lahore",
        {"role": "market", "name": "Lahore Grain Market", "location": _where("Lahore", "Punjab")},
    ),
    (
        "market.karachi",
        {"role": "market", "name": "Karachi Fruit Market", "location": _where("Karachi", "Sindh")},
    ),
    (
        "lab.pcsir",
        {
            "role": "inspector",
            "name": "Food Testing Laboratory",
            "location": _where("Lahore", "Punjab"),
        },
    ),
)


def demo_signer(participant_id: str, generation: int = 0) -> Signer:
    """The deterministic demo key of a participant (demo only; never for real keys)."""
    seed = hashlib.sha256(f"mandi-demo-key/{participant_id}/{generation}".encode()).digest()
    return Signer.from_seed(seed)


def _profile(pid: str, profile: dict[str, Any]) -> dict[str, Any]:
    return {"local_id": pid, **profile}


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoLot:
    """One lot of the demo as the summary lists it."""

    lot: str
    crop: str
    holder: str | None
    status: str
    recalled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSummary:
    """What the demo recorded."""

    participants: tuple[str, ...]
    statements: int
    log_size: int
    lots: tuple[DemoLot, ...]
    recalled_lot: str
    page_lot: str

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "participants": list(self.participants),
            "statements": self.statements,
            "log_size": self.log_size,
            "recalled_lot": self.recalled_lot,
            "page_lot": self.page_lot,
            "lots": [
                {
                    "lot": lot.lot,
                    "crop": lot.crop,
                    "holder": lot.holder,
                    "status": lot.status,
                    "recalled": lot.recalled,
                }
                for lot in self.lots
            ],
        }


@dataclass(slots=True)
class _Story:
    ledger: Ledger
    operator: Signer
    clock: datetime
    step: timedelta
    keys: dict[str, Signer] = field(default_factory=dict)
    appended: int = 0
    pending: list[SignedStatement] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return self.ledger.log.origin

    def now(self) -> str:
        self.clock += self.step
        return self.clock.isoformat(timespec="seconds")

    def say(self, pid: str, kind: str, body: dict[str, Any]) -> bytes:
        signer = self.keys[pid]
        statement = Statement.build(
            origin=self.origin, kind=kind, signer=signer.key_id, time=self.now(), body=body
        )
        self.pending.append(sign_statement(signer, statement))
        return bytes(statement.event_id)

    def commit(self) -> None:
        """Append what was said since the last commit, 100 statements per transaction."""
        for start in range(0, len(self.pending), 100):
            self.ledger.append_batch(self.pending[start : start + 100])
        self.appended += len(self.pending)
        self.pending = []


def _qty(amount: int, unit: str) -> dict[str, Any]:
    return {"amount": amount, "unit": unit}


def _ship(
    story: _Story,
    sender: str,
    lot: str,
    to: str,
    qty: dict[str, Any],
    carrier: str | None,
    vehicle: str,
) -> bytes:
    transport: dict[str, Any] = {"mode": "road", "vehicle": vehicle}
    if carrier is not None:
        transport["carrier"] = carrier
    return story.say(
        sender, "ship", {"lot": lot, "to": to, "quantity": qty, "transport": transport}
    )


def run_demo(
    ledger: Ledger,
    *,
    operator_id: str,
    operator: Signer,
    start: datetime | None = None,
    seed: int = 7,
) -> DemoSummary:
    """Enrol the demo participants and record the farm-to-market story.

    Args:
        ledger: a freshly initialised ledger (genesis only).
        operator_id: the operator's participant id (unused in statements; kept for the summary).
        operator: the operator's key, which signs enrolments, rotations, revocations.
        start: the claimed time of the first statement (default: 40 days ago, UTC).
        seed: seeds the quantities so a demo is reproducible.
    """
    del operator_id
    rng = random.Random(seed)  # noqa: S311 - reproducible demo quantities, not secrets
    begin = start or (datetime.now(tz=UTC) - timedelta(days=40)).replace(microsecond=0)
    story = _Story(ledger=ledger, operator=operator, clock=begin, step=timedelta(minutes=7))
    origin = story.origin

    for pid, profile in DEMO_PARTICIPANTS:
        story.keys[pid] = demo_signer(pid)
        request = build_enrolment_request(
            origin=origin,
            participant_id=pid,
            signer=story.keys[pid],
            time=story.now(),
            profile=_profile(pid, profile),
        )
        story.pending.append(
            build_enrolment(origin=origin, operator=operator, request=request, time=story.now())
        )
    story.commit()

    harvest_date = (story.clock + timedelta(days=-1)).date().isoformat()
    # --- rice: harvest, ship to the cooperative, on to the mill --------------------
    paddy: dict[str, list[tuple[str, int]]] = {farm: [] for farm in _PUNJAB_FARMS}
    for farm in _PUNJAB_FARMS:
        for n in range(1, 21):
            lot = f"lot:{farm}:paddy-{n:02d}"
            kg = rng.randrange(2000, 5000, 50)
            story.say(
                farm,
                "harvest",
                {
                    "lot": lot,
                    "crop": "rice",
                    "variety": "basmati 385",
                    "plot": f"plot-{n % 4 + 1}",
                    "harvest_date": harvest_date,
                    "quantity": _qty(kg, "kg"),
                },
            )
            paddy[farm].append((lot, kg))
    story.commit()
    at_coop: list[tuple[str, int]] = []
    for farm in _PUNJAB_FARMS:
        for lot, kg in paddy[farm]:
            shipment = _ship(
                story, farm, lot, "coop.punjab", _qty(kg, "kg"), None, "tractor trolley"
            )
            received = kg - rng.randrange(0, 20)
            story.say(
                "coop.punjab",
                "receive",
                {"shipment": shipment.hex(), "quantity": _qty(received, "kg")},
            )
            at_coop.append((lot, received))
    story.commit()
    at_mill: list[tuple[str, int]] = []
    for lot, kg in at_coop:
        shipment = _ship(
            story,
            "coop.punjab",
            lot,
            "mill.gujranwala",
            _qty(kg, "kg"),
            "transport.gt-road",
            "LES-4411",
        )
        received = kg - rng.randrange(0, 10)
        story.say(
            "mill.gujranwala",
            "receive",
            {"shipment": shipment.hex(), "quantity": _qty(received, "kg")},
        )
        at_mill.append((lot, received))
    story.commit()
    # --- milling: three paddy lots make one rice lot (about 65% by mass) --------------
    rice: list[tuple[str, int]] = []
    for n, start_at in enumerate(range(0, len(at_mill), 3), start=1):
        inputs = at_mill[start_at : start_at + 3]
        out_kg = sum(kg for _, kg in inputs) * 65 // 100
        lot = f"lot:mill.gujranwala:rice-{n:02d}"
        story.say(
            "mill.gujranwala",
            "transform",
            {
                "process": "milling",
                "inputs": [{"lot": lot_in, "quantity": _qty(kg, "kg")} for lot_in, kg in inputs],
                "outputs": [
                    {
                        "lot": lot,
                        "crop": "rice",
                        "variety": "basmati 385",
                        "quantity": _qty(out_kg, "kg"),
                    }
                ],
            },
        )
        rice.append((lot, out_kg))
    story.commit()
    for lot, _kg in rice:
        story.say(
            "lab.pcsir",
            "inspect",
            {
                "lot": lot,
                "inspection": "residue",
                "result": "pass",
                "document": hashlib.sha256(f"lab report {lot}".encode()).hexdigest(),
                "certificate": f"PCSIR-{lot.rsplit('-', 1)[1]}",
            },
        )
    story.commit()
    # One paddy lot fails its residue test; its producer recalls it.
    bad_paddy = paddy["farm.punjab.2"][4][0]
    story.say(
        "lab.pcsir",
        "inspect",
        {
            "lot": bad_paddy,
            "inspection": "residue",
            "result": "fail",
            "document": hashlib.sha256(b"lab report failed").hexdigest(),
        },
    )
    story.say(
        "farm.punjab.2", "recall", {"lot": bad_paddy, "reason": "pesticide residue above the MRL"}
    )
    story.commit()
    for lot, kg in rice:
        shipment = _ship(
            story,
            "mill.gujranwala",
            lot,
            "market.lahore",
            _qty(kg, "kg"),
            "transport.gt-road",
            "LEB-1207",
        )
        story.say(
            "market.lahore", "receive", {"shipment": shipment.hex(), "quantity": _qty(kg, "kg")}
        )
    story.commit()
    for lot, kg in rice[:10]:
        story.say(
            "market.lahore",
            "sell",
            {
                "lot": lot,
                "quantity": _qty(kg // 4, "kg"),
                "price": {"amount_minor": kg // 4 * 42000, "currency": "PKR"},
            },
        )
    story.commit()

    # --- mangoes: harvest in crates, grade, palletise, ship to Karachi ---------------
    graded: list[tuple[str, int]] = []
    for farm in _SINDH_FARMS:
        for n in range(1, 21):
            lot = f"lot:{farm}:sindhri-{n:02d}"
            crates = rng.randrange(40, 120)
            story.say(
                farm,
                "harvest",
                {
                    "lot": lot,
                    "crop": "mango",
                    "variety": "Sindhri",
                    "plot": f"orchard-{n % 3 + 1}",
                    "harvest_date": harvest_date,
                    "quantity": _qty(crates, "crate"),
                },
            )
            shipment = _ship(story, farm, lot, "coop.sindh", _qty(crates, "crate"), None, "pickup")
            story.say(
                "coop.sindh",
                "receive",
                {"shipment": shipment.hex(), "quantity": _qty(crates, "crate")},
            )
            out = crates - rng.randrange(0, 4)
            graded_lot = f"lot:coop.sindh:grade-a-{farm.rsplit('.', 1)[1]}-{n:02d}"
            story.say(
                "coop.sindh",
                "transform",
                {
                    "process": "grading",
                    "inputs": [{"lot": lot, "quantity": _qty(crates, "crate")}],
                    "outputs": [
                        {
                            "lot": graded_lot,
                            "crop": "mango",
                            "variety": "Sindhri",
                            "quantity": _qty(out, "crate"),
                        }
                    ],
                },
            )
            graded.append((graded_lot, out))
    story.commit()
    pallets: list[str] = []
    for n, start_at in enumerate(range(0, len(graded), 4), start=1):
        pallet = f"lot:coop.sindh:pallet-{n:02d}"
        story.say(
            "coop.sindh",
            "pack",
            {"unit": pallet, "contents": [lot for lot, _ in graded[start_at : start_at + 4]]},
        )
        pallets.append(pallet)
    story.commit()
    for pallet in pallets:
        shipment = _ship(
            story,
            "coop.sindh",
            pallet,
            "market.karachi",
            _qty(1, "piece"),
            "transport.indus",
            "KHI-7781",
        )
        story.say(
            "market.karachi", "receive", {"shipment": shipment.hex(), "quantity": _qty(1, "piece")}
        )
        story.say("market.karachi", "unpack", {"unit": pallet})
    story.commit()
    for lot, crates in graded[:12]:
        story.say(
            "market.karachi", "sell", {"lot": lot, "quantity": _qty(max(1, crates // 3), "crate")}
        )
    story.commit()

    # --- keys: a routine rotation, and a lost phone replaced --------------------------
    rotation = build_rotation_request(
        origin=origin,
        participant_id="market.karachi",
        old=demo_signer("market.karachi"),
        new=demo_signer("market.karachi", 1),
        time=story.now(),
    )
    story.pending.append(
        build_rotation(origin=origin, operator=operator, request=rotation, time=story.now())
    )
    story.pending.append(
        build_revocation(
            origin=origin,
            operator=operator,
            participant_id="transport.gt-road",
            key_id=demo_signer("transport.gt-road").key_id,
            reason="phone lost; identity checked at the cooperative office",
            time=story.now(),
        )
    )
    renewed = build_enrolment_request(
        origin=origin,
        participant_id="transport.gt-road",
        signer=demo_signer("transport.gt-road", 1),
        time=story.now(),
        profile=_profile("transport.gt-road", dict(DEMO_PARTICIPANTS[9][1])),
    )
    story.pending.append(
        build_enrolment(origin=origin, operator=operator, request=renewed, time=story.now())
    )
    story.commit()
    story.keys["market.karachi"] = demo_signer("market.karachi", 1)
    story.say("market.karachi", "sell", {"lot": graded[12][0], "quantity": _qty(1, "crate")})
    story.commit()
    ledger.flush_checkpoint()

    created = [lot for farm in _PUNJAB_FARMS for lot, _ in paddy[farm]]
    created += [lot for lot, _ in rice]
    created += [f"lot:{farm}:sindhri-{n:02d}" for farm in _SINDH_FARMS for n in range(1, 21)]
    created += [lot for lot, _ in graded] + pallets
    return _summary(ledger, story, bad_paddy, rice, created)


def _summary(
    ledger: Ledger,
    story: _Story,
    bad_paddy: str,
    rice: list[tuple[str, int]],
    created: list[str],
) -> DemoSummary:
    store = ledger.store
    lots: list[DemoLot] = []
    for lot_id in created:
        state = store.lot(lot_id)
        if state is None:  # pragma: no cover - every lot above was appended
            raise AssertionError(f"demo lot {lot_id} is missing")
        lots.append(
            DemoLot(
                lot=state.lot_id,
                crop=state.crop,
                holder=state.custodian,
                status=state.status,
                recalled=bool(recalled_upstream(state.lot_id, store)),
            )
        )
    # The rice lot made from the recalled paddy: the page's most telling example.
    affected = next(
        (lot for lot, _ in rice if recalled_upstream(lot, store)),
        rice[0][0],
    )
    return DemoSummary(
        participants=tuple(pid for pid, _ in DEMO_PARTICIPANTS),
        statements=story.appended,
        log_size=ledger.size(),
        lots=tuple(lots),
        recalled_lot=bad_paddy,
        page_lot=affected,
    )


def synthetic_statements(
    *, origin: str, count: int, time: str, start: int = 0
) -> Iterator[SignedStatement]:
    """``count`` distinct signed harvests by the demo producers, for benchmarks.

    The demo participants must be enrolled (run :func:`run_demo` first). Each
    statement creates its own lot, so every one passes the domain rules.
    """
    producers = [pid for pid, profile in DEMO_PARTICIPANTS if profile["role"] == "producer"]
    signers = [demo_signer(pid) for pid in producers]
    day = time[:10]
    for n in range(start, start + count):
        k = n % len(signers)
        signer = signers[k]
        statement = Statement.build(
            origin=origin,
            kind="harvest",
            signer=signer.key_id,
            time=time,
            body={
                "lot": f"lot:{producers[k]}:s{n:09d}",
                "crop": "rice",
                "plot": "plot-1",
                "harvest_date": day,
                "quantity": {"amount": 1000 + n % 500, "unit": "kg"},
            },
        )
        yield sign_statement(signer, statement)


def clock_text(now: Callable[[], int]) -> str:
    """The current time as RFC 3339 UTC (seconds), from a millisecond clock."""
    return datetime.fromtimestamp(now() / 1000, tz=UTC).replace(microsecond=0).isoformat()
