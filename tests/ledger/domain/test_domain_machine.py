"""A stateful test of the domain rules against a plain model kept by the test.

Several participants (two farms, a cooperative, a mill, a transporter, a depot,
two markets, an inspector, the operator) perform random operations, valid and
invalid, straight through ``domain_changes`` into a ``DomainState``. The model
predicts, for every attempt, whether it must be accepted or which rule code must
refuse it. After every step:

* quantity is conserved per lot family: harvested = held + in transit + packed
  + sold + transform losses + receive losses (families join when lots merge);
* every lot is held by exactly one custodian, or in transit on an open
  shipment, or packed in a unit (and then follows it), or consumed/sold;
* the state matches the model lot by lot;
* every refused attempt raised RuleError/EncodingError and changed nothing;
* trace back/forward agree (lots and depths) with the model's edges.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ledger.domain import PERMISSIONS, trace_back, trace_forward
from ledger.errors import EncodingError, RuleError
from tests.ledger.domain import ROLES, World, q, rfc3339

PIDS = sorted(ROLES)
RECEIVERS = sorted(p for p in PIDS if "receive" in PERMISSIONS[ROLES[p]])
MARKETS = ["market-khi", "market-lhr"]
TARGETS = [*RECEIVERS, *MARKETS, *MARKETS, "farm-a", "lab", "ghost"]  # ghost: not enrolled
BOGUS_SHIPMENT = bytes([0xEE]) * 32
pick = st.integers(min_value=0, max_value=10**6)
SHIP_MODES = st.sampled_from(["exact", "exact", "exact", "exact", "less", "more", "unit"])
JUNK = st.sampled_from(["future", "ship", "harvest", "transform", "sell"])
LOSS = st.sampled_from([-1, 0, 0, 0, 1, 7, 30])  # -1: more out than in


@dataclass
class MLot:
    cls: str  # unit class
    qty: int  # base units
    holder: str | None
    status: str
    producer: str
    family: int | None  # None for shipping units
    unit: str | None = None
    contents: list[str] = field(default_factory=list)
    recalled: bool = False
    shipment: str | None = None


@dataclass
class MShipment:
    lot: str
    consignee: str
    qty: int
    received: bool = False


class DomainMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.lots: dict[str, MLot] = {}
        self.shipments: dict[bytes, MShipment] = {}
        self.events: dict[bytes, list[Any]] = {}  # event id -> [signer, corrected]
        self.parents: dict[str, set[str]] = {}
        self.children: dict[str, set[str]] = {}
        self.uf: dict[int, int] = {}
        self.harvested: dict[int, int] = {}
        self.removed: dict[int, int] = {}  # sold + transform losses + receive losses
        self.serial = 0

    # -- helpers ------------------------------------------------------------

    def new_id(self, owner: str, tag: str) -> str:
        self.serial += 1
        return f"lot:{owner}:{tag}{self.serial}"

    def find(self, f: int) -> int:
        while self.uf[f] != f:
            f = self.uf[f]
        return f

    def union(self, families: list[int]) -> int:
        roots = sorted({self.find(f) for f in families})
        root = roots[0]
        for other in roots[1:]:
            self.uf[other] = root
            self.harvested[root] += self.harvested.pop(other)
            self.removed[root] += self.removed.pop(other)
        return root

    def lot_at(self, i: int) -> str:
        ids = sorted(self.lots)
        return ids[i % len(ids)]

    def held_lot_at(self, i: int) -> str:
        # Mostly a lot someone holds (so that valid operations are common).
        held = sorted(x for x, m in self.lots.items() if m.status == "held")
        return held[i % len(held)] if held and i % 4 != 3 else self.lot_at(i)

    def signer(self, i: int, preferred: str | None) -> str:
        # Mostly the participant who should act, otherwise anyone.
        if preferred is not None and i % 4 != 3:  # Hypothesis favours 0: 0 acts right
            return preferred
        return PIDS[(i // 4) % len(PIDS)]

    def qty_json(self, m: MLot, amount: int) -> dict[str, Any]:
        if m.cls == "mass":
            return q(amount // 1000, "kg") if amount % 1000 == 0 else q(amount, "g")
        return q(amount, m.cls)

    @staticmethod
    def permitted(pid: str, kind: str) -> bool:
        return kind in PERMISSIONS[ROLES[pid]]

    def custody_code(self, lot_id: str, pid: str) -> str | None:
        m = self.lots[lot_id]
        if m.status == "in_transit":
            return "in_transit"
        if m.status == "packed":
            return "lot_packed"
        if m.status != "held":
            return "lot_closed"
        if m.holder != pid:
            return "not_custodian"
        return None

    def descendants(self, lot_id: str) -> list[str]:
        out: list[str] = []
        stack = list(self.lots[lot_id].contents)
        while stack:
            child = stack.pop()
            out.append(child)
            stack.extend(self.lots[child].contents)
        return out

    def attempt(
        self, pid: str, kind: str, body: dict[str, Any], expected: str | None, **kw: Any
    ) -> bytes | None:
        """Run one statement; the model's prediction must hold either way."""
        before = self.world.state.copy()
        refusal: RuleError | EncodingError | None = None
        try:
            event_id, changes = self.world.changes(pid, kind, body, **kw)
        except (RuleError, EncodingError) as exc:
            refusal = exc
        if refusal is not None:
            assert self.world.state == before
            assert expected is not None, f"{kind} by {pid} refused: {refusal.code}: {refusal}"
            assert refusal.code == expected, f"{kind} by {pid}: {refusal.code}, not {expected}"
            return None
        assert expected is None, f"{kind} by {pid} accepted; model expected {expected}"
        self.world.state.apply(changes)
        self.world.index += 1
        self.world.now_ms += 60_000
        self.events[event_id] = [pid, False]
        return event_id

    def add_edge(self, parent: str, child: str) -> None:
        self.parents.setdefault(child, set()).add(parent)
        self.children.setdefault(parent, set()).add(child)

    # -- rules --------------------------------------------------------------

    @initialize()
    def first_harvests(self):
        for farm in ("farm-a", "farm-b"):
            self.harvest(farm, 20, "kg")
            self.harvest(farm, 12, "crate")

    @rule(
        who=st.sampled_from(["farm-a", "farm-b", "farm-a", "farm-b", "coop", "truck"]),
        amount=st.integers(min_value=1, max_value=50),
        unit=st.sampled_from(["kg", "kg", "g", "crate"]),
    )
    def harvest(self, who, amount, unit):
        lot = self.new_id(who, "H")
        body = {
            "lot": lot, "crop": "rice" if unit != "crate" else "mango", "plot": "p",
            "harvest_date": "2026-11-01", "quantity": q(amount, unit),
        }  # fmt: skip
        expected = None if self.permitted(who, "harvest") else "not_permitted"
        if self.attempt(who, "harvest", body, expected) is None:
            return
        cls, base = ("mass", amount * (1000 if unit == "kg" else 1)) if unit != "crate" else (
            "crate", amount,
        )  # fmt: skip
        family = len(self.uf)
        self.uf[family] = family
        self.harvested[family] = base
        self.removed[family] = 0
        self.lots[lot] = MLot(cls=cls, qty=base, holder=who, status="held", producer=who,
                              family=family)  # fmt: skip

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=pick, mode=SHIP_MODES, to=st.sampled_from(TARGETS))
    def ship(self, i, who, mode, to):
        self._ship(self.held_lot_at(i), who, mode, to)

    @precondition(lambda self: any(m.contents and m.status == "held" for m in self.lots.values()))
    @rule(i=pick, to=st.sampled_from(RECEIVERS))
    def ship_a_unit(self, i, to):
        units = sorted(x for x, m in self.lots.items() if m.contents and m.status == "held")
        self._ship(units[i % len(units)], 0, "exact", to)

    def _ship(self, lot: str, who: int, mode: str, to: str) -> None:
        m = self.lots[lot]
        pid = self.signer(who, m.holder)
        amount = {"exact": m.qty, "less": m.qty - 1, "more": m.qty + 1, "unit": m.qty}[mode]
        amount = max(amount, 1)
        quantity = self.qty_json(m, amount)
        if mode == "unit":
            quantity = q(amount, "sack" if m.cls != "sack" else "bag")
        body = {"lot": lot, "to": to, "quantity": quantity, "transport": {"mode": "road"}}
        expected = None
        if not self.permitted(pid, "ship"):
            expected = "not_permitted"
        elif code := self.custody_code(lot, pid):
            expected = code
        elif mode == "unit":
            expected = "unit_mismatch"
        elif amount > m.qty:
            expected = "quantity_exceeds_held"
        elif amount < m.qty:
            expected = "ship_quantity_mismatch"
        elif to == "ghost":
            expected = "unknown_participant"
        elif not self.permitted(to, "receive"):
            expected = "consignee_cannot_receive"
        event_id = self.attempt(pid, "ship", body, expected)
        if event_id is None:
            return
        for x in [lot, *self.descendants(lot)]:
            self.lots[x].holder = None
            self.lots[x].shipment = event_id.hex()
        m.status = "in_transit"
        self.shipments[event_id] = MShipment(lot=lot, consignee=to, qty=amount)

    @precondition(lambda self: self.shipments)
    @rule(i=pick, who=pick, loss=LOSS, bogus=st.booleans())
    def receive(self, i, who, loss, bogus):
        self._receive(i, who, loss, bogus)

    @precondition(
        lambda self: any(
            not s.received and s.consignee in RECEIVERS for s in self.shipments.values()
        )
    )
    @rule(i=pick, loss=LOSS)
    def deliver(self, i, loss):
        # The consignee receives an open shipment: keeps goods moving downstream.
        self._receive(i, 1, loss, False)

    def _receive(self, i: int, who: int, loss: int, bogus: bool) -> None:
        open_ = sorted(
            x for x, s in self.shipments.items() if not s.received and s.consignee in RECEIVERS
        )
        ids = open_ if open_ and i % 4 != 3 else sorted(self.shipments)
        shipment_id = ids[i % len(ids)]
        s = self.shipments[shipment_id]
        m = self.lots[s.lot]
        pid = self.signer(who, s.consignee)
        received = s.qty + 1 if loss < 0 else max(1, s.qty - loss)
        body = {"shipment": shipment_id.hex(), "quantity": self.qty_json(m, received)}
        expected = None
        if bogus and i % 5 == 0:
            body["shipment"] = BOGUS_SHIPMENT.hex()
        if not self.permitted(pid, "receive"):
            expected = "not_permitted"
        elif body["shipment"] == BOGUS_SHIPMENT.hex():
            expected = "unknown_shipment"
        elif s.consignee != pid:
            expected = "not_consignee"
        elif s.received:
            expected = "already_received"
        elif received > s.qty:
            expected = "received_exceeds_shipped"
        if self.attempt(pid, "receive", body, expected) is None:
            return
        s.received = True
        for x in [s.lot, *self.descendants(s.lot)]:
            self.lots[x].holder = pid
            self.lots[x].shipment = None
        m.status = "held"
        m.qty = received
        if m.family is not None:
            self.removed[self.find(m.family)] += s.qty - received
        got = self.world.state.shipment(shipment_id)
        assert got is not None
        assert got.loss == s.qty - received

    def _transform(self, pid: str, inputs: list[tuple[str, int]], outputs: list[int],
                   process: str, foreign_prefix: bool) -> None:  # fmt: skip
        owner = "farm-b" if foreign_prefix and pid != "farm-b" else pid
        out_ids = [self.new_id(owner, "T") for _ in outputs]
        first = self.lots[inputs[0][0]]
        body = {
            "process": process,
            "inputs": [{"lot": x, "quantity": self.qty_json(self.lots[x], n)} for x, n in inputs],
            "outputs": [
                {"lot": x, "crop": "rice", "quantity": self.qty_json(first, n)}
                for x, n in zip(out_ids, outputs, strict=True)
            ],
        }
        expected = None
        if not self.permitted(pid, "transform"):
            expected = "not_permitted"
        else:
            for lot, n in inputs:
                m = self.lots[lot]
                if m.contents:
                    expected = "lot_is_unit"
                elif code := self.custody_code(lot, pid):
                    expected = code
                elif n > m.qty:
                    expected = "quantity_exceeds_held"
                if expected:
                    break
            classes = {self.lots[x].cls for x, _ in inputs}
            if expected is None and len(classes) == 1 and sum(outputs) > sum(n for _, n in inputs):
                expected = "transform_creates_mass"
            if expected is None and owner != pid:
                expected = "lot_prefix"
        if self.attempt(pid, "transform", body, expected) is None:
            return
        family = self.union([f for x, _ in inputs if (f := self.lots[x].family) is not None])
        self.removed[family] += sum(n for _, n in inputs) - sum(outputs)
        for lot, n in inputs:
            m = self.lots[lot]
            m.qty -= n
            if m.qty == 0:
                m.status = "consumed"
        for out, n in zip(out_ids, outputs, strict=True):
            self.lots[out] = MLot(cls=first.cls, qty=n, holder=pid, status="held", producer=pid,
                                  family=family)  # fmt: skip
            for lot, _ in inputs:
                self.add_edge(lot, out)

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=pick, take=pick, parts=st.integers(min_value=1, max_value=3),
          loss=LOSS, foreign=st.integers(0, 9))  # fmt: skip
    def split(self, i, who, take, parts, loss, foreign):
        lot = self.held_lot_at(i)
        m = self.lots[lot]
        pid = self.signer(who, m.holder)
        taken = take % (m.qty + 1) + 1  # 1..qty+1: sometimes beyond what is held
        total = taken + 1 if loss < 0 else max(1, taken - loss)
        parts = min(parts, total)
        outputs = [total // parts] * parts
        outputs[0] += total - sum(outputs)
        self._transform(pid, [(lot, taken)], outputs, "splitting", foreign == 0)

    @precondition(lambda self: len(self.lots) >= 2)
    @rule(i=pick, j=pick, who=pick, loss=LOSS)
    def merge(self, i, j, who, loss):
        first = self.held_lot_at(i)
        cls = self.lots[first].cls
        same = sorted(x for x in self.lots if self.lots[x].cls == cls and x != first)
        if not same:
            return
        second = same[j % len(same)]
        pid = self.signer(who, self.lots[first].holder)
        inputs = [(x, max(1, self.lots[x].qty)) for x in (first, second)]
        total_in = sum(n for _, n in inputs)
        total = total_in + 1 if loss < 0 else max(1, total_in - loss)
        self._transform(pid, inputs, [total], "merging", False)

    @precondition(lambda self: self.lots)
    @rule(i=pick, j=pick, who=pick, n=st.integers(min_value=1, max_value=3),
          foreign=st.integers(0, 9))  # fmt: skip
    def pack(self, i, j, who, n, foreign):
        ids = sorted(self.lots)
        first = self.held_lot_at(i)
        contents = [first] + [x for k, x in enumerate(ids) if (k + j) % 7 == 0 and x != first]
        contents = contents[:n]
        pid = self.signer(who, self.lots[first].holder)
        owner = "farm-b" if foreign == 0 and pid != "farm-b" else pid
        unit = self.new_id(owner, "U")
        expected = None if self.permitted(pid, "pack") else "not_permitted"
        for x in contents:
            if expected is None:
                expected = self.custody_code(x, pid)
        if expected is None and owner != pid:
            expected = "lot_prefix"
        if self.attempt(pid, "pack", {"unit": unit, "contents": contents}, expected) is None:
            return
        for x in contents:
            self.lots[x].status = "packed"
            self.lots[x].unit = unit
            self.add_edge(x, unit)
        self.lots[unit] = MLot(cls="piece", qty=1, holder=pid, status="held", producer=pid,
                               family=None, contents=list(contents))  # fmt: skip

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=pick)
    def unpack(self, i, who):
        units = sorted(x for x, m in self.lots.items() if m.contents)
        unit = units[i % len(units)] if units and i % 4 != 3 else self.lot_at(i)
        m = self.lots[unit]
        pid = self.signer(who, m.holder)
        expected = None
        if not self.permitted(pid, "unpack"):
            expected = "not_permitted"
        elif not m.contents:
            expected = "not_a_unit"
        else:
            expected = self.custody_code(unit, pid)
        if self.attempt(pid, "unpack", {"unit": unit}, expected) is None:
            return
        for x in m.contents:
            self.lots[x].status = "held"
            self.lots[x].unit = None
        m.contents = []
        m.status = "consumed"
        m.qty = 0

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=pick, amount=pick)
    def sell(self, i, who, amount):
        self._sell(self.held_lot_at(i), who, amount)

    @precondition(lambda self: any(m.holder in MARKETS for m in self.lots.values()))
    @rule(i=pick, amount=pick)
    def market_sells(self, i, amount):
        at_market = sorted(x for x, m in self.lots.items() if m.holder in MARKETS)
        self._sell(at_market[i % len(at_market)], 0, amount)

    def _sell(self, lot: str, who: int, amount: int) -> None:
        m = self.lots[lot]
        pid = self.signer(who, m.holder)
        amount = amount % (m.qty + 1) + 1
        expected = None
        if not self.permitted(pid, "sell"):
            expected = "not_permitted"
        elif m.contents:
            expected = "lot_is_unit"
        elif code := self.custody_code(lot, pid):
            expected = code
        elif amount > m.qty:
            expected = "quantity_exceeds_held"
        body = {"lot": lot, "quantity": self.qty_json(m, amount)}
        if self.attempt(pid, "sell", body, expected) is None:
            return
        m.qty -= amount
        if m.qty == 0:
            m.status = "sold"
        assert m.family is not None
        self.removed[self.find(m.family)] += amount

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=pick)
    def recall(self, i, who):
        lot = self.lot_at(i)
        m = self.lots[lot]
        pid = self.signer(who, m.producer if who % 3 else "op")
        expected = None
        if not self.permitted(pid, "recall") or (ROLES[pid] != "operator" and m.producer != pid):
            expected = "not_permitted"
        elif m.recalled:
            expected = "already_recalled"
        if self.attempt(pid, "recall", {"lot": lot, "reason": "test"}, expected) is None:
            return
        m.recalled = True

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=st.sampled_from(["lab", "lab", "market-khi"]))
    def inspect(self, i, who):
        body = {
            "lot": self.lot_at(i), "inspection": "residue", "result": "pass", "document": "ab" * 32,
        }  # fmt: skip
        self.attempt(who, "inspect", body, None if who == "lab" else "not_permitted")

    @precondition(lambda self: self.events)
    @rule(i=pick, who=pick)
    def correct(self, i, who):
        ids = sorted(self.events)
        target = ids[i % len(ids)]
        signer, corrected = self.events[target]
        pid = self.signer(who, signer)
        expected = None
        if not self.permitted(pid, "correct"):
            expected = "not_permitted"
        elif signer != pid:
            expected = "not_own_statement"
        elif corrected:
            expected = "already_corrected"
        body = {"corrects": target.hex(), "reason": "typo"}
        if self.attempt(pid, "correct", body, expected) is not None:
            self.events[target][1] = True

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=pick, what=JUNK)
    def junk(self, i, who, what):
        pid = PIDS[who % len(PIDS)]
        if what == "future":
            # A statement dated after its acceptance (beyond the 5 minute skew).
            later = rfc3339(self.world.now_ms + 6 * 60_000)
            store = {"lot": self.lot_at(i), "facility": "barn"}
            expected = "time_in_future" if self.permitted(pid, "store") else "not_permitted"
            self.attempt(pid, "store", store, expected, time=later)
            return
        # Bodies are checked before roles: each of these is an EncodingError.
        body = {"lot": self.lot_at(i), "quantity": q(1, "maund")}
        code = {
            "ship": "missing_field", "harvest": "missing_field",
            "transform": "unknown_field", "sell": "bad_unit",
        }[what]  # fmt: skip
        self.attempt(pid, what, body, code)

    # -- invariants ---------------------------------------------------------

    @invariant()
    def quantity_is_conserved_per_family(self):
        present: dict[int, int] = dict.fromkeys({self.find(f) for f in self.uf}, 0)
        for lot_id, m in self.lots.items():
            if m.family is not None:
                present[self.find(m.family)] += self.world.state.lots[lot_id].quantity
        for root, held in present.items():
            assert self.harvested[root] == held + self.removed[root], root

    @invariant()
    def custody_is_never_ambiguous(self):
        state = self.world.state
        for lot_id, s in state.lots.items():
            if s.status == "held":
                assert s.custodian in ROLES
                assert (s.shipment, s.unit) == (None, None)
            elif s.status == "in_transit":
                assert s.custodian is None
                assert s.shipment is not None
                shipment = state.shipments[bytes.fromhex(s.shipment)]
                assert (shipment.lot, shipment.received_at) == (lot_id, None)
            elif s.status == "packed":
                assert s.unit is not None
                unit = state.lots[s.unit]
                assert lot_id in unit.contents
                assert (s.custodian, s.shipment) == (unit.custodian, unit.shipment)
            else:
                assert s.status in ("consumed", "sold")
                assert s.quantity == 0

    @invariant()
    def state_matches_the_model(self):
        assert set(self.world.state.lots) == set(self.lots)
        for lot_id, m in self.lots.items():
            s = self.world.state.lots[lot_id]
            assert (s.status, s.custodian, s.quantity, s.unit, list(s.contents)) == (
                m.status, m.holder, m.qty, m.unit, m.contents,
            ), lot_id  # fmt: skip
            assert (s.recalled_at is not None, s.unit_class, s.producer, s.shipment) == (
                m.recalled, m.cls, m.producer, m.shipment,
            ), lot_id  # fmt: skip

    @invariant()
    def traces_agree_with_the_model(self):
        for lot_id in self.lots:
            for tracer, edges in ((trace_back, self.parents), (trace_forward, self.children)):
                got = tracer(lot_id, self.world.state)
                assert not got.truncated
                assert dict(got.lots) == bfs(lot_id, edges)


def bfs(root: str, edges: dict[str, set[str]]) -> dict[str, int]:
    depth = {root: 0}
    queue = deque([root])
    while queue:
        lot = queue.popleft()
        for other in edges.get(lot, ()):
            if other not in depth:
                depth[other] = depth[lot] + 1
                queue.append(other)
    return depth


TestDomainMachine = DomainMachine.TestCase
TestDomainMachine.settings = settings(stateful_step_count=40)
