"""The storage contract: every Store behaves like the in-memory reference.

The first part runs on each kind of the ``store`` fixture (memory, sqlite,
postgres; see the "store fixtures" section of tests/conftest.py) and talks to the
store only through the Store/WriteTx protocol, with entries built by hand from
arbitrary bytes. The second part checks what only the SQL store has: schema
management, SQLite pragmas and locking, the unique indexes that make a fork
impossible to store, error wrapping, and several OS processes appending at once.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from ledger.errors import ConflictError, LedgerError, NotFoundError, SchemaError, StorageError
from ledger.hashing import ZERO_HASH, Digest, KeyId, leaf_hash, sha256
from ledger.registry import AddKey, AddParticipant, RevokeKey
from ledger.statements import Entry
from ledger.storage import Store, StoredCheckpoint, StoredCosignature, WriteTx
from ledger.storage.memory import MemoryStore
from ledger.storage.sql import (
    SqlStore,
    SqlWriteTx,
    default_sqlite_url,
    migrate,
    schema_status,
)

BASE_MS = 1_795_843_800_000


def make_entry(index: int, prev: bytes, statement: bytes | None = None) -> Entry:
    """An entry over arbitrary bytes; the statement defaults to one unique per index."""
    return Entry(
        index=index,
        accepted_ms=BASE_MS + index,
        prev=Digest(prev),
        statement=statement if statement is not None else b'{"n":%d}' % index,
        signature=bytes([index % 251]) * 64,
    )


def append(tx: WriteTx, count: int, *, tag: bytes = b"") -> list[Entry]:
    """Put ``count`` chained entries at the end of the log; their statements carry ``tag``."""
    added = []
    prev = tx.last_leaf_hash()
    for _ in range(count):
        index = tx.size()
        entry = make_entry(index, prev, b'{"n":%d,"t":"%s"}' % (index, tag))
        leaf = leaf_hash(entry.to_bytes())
        tx.put_entry(entry, leaf)
        added.append(entry)
        prev = leaf
    return added


def fill(store: Store, count: int, *, per_tx: int = 500) -> list[Entry]:
    entries: list[Entry] = []
    while len(entries) < count:
        with store.write() as tx:
            entries += append(tx, min(per_tx, count - len(entries)))
    return entries


def kid(n: int) -> KeyId:
    return KeyId(sha256(b"key %d" % n))


def checkpoint(size: int, created_ms: int = BASE_MS) -> StoredCheckpoint:
    return StoredCheckpoint(
        size=size, note=f"origin\n{size}\nroot\n\n— sig\n", created_ms=created_ms
    )


def cosig(size: int, name: str = "w.example/a", key_hash: bytes = b"\x01\x02\x03\x04", ts: int = 7):
    """A cosignature row over arbitrary text (stores never verify the line)."""
    return StoredCosignature(
        size=size, name=name, key_hash=key_hash, line=f"— {name} sig{size}/{ts}", timestamp=ts
    )


def is_memory(store: Store) -> bool:
    return isinstance(store, MemoryStore)


# ---------------------------------------------------------------------------
# The contract, on every store.


def test_empty_store(store):
    assert store.size() == 0
    assert list(store.entries(0, 10)) == []
    assert list(store.leaf_hashes(0, 10)) == []
    assert list(store.checkpoints()) == []
    assert store.latest_checkpoint() is None
    assert store.keys() == []
    assert store.participants() == []
    assert store.entry_by_event_id(sha256(b"nothing")) is None
    assert store.key(kid(1)) is None
    assert store.participant("nobody") is None
    with pytest.raises(NotFoundError):
        store.entry(0)
    with pytest.raises(NotFoundError):
        store.nodes([(0, 0)])
    with store.write() as tx:
        assert tx.size() == 0
        assert tx.last_leaf_hash() == ZERO_HASH


def test_appended_entries_read_back(store):
    with store.write() as tx:
        entries = append(tx, 5)
    assert store.size() == 5
    assert [store.entry(i) for i in range(5)] == entries
    assert list(store.entries(0, 5)) == entries
    assert list(store.entries(1, 3)) == entries[1:3]
    leaves = [leaf_hash(e.to_bytes()) for e in entries]
    assert list(store.leaf_hashes(0, 5)) == list(enumerate(leaves))
    assert store.nodes([(0, 4), (0, 0)]) == {(0, 4): leaves[4], (0, 0): leaves[0]}
    for entry in entries:
        assert store.entry_by_event_id(entry.event_id) == entry
    with store.write() as tx:
        assert tx.size() == 5
        assert tx.last_leaf_hash() == leaves[4]
        assert tx.entry_by_event_id(entries[2].event_id) == entries[2]


def test_entry_out_of_range_is_not_found(store):
    fill(store, 3)
    for index in (-1, 3, 10**12):
        with pytest.raises(NotFoundError):
            store.entry(index)


def test_put_entry_refuses_a_gap_and_keeps_the_transaction_usable(store):
    with store.write() as tx:
        append(tx, 2)
        with pytest.raises(ConflictError):
            tx.put_entry(make_entry(3, tx.last_leaf_hash()), sha256(b"leaf"))
        assert tx.size() == 2
        append(tx, 1)
    assert store.size() == 3


def test_put_entry_refuses_a_taken_index(store):
    entries = fill(store, 2)
    with store.write() as tx:
        with pytest.raises(ConflictError):
            tx.put_entry(make_entry(1, entries[0].prev, b"other"), sha256(b"leaf"))
        append(tx, 1)
        with pytest.raises(ConflictError):
            tx.put_entry(make_entry(2, entries[1].prev, b"other"), sha256(b"leaf"))
    assert store.size() == 3
    assert store.entry(1) == entries[1]


def test_put_entry_refuses_a_stored_event_id(store):
    entries = fill(store, 2)
    with store.write() as tx:
        again = make_entry(2, tx.last_leaf_hash(), entries[0].statement)
        with pytest.raises(ConflictError):
            tx.put_entry(again, leaf_hash(again.to_bytes()))
        (new,) = append(tx, 1)
        twice = make_entry(3, tx.last_leaf_hash(), new.statement)
        with pytest.raises(ConflictError):
            tx.put_entry(twice, leaf_hash(twice.to_bytes()))
    assert store.size() == 3


def test_a_fork_cannot_be_stored(store):
    entries = fill(store, 3)

    def fork_a_stored_entry() -> None:
        with store.write() as tx:
            # Index 3 is free, but entries[1] already chains to entries[0].
            fork = make_entry(3, entries[1].prev, b"fork")
            tx.put_entry(fork, leaf_hash(fork.to_bytes()))

    def fork_within_one_transaction() -> None:
        with store.write() as tx:
            (first,) = append(tx, 1)
            fork = make_entry(4, first.prev, b"fork in one transaction")
            tx.put_entry(fork, leaf_hash(fork.to_bytes()))

    with pytest.raises(ConflictError):
        fork_a_stored_entry()
    with pytest.raises(ConflictError):
        fork_within_one_transaction()
    assert list(store.entries(0, 10)) == entries


def test_reads_inside_a_transaction_see_its_writes(store):
    fill(store, 3)
    with store.write() as tx:
        tx.put_nodes({(1, 0): sha256(b"n10")})
        tx.apply_registry(
            [
                AddParticipant(participant_id="op", profile={"role": "operator"}, index=0),
                AddKey(key_id=kid(1), participant="op", public=b"p" * 32, index=0),
            ]
        )
        tx.put_checkpoint(checkpoint(3))
    with store.write() as tx:
        added = append(tx, 3)
        leaves = [leaf_hash(e.to_bytes()) for e in added]
        tx.put_nodes({(1, 1): sha256(b"n11"), (1, 2): sha256(b"n12")})
        tx.apply_registry(
            [
                AddParticipant(participant_id="farm", profile={"village": "Okara"}, index=4),
                AddKey(key_id=kid(2), participant="farm", public=b"q" * 32, index=4),
                RevokeKey(key_id=kid(1), index=5, reason="lost"),
            ]
        )
        tx.put_checkpoint(checkpoint(6))

        assert tx.size() == 6
        assert tx.last_leaf_hash() == leaves[-1]
        assert tx.entry_by_event_id(added[1].event_id) == added[1]
        assert tx.nodes([(0, 5), (1, 0), (1, 2), (0, 0)])[(0, 5)] == leaves[2]
        assert tx.nodes([(1, 0), (1, 2)]) == {(1, 0): sha256(b"n10"), (1, 2): sha256(b"n12")}
        assert tx.key(kid(2)).participant == "farm"
        assert tx.key(kid(1)).revoked_at == 5
        assert tx.participant("farm").profile == {"village": "Okara"}
        assert tx.participant("op").operator is False
        assert tx.latest_checkpoint() == checkpoint(6)
        with pytest.raises(NotFoundError):
            tx.nodes([(1, 0), (2, 0)])
    assert store.key(kid(1)).revoked_at == 5
    assert store.latest_checkpoint() == checkpoint(6)


def test_an_exception_rolls_back_everything(store):
    entries = fill(store, 4)
    with store.write() as tx:
        tx.put_nodes({(1, 0): sha256(b"n10")})
        tx.apply_registry(
            [
                AddParticipant(participant_id="op", profile={}, index=0, operator=True),
                AddKey(key_id=kid(1), participant="op", public=b"p" * 32, index=0),
            ]
        )
        tx.put_checkpoint(checkpoint(4))

    boom = RuntimeError("boom")

    def doomed() -> None:
        with store.write() as tx:
            append(tx, 3, tag=b"doomed")
            tx.put_nodes({(1, 1): sha256(b"n11"), (2, 0): sha256(b"n20")})
            tx.apply_registry(
                [
                    AddParticipant(participant_id="farm", profile={}, index=5),
                    AddKey(key_id=kid(2), participant="farm", public=b"q" * 32, index=5),
                    RevokeKey(key_id=kid(1), index=6, reason="compromised"),
                ]
            )
            tx.put_checkpoint(checkpoint(7))
            raise boom

    with pytest.raises(RuntimeError) as caught:
        doomed()
    assert caught.value is boom

    assert store.size() == 4
    assert list(store.entries(0, 10)) == entries
    assert len(list(store.leaf_hashes(0, 10))) == 4
    with pytest.raises(NotFoundError):
        store.nodes([(1, 1)])
    with pytest.raises(NotFoundError):
        store.nodes([(2, 0)])
    assert store.nodes([(1, 0)]) == {(1, 0): sha256(b"n10")}
    assert store.participant("farm") is None
    assert store.key(kid(2)) is None
    assert store.key(kid(1)).revoked_at is None
    assert [c.size for c in store.checkpoints()] == [4]
    with store.write() as tx:
        assert tx.size() == 4
        assert tx.last_leaf_hash() == leaf_hash(entries[-1].to_bytes())
        append(tx, 1)
    assert store.size() == 5


def test_a_refused_commit_rolls_back_everything(store):
    """A ConflictError raised inside the block also undoes the block's earlier puts."""
    fill(store, 2)

    def refused() -> None:
        with store.write() as tx:
            append(tx, 2)
            tx.apply_registry([AddParticipant(participant_id="farm", profile={}, index=3)])
            tx.put_entry(make_entry(9, ZERO_HASH, b"gap"), sha256(b"gap"))

    with pytest.raises(ConflictError):
        refused()
    assert store.size() == 2
    assert store.participant("farm") is None


