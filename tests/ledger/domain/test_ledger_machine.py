"""The domain machine again, through a real signed log: Ledger.append over a MemoryStore.

:class:`LedgerMachine` reuses every rule, model and invariant of
tests/ledger/domain/test_domain_machine.py, but each attempt is a statement
signed with the participant's registered key and appended with
``Ledger.append``, so the admission gate (registry, signatures, revocation)
and the store run too. The participants of ``tests.ledger.domain.ROLES`` are
enrolled for real ("op" is the genesis operator), and the machine adds the
registry's own operations, valid and invalid: key rotation, revocation, and
recovery (a new key for a participant whose key was revoked).

On top of the domain machine's invariants (quantity conserved per lot family,
custody never ambiguous, state equal to the model), after every step:

* every refused append changed nothing: log size, registry (keys and
  participants), domain state and the newest checkpoint;
* the registry's valid keys are exactly the model's;
* ``Ledger.held_by`` lists every held or packed lot under exactly one
  participant, and nothing else;
* ``Ledger.trace_back``/``trace_forward`` agree with the model's edges;

and every few appends, and at teardown, ``audit_log`` over the stored entries,
checkpoints and leaves is clean and ends at the ledger's root.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from ledger.audit import audit_log
from ledger.checkpoint import NoteVerifier, build_vkey
from ledger.domain.personal import commit
from ledger.errors import LedgerError, StorageError
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
from ledger.storage.memory import MemoryStore
from tests.ledger.builders import valid_profile
from tests.ledger.domain import ORIGIN, ROLES, rfc3339
from tests.ledger.domain.test_domain_machine import PIDS, DomainMachine, bfs, pick

OPERATOR = "op"
MEMBERS = [p for p in PIDS if p != OPERATOR]
AUDIT_EVERY = 12
"""Appends between two full audits (one more runs at teardown)."""


def _key(label: str) -> Signer:
    return Signer.from_seed(hashlib.sha256(f"ledger-machine/{label}".encode()).digest())


class LedgerMachine(DomainMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.key_serial = 0
        self.keys: dict[str, Signer] = {OPERATOR: self.fresh_key()}  # each one's newest key
        self.revoked: set[str] = set()  # participants whose newest key is revoked
        self.retired: dict[str, list[Signer]] = {}  # keys rotated away or revoked
        request = build_enrolment_request(
            origin=ORIGIN,
            participant_id=OPERATOR,
            signer=self.keys[OPERATOR],
            time=self.now(),
            profile={"role": "operator"},
        )
        log_signer = _key("log")
        self.verifier = NoteVerifier.from_vkey(build_vkey(ORIGIN, log_signer.public))
        self.ledger = Ledger.initialise(
            self.store,
            origin=ORIGIN,
            log_signer=log_signer,
            operator_request=request,
            time=self.now(),
            clock=lambda: self.world.now_ms,
            checkpoint_delay_ms=0,
        )
        # The domain machine's rules and invariants read world.state: make it the
        # store's own state, so they check what the log built.
        self.world.state = self.store._state.domain
        for n, pid in enumerate(MEMBERS):
            extra: dict[str, Any] = {}
            if ROLES[pid] == "producer":
                extra["personal"] = {"phone": commit(f"+9230000000{n}", bytes([n]) * 16)}
            self.keys[pid] = self.fresh_key()
            self.registry_append(self.enrolment(pid, self.keys[pid], **extra), None)
        self.audited = 0

    # -- helpers ------------------------------------------------------------

    def now(self) -> str:
        return rfc3339(self.world.now_ms)

    def fresh_key(self) -> Signer:
        self.key_serial += 1
        return _key(f"participant/{self.key_serial}")

    def enrolment(self, pid: str, key: Signer, **extra: Any) -> SignedStatement:
        request = build_enrolment_request(
            origin=ORIGIN,
            participant_id=pid,
            signer=key,
            time=self.now(),
            profile=valid_profile(pid, ROLES.get(pid, "producer"), **extra),
        )
        return build_enrolment(
            origin=ORIGIN, operator=self.keys[OPERATOR], request=request, time=self.now()
        )

    def signing_key(self, pid: str) -> tuple[Signer, str | None]:
        """The participant's newest key, and ``key_revoked`` when it may not sign."""
        return self.keys[pid], "key_revoked" if pid in self.revoked else None

    def snapshot(self) -> tuple[Any, ...]:
        return (
            self.store.size(),
            self.store.keys(),
            self.store.participants(),
            self.store.latest_checkpoint(),
            self.world.state.copy(),
        )

    def append(self, signed: SignedStatement, expected: str | None, what: str) -> bool:
        """Append; the model's prediction (None: accepted, else the code) must hold."""
        before = self.snapshot()
        refusal: LedgerError | None = None
        try:
            result = self.ledger.append(signed)
        except StorageError:
            raise
        except LedgerError as exc:
            refusal = exc
        if refusal is not None:
            assert self.snapshot() == before, f"refused {what} changed the ledger"
            assert expected is not None, f"{what} refused: {refusal.code}: {refusal}"
            assert refusal.code == expected, f"{what}: {refusal.code}, not {expected}"
            return False
        assert expected is None, f"{what} accepted; model expected {expected}"
        assert result.created
        assert self.store.size() == before[0] + 1
        self.world.now_ms += 60_000
        return True

    def registry_append(self, signed: SignedStatement, expected: str | None) -> bool:
        return self.append(signed, expected, signed.statement.kind)

    def attempt(
        self, pid: str, kind: str, body: dict[str, Any], expected: str | None, **kw: Any
    ) -> bytes | None:
        """The domain machine's attempt, as a statement signed by ``pid`` and appended."""
        key, refusal = self.signing_key(pid)
        # The admission gate refuses a revoked signer before any rule runs.
        expected = refusal or expected
        statement = Statement.build(
            origin=ORIGIN,
            kind=kind,
            signer=key.key_id,
            time=kw.get("time") or self.now(),
            body=body,
        )
        signed = sign_statement(key, statement)
        if not self.append(signed, expected, f"{kind} by {pid}"):
            return None
        self.events[signed.event_id] = [pid, False]
        return signed.event_id

    # -- registry rules -----------------------------------------------------

    @rule(
        who=pick,
        variant=st.sampled_from(
            ["ok", "ok", "ok", "not_operator", "stale_old", "reused_new", "bad_new_signature"]
        ),
    )
    def rotate(self, who, variant):
        pid = PIDS[who % len(PIDS)]
        old, new = self.keys[pid], self.fresh_key()
        if variant == "stale_old" and self.retired.get(pid):
            old = self.retired[pid][-1]
        elif variant == "reused_new":
            new = self.keys[MEMBERS[who % len(MEMBERS)] if pid == OPERATOR else OPERATOR]
        request = build_rotation_request(
            origin=ORIGIN, participant_id=pid, old=old, new=new, time=self.now()
        )
        if variant == "bad_new_signature":
            forged = build_rotation_request(
                origin=ORIGIN, participant_id=pid, old=old, new=self.fresh_key(), time=self.now()
            )
            request.signatures["new"] = forged.signatures["new"]
        by = OPERATOR if variant != "not_operator" else MEMBERS[who % len(MEMBERS)]
        signer, expected = self.signing_key(by)
        if expected is None and by != OPERATOR:
            expected = "not_operator"
        elif expected is None and (old is not self.keys[pid] or pid in self.revoked):
            expected = "key_revoked"
        elif expected is None and variant == "reused_new":
            expected = "key_exists"
        elif expected is None and variant == "bad_new_signature":
            expected = "bad_request_signature"
        signed = build_rotation(origin=ORIGIN, operator=signer, request=request, time=self.now())
        if self.registry_append(signed, expected):
            self.retired.setdefault(pid, []).append(old)
            self.keys[pid] = new

    @rule(
        who=pick,
        variant=st.sampled_from(["ok", "ok", "not_operator", "other_participant", "again"]),
    )
    def revoke(self, who, variant):
        pid = MEMBERS[who % len(MEMBERS)]  # the operator's own key is never revoked
        key = self.keys[pid]
        stale = variant == "again" and bool(self.retired.get(pid))
        if stale:
            key = self.retired[pid][-1]
        named = pid if variant != "other_participant" else MEMBERS[(who + 1) % len(MEMBERS)]
        by = OPERATOR if variant != "not_operator" else MEMBERS[who // 7 % len(MEMBERS)]
        signer, expected = self.signing_key(by)
        if expected is None and by != OPERATOR:
            expected = "not_operator"
        elif expected is None and named != pid:
            expected = "unknown_key"
        elif expected is None and (stale or pid in self.revoked):
            expected = "key_revoked"
        signed = build_revocation(
            origin=ORIGIN,
            operator=signer,
            participant_id=named,
            key_id=key.key_id,
            reason="phone lost",
            time=self.now(),
        )
        if self.registry_append(signed, expected):
            self.revoked.add(pid)

    @precondition(lambda self: self.revoked)
    @rule(i=pick, variant=st.sampled_from(["ok", "ok", "ok", "reused_key", "second_operator"]))
    def recover(self, i, variant):
        # After checking the holder's identity out of band, the operator enrols a
        # new key for a participant whose key was revoked.
        pid = sorted(self.revoked)[i % len(self.revoked)]
        if variant == "second_operator":
            request = build_enrolment_request(
                origin=ORIGIN,
                participant_id="op-2",
                signer=self.fresh_key(),
                time=self.now(),
                profile={"role": "operator"},
            )
            signed = build_enrolment(
                origin=ORIGIN, operator=self.keys[OPERATOR], request=request, time=self.now()
            )
            self.registry_append(signed, "operator_role_reserved")
            return
        key = self.keys[OPERATOR] if variant == "reused_key" else self.fresh_key()
        expected = "key_exists" if variant == "reused_key" else None
        if self.registry_append(self.enrolment(pid, key), expected):
            self.retired.setdefault(pid, []).append(self.keys[pid])
            self.keys[pid] = key
            self.revoked.discard(pid)

    @precondition(lambda self: self.lots)
    @rule(i=pick, who=pick, variant=st.sampled_from(["retired_key", "forged", "foreign_origin"]))
    def bad_signer(self, i, who, variant):
        pid = PIDS[who % len(PIDS)]
        if variant == "retired_key" and self.retired:
            pid = sorted(self.retired)[who % len(self.retired)]
        key, expected = self.signing_key(pid)
        signing = key
        origin = ORIGIN
        if variant == "foreign_origin":
            origin, expected = "other.example/log", "wrong_origin"  # checked before the signer
        elif variant == "retired_key" and pid in self.retired:
            key = signing = self.retired[pid][-1]
            expected = "key_revoked"
        else:  # signed with another participant's key, under pid's key id
            signing = self.keys[PIDS[(who + 1) % len(PIDS)]]
            expected = expected or "bad_signature"
        statement = Statement.build(
            origin=origin,
            kind="store",
            signer=key.key_id,
            time=self.now(),
            body={"lot": self.lot_at(i), "facility": "barn"},
        )
        signed = SignedStatement(
            statement=statement, signature=signing.sign(statement.signing_input())
        )
        self.append(signed, expected, f"{variant} by {pid}")

    # -- invariants ---------------------------------------------------------

    @invariant()
    def registry_matches_the_model(self):
        records = self.store.keys()
        valid = {k.key_id: k.participant for k in records if k.revoked_at is None}
        expected = {self.keys[p].key_id: p for p in PIDS if p not in self.revoked}
        assert valid == expected
        assert [p.participant_id for p in self.store.participants()] == [OPERATOR, *MEMBERS]

    @invariant()
    def every_held_lot_has_one_holder(self):
        listed = Counter(s.lot_id for pid in PIDS for s in self.ledger.held_by(pid))
        for lot_id in self.lots:
            s = self.ledger.lot(lot_id)
            held = s.status in ("held", "packed") and s.custodian is not None
            assert listed[lot_id] == (1 if held else 0), lot_id

    @invariant()
    def traces_agree_with_the_model(self):
        for lot_id in self.lots:
            for tracer, edges in (
                (self.ledger.trace_back, self.parents),
                (self.ledger.trace_forward, self.children),
            ):
                got = tracer(lot_id)
                assert not got.truncated
                assert dict(got.lots) == bfs(lot_id, edges)

    @invariant()
    def the_audit_is_clean_now_and_then(self):
        if self.ledger.size() - self.audited >= AUDIT_EVERY:
            self.audit()

    def teardown(self):
        self.audit()

    def audit(self) -> None:
        size = self.store.size()
        report = audit_log(
            self.store.entries(0, size),
            (cp.note for cp in self.store.checkpoints()),
            log_verifier=self.verifier,
            stored_leaves=self.store.leaf_hashes(0, size),
        )
        assert report.ok, report.to_text()
        assert report.entries_checked == size
        assert report.root_hash == self.ledger.root_hash(size).hex()
        assert report.latest_checkpoint_size == size
        self.audited = size


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(stateful_step_count=60)
