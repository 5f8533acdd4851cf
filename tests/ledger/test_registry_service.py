"""The service and the registry: append, idempotency, batches, enrol/rotate/revoke, proofs."""

from __future__ import annotations

import pytest

from ledger.checkpoint import open_checkpoint
from ledger.errors import EncodingError, ProofError, SignatureError, StatementError
from ledger.hashing import ZERO_HASH
from ledger.keys import Signer
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.registry import (
    build_enrolment,
    build_enrolment_request,
    build_revocation,
    build_rotation,
    build_rotation_request,
)
from ledger.service import MAX_BATCH
from ledger.statements import SignedStatement, Statement, sign_statement
from tests.ledger.builders import ORIGIN, TIME, new_world, seeded


def snapshot(world):
    store = world.store
    return (
        store.size(),
        [(k.key_id, k.revoked_at) for k in store.keys()],  # noqa: SIM118 - Store.keys() is a method, not dict.keys
        [p.participant_id for p in store.participants()],
        [c.size for c in store.checkpoints()],
    )


def test_genesis_registers_operator_and_chains_from_zero():
    world = new_world()
    entry = world.store.entry(0)
    assert entry.prev == ZERO_HASH
    assert entry.signed_statement().statement.kind == "genesis"
    operator = world.store.participant("operator")
    assert operator is not None
    assert operator.operator
    key = world.store.key(world.operator.key_id)
    assert key is not None
    assert key.added_at == 0
    assert world.store.latest_checkpoint().size == 1


def test_append_chains_and_is_idempotent():
    world = new_world()
    world.enrol("farm-1")
    signed = world.statement("farm-1")
    first = world.ledger.append(signed)
    again = world.ledger.append(signed)
    assert first.created
    assert not again.created
    assert again.entry == first.entry
    assert world.ledger.size() == 3
    assert first.entry.prev == world.store.entry(1).leaf_hash


def test_resubmitting_with_a_reencoded_signature_is_the_same_event():
    world = new_world()
    world.enrol("farm-1")
    signed = world.statement("farm-1")
    world.ledger.append(signed)
    # A second valid signature over the same statement (Ed25519 is deterministic, so
    # take the same bytes): the event id is the statement's, so no second entry.
    clone = SignedStatement(statement=signed.statement, signature=signed.signature)
    assert not world.ledger.append(clone).created
    assert world.ledger.size() == 3


def test_unregistered_signer_refused_and_nothing_changes():
    world = new_world()
    before = snapshot(world)
    with pytest.raises(StatementError) as info:
        world.ledger.append(world.statement_by(Signer.generate()))
    assert info.value.code == "unknown_signer"
    assert snapshot(world) == before


def test_bad_signature_refused():
    world = new_world()
    world.enrol("farm-1")
    signed = world.statement("farm-1")
    forged = SignedStatement(statement=signed.statement, signature=bytes(64))
    before = snapshot(world)
    with pytest.raises(SignatureError) as info:
        world.ledger.append(forged)
    assert info.value.field == "signature"
    assert snapshot(world) == before


def test_wrong_origin_refused():
    world = new_world()
    signer = world.enrol("farm-1")
    stmt = Statement.build(
        origin="other.example/log", kind="harvest", signer=signer.key_id, time=TIME, body={}
    )
    with pytest.raises(StatementError) as info:
        world.ledger.append(sign_statement(signer, stmt))
    assert info.value.code == "wrong_origin"


def test_second_genesis_refused():
    world = new_world()
    request = build_enrolment_request(
        origin=ORIGIN, participant_id="x", signer=seeded(9), time=TIME
    )
    from ledger.registry import build_genesis

    with pytest.raises(StatementError) as info:
        world.ledger.append(
            build_genesis(
                origin=ORIGIN, log_signer=world.log_signer, operator_request=request, time=TIME
            )
        )
    assert info.value.code == "genesis_not_first"


def test_batch_is_all_or_nothing():
    world = new_world()
    world.enrol("farm-1")
    good = [world.statement("farm-1") for _ in range(3)]
    bad = world.statement_by(Signer.generate())
    before = snapshot(world)
    with pytest.raises(StatementError):
        world.ledger.append_batch([*good, bad])
    assert snapshot(world) == before
    results = world.ledger.append_batch([*good, good[0]])
    assert [r.created for r in results] == [True, True, True, False]
    assert results[3].entry == results[0].entry


def test_batch_limit():
    world = new_world()
    world.enrol("farm-1")
    with pytest.raises(ValueError, match=str(MAX_BATCH)):
        world.ledger.append_batch([world.statement("farm-1")] * (MAX_BATCH + 1))


def test_only_the_operator_enrols():
    world = new_world()
    farmer = world.enrol("farm-1")
    request = build_enrolment_request(
        origin=ORIGIN, participant_id="farm-2", signer=Signer.generate(), time=TIME
    )
    stmt = build_enrolment(origin=ORIGIN, operator=farmer, request=request, time=TIME)
    with pytest.raises(StatementError) as info:
        world.ledger.append(stmt)
    assert info.value.code == "not_operator"


def test_enrolment_request_must_be_signed_by_the_enrolled_key():
    world = new_world()
    newcomer = Signer.generate()
    request = build_enrolment_request(
        origin=ORIGIN, participant_id="farm-2", signer=newcomer, time=TIME
    )
    request.signatures["key"] = request.signatures["key"][:-4] + "AAA="
    with pytest.raises(SignatureError) as info:
        world.ledger.append(
            build_enrolment(origin=ORIGIN, operator=world.operator, request=request, time=TIME)
        )
    assert info.value.code == "bad_request_signature"


