"""Export bundles and proof bundles: exact lines, streaming reads, resuming, offline proofs."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from client.demo import run_demo
from client.export import DbSource, build_proof_bundle
from ledger.bundle import (
    BundleCheckpoint,
    BundleError,
    BundleHeader,
    BundleReader,
    BundleWriter,
    ProofBundle,
    TlogProof,
    entry_line,
    parse_entry_line,
    resume_point,
    verify_proof_bundle,
)
from ledger.checkpoint import NoteVerifier, build_vkey, build_witness_vkey, cosign_checkpoint
from ledger.encoding import canonical_bytes
from ledger.keys import Signer
from ledger.storage import StoredCheckpoint
from tests.ledger.builders import BASE_MS, ORIGIN, World, new_world
from tests.ledger.test_audit import populated


def write_bundle(world: World, *, end: bool = True) -> bytes:
    store = world.store
    size = store.size()
    buffer = io.BytesIO()
    writer = BundleWriter(buffer)
    writer.begin(
        BundleHeader(origin=ORIGIN, vkey=world.verifier.to_vkey(), size=size),
        [BundleCheckpoint(size=c.size, note=c.note) for c in store.checkpoints()],
    )
    for entry in store.entries(0, size):
        writer.entry(entry.to_bytes())
    if end:
        writer.finish(store.participants(), store.keys())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def world() -> World:
    return populated(60)


@pytest.fixture(scope="module")
def data(world: World) -> bytes:
    return write_bundle(world)


def test_every_line_is_canonical_json_in_section_order(world, data):
    import json

    lines = data.splitlines(keepends=True)
    assert all(line.endswith(b"\n") for line in lines)
    objects = [json.loads(line) for line in lines]
    for line, obj in zip(lines, objects, strict=True):
        assert canonical_bytes(obj) + b"\n" == line
    assert objects[0] == {
        "format": "mandi-bundle",
        "origin": ORIGIN,
        "size": world.store.size(),
        "version": 1,
        "vkey": world.verifier.to_vkey(),
    }
    kinds = [o.get("type") for o in objects[1:]]
    order = ["checkpoint", "entry", "participant", "key", "end"]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == order
    assert objects[-1] == {
        "checkpoints": kinds.count("checkpoint"),
        "entries": world.store.size(),
        "type": "end",
    }


def test_reader_streams_entries_checkpoints_and_registry(world, data):
    reader = BundleReader(io.BytesIO(data))
    size = world.store.size()
    assert reader.header.size == size
    assert [c.note for c in reader.checkpoints] == [c.note for c in world.store.checkpoints()]
    assert list(reader.entries()) == list(world.store.entries(0, size))
    tail = reader.tail()
    assert tail.end == (size, len(reader.checkpoints))
    assert tail.participants == tuple(world.store.participants())
    assert tail.keys == tuple(world.store.keys())
    assert tail.problems == ()


def test_tail_without_reading_entries_first(world, data):
    tail = BundleReader(io.BytesIO(data)).tail()
    assert tail.end is not None
    assert len(tail.keys) == len(world.store.keys())


@pytest.mark.parametrize("start", [0, 1, 2, 17, 31, 32, 40, 61, 62, 63, 64, 500])
def test_entries_from_an_index_by_bisection(world, data, start):
    size = world.store.size()
    got = [e.index for e in BundleReader(io.BytesIO(data)).entries(start)]
    assert got == list(range(min(start, size), size))


def test_entry_lines_round_trip_and_reject_other_shapes():
    raw = b'{"accepted_ms":1,"index":0}'
    assert parse_entry_line(entry_line(raw)) == raw
    for bad in (
        b'{"entry":"eyJ=","type":"entry"}\n',  # not canonical base64
        b'{"type":"entry","entry":"e30="}\n',  # keys out of canonical order
        b'{"entry":"e30=","type":"entry"} \n',
        b"[]\n",
    ):
        with pytest.raises(BundleError):
            parse_entry_line(bad)


def test_header_must_be_a_known_format_and_version():
    for header in (
        b'{"format":"other","origin":"o","size":0,"version":1,"vkey":"v"}\n',
        b'{"format":"mandi-bundle","origin":"o","size":0,"version":2,"vkey":"v"}\n',
        b'{"format":"mandi-bundle","origin":"o","size":-1,"version":1,"vkey":"v"}\n',
        b"not json\n",
        b"",
    ):
        with pytest.raises(BundleError):
            BundleReader(io.BytesIO(header))


def test_resume_point_after_a_cut_anywhere(world, data):
    size = world.store.size()
    lines = data.splitlines(keepends=True)
    first_entry = next(i for i, line in enumerate(lines) if line.startswith(b'{"entry"'))
    for complete in (0, 1, 30, size):
        body = b"".join(lines[: first_entry + complete])
        for extra in (b"", lines[first_entry + complete][:25] if complete < size else b""):
            point = resume_point(io.BytesIO(body + extra))
            assert point.next_index == complete
            assert point.truncate_to == len(body)
            assert not point.complete
            if complete:
                assert point.last_entry == parse_entry_line(lines[first_entry + complete - 1])
    # A registry section written before a crash is dropped too.
    partial = b"".join(lines[:-3])
    point = resume_point(io.BytesIO(partial))
    assert point.next_index == size
    assert point.truncate_to == len(b"".join(lines[: first_entry + size]))
    done = resume_point(io.BytesIO(data))
    assert done.complete


def test_unfinished_bundle_has_no_end(world):
    tail = BundleReader(io.BytesIO(write_bundle(world, end=False))).tail()
    assert tail.end is None


# --------------------------------------------------------------------------- tlog-proof


def test_tlog_proof_text_form():
    proof = TlogProof(
        index=73894,
        proof=(bytes(32), bytes([1]) * 32),
        checkpoint="example.com/log\n9\nAAAA\n\n— example.com/log sig\n",
        extra=b"entry",
    )
    text = proof.to_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ZW50cnk=\nindex 73894\n")
    assert "\n\nexample.com/log\n9\n" in text
    assert TlogProof.from_text(text) == proof
    bare = TlogProof(index=0, proof=(), checkpoint="x\n")
    assert bare.to_text() == "c2sp.org/tlog-proof@v1\nindex 0\n\nx\n"
    assert TlogProof.from_text(bare.to_text()) == bare
    for bad in (
        text.replace("index 73894", "index 073894"),
        text.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
        text.replace("\n\n", "\n"),
        text.replace("extra ZW50cnk=\nindex 73894\n", "extra ZW50cnk=\n"),
    ):
        with pytest.raises(BundleError):
            TlogProof.from_text(bad)


# --------------------------------------------------------------------------- proof bundles


class MemorySource(DbSource):
    """The database source's logic over a world's in-memory store."""

    def __init__(self, world: World) -> None:
        self._url = "memory"
        self.store = world.store
        self._reader = world.ledger


@pytest.fixture(scope="module")
def demo() -> World:
    world = new_world()
    start = datetime.fromtimestamp(BASE_MS / 1000 - 40 * 86400, tz=UTC)
    run_demo(world.ledger, operator_id="operator", operator=world.operator, start=start)
    world.ledger.flush_checkpoint()
    return world


LOT = "lot:mill.gujranwala:rice-09"


def test_proof_bundle_verifies_offline(demo):
    bundle, left_out = build_proof_bundle(MemorySource(demo), LOT)
    assert left_out == 0
    assert bundle.lots[0] == LOT
    assert len(bundle.lots) > 1  # the paddy it was milled from
    report = verify_proof_bundle(bundle.to_bytes(), demo.verifier)
    assert report.ok, report.to_text()
    assert {lot for e in report.events for lot in e.lots} == set(bundle.lots)
    assert report.tree_size == demo.store.size()
    assert {e.kind for e in report.events} >= {"harvest", "ship", "receive", "transform"}
    assert ProofBundle.from_bytes(bundle.to_bytes()) == bundle


def test_proof_bundle_problems_are_named(demo):
    bundle, _ = build_proof_bundle(MemorySource(demo), LOT)
    other = NoteVerifier.from_vkey(build_vkey(ORIGIN, Signer.generate().public))
    assert not verify_proof_bundle(bundle.to_bytes(), other).ok
    lots, text = bundle.events[2]
    proof = TlogProof.from_text(text)
    flipped = bytearray(proof.extra or b"")
    flipped[-40] ^= 1
    tampered = TlogProof(
        index=proof.index, proof=proof.proof, checkpoint=proof.checkpoint, extra=bytes(flipped)
    )
    events = list(bundle.events)
    events[2] = (lots, tampered.to_text())
    broken = ProofBundle(
        origin=bundle.origin,
        vkey=bundle.vkey,
        lot=bundle.lot,
        lots=bundle.lots,
        checkpoint=bundle.checkpoint,
        registry=bundle.registry,
        events=tuple(events),
    )
    report = verify_proof_bundle(broken.to_bytes(), demo.verifier)
    assert not report.ok
    assert any(f"index {proof.index}" in p for p in report.problems)
    # Without the registry statements, the signers' keys cannot be known.
    bare = ProofBundle(
        origin=bundle.origin,
        vkey=bundle.vkey,
        lot=bundle.lot,
        lots=bundle.lots,
        checkpoint=bundle.checkpoint,
        registry=(),
        events=bundle.events,
    )
    assert any(
        "unknown_signer" in p for p in verify_proof_bundle(bare.to_bytes(), demo.verifier).problems
    )
    with pytest.raises(BundleError):
        verify_proof_bundle(b'{"format":"mandi-bundle"}', demo.verifier)


def test_proof_bundle_with_a_witness_quorum(demo, tmp_path: Path):
    witness = Signer.from_seed(bytes([7]) * 32)
    name = "witness.example/w1"
    vkey = NoteVerifier.from_vkey(build_witness_vkey(name, witness.public))
    newest = demo.store.latest_checkpoint()
    body = newest.note[: newest.note.index("\n\n") + 1]
    cosigned = newest.note + cosign_checkpoint(witness, name, body, 1_800_000_000)
    demo.store._state.checkpoints[newest.size] = StoredCheckpoint(
        size=newest.size, note=cosigned, created_ms=newest.created_ms
    )
    try:
        bundle, _ = build_proof_bundle(MemorySource(demo), LOT)
        report = verify_proof_bundle(bundle.to_bytes(), demo.verifier, [vkey], quorum=1)
        assert report.ok, report.to_text()
        assert report.witnesses == (name,)
    finally:
        demo.store._state.checkpoints[newest.size] = newest
    plain, _ = build_proof_bundle(MemorySource(demo), LOT)
    unmet = verify_proof_bundle(plain.to_bytes(), demo.verifier, [vkey], quorum=1)
    assert not unmet.ok
    assert "quorum_not_met" in unmet.problems[0]
