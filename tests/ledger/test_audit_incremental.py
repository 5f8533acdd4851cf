"""Incremental audit: resume from a saved state, check only new entries, miss nothing new.

The saved state holds the Merkle compact range, the last leaf, the newest
checkpoint, the replayed registry and domain state, and every audited leaf.
Resuming from it must give the same findings on the new entries as a full
audit of the whole log gives on them, including rules that depend on state
built before the save.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ledger.admission import admit
from ledger.audit import ReplayState, audit_log
from ledger.audit_parallel import AuditOutcome, audit_entries, first_rewritten
from ledger.audit_state import AuditStateError, StateMeta, StoredReplay, nodes_of
from ledger.checkpoint import NoteVerifier, build_vkey
from ledger.keys import Signer
from ledger.statements import SignedStatement
from tests.ledger.builders import ORIGIN, World, harvest_body, new_world
from tests.ledger.test_audit import rebuild_with_extra

ROAD = {"mode": "road"}


def world_with_trade() -> World:
    world = new_world()
    world.enrol("farm-1")
    world.enrol("market-1", role="market")
    for i in range(6):
        world.ledger.append(world.statement("farm-1", body=harvest_body(f"lot:farm-1:h{i}")))
    world.ledger.flush_checkpoint()
    return world


def ship(world: World, lot: str, vehicle: str = "LEA-1") -> SignedStatement:
    body = {
        "lot": lot,
        "to": "market-1",
        "quantity": {"amount": 1000, "unit": "kg"},
        "transport": {**ROAD, "vehicle": vehicle},
    }
    return world.statement("farm-1", kind="ship", body=body)


def notes(world: World) -> list[str]:
    return [c.note for c in world.store.checkpoints()]


def full_audit(world: World, path: Path) -> AuditOutcome:
    replay = StoredReplay.create(path)
    size = world.store.size()
    outcome = audit_entries(
        world.store.entries(0, size), notes(world), log_verifier=world.verifier, replay=replay
    )
    assert outcome.report.ok, outcome.report.to_text()
    size_cp, root, note = outcome.checkpoint
    replay.commit(
        StateMeta(
            origin=ORIGIN,
            vkey=world.verifier.to_vkey(),
            size=outcome.size,
            last_leaf=outcome.last_leaf,
            nodes=nodes_of(outcome.tree),
            checkpoint=note,
            checkpoint_size=size_cp,
            checkpoint_root=root,
        ),
        final=path,
    )
    return outcome


def resume(world: World, path: Path, **kw) -> AuditOutcome:
    replay, meta = StoredReplay.open(path)
    try:
        return audit_entries(
            world.store.entries(meta.size, world.store.size()),
            notes(world),
            log_verifier=world.verifier,
            replay=replay,
            resume=meta,
            **kw,
        )
    finally:
        replay.close()


def test_resume_checks_only_new_entries_and_their_checkpoint(tmp_path):
    world = world_with_trade()
    state = tmp_path / "state"
    first = full_audit(world, state)
    world.ledger.append(ship(world, "lot:farm-1:h2"))  # a lot created before the save
    for i in range(6, 9):
        world.ledger.append(world.statement("farm-1", body=harvest_body(f"lot:farm-1:h{i}")))
    world.ledger.flush_checkpoint()
    outcome = resume(world, state, consistency_proof=world.ledger.consistency_proof)
    report = outcome.report
    assert report.ok, report.to_text()
    assert outcome.start == first.size
    assert report.entries_checked == world.store.size() - first.size
    # The checkpoints at and after the saved size; older ones lie before the start.
    newer = [c for c in world.store.checkpoints() if c.size >= first.size]
    assert report.checkpoints_checked == len(newer) > 1
    assert report.root_hash == world.ledger.root_hash(world.store.size()).hex()


def test_rules_that_need_state_from_before_the_save(tmp_path):
    world = world_with_trade()
    world.ledger.append(ship(world, "lot:farm-1:h1"))
    world.ledger.flush_checkpoint()
    state = tmp_path / "state"
    full_audit(world, state)
    # Shipping the same lot again breaks a rule whose state (in transit) predates the save;
    # a dishonest operator stores it anyway.
    forged = rebuild_with_extra(world, ship(world, "lot:farm-1:h1", vehicle="LEA-2"))
    incremental = resume(forged, state).report
    size = forged.store.size()
    full = audit_log(forged.store.entries(0, size), notes(forged), log_verifier=forged.verifier)
    assert incremental.findings == full.findings
    assert [(f.index, f.check) for f in incremental.findings] == [(size - 1, "in_transit")]


def test_state_round_trip_matches_a_full_replay(tmp_path):
    world = world_with_trade()
    world.ledger.append(ship(world, "lot:farm-1:h0"))
    state = tmp_path / "state"
    outcome = full_audit(world, state)
    reference = ReplayState()
    for entry in world.store.entries(0, world.store.size()):
        admission = admit(
            entry.signed_statement(),
            index=entry.index,
            accepted_ms=entry.accepted_ms,
            log=world.ledger.log,
            view=reference,
        )
        reference.registry.apply(admission.changes)
        reference.domain.apply(admission.domain)
    replay, meta = StoredReplay.open(state)
    try:
        assert meta.size == outcome.size
        assert meta.compact_range().root() == outcome.tree.root()
        assert replay.registry.keys == reference.registry.keys
        assert replay.registry.participants == reference.registry.participants
        for lot_id, lot in reference.domain.lots.items():
            assert replay.lot(lot_id) == lot
        for event_id in reference.domain.events:
            assert replay.event(event_id) == reference.domain.event(event_id)
        for event_id, shipment in reference.domain.shipments.items():
            assert replay.shipment(event_id) == shipment
        assert replay.lot("lot:farm-1:never") is None
        leaves = [leaf for _, leaf in replay.leaves(0, meta.size)]
        assert leaves == [e.leaf_hash for e in world.store.entries(0, meta.size)]
    finally:
        replay.close()


def test_a_state_not_committed_is_left_as_it_was(tmp_path):
    world = world_with_trade()
    state = tmp_path / "state"
    full_audit(world, state)
    before = state.read_bytes()
    world.ledger.append(world.statement("farm-1", body=harvest_body("lot:farm-1:new")))
    world.ledger.flush_checkpoint()
    assert resume(world, state).report.ok
    assert state.read_bytes() == before
    replay, meta = StoredReplay.open(state)
    replay.close()
    assert meta.size == world.store.size() - 1


def test_committed_resume_advances_the_state(tmp_path):
    world = world_with_trade()
    state = tmp_path / "state"
    full_audit(world, state)
    world.ledger.append(world.statement("farm-1", body=harvest_body("lot:farm-1:new")))
    world.ledger.flush_checkpoint()
    copy = tmp_path / "copy"
    shutil.copyfile(state, copy)
    replay, meta = StoredReplay.open(copy)
    outcome = audit_entries(
        world.store.entries(meta.size, world.store.size()),
        notes(world),
        log_verifier=world.verifier,
        replay=replay,
        resume=meta,
    )
    assert outcome.report.ok
    cp = outcome.checkpoint
    replay.commit(
        StateMeta(
            origin=ORIGIN,
            vkey=meta.vkey,
            size=outcome.size,
            last_leaf=outcome.last_leaf,
            nodes=nodes_of(outcome.tree),
            checkpoint=cp[2],
            checkpoint_size=cp[0],
            checkpoint_root=cp[1],
        )
    )
    replay, meta = StoredReplay.open(copy)
    try:
        assert meta.size == world.store.size()
        assert replay.lot("lot:farm-1:new") is not None
    finally:
        replay.close()
    assert resume(world, copy).report.entries_checked == 0


def test_rewritten_history_is_located_and_inconsistent(tmp_path):
    honest = world_with_trade()
    state = tmp_path / "state"
    full_audit(honest, state)
    # The operator rebuilds the log without its 4th harvest and re-signs everything.
    rewritten = new_world()
    rewritten.signers = honest.signers
    rewritten.enrol("farm-1", honest.signers["farm-1"])
    rewritten.enrol("market-1", honest.signers["market-1"], role="market")
    for entry in list(honest.store.entries(3, honest.store.size())):
        if b"lot:farm-1:h3" not in entry.statement:
            rewritten.ledger.append(entry.signed_statement())
    for i in range(3):
        rewritten.ledger.append(
            rewritten.statement("farm-1", body=harvest_body(f"lot:farm-1:x{i}"))
        )
    rewritten.ledger.flush_checkpoint()
    report = resume(rewritten, state, consistency_proof=rewritten.ledger.consistency_proof).report
    assert {"chain_broken", "inconsistent_with_saved_checkpoint"} <= set(report.checks)
    replay, meta = StoredReplay.open(state)
    try:
        now = ((e.index, e.leaf_hash) for e in rewritten.store.entries(0, meta.size))
        located = first_rewritten(replay.leaves(0, meta.size), now)
    finally:
        replay.close()
    harvests = [
        e.index
        for e in honest.store.entries(0, honest.store.size())
        if b"lot:farm-1:h3" in e.statement
    ]
    assert located is not None
    assert located.index == harvests[0]


def test_a_state_of_another_log_is_refused(tmp_path):
    world = world_with_trade()
    state = tmp_path / "state"
    full_audit(world, state)
    other = NoteVerifier.from_vkey(build_vkey(ORIGIN, Signer.generate().public))
    replay, meta = StoredReplay.open(state)
    try:
        with pytest.raises(ValueError, match="another log"):
            audit_entries([], [], log_verifier=other, replay=replay, resume=meta)
    finally:
        replay.close()
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(AuditStateError):
        StoredReplay.open(junk)
    with pytest.raises(AuditStateError):
        StoredReplay.open(tmp_path / "missing")
