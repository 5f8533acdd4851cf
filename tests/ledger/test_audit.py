"""The audit: a clean log verifies; every kind of damage is found at the right index."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger.audit import audit_log
from ledger.checkpoint import Checkpoint, NoteVerifier, build_vkey, sign_checkpoint
from ledger.errors import StatementError
from ledger.keys import Signer
from ledger.registry import build_revocation
from ledger.service import Ledger
from ledger.statements import Entry, SignedStatement
from ledger.storage.memory import MemoryStore
from tests.ledger.builders import ORIGIN, TIME, World, harvest_body, new_world


def run_audit(world: World, *, verifier: NoteVerifier | None = None, saved: str | None = None):
    store = world.store
    size = store.size()
    return audit_log(
        store.entries(0, size),
        [c.note for c in store.checkpoints()],
        log_verifier=verifier or world.verifier,
        stored_leaves=store.leaf_hashes(0, size),
        saved_checkpoint=saved,
        consistency_proof=world.ledger.consistency_proof,
    )


def populated(n: int = 12) -> World:
    world = new_world()
    world.enrol("farm-1")
    world.enrol("mill-1")
    for i in range(n):
        world.ledger.append(world.statement("farm-1" if i % 2 else "mill-1"))
    world.ledger.flush_checkpoint()
    return world


def replace(store: MemoryStore, index: int, **changes) -> None:
    store._state.entries[index] = dataclasses.replace(store._state.entries[index], **changes)


def test_clean_log_verifies():
    report = run_audit(populated())
    assert report.ok, report.to_text()
    assert report.entries_checked == 15
    assert report.first_damaged_index is None
    assert "OK" in report.to_text()
    assert report.to_json()["ok"] is True


def test_flipped_statement_byte_is_found_at_its_index():
    world = populated()
    entry = world.store.entry(6)
    flipped = bytearray(entry.statement)
    flipped[-3] ^= 0x01
    replace(world.store, 6, statement=bytes(flipped))
    report = run_audit(world)
    assert report.first_damaged_index == 6
    assert {"leaf_node_mismatch", "chain_broken", "root_mismatch"} <= set(report.checks)
    # The flipped byte is inside the body, so the signature check fails or the bytes stop
    # being canonical JSON; either way entry 6 itself is named.
    assert any(
        f.index == 6 and f.check in {"bad_signature", "not_canonical", "invalid_json"}
        for f in report.findings
    )


def test_changed_acceptance_time_breaks_leaf_and_chain():
    world = populated()
    replace(world.store, 4, accepted_ms=world.store.entry(4).accepted_ms + 1)
    report = run_audit(world)
    assert report.first_damaged_index == 4
    assert any(f.index == 5 and f.check == "chain_broken" for f in report.findings)


def test_deleted_entry():
    world = populated()
    del world.store._state.entries[7]
    report = run_audit(world)
    assert report.first_damaged_index == 7
    assert "index_mismatch" in report.checks
    assert "log_truncated" in report.checks


def test_swapped_entries():
    world = populated()
    entries = world.store._state.entries
    entries[5], entries[9] = entries[9], entries[5]
    report = run_audit(world)
    assert report.first_damaged_index == 5
    assert {"index_mismatch", "chain_broken"} <= set(report.checks)


def test_truncated_tail():
    world = populated()
    del world.store._state.entries[10:]
    report = run_audit(world)
    assert report.first_damaged_index == 10
    assert report.checks == ["log_truncated"]


def test_wrong_trust_anchor_rejects_everything_signed_by_the_log():
    world = populated()
    other = NoteVerifier.from_vkey(build_vkey(ORIGIN, Signer.generate().public))
    report = run_audit(world, verifier=other)
    assert not report.ok
    assert report.first_damaged_index == 0
    assert "checkpoint_invalid" in report.checks


def test_forged_checkpoint_signature():
    world = populated()
    forged = sign_checkpoint(
        Checkpoint(origin=ORIGIN, size=3, root_hash=bytes(32)),
        name=ORIGIN,
        signer=Signer.generate(),
    )
    report = audit_log(
        world.store.entries(0, world.store.size()),
        [c.note for c in world.store.checkpoints()] + [forged.to_text()],
        log_verifier=world.verifier,
    )
    assert "checkpoint_invalid" in report.checks


def test_signature_by_revoked_key_is_flagged():
    world = populated(2)
    key = world.signers["farm-1"]
    late = world.statement("farm-1")
    world.ledger.append(
        build_revocation(
            origin=ORIGIN,
            operator=world.operator,
            participant_id="farm-1",
            key_id=key.key_id,
            reason="stolen",
            time=TIME,
        )
    )
    with pytest.raises(StatementError):
        world.ledger.append(late)
    # A dishonest operator stores it anyway, re-chained, with a re-signed checkpoint.
    forged = rebuild_with_extra(world, late)
    report = run_audit(forged)
    assert report.checks == ["key_revoked"]
    assert report.first_damaged_index == forged.store.size() - 1


def rebuild_with_extra(world: World, extra: SignedStatement) -> World:
    """Copy the log into a new store and append ``extra`` without the admission rules."""
    store = MemoryStore()
    prev = None
    with store.write() as tx:
        for entry in world.store.entries(0, world.store.size()):
            tx.put_entry(entry, entry.leaf_hash)
            prev = entry
        from ledger.merkle import new_nodes_for_append

        entry = Entry(
            index=prev.index + 1,
            accepted_ms=prev.accepted_ms + 1,
            prev=prev.leaf_hash,
            statement=extra.statement.raw,
            signature=extra.signature,
        )
        tx.put_entry(entry, entry.leaf_hash)
        for i in range(entry.index + 1):
            leaf = store._state.nodes[(0, i)]
            nodes = new_nodes_for_append(i, leaf, lambda nid: store._state.nodes[nid])
            nodes.pop((0, i))
            tx.put_nodes(nodes)
    ledger = Ledger(store, log=world.ledger.log, log_signer=world.log_signer, clock=world.clock)
    ledger.flush_checkpoint()
    return World(
        ledger=ledger,
        store=store,
        log_signer=world.log_signer,
        operator=world.operator,
        clock=world.clock,
    )


def test_saved_checkpoint_catches_a_rewritten_history_resigned_with_the_log_key():
    honest = populated(10)
    saved = honest.store.latest_checkpoint().note
    # The operator rebuilds the log from the same keys but drops statements and
    # re-signs every checkpoint: the rewritten log verifies on its own.
    rewritten = new_world()
    rewritten.signers = honest.signers
    rewritten.enrol("farm-1", honest.signers["farm-1"])
    rewritten.enrol("mill-1", honest.signers["mill-1"])
    for entry in list(honest.store.entries(3, honest.store.size()))[:-2]:
        rewritten.ledger.append(entry.signed_statement())
    for _ in range(5):
        rewritten.ledger.append(
            rewritten.statement("farm-1", body=harvest_body(f"lot:farm-1:late{_}"))
        )
    rewritten.ledger.flush_checkpoint()
    assert run_audit(rewritten).ok
    report = run_audit(rewritten, saved=saved)
    assert not report.ok
    assert "root_mismatch" in report.checks
    assert "inconsistent_with_saved_checkpoint" in report.checks


def test_saved_checkpoint_beyond_log_is_truncation():
    world = populated(10)
    saved = world.store.latest_checkpoint().note
    size = world.store.size()
    del world.store._state.entries[size - 3 :]
    world.store._state.checkpoints = {
        k: v for k, v in world.store._state.checkpoints.items() if k <= size - 3
    }
    report = run_audit(world, saved=saved)
    assert report.checks == ["log_truncated"]
    assert report.first_damaged_index == size - 3


def test_saved_checkpoint_that_the_log_extends_is_clean():
    world = populated(4)
    saved = world.store.latest_checkpoint().note
    for _ in range(5):
        world.ledger.append(world.statement("farm-1"))
    world.ledger.flush_checkpoint()
    assert run_audit(world, saved=saved).ok


def test_findings_are_capped_but_counted():
    world = populated(30)
    for i in range(3, 30):
        replace(world.store, i, accepted_ms=1)
    report = audit_log(
        world.store.entries(0, world.store.size()),
        [c.note for c in world.store.checkpoints()],
        log_verifier=world.verifier,
        max_findings=5,
    )
    assert len(report.findings) == 5
    assert report.findings_truncated


class TamperMachine(RuleBasedStateMachine):
    """Append valid and invalid statements, tamper below the service, and audit."""

    def __init__(self) -> None:
        super().__init__()
        self.world = new_world()
        self.world.enrol("farm-1")
        self.world.enrol("farm-2")
        self.model_size = 3
        self.honest: list[Entry] | None = None  # a trusted copy, taken at the first tamper

    @property
    def first_damaged(self) -> int | None:
        """The plain model: the first position where the store differs from the honest log."""
        if self.honest is None:
            return None
        current = self.world.store._state.entries
        for position, (held, honest) in enumerate(zip(current, self.honest, strict=False)):
            if held != honest:
                return position
        return len(current) if len(current) < len(self.honest) else None

    def before_tamper(self) -> None:
        if self.honest is None:
            self.honest = list(self.world.store._state.entries)

    @precondition(lambda self: self.honest is None)
    @rule(who=st.sampled_from(["farm-1", "farm-2"]), n=st.integers(1, 4))
    def append(self, who, n):
        results = self.world.ledger.append_batch([self.world.statement(who) for _ in range(n)])
        assert [r.entry.index for r in results] == list(range(self.model_size, self.model_size + n))
        self.model_size += n

    @precondition(lambda self: self.honest is None)
    @rule()
    def append_invalid(self):
        size = self.world.store.size()
        with pytest.raises(StatementError):
            self.world.ledger.append(self.world.statement_by(Signer.generate()))
        assert self.world.store.size() == size

    @rule(data=st.data())
    def tamper_bytes(self, data):
        self.before_tamper()
        size = self.world.store.size()
        i = data.draw(st.integers(0, size - 1))
        entry = self.world.store._state.entries[i]
        field = data.draw(st.sampled_from(["statement", "signature", "accepted_ms", "prev"]))
        if field == "accepted_ms":
            replace(self.world.store, i, accepted_ms=entry.accepted_ms + 1)
        else:
            raw = bytearray(getattr(entry, field))
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
            replace(self.world.store, i, **{field: bytes(raw)})

    @precondition(lambda self: self.world.store.size() > 1)
    @rule(data=st.data())
    def delete(self, data):
        self.before_tamper()
        i = data.draw(st.integers(0, self.world.store.size() - 1))
        del self.world.store._state.entries[i]

    @precondition(lambda self: self.world.store.size() > 2)
    @rule(data=st.data())
    def swap(self, data):
        self.before_tamper()
        size = self.world.store.size()
        i = data.draw(st.integers(0, size - 2))
        j = data.draw(st.integers(i + 1, size - 1))
        entries = self.world.store._state.entries
        entries[i], entries[j] = entries[j], entries[i]

    @precondition(lambda self: self.world.store.size() > 1)
    @rule(data=st.data())
    def truncate(self, data):
        self.before_tamper()
        k = data.draw(st.integers(1, self.world.store.size() - 1))
        del self.world.store._state.entries[k:]

    @invariant()
    def audit_names_first_damaged_index(self):
        report = run_audit(self.world)
        if self.first_damaged is None:
            assert report.ok, report.to_text()
        else:
            assert report.first_damaged_index == self.first_damaged, report.to_text()


TamperMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)
TestTamperMachine = TamperMachine.TestCase
