"""The parallel auditor gives exactly the sequential audit's findings, clean or damaged.

libsodium is allowed to do the bulk signature checks only because it answers as
``cryptography`` does on every Wycheproof vector (the first test); even then a
signature it refuses is checked again by ``cryptography``, so the finding comes
from the same code as in :func:`ledger.audit.audit_log`.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from client.demo import run_demo
from ledger.audit import audit_log
from ledger.audit_parallel import (
    _decode_entry,
    audit_entries,
    compare_registry,
    decode_chunk,
    first_rewritten,
)
from ledger.audit_parallel import _Directory as Directory
from ledger.audit_state import StoredReplay
from ledger.bundle import entry_line
from ledger.checkpoint import NoteVerifier, build_witness_vkey, cosign_checkpoint
from ledger.encoding import _canonical_object_fast, _decode_canonical_strict, decode_canonical
from ledger.errors import LedgerError
from ledger.keys import Signer, libsodium_accepts
from ledger.statements import Entry
from tests.ledger.builders import BASE_MS, World, new_world
from tests.ledger.test_keys import CASES

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- libsodium


@pytest.mark.parametrize(("pk", "case"), CASES, ids=[f"tc{t['tcId']}" for _, t in CASES])
def test_bulk_verifier_answers_as_cryptography_on_wycheproof(pk, case):
    public, msg, sig = bytes.fromhex(pk), bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    # The reference is cryptography alone (VerifyingKey.verify itself asks libsodium first).
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
        reference = True
    except (InvalidSignature, ValueError):
        reference = False
    assert libsodium_accepts(public, sig, msg) is reference
    assert reference is (case["result"] == "valid")


# --------------------------------------------------------------------------- fixtures


def demo_world() -> World:
    """The demo story (every kind of statement, a rotation and revocations) in memory."""
    world = new_world()
    start = datetime.fromtimestamp(BASE_MS / 1000 - 40 * 86400, tz=UTC)
    run_demo(world.ledger, operator_id="operator", operator=world.operator, start=start)
    world.ledger.flush_checkpoint()
    return world


@pytest.fixture(scope="module")
def demo() -> tuple[list[Entry], list[str], NoteVerifier]:
    world = demo_world()
    size = world.store.size()
    return (
        list(world.store.entries(0, size)),
        [c.note for c in world.store.checkpoints()],
        world.verifier,
    )


def parallel(entries, notes, verifier, tmp_path: Path, *, jobs=1, chunk=37, form="entries", **kw):
    replay = StoredReplay.create(tmp_path / f"state-{jobs}-{chunk}-{form}.db")
    try:
        items = entries
        if not isinstance(entries[0], Entry):
            pass  # already in the form asked
        elif form == "entry_bytes":
            items = [e.to_bytes() for e in entries]
        elif form == "bundle_lines":
            items = [entry_line(e.to_bytes()) for e in entries]
        return audit_entries(
            items,
            notes,
            log_verifier=verifier,
            replay=replay,
            form=form,
            jobs=jobs,
            chunk_size=chunk,
            **kw,
        )
    finally:
        replay.close()


def _flip(entries: list[Entry], i: int) -> None:
    data = bytearray(entries[i].statement)
    data[len(data) // 2] ^= 0x01
    entries[i] = dataclasses.replace(entries[i], statement=bytes(data))


def _index_of(entries: list[Entry], kind: str, nth: int = 0) -> int:
    found = [i for i, e in enumerate(entries) if f'"kind":"{kind}"'.encode() in e.statement]
    return found[nth]


def _delete(entries: list[Entry]) -> None:
    del entries[200]


def _swap(entries: list[Entry]) -> None:
    entries[100], entries[300] = entries[300], entries[100]


def _truncate(entries: list[Entry]) -> None:
    del entries[600:]


def _flip_statement(entries: list[Entry]) -> None:
    _flip(entries, 150)


def _forge_enrolment(entries: list[Entry]) -> None:
    # A rejected enrolment: every later statement by that key is unknown_signer,
    # and the workers must never have learned the key.
    _flip(entries, _index_of(entries, "enrol", 3))


def _not_canonical(entries: list[Entry]) -> None:
    i = _index_of(entries, "harvest", 2)
    entries[i] = dataclasses.replace(entries[i], statement=b" " + entries[i].statement)


def _short_signature(entries: list[Entry]) -> None:
    entries[50] = dataclasses.replace(entries[50], signature=entries[50].signature[:63])


def _drop_a_shipment(entries: list[Entry]) -> None:
    # Removing a ship breaks the chain and makes its receive refer to nothing.
    del entries[_index_of(entries, "ship", 1)]


def _accepted_time(entries: list[Entry]) -> None:
    entries[400] = dataclasses.replace(entries[400], accepted_ms=1)


DAMAGE: dict[str, Callable[[list[Entry]], None]] = {
    "clean": lambda entries: None,
    "deleted": _delete,
    "swapped": _swap,
    "truncated": _truncate,
    "flipped_statement": _flip_statement,
    "forged_enrolment": _forge_enrolment,
    "not_canonical": _not_canonical,
    "short_signature": _short_signature,
    "dropped_shipment": _drop_a_shipment,
    "accepted_time": _accepted_time,
}


# --------------------------------------------------------------------------- equality


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_in_process_walk_equals_sequential_audit(damage, demo, tmp_path):
    entries, notes, verifier = demo
    entries = list(entries)
    DAMAGE[damage](entries)
    reference = audit_log(iter(entries), notes, log_verifier=verifier)
    assert reference.ok is (damage == "clean")
    outcome = parallel(entries, notes, verifier, tmp_path)
    assert outcome.report == reference
    assert outcome.size == len(entries)
    assert outcome.tree.root().hex() == reference.root_hash


@pytest.mark.parametrize("form", ["entry_bytes", "bundle_lines"])
def test_every_input_form_gives_the_same_report(form, demo, tmp_path):
    entries, notes, verifier = demo
    entries = list(entries)
    _forge_enrolment(entries)
    reference = audit_log(iter(entries), notes, log_verifier=verifier)
    assert parallel(entries, notes, verifier, tmp_path, form=form).report == reference


def test_worker_processes_equal_sequential_on_clean_and_damaged_logs(demo, tmp_path):
    entries, notes, verifier = demo
    for damage in ("clean", "forged_enrolment", "dropped_shipment"):
        damaged = list(entries)
        DAMAGE[damage](damaged)
        reference = audit_log(iter(damaged), notes, log_verifier=verifier)
        outcome = parallel(damaged, notes, verifier, tmp_path, jobs=2, chunk=16)
        assert outcome.report == reference, damage


def test_the_walk_collects_less_often_and_restores_the_collector(demo, tmp_path):
    import gc

    from ledger.audit_parallel import _WALK_GC_THRESHOLD

    entries, notes, verifier = demo
    before = gc.get_threshold()
    during: list[int] = []
    outcome = parallel(
        entries, notes, verifier, tmp_path, progress=lambda n: during.append(gc.get_threshold()[0])
    )
    assert outcome.report.ok
    assert during
    assert set(during) == {_WALK_GC_THRESHOLD}
    assert gc.get_threshold() == before


def test_malformed_bundle_lines_are_findings_not_crashes(demo, tmp_path):
    entries, notes, verifier = demo
    lines = [entry_line(e.to_bytes()) for e in entries]
    lines[10] = b'{"entry":"not base64!","type":"entry"}\n'
    lines[20] = entry_line(entries[20].to_bytes().replace(b'{"accepted_ms"', b'{ "accepted_ms"'))
    report = parallel(lines, notes, verifier, tmp_path, form="bundle_lines").report
    assert {(f.index, f.check) for f in report.findings if f.index in (10, 20)} >= {
        (10, "bundle_malformed"),
        (20, "not_canonical"),
    }
    assert report.first_damaged_index == 10


def test_decode_marks_signatures_by_known_keys_only(demo):
    entries, _notes, verifier = demo
    directory = Directory()
    directory.add([(verifier.public.key_id, verifier.public.raw)])
    genesis, enrol = decode_chunk("entries", [_tuple(entries[0]), _tuple(entries[1])], directory)
    assert genesis[0] == 0
    assert genesis[-1] == 1  # signed by the log key, which the directory holds
    assert enrol[-1] == 0  # the operator's key is not known yet: admit checks it itself
    flipped = list(entries[:1])
    data = bytearray(flipped[0].signature)
    data[0] ^= 1
    bad = dataclasses.replace(flipped[0], signature=bytes(data))
    (result,) = decode_chunk("entries", [_tuple(bad)], directory)
    assert result[-1] == -1


def _tuple(e: Entry) -> tuple:
    return (e.index, e.accepted_ms, e.prev, e.statement, e.signature)


# --------------------------------------------------------------------------- witnesses, registry


def _cosigned(note: str, witness: Signer, name: str) -> str:
    body = note[: note.index("\n\n") + 1]
    return note + cosign_checkpoint(witness, name, body, 1_800_000_000)


def test_witness_quorum_and_bad_cosignatures(demo, tmp_path):
    entries, notes, verifier = demo
    witness = Signer.from_seed(bytes([9]) * 32)
    vkey = NoteVerifier.from_vkey(build_witness_vkey("witness.example/w1", witness.public))
    cosigned = [*notes[:-1], _cosigned(notes[-1], witness, "witness.example/w1")]
    ok = parallel(entries, cosigned, verifier, tmp_path, witnesses=[vkey], quorum=1).report
    assert ok.ok, ok.to_text()
    unmet = parallel(entries, notes, verifier, tmp_path, witnesses=[vkey], quorum=1).report
    assert unmet.checks == ["quorum_not_met"]
    other = Signer.from_seed(bytes([8]) * 32)
    forged = [*notes[:-1], _cosigned(notes[-1], other, "witness.example/w1")]
    # Same name, another key: its key ID differs, so the line is simply not the witness's.
    assert parallel(
        entries, forged, verifier, tmp_path, witnesses=[vkey], quorum=1
    ).report.checks == ["quorum_not_met"]
    line = _cosigned(notes[-1], witness, "witness.example/w1")
    tampered_sig = line[:-10] + ("A" if line[-10] != "A" else "B") + line[-9:]
    bad = parallel(
        entries, [*notes[:-1], tampered_sig], verifier, tmp_path, witnesses=[vkey]
    ).report
    assert "cosignature_invalid" in bad.checks


def test_registry_claims_are_compared_with_the_replay(demo, tmp_path):
    entries, notes, verifier = demo
    path = tmp_path / "state.db"
    replay = StoredReplay.create(path)
    try:
        audit_entries(entries, notes, log_verifier=verifier, replay=replay)
        keys = sorted(replay.registry.keys.values(), key=lambda k: k.added_at)
        participants = list(replay.registry.participants.values())
        assert compare_registry(replay.registry, participants, keys, source="test") == []
        victim = keys[3]
        changed = [dataclasses.replace(k, public=bytes(32)) if k is victim else k for k in keys]
        (finding,) = compare_registry(replay.registry, participants, changed, source="test")
        assert (finding.index, finding.check) == (victim.added_at, "registry_mismatch")
        revoked = next(k for k in keys if k.revoked_at is not None)
        later = [
            dataclasses.replace(k, revoked_at=k.revoked_at + 5) if k is revoked else k for k in keys
        ]
        (finding,) = compare_registry(replay.registry, participants, later, source="test")
        assert finding.index == revoked.revoked_at
        missing = [k for k in keys if k is not victim]
        assert compare_registry(replay.registry, participants[1:], missing, source="t")
    finally:
        replay.close()


def test_first_rewritten_names_the_first_differing_leaf():
    old = [(i, bytes([i]) * 32) for i in range(10)]
    same = list(old)
    assert first_rewritten(old, same) is None
    changed = [*old[:6], (6, bytes(32)), *old[7:]]
    assert first_rewritten(old, changed).index == 6
    short = old[:4]
    finding = first_rewritten(old, short)
    assert (finding.index, finding.found) == (4, "absent")


# --------------------------------------------------------------------------- fast paths


def _entry_fields(data: bytes) -> tuple[int, int, bytes, bytes, bytes]:
    entry = Entry.from_bytes(data)
    return entry.index, entry.accepted_ms, entry.prev, entry.statement, entry.signature


def _same_outcome(fast: Callable[[bytes], object], slow: Callable[[bytes], object], data: bytes):
    try:
        expected: object = slow(data)
    except LedgerError as exc:
        expected = ("error", type(exc), exc.code, exc.message, exc.field)
    try:
        got: object = fast(data)
    except LedgerError as exc:
        got = ("error", type(exc), exc.code, exc.message, exc.field)
    assert got == expected, data


ENTRY_MUTATIONS = [
    lambda b: b.replace(b'"index":', b'"index":0'),  # leading zero
    lambda b: b.replace(b'"accepted_ms":', b'"accepted_ms":99999999999999999'),  # > 2^53
    # 16 digits, so the fast pattern matches, but beyond 2^53 - 1:
    lambda b: re.sub(rb'"index":[0-9]+', b'"index":9999999999999999', b),
    lambda b: re.sub(rb'"accepted_ms":[0-9]+', b'"accepted_ms":9007199254740992', b),
    lambda b: b.replace(b'"prev":"', b'"prev":"A', 1),  # uppercase hex
    lambda b: b.replace(b'","statement"', b'=","statement"'),  # padding in the wrong place
    lambda b: b.replace(b'"}', b'" }'),
    lambda b: b.replace(b'"signature"', b'"signature" '),
    lambda b: b.replace(b'{"accepted_ms"', b'{"accepted_ms":1,"accepted_ms"'),
    lambda b: b[:-1],
]


@given(data=st.data())
def test_fast_entry_decoding_agrees_with_the_parser(demo, data):
    entries, _notes, _verifier = demo
    raw = entries[data.draw(st.integers(0, len(entries) - 1))].to_bytes()
    choice = data.draw(st.integers(0, len(ENTRY_MUTATIONS) + 1))
    if choice < len(ENTRY_MUTATIONS):
        raw = ENTRY_MUTATIONS[choice](raw)
    elif choice == len(ENTRY_MUTATIONS):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:position] + bytes([data.draw(st.integers(0, 255))]) + raw[position + 1 :]
    _same_outcome(_decode_entry, _entry_fields, raw)


def test_non_canonical_base64_tail_is_not_taken_by_the_fast_path(demo):
    entries, _notes, _verifier = demo
    raw = entries[5].to_bytes()
    start = raw.index(b'"signature":"') + len(b'"signature":"')
    end = raw.index(b'"', start)
    sig = raw[start:end]  # 64 bytes: 88 characters ending in "=="
    assert sig.endswith(b"==")
    for c in b"BCDEFGH":
        changed = raw[: end - 3] + bytes([c]) + raw[end - 2 :]
        _same_outcome(_decode_entry, _entry_fields, changed)


STATEMENT_MUTATIONS = [
    lambda b: b" " + b,
    lambda b: b.replace(b'"version":1', b'"version":1.0'),
    lambda b: b.replace(b'"version":1', b'"version":1,"version":1'),
    lambda b: b.replace(b'"version":1', b'"version":NaN'),
    lambda b: b.replace(b'"version":1', b'"version":9007199254740993'),
    lambda b: b.replace(b'"kind":', b'"\\ud800":1,"kind":'),
    lambda b: b.replace(b'"kind":', b'"\xf0\x9f\x98\x80":1,"kind":'),
    lambda b: b.replace(b'"kind":', b'"\xed\xa0\x80":1,"kind":'),
    lambda b: b.replace(b'"body":{', b'"body":{"\xf0\x9f\x98\x80":1,"\xef\xbc\xa1":2,'),
    lambda b: b.replace(b'"kind"', b'"kinds"'),
    lambda b: b"[" + b + b"]",
]


@given(data=st.data())
def test_fast_statement_decoding_agrees_with_the_parser(demo, data):
    entries, _notes, _verifier = demo
    raw = entries[data.draw(st.integers(0, len(entries) - 1))].statement
    choice = data.draw(st.integers(0, len(STATEMENT_MUTATIONS) + 1))
    if choice < len(STATEMENT_MUTATIONS):
        raw = STATEMENT_MUTATIONS[choice](raw)
    elif choice == len(STATEMENT_MUTATIONS):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:position] + bytes([data.draw(st.integers(0, 255))]) + raw[position + 1 :]
    fast = _canonical_object_fast(raw)
    if fast is not None:  # the fast path only ever answers what the strict decoder answers
        assert _decode_canonical_strict(raw) == fast
    _same_outcome(decode_canonical, _decode_canonical_strict, raw)


def test_workers_exit_when_the_auditor_is_killed():
    # A `mandi verify` killed with SIGKILL must not leave its workers behind.
    script = (
        "from ledger.audit_parallel import _Pool\n"
        "import sys, time\n"
        "if __name__ == '__main__':\n"
        "    pool = _Pool(2)\n"
        "    print(*[p.pid for p in pool._procs], flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 2
        assert all(_alive(pid) for pid in workers)
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
