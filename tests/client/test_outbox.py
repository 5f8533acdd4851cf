"""The outbox (durable, idempotent, ordered push) and the auditor checking what the server shows."""

from __future__ import annotations

import shutil
import sqlite3
import stat

import pytest

from client.auditor import Auditor, _aligned_width, subtree_root
from client.errors import AuditError, OutboxError, RefusedError
from client.http import BatchResult, Envelope, MandiClient, Submitted
from client.outbox import Outbox, push_pending
from ledger import Signer, Statement, sign_statement
from ledger.hashing import leaf_hash
from ledger.merkle import root_from_nodes, subtree_node_ids
from ledger.statements import Entry
from tests.client.test_cli_record import SERVER, asgi_client, coop_world, harvest

ORIGIN = "outbox.mandi.example/log"
SIGNER = Signer.from_seed(bytes([9]) * 32)


def statement(n: int):
    return sign_statement(
        SIGNER,
        Statement.build(
            origin=ORIGIN,
            kind="recall",
            signer=SIGNER.key_id,
            time="2026-11-20T09:30:00+05:00",
            body={"lot": f"lot:farm-1:p{n}", "reason": "test"},
        ),
    )


@pytest.fixture
def coop(tmp_path, monkeypatch):
    yield from coop_world(tmp_path, monkeypatch)


class FakeServer:
    """A log that appends idempotently, refuses chosen statements, and can die after committing."""

    def __init__(self, refuse=(), die_after_commit: int | None = None):
        self.log: list[bytes] = []
        self.refuse = {statement(n).event_id for n in refuse}
        self.die_after_commit = die_after_commit
        self.batches: list[int] = []

    def _entry(self, env: Envelope) -> Submitted:
        if env.statement in self.log:
            index, created = self.log.index(env.statement), False
        else:
            self.log.append(env.statement)
            index, created = len(self.log) - 1, True
        entry = Entry(
            index=index,
            accepted_ms=1,
            prev=bytes(32),
            statement=env.statement,
            signature=env.signature,
        )
        return Submitted(entry=entry, created=created)

    def submit_batch(self, items):
        self.batches.append(len(items))
        for position, env in enumerate(items):
            if env.event_id in self.refuse:
                raise RefusedError(
                    422,
                    {"code": "unknown_lot", "field": f"items[{position}].body.lot", "status": 422},
                )
        results = tuple(self._entry(env) for env in items)
        if self.die_after_commit is not None and len(self.batches) == self.die_after_commit:
            raise KeyboardInterrupt("killed after the server committed")
        return BatchResult(created=sum(r.created for r in results), items=results)

    def submit(self, env):
        if env.event_id in self.refuse:
            raise RefusedError(422, {"code": "unknown_lot", "field": "body.lot"})
        return self._entry(env)


def test_outbox_is_durable_private_and_keyed_by_event_id(tmp_path):
    path = tmp_path / "sub" / "outbox.db"
    with Outbox(path) as box:
        assert box.add(statement(1), source="a") is True
        assert box.add(statement(1), source="b") is False
        assert box.add(Envelope.of(statement(2))) is True
        assert box.counts() == {"pending": 2, "accepted": 0, "refused": 0}
        [first, second] = box.pending()
        assert (first.source, first.kind) == ("a", "recall")
        assert first.event_id == statement(1).event_id
        assert first.seq < second.seq
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    with Outbox(path) as box:  # reopened: everything is still there
        assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert len(box.pending()) == 2


def test_push_sends_in_order_in_batches_and_marks_what_was_acknowledged(tmp_path):
    server = FakeServer()
    with Outbox(tmp_path / "o.db") as box:
        box.add_many((Envelope.of(statement(n)), "recall", None) for n in range(12))
        report = push_pending(box, server, batch_size=5)
        assert report.appended == 12
        assert server.batches == [5, 5, 2]
        assert server.log == [statement(n).statement.raw for n in range(12)]
        accepted = box.items(("accepted",))
        assert [i.log_index for i in accepted] == list(range(12))
        assert all(
            i.leaf_hash
            == Entry(
                index=i.log_index,
                accepted_ms=1,
                prev=bytes(32),
                statement=i.statement,
                signature=i.signature,
            ).leaf_hash
            for i in accepted
        )
        assert push_pending(box, server).accepted == 0


def test_a_refused_item_is_marked_and_the_rest_still_goes_in_order(tmp_path):
    server = FakeServer(refuse={3})
    with Outbox(tmp_path / "o.db") as box:
        box.add_many((Envelope.of(statement(n)), "recall", f"f.csv:{n + 2}") for n in range(6))
        report = push_pending(box, server, batch_size=10)
        assert report.appended == 5
        [(item, problem)] = report.refused
        assert item.source == "f.csv:5"
        assert problem["code"] == "unknown_lot"
        assert problem["field"] == "body.lot"  # the batch position is taken off
        assert server.log == [statement(n).statement.raw for n in (0, 1, 2, 4, 5)]
        # items 0-2 went again as a batch, then 4-5 as the next one
        assert server.batches == [6, 3, 2]
        assert box.counts() == {"pending": 0, "accepted": 5, "refused": 1}
        assert box.items(("refused",))[0].refusal["code"] == "unknown_lot"
        server.refuse.clear()
        assert box.retry_refused() == 1
        assert push_pending(box, server).appended == 1


