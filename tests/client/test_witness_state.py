"""The witness state file: created on first use, compare-and-swap, restart, threads racing."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import pytest

from client.witness_state import (
    STATE_FORMAT,
    StaleTreeError,
    WitnessState,
    WitnessStateError,
    is_state_file,
    origin_hash,
)
from ledger.checkpoint import NoteVerifier, build_witness_vkey
from ledger.errors import ConflictError
from ledger.hashing import EMPTY_ROOT, sha256
from ledger.keys import Signer
from ledger.witness import WitnessedTree

ORIGIN = "witness.mandi.example/log"
LOG = NoteVerifier.from_key(ORIGIN, Signer.from_seed(bytes([1]) * 32).public)
OTHER_LOG = NoteVerifier.from_key(ORIGIN, Signer.from_seed(bytes([2]) * 32).public)
WITNESS_VKEY = build_witness_vkey("w1", Signer.from_seed(bytes([3]) * 32).public)


def _tree(size: int, tag: int = 0) -> WitnessedTree:
    return WitnessedTree(size=size, root_hash=sha256(bytes([size % 256, tag])))


@pytest.fixture
def state(tmp_path):
    state = WitnessState(tmp_path / "witness.db")
    state.add_log(LOG, now=1)
    return state


def test_a_new_file_is_wal_with_the_schema(tmp_path):
    path = tmp_path / "sub" / "witness.db"
    WitnessState(path)
    assert is_state_file(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0] == (
            STATE_FORMAT
        )
    assert tables == {"meta", "logs", "trees", "cosigned", "evidence"}


def test_origin_hash_is_the_hex_sha256_of_the_origin():
    assert origin_hash(ORIGIN) == hashlib.sha256(ORIGIN.encode()).hexdigest()


def test_logs_are_kept_and_a_log_key_cannot_be_swapped(state, tmp_path):
    state.add_log(LOG, now=2)  # idempotent
    assert [v.to_vkey() for v in state.logs()] == [LOG.to_vkey()]
    with pytest.raises(WitnessStateError, match="witnessed with the key"):
        state.add_log(OTHER_LOG, now=3)
    witness_key = NoteVerifier.from_vkey(WITNESS_VKEY)
    with pytest.raises(WitnessStateError, match="Ed25519"):
        state.add_log(witness_key, now=3)
    assert [v.to_vkey() for v in WitnessState(tmp_path / "witness.db").logs()] == [LOG.to_vkey()]
    assert state.origin_for_hash(origin_hash(ORIGIN)) == ORIGIN
    assert state.origin_for_hash("0" * 64) is None


def test_a_state_file_belongs_to_one_witness(state):
    state.bind_witness(WITNESS_VKEY)
    state.bind_witness(WITNESS_VKEY)
    assert state.witness_vkey() == WITNESS_VKEY
    other = build_witness_vkey("w2", Signer.from_seed(bytes([4]) * 32).public)
    with pytest.raises(WitnessStateError, match="belongs to the witness"):
        state.bind_witness(other)


def test_commit_is_a_compare_and_swap(state):
    assert state.latest(ORIGIN) is None
    state.commit(ORIGIN, expected=None, tree=_tree(5), note="note 5\n", cosigned_at=10)
    assert state.latest(ORIGIN) == _tree(5)
    # A second request checked against "nothing stored" loses, and learns the size now stored.
    with pytest.raises(StaleTreeError) as info:
        state.commit(ORIGIN, expected=None, tree=_tree(5, 1), note="fork\n", cosigned_at=11)
    assert info.value.known_size == 5
    assert isinstance(info.value, ConflictError)
    # So does one checked against the right size but another root.
    with pytest.raises(StaleTreeError):
        state.commit(ORIGIN, expected=_tree(5, 1), tree=_tree(9), note="x\n", cosigned_at=11)
    assert state.latest(ORIGIN) == _tree(5)
    assert state.latest_note(ORIGIN) == "note 5\n"
    state.commit(ORIGIN, expected=_tree(5), tree=_tree(9), note="note 9\n", cosigned_at=12)
    assert state.latest(ORIGIN) == _tree(9)
    assert state.history(ORIGIN) == ["note 5\n", "note 9\n"]


def test_cosigning_the_same_tree_again_refreshes_its_row(state):
    state.commit(ORIGIN, expected=None, tree=_tree(5), note="first\n", cosigned_at=10)
    state.commit(ORIGIN, expected=_tree(5), tree=_tree(5), note="again\n", cosigned_at=20)
    assert state.history(ORIGIN) == ["again\n"]
    assert state.latest_note(ORIGIN) == "again\n"


def test_an_empty_tree_counts_as_none(state):
    empty = WitnessedTree(size=0, root_hash=EMPTY_ROOT)
    state.commit(ORIGIN, expected=empty, tree=empty, note="empty\n", cosigned_at=1)
    state.commit(ORIGIN, expected=None, tree=_tree(3), note="three\n", cosigned_at=2)
    assert state.latest(ORIGIN) == _tree(3)


def test_sizes_beyond_sqlite_integers_are_kept_exactly(state):
    huge = WitnessedTree(size=2**64 - 1, root_hash=sha256(b"huge"))
    state.commit(ORIGIN, expected=None, tree=huge, note="huge\n", cosigned_at=1)
    assert state.latest(ORIGIN) == huge


def test_commit_refuses_a_log_not_witnessed(state):
    with pytest.raises(WitnessStateError, match="not a witnessed log"):
        state.commit("other/log", expected=None, tree=_tree(1), note="n\n", cosigned_at=1)


def test_a_restart_starts_from_what_was_committed(state, tmp_path):
    state.commit(ORIGIN, expected=None, tree=_tree(5), note="note 5\n", cosigned_at=10)
    reopened = WitnessState(tmp_path / "witness.db")
    assert reopened.latest(ORIGIN) == _tree(5)
    assert reopened.history(ORIGIN) == ["note 5\n"]
    with pytest.raises(StaleTreeError) as info:
        reopened.commit(ORIGIN, expected=None, tree=_tree(3), note="rollback\n", cosigned_at=11)
    assert info.value.known_size == 5
    read_only = WitnessState(tmp_path / "witness.db", create=False)
    assert read_only.history(ORIGIN) == ["note 5\n"]
    with pytest.raises(WitnessStateError, match="read-only"):
        read_only.commit(ORIGIN, expected=_tree(5), tree=_tree(6), note="n\n", cosigned_at=12)


def test_threads_racing_from_one_tree_advance_it_once(state):
    threads = 8
    barrier = threading.Barrier(threads)
    won: list[int] = []
    lost: list[int] = []
    known: list[int] = []

    def race(tag: int) -> None:
        barrier.wait(timeout=10)
        try:
            state.commit(
                ORIGIN, expected=None, tree=_tree(7, tag), note=f"fork {tag}\n", cosigned_at=tag
            )
        except StaleTreeError as exc:
            known.append(exc.known_size)
            lost.append(tag)
        else:
            won.append(tag)

    workers = [threading.Thread(target=race, args=(tag,)) for tag in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(won) == 1
    assert known == [7] * (threads - 1)
    assert sorted(won + lost) == list(range(threads))
    assert state.latest(ORIGIN) == _tree(7, won[0])
    assert state.history(ORIGIN) == [f"fork {won[0]}\n"]


def test_threads_advancing_in_turn_never_skip_a_step(state):
    # Each thread extends whatever it read; a lost race retries from the new tree.
    def advance(steps: int) -> None:
        for _ in range(steps):
            while True:
                current = state.latest(ORIGIN)
                size = current.size if current else 0
                try:
                    state.commit(
                        ORIGIN,
                        expected=current,
                        tree=_tree(size + 1),
                        note=f"{size + 1}\n",
                        cosigned_at=size,
                    )
                    break
                except StaleTreeError:
                    continue

    workers = [threading.Thread(target=advance, args=(10,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert state.latest(ORIGIN) == _tree(40)
    assert state.history(ORIGIN) == [f"{n}\n" for n in range(1, 41)]


def test_evidence_is_kept_once_per_request(state):
    first = state.add_evidence(
        origin=ORIGIN,
        received_at=5,
        status=409,
        code="conflicting_root",
        message="a fork",
        request=b"old 5\n\nnote\n",
        cosigned_note="cosigned\n",
    )
    again = state.add_evidence(
        origin=ORIGIN,
        received_at=6,
        status=409,
        code="conflicting_root",
        message="a fork",
        request=b"old 5\n\nnote\n",
        cosigned_note="cosigned\n",
    )
    assert first == again == sha256(b"old 5\n\nnote\n")
    kept = state.evidence(ORIGIN)
    assert len(kept) == 1
    assert kept[0].to_json() == {
        "id": first.hex(),
        "origin": ORIGIN,
        "received_at": 5,
        "status": 409,
        "code": "conflicting_root",
        "message": "a fork",
        "request": "old 5\n\nnote\n",
        "cosigned_note": "cosigned\n",
    }


def test_other_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(WitnessStateError, match="not a witness state file"):
        WitnessState(foreign)
    text = tmp_path / "note.txt"
    text.write_text("hello\n")
    assert not is_state_file(text)
    with pytest.raises(WitnessStateError, match="not an SQLite"):
        WitnessState(text, create=False)
    missing = tmp_path / "missing.db"
    with pytest.raises(WitnessStateError):
        WitnessState(missing, create=False)
    assert not missing.exists()


def test_a_foreign_sqlite_file_is_left_as_it_was(tmp_path):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = foreign.read_bytes()
    with pytest.raises(WitnessStateError):
        WitnessState(foreign)
    assert foreign.read_bytes() == before
    with sqlite3.connect(foreign) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