def test_enrolment_request_unknown_field_named():
    world = new_world()
    request = build_enrolment_request(
        origin=ORIGIN, participant_id="farm-2", signer=Signer.generate(), time=TIME
    )
    request.request["colour"] = "red"
    with pytest.raises(EncodingError) as info:
        world.ledger.append(
            build_enrolment(origin=ORIGIN, operator=world.operator, request=request, time=TIME)
        )
    assert info.value.field == "body.request.colour"


def test_key_cannot_be_enrolled_twice():
    world = new_world()
    key = world.enrol("farm-1")
    request = build_enrolment_request(origin=ORIGIN, participant_id="farm-2", signer=key, time=TIME)
    with pytest.raises(StatementError) as info:
        world.ledger.append(
            build_enrolment(origin=ORIGIN, operator=world.operator, request=request, time=TIME)
        )
    assert info.value.code == "key_exists"


def test_rotation_needs_both_keys_and_moves_signing_power():
    world = new_world()
    old = world.enrol("farm-1")
    new = Signer.generate()
    request = build_rotation_request(
        origin=ORIGIN, participant_id="farm-1", old=old, new=new, time=TIME
    )
    forged = build_rotation_request(
        origin=ORIGIN, participant_id="farm-1", old=old, new=new, time=TIME
    )
    forged.signatures["new"] = request.signatures["old"]
    with pytest.raises(SignatureError):
        world.ledger.append(
            build_rotation(origin=ORIGIN, operator=world.operator, request=forged, time=TIME)
        )
    before = world.ledger.append(world.statement_by(old))
    rotation = world.ledger.append(
        build_rotation(origin=ORIGIN, operator=world.operator, request=request, time=TIME)
    )
    with pytest.raises(StatementError) as info:
        world.ledger.append(world.statement_by(old))
    assert info.value.code == "key_revoked"
    world.signers["farm-1"] = new
    world.ledger.append(world.statement_by(new))
    record = world.store.key(old.key_id)
    assert record.revoked_at == rotation.entry.index
    assert record.valid_at(before.entry.index)
    assert world.store.key(new.key_id).participant == "farm-1"


def test_revocation_takes_effect_from_its_index_and_recovery_enrols_new_key():
    world = new_world()
    lost = world.enrol("farm-1")
    earlier = world.ledger.append(world.statement_by(lost))
    revoked = world.ledger.append(
        build_revocation(
            origin=ORIGIN,
            operator=world.operator,
            participant_id="farm-1",
            key_id=lost.key_id,
            reason="lost",
            time=TIME,
        )
    )
    with pytest.raises(StatementError) as info:
        world.ledger.append(world.statement_by(lost))
    assert info.value.code == "key_revoked"
    assert world.store.key(lost.key_id).valid_at(earlier.entry.index)
    assert not world.store.key(lost.key_id).valid_at(revoked.entry.index)
    with pytest.raises(StatementError) as info:
        world.ledger.append(
            build_revocation(
                origin=ORIGIN,
                operator=world.operator,
                participant_id="farm-1",
                key_id=lost.key_id,
                reason="again",
                time=TIME,
            )
        )
    assert info.value.code == "key_revoked"
    fresh = world.enrol("farm-1")
    world.ledger.append(world.statement_by(fresh))
    assert world.store.key(fresh.key_id).participant == "farm-1"


def test_revoking_someone_elses_key_refused():
    world = new_world()
    a = world.enrol("farm-1")
    world.enrol("farm-2")
    with pytest.raises(StatementError) as info:
        world.ledger.append(
            build_revocation(
                origin=ORIGIN,
                operator=world.operator,
                participant_id="farm-2",
                key_id=a.key_id,
                reason="x",
                time=TIME,
            )
        )
    assert info.value.code == "unknown_key"


def test_proofs_from_storage_verify_against_checkpoint():
    world = new_world()
    world.enrol("farm-1")
    for _ in range(20):
        world.ledger.append(world.statement("farm-1"))
    world.ledger.flush_checkpoint()
    cp = open_checkpoint(world.ledger.latest_checkpoint().note, world.verifier).checkpoint
    assert cp.size == world.ledger.size() == 22
    assert cp.root_hash == world.ledger.root_hash(22)
    for index in (0, 1, 7, 21):
        proof = world.ledger.inclusion_proof(index, 22)
        verify_inclusion(world.store.entry(index).leaf_hash, index, 22, proof, cp.root_hash)
    for size1 in (1, 5, 16, 22):
        proof = world.ledger.consistency_proof(size1, 22)
        verify_consistency(size1, 22, proof, world.ledger.root_hash(size1), cp.root_hash)
    for args in ((22, 22), (-1, 5), (0, 23)):
        with pytest.raises(ProofError):
            world.ledger.inclusion_proof(*args)
    with pytest.raises(ProofError):
        world.ledger.consistency_proof(5, 4)


def test_checkpoint_delay():
    world = new_world(checkpoint_delay_ms=1000)
    world.enrol("farm-1")
    # Enrolment came within the delay of genesis's checkpoint: not signed yet.
    assert world.store.latest_checkpoint().size == 1
    world.clock.now += 1000
    world.ledger.append(world.statement("farm-1"))
    assert world.store.latest_checkpoint().size == 3
    world.ledger.append(world.statement("farm-1"))
    assert world.store.latest_checkpoint().size == 3
    # The timer's flush covers the pending append without waiting for another one.
    assert world.ledger.flush_checkpoint().size == 4
    assert world.ledger.flush_checkpoint().size == 4