def test_an_interrupted_push_resends_and_the_server_appends_nothing_twice(tmp_path):
    server = FakeServer(die_after_commit=2)
    with Outbox(tmp_path / "o.db") as box:
        box.add_many((Envelope.of(statement(n)), "recall", None) for n in range(10))
        with pytest.raises(KeyboardInterrupt):
            push_pending(box, server, batch_size=4)
        # The server holds 8; the client marked only the first batch.
        assert len(server.log) == 8
        assert box.counts()["pending"] == 6
        server.die_after_commit = None
        report = push_pending(box, server, batch_size=4)
        assert (report.known, report.appended) == (4, 2)
        assert server.log == [statement(n).statement.raw for n in range(10)]
        assert box.counts() == {"pending": 0, "accepted": 10, "refused": 0}


def test_a_batch_holds_at_most_max_bytes(tmp_path):
    server = FakeServer()
    with Outbox(tmp_path / "o.db") as box:
        box.add_many((Envelope.of(statement(n)), "recall", None) for n in range(10))
        push_pending(box, server, max_batch_bytes=1200)
    assert max(server.batches) < 10
    assert sum(server.batches) == 10


def test_one_sync_at_a_time(tmp_path):
    with (
        Outbox(tmp_path / "o.db") as box,
        box.lock(),
        Outbox(tmp_path / "o.db") as other,
        pytest.raises(OutboxError, match="another"),
        other.lock(),
    ):
        pass
    with Outbox(tmp_path / "o.db") as box, box.lock():
        pass  # released


def test_a_file_that_is_not_an_outbox_is_refused(tmp_path):
    path = tmp_path / "o.db"
    path.write_bytes(b"not sqlite" * 100)
    with pytest.raises(OutboxError):
        Outbox(path)


# -- the auditor ----------------------------------------------------------------


def test_subtree_root_and_aligned_widths():
    leaves = [leaf_hash(bytes([i])) for i in range(8)]
    nodes = {(0, i): leaf for i, leaf in enumerate(leaves)}
    assert subtree_root(leaves) == root_from_nodes(8, _all_levels(nodes, 8))
    assert [_aligned_width(s, n) for s, n in ((0, 13), (8, 5), (12, 1), (6, 10), (5, 3))] == [
        8,
        4,
        1,
        2,
        1,
    ]
    assert subtree_node_ids(0, 13) == [(3, 0), (2, 2), (0, 12)]
    with pytest.raises(ValueError, match="power-of-two"):
        subtree_root(leaves[:3])


def _all_levels(nodes, size):
    from ledger.hashing import node_hash

    out = dict(nodes)
    level, width = 0, size
    while width > 1:
        for i in range(0, width, 2):
            out[(level + 1, i // 2)] = node_hash(out[(level, i)], out[(level, i + 1)])
        level, width = level + 1, width // 2
    return out


def test_sync_proves_runs_of_statements_with_few_proofs(coop):
    coop.enrol("farm.punjab.1")
    for i in range(13):
        harvest(coop, f"p{i}")
    coop.run("sync")
    with coop.outbox() as box:
        accepted = box.items(("accepted",))
        assert len(accepted) == 13
        assert all(i.proven_size == coop.ledger.size() for i in accepted)
    # A tampered local leaf hash can no longer be proven: the subtree root differs.
    harvest(coop, "p13")
    harvest(coop, "p14")
    with coop.outbox() as box:
        from client.http import new_http_client

        client = MandiClient(new_http_client(SERVER), sleep=lambda s: None)
        push_pending(box, client)
        last = box.items(("accepted",))[-1]
        box._db.execute("UPDATE events SET leaf_hash = ? WHERE seq = ?", (bytes(32), last.seq))
        from ledger.checkpoint import NoteVerifier

        auditor = Auditor(client, box, NoteVerifier.from_vkey(coop.vkey))
        with pytest.raises(AuditError) as caught:
            auditor.audit()
        assert caught.value.code == "not_included"


def test_a_log_that_shrinks_or_forks_is_a_loud_audit_failure(coop, tmp_path):
    """Two servers with the same log key: a copy of the data taken earlier, then both grow."""
    coop.enrol("farm.punjab.1")
    copy = tmp_path / "copy"
    shutil.copytree(coop.data_dir, copy)
    harvest(coop, "p1")
    coop.run("sync")  # the outbox now remembers a checkpoint covering p1

    from api.app import create_app
    from api.settings import Settings
    from ledger.checkpoint import NoteVerifier
    from ledger.datadir import open_ledger

    old = open_ledger(copy, checkpoint_delay_ms=0)
    app = create_app(Settings(data_dir=copy, run_checkpointer=False), old)
    http = asgi_client(app)
    try:
        with coop.outbox() as box:
            auditor = Auditor(
                MandiClient(http, sleep=lambda s: None), box, NoteVerifier.from_vkey(coop.vkey)
            )
            with pytest.raises(AuditError) as caught:
                auditor.refresh_checkpoint()
            assert caught.value.code == "log_shrank"
            # The copy grows past the size seen, with other statements: a fork.
            farm = coop.tmp / "keys"
            from client.keystore import KeyStore

            signer = KeyStore(farm).load("farm.punjab.1")
            for i in range(3):
                old.append(
                    sign_statement(
                        signer,
                        Statement.build(
                            origin=old.log.origin,
                            kind="harvest",
                            signer=signer.key_id,
                            time="2026-11-20T09:30:00+05:00",
                            body={
                                "lot": f"lot:farm.punjab.1:fork-{i}",
                                "crop": "rice",
                                "plot": "p",
                                "harvest_date": "2026-11-20",
                                "quantity": {"amount": 1, "unit": "kg"},
                            },
                        ),
                    )
                )
            old.flush_checkpoint()
            with pytest.raises(AuditError) as caught:
                auditor.refresh_checkpoint()
            assert caught.value.code == "inconsistent_log"
            before = box.newest_checkpoint()
        assert before.tree_size == coop.ledger.size()  # the forked checkpoint was not kept
    finally:
        http.really_close()
        app.state.mandi.committer.stop()
        old.store.close()