def test_entries_and_leaf_hashes_stream_in_order_across_chunks(store):
    entries = fill(store, 2500)
    leaves = [leaf_hash(e.to_bytes()) for e in entries]
    assert list(store.entries(0, 2500)) == entries
    assert list(store.entries(999, 2001)) == entries[999:2001]
    assert list(store.entries(2400, 10_000)) == entries[2400:]
    assert list(store.entries(7, 7)) == []
    assert list(store.entries(3000, 4000)) == []
    assert list(store.leaf_hashes(0, 10_000)) == list(enumerate(leaves))
    assert list(store.leaf_hashes(1000, 1001)) == [(1000, leaves[1000])]
    stream = store.entries(0, 2500)
    assert next(stream) == entries[0]
    assert next(stream) == entries[1]


def test_nodes_missing_is_not_found(store):
    fill(store, 2)
    with store.write() as tx:
        tx.put_nodes({(1, 0): sha256(b"n10")})
    assert store.nodes([(1, 0), (0, 1)])[(1, 0)] == sha256(b"n10")
    for missing in ([(0, 2)], [(0, 0), (1, 1)], [(5, 0)]):
        with pytest.raises(NotFoundError):
            store.nodes(missing)
    assert store.nodes([]) == {}


def test_nodes_are_written_once(store):
    with store.write() as tx:
        tx.put_nodes({(1, 0): sha256(b"a")})
        tx.put_nodes({(1, 0): sha256(b"a")})  # the same hash again: no-op
        with pytest.raises(ConflictError):
            tx.put_nodes({(1, 0): sha256(b"b")})
    with store.write() as tx:
        tx.put_nodes({(1, 0): sha256(b"a"), (1, 1): sha256(b"c")})

    def overwrite() -> None:
        with store.write() as tx:
            tx.put_nodes({(1, 0): sha256(b"b")})

    with pytest.raises(ConflictError):
        overwrite()
    assert store.nodes([(1, 0), (1, 1)]) == {(1, 0): sha256(b"a"), (1, 1): sha256(b"c")}


