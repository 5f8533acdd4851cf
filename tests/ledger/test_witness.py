"""Tests for ledger.witness: the tlog-witness add-checkpoint format and the witness's checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import (
    SIG_TYPE_COSIGNATURE_V1,
    Checkpoint,
    NoteVerifier,
    sign_checkpoint,
)
from ledger.errors import EncodingError
from ledger.hashing import EMPTY_ROOT, Digest, sha256
from ledger.keys import Signer
from ledger.witness import (
    MAX_PROOF_LINES,
    AddCheckpointRequest,
    WitnessedTree,
    WitnessRefusalError,
    check_add_checkpoint,
    format_size_response,
    log_verifiers,
    parse_size_response,
)
from tests.ledger.merkle_reference import mth, proof

ORIGIN = "mandi.example/log"
LOG = Signer.from_seed(bytes(range(32)))
FORK = Signer.from_seed(bytes(range(1, 33)))
LOG_V = NoteVerifier.from_key(ORIGIN, LOG.public)
LOGS = {ORIGIN: LOG_V}
LEAVES = [Digest(sha256(bytes([i]))) for i in range(40)]
OTHER_LEAVES = [*LEAVES[:20], *(Digest(sha256(bytes([i, 1]))) for i in range(20, 40))]


def _note(size: int, leaves: list[Digest] = LEAVES, signer: Signer = LOG) -> str:
    root = mth(leaves[:size]) if size else EMPTY_ROOT
    return sign_checkpoint(
        Checkpoint(origin=ORIGIN, size=size, root_hash=root), ORIGIN, signer
    ).to_text()


def _request(old: int, new: int, leaves: list[Digest] = LEAVES) -> AddCheckpointRequest:
    hashes = tuple(proof(old, leaves[:new])) if 0 < old < new else ()
    return AddCheckpointRequest(old_size=old, proof=hashes, note=_note(new, leaves))


def _known(size: int, leaves: list[Digest] = LEAVES) -> WitnessedTree:
    return WitnessedTree(size=size, root_hash=mth(leaves[:size]) if size else EMPTY_ROOT)


def _refusal(request: AddCheckpointRequest, known: WitnessedTree | None) -> WitnessRefusalError:
    with pytest.raises(WitnessRefusalError) as info:
        check_add_checkpoint(request, LOGS, lambda origin: known)
    return info.value


def test_request_bytes_are_the_spec_format():
    request = AddCheckpointRequest(old_size=3, proof=(bytes(32), bytes([1]) * 32), note="n\n")
    assert request.to_bytes() == (
        b"old 3\n"
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        b"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
        b"\n"
        b"n\n"
    )
    assert AddCheckpointRequest.from_bytes(request.to_bytes()) == request


@given(old=st.integers(0, 2**64 - 1), n=st.integers(0, MAX_PROOF_LINES))
def test_request_round_trips(old: int, n: int):
    request = AddCheckpointRequest(
        old_size=old, proof=tuple(sha256(bytes([i])) for i in range(n)), note=_note(5)
    )
    assert AddCheckpointRequest.from_bytes(request.to_bytes()) == request


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"old 3\n", "body"),
        (b"new 3\n\nx", "old"),
        (b"old 03\n\nx", "old"),
        (b"old -1\n\nx", "old"),
        (b"old 3 \n\nx", "old"),
        (b"old 3\nAAAA\n\nx", "proof[0]"),
        (b"old 3\nnot base64!\n\nx", "proof[0]"),
        (b"old 1\n" + (b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64) + b"\nx", "proof"),
        (b"\xff\n\n", "body"),
    ],
)
def test_malformed_request_names_the_part(body: bytes, field: str):
    with pytest.raises(EncodingError) as info:
        AddCheckpointRequest.from_bytes(body)
    assert info.value.code == "bad_witness_request"
    assert info.value.field == field


def test_size_response_round_trip_and_strictness():
    assert parse_size_response(format_size_response(50)) == 50
    assert parse_size_response(b"0\n") == 0
    for bad in (b"50", b"050\n", b"", b"5\n6\n", b"x\n"):
        with pytest.raises(EncodingError):
            parse_size_response(bad)


def test_first_checkpoint_then_extension_is_accepted():
    verified = check_add_checkpoint(_request(0, 10), LOGS, lambda origin: None)
    assert verified.checkpoint.size == 10
    verified = check_add_checkpoint(_request(10, 33), LOGS, lambda origin: _known(10))
    assert verified.checkpoint.root_hash == mth(LEAVES[:33])


def test_same_checkpoint_again_is_accepted():
    verified = check_add_checkpoint(_request(10, 10), LOGS, lambda origin: _known(10))
    assert verified.checkpoint.size == 10


def test_unknown_origin_is_404():
    with pytest.raises(WitnessRefusalError) as info:
        check_add_checkpoint(_request(0, 5), {}, lambda origin: None)
    assert (info.value.status, info.value.code) == (404, "unknown_log")


def test_wrong_log_key_is_403():
    request = AddCheckpointRequest(old_size=0, proof=(), note=_note(5, signer=FORK))
    refusal = _refusal(request, None)
    assert (refusal.status, refusal.code) == (403, "bad_log_signature")


def test_malformed_note_is_400():
    refusal = _refusal(AddCheckpointRequest(old_size=0, proof=(), note="not a note"), None)
    assert (refusal.status, refusal.field) == (400, "checkpoint")


def test_old_larger_than_new_is_400():
    refusal = _refusal(AddCheckpointRequest(old_size=11, proof=(), note=_note(10)), _known(11))
    assert (refusal.status, refusal.code) == (400, "old_size_too_large")


@pytest.mark.parametrize(("old", "known"), [(0, 10), (5, 10), (10, 0), (12, 10)])
def test_stale_old_size_is_409_with_known_size(old: int, known: int):
    refusal = _refusal(_request(old, 20), _known(known) if known else None)
    assert (refusal.status, refusal.known_size) == (409, known)


def test_rollback_is_refused():
    # A log that shrank cannot name the witness's size as old: 409 (old > new is 400).
    refusal = _refusal(_request(5, 5), _known(10))
    assert (refusal.status, refusal.known_size) == (409, 10)


def test_fork_of_the_same_size_is_409():
    refusal = _refusal(_request(30, 30, OTHER_LEAVES), _known(30))
    assert (refusal.status, refusal.code, refusal.known_size) == (409, "conflicting_root", 30)


def test_fork_that_grew_fails_the_proof_with_422():
    # The witness holds LEAVES at 30; the fork's size-40 tree does not extend it.
    refusal = _refusal(_request(30, 40, OTHER_LEAVES), _known(30))
    assert (refusal.status, refusal.code) == (422, "bad_consistency_proof")


def test_tampered_proof_is_422():
    request = _request(10, 33)
    bad = AddCheckpointRequest(
        old_size=10, proof=(bytes(32), *request.proof[1:]), note=request.note
    )
    refusal = _refusal(bad, _known(10))
    assert refusal.status == 422


def test_log_verifiers_rejects_witness_keys_and_duplicates():
    assert log_verifiers([LOG_V]) == {ORIGIN: LOG_V}
    with pytest.raises(ValueError, match="type 0x01"):
        log_verifiers([NoteVerifier.from_key("w", LOG.public, SIG_TYPE_COSIGNATURE_V1)])
    with pytest.raises(ValueError, match="two log keys"):
        log_verifiers([LOG_V, NoteVerifier.from_key(ORIGIN, FORK.public)])