def test_registry_changes_are_visible(store):
    profile = {"name": "Kissan Co-op", "urdu": "کسان", "tags": ["wheat", "rice"], "n": 7}
    with store.write() as tx:
        tx.apply_registry(
            [
                AddParticipant(participant_id="operator", profile={}, index=0, operator=True),
                AddKey(key_id=kid(1), participant="operator", public=b"1" * 32, index=0),
            ]
        )
    with store.write() as tx:
        tx.apply_registry(
            [
                AddParticipant(participant_id="farm-1", profile=profile, index=3),
                AddKey(key_id=kid(3), participant="farm-1", public=b"3" * 32, index=3),
                AddParticipant(participant_id="a-b", profile={}, index=3),
                AddParticipant(participant_id="ab", profile={}, index=3),
                AddParticipant(participant_id="a.c", profile={}, index=3),
            ]
        )
    with store.write() as tx:
        tx.apply_registry(
            [
                RevokeKey(key_id=kid(3), index=8, reason="rotated"),
                AddKey(key_id=kid(2), participant="farm-1", public=b"2" * 32, index=8),
            ]
        )

    farm = store.participant("farm-1")
    assert farm.participant_id == "farm-1"
    assert farm.profile == profile
    assert farm.enrolled_at == 3
    assert farm.operator is False
    assert store.participant("operator").operator is True
    old, new = store.key(kid(3)), store.key(kid(2))
    assert (old.participant, old.public, old.added_at, old.revoked_at) == (
        "farm-1",
        b"3" * 32,
        3,
        8,
    )
    assert (new.added_at, new.revoked_at) == (8, None)
    assert not old.valid_at(8)
    assert new.valid_at(9)
    assert store.key(kid(99)) is None
    keys = store.keys()
    assert [k.key_id for k in keys] == [kid(1), kid(3), kid(2)]
    assert [p.participant_id for p in store.participants()] == [
        "operator",
        *sorted(["a-b", "ab", "a.c", "farm-1"]),
    ]


def test_checkpoints_ascend_and_latest_is_the_largest(store):
    for size in (5, 1, 3):
        with store.write() as tx:
            tx.put_checkpoint(checkpoint(size, BASE_MS + size))
    assert [c.size for c in store.checkpoints()] == [1, 3, 5]
    assert store.latest_checkpoint() == checkpoint(5, BASE_MS + 5)
    with store.write() as tx:
        assert tx.latest_checkpoint() == checkpoint(5, BASE_MS + 5)
        tx.put_checkpoint(checkpoint(2))
        assert tx.latest_checkpoint() == checkpoint(5, BASE_MS + 5)
        tx.put_checkpoint(checkpoint(9))
        assert tx.latest_checkpoint() == checkpoint(9)
    assert [c.size for c in store.checkpoints()] == [1, 2, 3, 5, 9]
    assert list(store.checkpoints())[2] == checkpoint(3, BASE_MS + 3)


def test_cosignatures_round_trip_per_checkpoint(store):
    assert store.cosignatures(3) == []
    assert store.latest_cosigned_checkpoint() is None
    assert list(store.all_cosignatures()) == []
    for size in (1, 3, 5):
        with store.write() as tx:
            tx.put_checkpoint(checkpoint(size, BASE_MS + size))
    b, a, a2 = cosig(3, "w.example/b"), cosig(3, "w.example/a"), cosig(3, key_hash=b"\xff" * 4)
    store.put_cosignatures([b, a2, a])
    store.put_cosignatures([])
    assert store.cosignatures(3) == [a, a2, b]
    assert store.cosignatures(5) == []
    assert store.cosignatures(4) == []


def test_cosigning_again_replaces_the_earlier_line(store):
    with store.write() as tx:
        tx.put_checkpoint(checkpoint(2))
    store.put_cosignatures([cosig(2, ts=1)])
    store.put_cosignatures([cosig(2, ts=9)])
    assert store.cosignatures(2) == [cosig(2, ts=9)]


def test_a_cosignature_needs_its_checkpoint(store):
    with store.write() as tx:
        tx.put_checkpoint(checkpoint(2))
    with pytest.raises(NotFoundError, match="size 4"):
        store.put_cosignatures([cosig(2), cosig(4)])
    assert store.cosignatures(2) == []
    assert list(store.all_cosignatures()) == []


def test_cosignatures_can_be_added_to_any_stored_checkpoint(store):
    for size in (1, 2, 3):
        with store.write() as tx:
            tx.put_checkpoint(checkpoint(size, BASE_MS + size))
    store.put_cosignatures([cosig(3, "w.example/a"), cosig(3, "w.example/b")])
    store.put_cosignatures([cosig(1, "w.example/a"), cosig(2, "w.example/b")])
    assert store.latest_cosigned_checkpoint() == checkpoint(3, BASE_MS + 3)
    assert store.latest_cosigned_checkpoint(2) == checkpoint(3, BASE_MS + 3)
    assert store.latest_cosigned_checkpoint(3) is None
    with store.write() as tx:
        tx.put_checkpoint(checkpoint(4, BASE_MS + 4))
    store.put_cosignatures([cosig(4, "w.example/c")])
    assert store.latest_cosigned_checkpoint(1) == checkpoint(4, BASE_MS + 4)
    assert store.latest_cosigned_checkpoint(2) == checkpoint(3, BASE_MS + 3)
    with pytest.raises(ValueError, match="min_cosignatures"):
        store.latest_cosigned_checkpoint(0)
    assert [(c.size, c.name) for c in store.all_cosignatures()] == [
        (1, "w.example/a"),
        (2, "w.example/b"),
        (3, "w.example/a"),
        (3, "w.example/b"),
        (4, "w.example/c"),
    ]
    key = b"\x01\x02\x03\x04"
    assert store.witness_size("w.example/a", key) == 3
    assert store.witness_size("w.example/c", key) == 4
    assert store.witness_size("w.example/a", b"\x00" * 4) is None
    assert store.witness_size("w.example/z", key) is None


def test_a_rolled_back_checkpoint_takes_no_cosignature(store):
    def doomed() -> None:
        with store.write() as tx:
            tx.put_checkpoint(checkpoint(6))
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        doomed()
    with pytest.raises(NotFoundError):
        store.put_cosignatures([cosig(6)])


def test_statement_bytes_round_trip_exactly(store):
    odd = [
        b"\xff\xfe\x00\x80 not utf-8 \xc3\x28",
        b'{"b": 1,  "a": [1.0, 2e3], "b": 2}',  # what jsonb would rewrite
        bytes(range(256)),
        b"",
        b"x" * 65_536,
    ]
    with store.write() as tx:
        prev = tx.last_leaf_hash()
        for index, statement in enumerate(odd):
            entry = Entry(
                index=index,
                accepted_ms=BASE_MS,
                prev=prev,
                statement=statement,
                signature=b"\x00\xff" * 32,
            )
            prev = leaf_hash(entry.to_bytes())
            tx.put_entry(entry, prev)
    for index, statement in enumerate(odd):
        entry = store.entry(index)
        assert entry.statement == statement
        assert type(entry.statement) is bytes
        assert entry.signature == b"\x00\xff" * 32
        assert store.entry_by_event_id(sha256(statement)) == entry
    assert [e.statement for e in store.entries(0, len(odd))] == odd


def test_the_service_runs_and_audits_clean_on_the_store(store):
    from ledger.audit import audit_log
    from tests.ledger.builders import new_world
    from tests.ledger.merkle_reference import mth

    world = new_world(store)
    world.enrol("farm-1")
    for _ in range(20):
        world.ledger.append(world.statement("farm-1"))
    world.ledger.append_batch([world.statement("farm-1") for _ in range(30)])
    world.ledger.flush_checkpoint()
    size = store.size()
    report = audit_log(
        store.entries(0, size),
        [c.note for c in store.checkpoints()],
        log_verifier=world.verifier,
        stored_leaves=store.leaf_hashes(0, size),
        consistency_proof=world.ledger.consistency_proof,
    )
    assert report.ok, report.findings
    leaves = [leaf for _, leaf in store.leaf_hashes(0, size)]
    assert world.ledger.root_hash(size) == mth(leaves)


# ---------------------------------------------------------------------------
# SqlStore only: schema management.


def test_open_refuses_a_database_that_is_not_initialised(sql_url, tmp_path):
    with pytest.raises(SchemaError, match="not initialised: run `mandi admin init`"):
        SqlStore.open(sql_url)
    assert not (tmp_path / "db").exists()  # open() never creates the SQLite file


def _head() -> str:
    """The newest revision shipped: the highest-numbered migration file."""
    from ledger.storage import sql

    return max(
        p.name[:4] for p in (sql._MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    )


def test_schema_status_before_and_after_migrate(sql_url):
    head = _head()
    assert schema_status(sql_url) == (None, head)
    migrate(sql_url)
    migrate(sql_url)  # idempotent
    assert schema_status(sql_url) == (head, head)
    store = SqlStore.open(sql_url)
    assert store.size() == 0
    store.close()


def test_open_refuses_an_old_schema_until_migrated(sql_url, tmp_path, monkeypatch):
    from ledger.storage import sql

    migrate(sql_url)
    head = _head()
    later = f"{int(head) + 1:04d}"
    newer = tmp_path / "migrations"
    shutil.copytree(sql._MIGRATIONS_DIR, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / f"{later}_later.py").write_text(
        textwrap.dedent(
            f"""
            from alembic import op
            import sqlalchemy as sa

            revision = "{later}"
            down_revision = "{head}"
            branch_labels = None
            depends_on = None


            def upgrade():
                op.add_column("meta", sa.Column("note", sa.Text(), nullable=True))


            def downgrade():
                op.drop_column("meta", "note")
            """
        )
    )
    monkeypatch.setattr(sql, "_MIGRATIONS_DIR", newer)
    assert schema_status(sql_url) == (head, later)
    with pytest.raises(
        SchemaError, match=rf"{head} .* is older than {later}: run `mandi admin migrate`"
    ):
        SqlStore.open(sql_url)
    migrate(sql_url)
    SqlStore.open(sql_url).close()
    monkeypatch.undo()
    with pytest.raises(SchemaError, match=rf"{later} .* unknown to this version"):
        SqlStore.open(sql_url)


def test_migration_creates_what_the_models_declare(sql_store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ledger.storage.sql import Base

    with sql_store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_default_sqlite_url_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = default_sqlite_url(Path("data"))
    assert url == f"sqlite:///{tmp_path.resolve()}/data/ledger.db"
    migrate(url)
    assert (tmp_path / "data" / "ledger.db").is_file()


def test_the_migrations_ship_inside_the_package():
    import ledger.storage.sql as sql

    root = Path(sql.__file__).parent / "migrations"
    assert (root / "env.py").is_file()
    assert (root / "script.py.mako").is_file()
    assert (root / "versions" / "0001_initial.py").is_file()
    assert root.resolve() == sql._MIGRATIONS_DIR


# ---------------------------------------------------------------------------
# SqlStore only: transactions, buffering, errors.


def test_meta_round_trip(sql_store):
    assert sql_store.get_meta("origin") is None
    sql_store.set_meta("origin", "demo.mandi.example/log")
    sql_store.set_meta("origin", "other.example/log")
    assert sql_store.get_meta("origin") == "other.example/log"


def test_rollback_after_the_buffer_was_flushed(sql_store, monkeypatch):
    monkeypatch.setattr(SqlWriteTx, "FLUSH_ROWS", 3)
    entries = fill(sql_store, 4)

    def doomed() -> None:
        with sql_store.write() as tx:
            added = append(tx, 10)
            tx.put_nodes({(3, 1): sha256(b"n")})
            assert tx.entry_by_event_id(added[0].event_id) == added[0]  # flushed, read back
            assert tx.nodes([(0, 5)]) == {(0, 5): leaf_hash(added[1].to_bytes())}
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        doomed()
    assert list(sql_store.entries(0, 100)) == entries
    with pytest.raises(NotFoundError):
        sql_store.nodes([(3, 1)])


def test_what_a_transaction_remembers_stays_right_across_an_early_flush(sql_store, monkeypatch):
    monkeypatch.setattr(SqlWriteTx, "FLUSH_ROWS", 4)
    with sql_store.write() as tx:
        tx.apply_registry(
            [
                AddParticipant(participant_id="farm", profile={}, index=0),
                AddKey(key_id=kid(1), participant="farm", public=b"k" * 32, index=0),
            ]
        )
    with sql_store.write() as tx:
        assert tx.key(kid(1)).revoked_at is None  # read, remembered
        assert tx.key(kid(2)) is None
        assert tx.participant("mill") is None
        entry = make_entry(0, ZERO_HASH)
        assert tx.entry_by_event_id(entry.event_id) is None  # remembered as absent
        tx.put_entry(entry, leaf_hash(entry.to_bytes()))
        tx.apply_registry(
            [
                RevokeKey(key_id=kid(1), index=1, reason="lost"),
                AddParticipant(participant_id="mill", profile={"a": 1}, index=1),
                AddKey(key_id=kid(2), participant="mill", public=b"m" * 32, index=1),
            ]
        )
        append(tx, 5)  # passes FLUSH_ROWS: the buffer is written mid-transaction
        assert tx._entry_rows == []
        assert tx.key(kid(1)).revoked_at == 1
        assert tx.key(kid(2)).participant == "mill"
        assert tx.participant("mill").profile == {"a": 1}
        assert tx.entry_by_event_id(entry.event_id) == entry
        again = make_entry(6, tx.last_leaf_hash(), entry.statement)
        with pytest.raises(ConflictError):
            tx.put_entry(again, leaf_hash(again.to_bytes()))
    assert sql_store.key(kid(1)).revoked_at == 1
    assert sql_store.size() == 6


def test_streaming_uses_one_query_per_chunk(sql_store):
    fill(sql_store, 2500)
    selects = []

    @event.listens_for(sql_store.engine, "before_cursor_execute")
    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM entries" in statement:
            selects.append(statement)

    assert sum(1 for _ in sql_store.entries(0, 2500)) == 2500
    assert len(selects) == 3


def test_small_chunks_page_correctly(sql_store):
    sql_store._chunk_rows = 2
    entries = fill(sql_store, 7)
    for size in (4, 1, 2, 3, 7):
        with sql_store.write() as tx:
            tx.put_checkpoint(checkpoint(size))
    assert list(sql_store.entries(0, 7)) == entries
    assert list(sql_store.entries(1, 6)) == entries[1:6]
    assert [i for i, _ in sql_store.leaf_hashes(0, 99)] == list(range(7))
    assert [c.size for c in sql_store.checkpoints()] == [1, 2, 3, 4, 7]
    many = [cosig(1, f"w{n}") for n in range(3)] + [cosig(2), cosig(4, "x"), cosig(4, "y")]
    sql_store.put_cosignatures([*many, cosig(7)])
    assert list(sql_store.all_cosignatures()) == sorted(
        [*many, cosig(7)], key=lambda c: (c.size, c.name, c.key_hash)
    )


def test_a_fork_is_refused_at_commit_when_the_fast_path_skips_the_check(sql_store):
    # Entry 1 is put with a dishonest leaf hash equal to entry 0's prev; the next
    # entry chains to that "newest leaf", so put_entry skips its lookup and the
    # unique index on prev refuses the write at commit.
    with sql_store.write() as tx:
        first = make_entry(0, ZERO_HASH)
        tx.put_entry(first, leaf_hash(first.to_bytes()))
        second = make_entry(1, leaf_hash(first.to_bytes()))
        tx.put_entry(second, ZERO_HASH)

    def fork() -> None:
        with sql_store.write() as tx:
            forked = make_entry(2, tx.last_leaf_hash(), b"fork")
            assert tx.entry_by_event_id(forked.event_id) is None
            tx.put_entry(forked, sha256(b"leaf"))  # no error yet: the fast path

    with pytest.raises(ConflictError) as caught:
        fork()
    # The database's own refusal (entries are written on the DBAPI cursor).
    dbapi_integrity_error = sql_store.engine.dialect.loaded_dbapi.IntegrityError
    assert isinstance(caught.value.__cause__, dbapi_integrity_error)
    assert "prev" in str(caught.value)
    assert sql_store.size() == 2


def test_a_node_conflicting_with_the_database_is_refused_at_commit(sql_store):
    with sql_store.write() as tx:
        tx.put_nodes({(4, 4): sha256(b"a")})

    def overwrite() -> None:
        with sql_store.write() as tx:
            append(tx, 1)
            tx.put_nodes({(4, 4): sha256(b"b")})

    with pytest.raises(ConflictError):
        overwrite()
    assert sql_store.size() == 0
    assert sql_store.nodes([(4, 4)]) == {(4, 4): sha256(b"a")}


def test_a_key_needs_its_participant(sql_store):
    # MemoryStore accepts this; the admission rules never produce it.
    with pytest.raises(ConflictError), sql_store.write() as tx:
        tx.apply_registry([AddKey(key_id=kid(1), participant="ghost", public=b"k" * 32, index=1)])
    assert sql_store.keys() == []


def test_revoking_an_unknown_key_is_not_found(sql_store):
    with pytest.raises(NotFoundError), sql_store.write() as tx:
        tx.apply_registry([RevokeKey(key_id=kid(1), index=1, reason="lost")])


def test_a_finished_transaction_refuses_puts(sql_store):
    with sql_store.write() as tx:
        pass
    with pytest.raises(RuntimeError):
        tx.put_checkpoint(checkpoint(1))


def test_raw_insert_with_an_existing_prev_is_refused(sql_store):
    entries = fill(sql_store, 2)
    insert = text(
        "INSERT INTO entries (idx, event_id, accepted_ms, prev, statement, signature) "
        "VALUES (:idx, :event_id, 0, :prev, :statement, :signature)"
    )
    for column, row in (
        ("prev", {"idx": 2, "event_id": sha256(b"new"), "prev": entries[1].prev}),
        ("event_id", {"idx": 2, "event_id": entries[0].event_id, "prev": sha256(b"p")}),
        ("idx", {"idx": 1, "event_id": sha256(b"new"), "prev": sha256(b"p")}),
    ):
        with pytest.raises(IntegrityError), sql_store.engine.begin() as conn:
            conn.execute(insert, {**row, "statement": b"s", "signature": b"g"})
        assert sql_store.size() == 2, column


def test_errors_are_ledger_errors():
    with pytest.raises(StorageError) as caught:
        SqlStore.open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert not isinstance(caught.value, SchemaError)
    assert "sqlalchemy" not in type(caught.value).__module__
    with pytest.raises(StorageError, match="unsupported database"):
        SqlStore.open("mysql://localhost/x")
    with pytest.raises(LedgerError):
        SqlStore.open("not a url")


def test_threads_share_one_store(sql_store):
    errors = []

    def work() -> None:
        try:
            for _ in range(10):
                with sql_store.write() as tx:
                    append(tx, 2, tag=threading.current_thread().name.encode())
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=work, name=f"w{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_dense_chain(sql_store, 80)


def assert_dense_chain(store: Store, size: int) -> None:
    assert store.size() == size
    prev = ZERO_HASH
    for index, entry in enumerate(store.entries(0, size)):
        assert entry.index == index
        assert entry.prev == prev
        prev = leaf_hash(entry.to_bytes())
        assert store.nodes([(0, index)])[(0, index)] == prev


_WORKER = """
import sys
from ledger.hashing import leaf_hash
from ledger.statements import Entry
from ledger.storage.sql import SqlStore

url, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqlStore.open(url, busy_timeout_ms=60_000)
for r in range(rounds):
    with store.write() as tx:
        for k in range(3):
            index = tx.size()
            entry = Entry(index=index, accepted_ms=r, prev=tx.last_leaf_hash(),
                          statement=f"{name}-{r}-{k}".encode(), signature=b"s" * 64)
            tx.put_entry(entry, leaf_hash(entry.to_bytes()))
store.close()
"""


def test_several_processes_append_without_gap_or_fork(sql_store):
    url = sql_store.engine.url.render_as_string(hide_password=False)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, f"p{i}", "25"],
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    assert_dense_chain(sql_store, 4 * 25 * 3)


# ---------------------------------------------------------------------------
# SQLite only.


@pytest.fixture
def sqlite_store(tmp_path):
    url = default_sqlite_url(tmp_path)
    migrate(url)
    store = SqlStore.open(url, busy_timeout_ms=1234)
    yield store
    store.close()


def test_sqlite_pragmas_are_in_force_on_every_connection(sqlite_store):
    connections = [sqlite_store.engine.connect() for _ in range(3)]  # several pool entries
    try:
        for conn in connections:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
            assert pragmas == {
                "journal_mode": "wal",
                "synchronous": 2,  # FULL
                "foreign_keys": 1,
                "busy_timeout": 1234,
            }
    finally:
        for conn in connections:
            conn.close()


def test_sqlite_writes_begin_immediate(sqlite_store, tmp_path):
    other = sqlite3.connect(tmp_path / "ledger.db", timeout=0, isolation_level=None)
    try:
        with sqlite_store.write() as tx:
            tx.size()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        # Reads do not take the write lock.
        with sqlite_store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_sqlite_lock_timeout_is_a_storage_error(sqlite_store, tmp_path):
    url = default_sqlite_url(tmp_path)
    impatient = SqlStore.open(url, busy_timeout_ms=50)
    holder = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="locked"), impatient.write():
            pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        impatient.close()


def test_sqlite_unique_index_refuses_a_fork_from_raw_sqlite3(sqlite_store, tmp_path):
    entries = fill(sqlite_store, 3)
    raw = sqlite3.connect(tmp_path / "ledger.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="prev"):
            raw.execute(
                "INSERT INTO entries (idx, event_id, accepted_ms, prev, statement, signature)"
                " VALUES (3, ?, 0, ?, x'00', x'00')",
                (sha256(b"fork"), entries[2].prev),
            )
        raw.rollback()
    finally:
        raw.close()
    assert sqlite_store.size() == 3


@pytest.mark.postgres
def test_postgresql_url_without_driver_is_rewritten(postgres_url):
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    assert plain.startswith("postgresql://")
    migrate(plain)
    store = SqlStore.open(plain)
    try:
        assert store.engine.dialect.driver == "psycopg"
        with store.write() as tx:
            append(tx, 1)
        assert store.size() == 1
    finally:
        store.close()


# --------------------------------------------------------------------------- lot histories


def test_history_entries_join_each_line_with_its_entry_and_record(store):
    # Ledger.history reads a lot's history in one call; it must equal the
    # lines of history() with entry() and event() of each.
    from client.demo import run_demo
    from tests.ledger.builders import new_world

    world = new_world(store)
    summary = run_demo(world.ledger, operator_id="operator", operator=world.operator)
    for lot in [known.lot for known in summary.lots]:
        found = store.history_entries(lot)
        lines = store.history(lot)
        assert [h.entry.index for h in found] == [line.index for line in lines]
        for h in found:
            assert h.entry == store.entry(h.entry.index)
            record = store.event(h.entry.event_id)
            assert h.has_record is (record is not None)
            assert h.participant == (record.participant if record else None)
            assert h.corrected_by == (record.corrected_by if record else None)
    assert store.history_entries("lot:nobody:none") == []
