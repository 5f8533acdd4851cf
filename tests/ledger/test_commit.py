"""Group commit: :meth:`Ledger.append_each` and :class:`ledger.commit.GroupCommitter`.

``append_each`` is checked against a twin world that appends only the accepted
items with ``append_batch``: the two logs must be byte for byte the same, which
is what "a refused item changes nothing" means. The committer runs on a SQLite
file with many submitting threads; every acknowledged statement must be in the
log once, at dense indices, every refusal must reach the thread that submitted
it, and the log must audit clean.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest

from ledger import (
    MAX_BATCH,
    AppendResult,
    LedgerError,
    RuleError,
    SignatureError,
    SignedStatement,
    StorageError,
)
from ledger.audit import audit_log
from ledger.commit import GroupCommitter, WriterLock
from ledger.registry import build_enrolment, build_enrolment_request
from ledger.storage.memory import MemoryStore
from ledger.storage.sql import SqlStore, default_sqlite_url, migrate
from tests.ledger.builders import (
    ORIGIN,
    TIME,
    count_verifications,
    harvest_body,
    new_world,
    seeded,
    valid_profile,
)


def _enrolment(world, pid: str, n: int) -> SignedStatement:
    request = build_enrolment_request(
        origin=ORIGIN, participant_id=pid, signer=seeded(n), time=TIME, profile=valid_profile(pid)
    )
    return build_enrolment(origin=ORIGIN, operator=world.operator, request=request, time=TIME)


def _tampered(signed: SignedStatement) -> SignedStatement:
    flipped = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    return SignedStatement(statement=signed.statement, signature=flipped)


def _log(store) -> list[tuple[int, int, bytes, bytes, bytes]]:
    return [
        (e.index, e.accepted_ms, bytes(e.prev), e.statement, e.signature)
        for e in store.entries(0, store.size())
    ]


def _domain(store, lots):
    return [store.lot(lot) for lot in lots], store.keys(), store.participants()


# --------------------------------------------------------------------------- append_each


def test_append_each_skips_refusals_and_changes_nothing_else():
    world, twin = new_world(), new_world()
    for w in (world, twin):
        w.ledger.append(_enrolment(w, "farm-a", 10))
        w.signers["farm-a"] = seeded(10)
    known = world.statement("farm-a", body=harvest_body("lot:farm-a:K"))
    for w in (world, twin):
        w.ledger.append(known)
    size_before = world.ledger.size()

    first = world.statement("farm-a", body=harvest_body("lot:farm-a:A"))
    bad_signature = _tampered(world.statement("farm-a", body=harvest_body("lot:farm-a:X")))
    lot_taken = world.statement("farm-a", body=harvest_body("lot:farm-a:A", amount=7))
    enrol_b = _enrolment(world, "farm-b", 11)
    by_new_key = world.statement_by(seeded(11), body=harvest_body("lot:farm-b:B"))
    unknown_signer = world.statement_by(seeded(12), body=harvest_body("lot:farm-c:C"))
    items = [first, bad_signature, known, lot_taken, enrol_b, by_new_key, unknown_signer, first]

    results = world.ledger.append_each(items)

    assert len(results) == len(items)
    created = [r for r in results if isinstance(r, AppendResult) and r.created]
    assert [r.entry.index for r in created] == [size_before, size_before + 1, size_before + 2]
    assert [r.entry.statement for r in created] == [
        s.statement.raw for s in (first, enrol_b, by_new_key)
    ]
    assert isinstance(results[1], SignatureError)
    assert results[1].code == "bad_signature"
    assert results[2] == AppendResult(entry=world.ledger.entry(size_before - 1), created=False)
    assert isinstance(results[3], RuleError)
    assert (results[3].code, results[3].lot) == ("lot_exists", "lot:farm-a:A")
    assert isinstance(results[6], LedgerError)
    assert results[6].code == "unknown_signer"
    assert results[7] == AppendResult(entry=results[0].entry, created=False)  # type: ignore[union-attr]

    # The twin appends only what was accepted, in one transaction too.
    twin.ledger.append_batch([first, enrol_b, by_new_key])
    assert _log(world.store) == _log(twin.store)
    lots = ["lot:farm-a:A", "lot:farm-a:K", "lot:farm-b:B", "lot:farm-a:X", "lot:farm-c:C"]
    assert _domain(world.store, lots) == _domain(twin.store, lots)
    assert [c.size for c in world.store.checkpoints()] == [c.size for c in twin.store.checkpoints()]


def test_append_each_with_every_item_refused_appends_nothing():
    world = new_world()
    world.enrol("farm-a")
    size = world.ledger.size()
    stranger = world.statement_by(seeded(40))
    results = world.ledger.append_each([stranger, _tampered(world.statement("farm-a"))])
    assert [getattr(r, "code", None) for r in results] == ["unknown_signer", "bad_signature"]
    assert world.ledger.size() == size


def test_append_each_limits_its_size():
    world = new_world()
    with pytest.raises(ValueError, match="at most"):
        world.ledger.append_each([world.statement_by(world.operator)] * (MAX_BATCH + 1))


class _FailingStore(MemoryStore):
    """Fails a write transaction's second put_entry, as a database error would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def write(self):
        outer = super().write()
        store = self

        class _Wrap:
            def __enter__(self):
                tx = outer.__enter__()
                if store.fail:
                    calls = {"n": 0}
                    put_entry = tx.put_entry

                    def failing(entry, leaf):
                        calls["n"] += 1
                        if calls["n"] == 2:
                            raise StorageError("disk I/O error")
                        return put_entry(entry, leaf)

                    tx.put_entry = failing
                return tx

            def __exit__(self, *exc):
                return outer.__exit__(*exc)

        return _Wrap()


def test_append_each_storage_failure_stores_nothing():
    store = _FailingStore()
    world = new_world(store)
    world.enrol("farm-a")
    before = _log(store)
    store.fail = True
    with pytest.raises(StorageError):
        world.ledger.append_each([world.statement("farm-a"), world.statement("farm-a")])
    assert _log(store) == before


# --------------------------------------------------------------------------- the committer


@pytest.fixture
def sqlite_world(tmp_path):
    url = default_sqlite_url(tmp_path / "ledger.db")
    migrate(url)
    store = SqlStore.open(url)
    world = new_world(store)
    world.enrol("farm-a", seeded(20))
    yield world
    store.close()


def _audit_clean(world) -> None:
    store = world.store
    world.ledger.flush_checkpoint()
    report = audit_log(
        store.entries(0, store.size()),
        (c.note for c in store.checkpoints()),
        log_verifier=world.verifier,
        stored_leaves=store.leaf_hashes(0, store.size()),
    )
    assert report.ok, report.to_text()


def test_concurrent_submitters_each_get_their_own_answer(sqlite_world):
    world = sqlite_world
    taken = world.statement("farm-a", body=harvest_body("lot:farm-a:taken"))
    world.ledger.append(taken)
    start = world.ledger.size()
    threads, per_thread = 16, 12
    # Thread t submits: fresh harvests, a harvest of a lot that exists (refused,
    # naming that lot), a badly signed one, and one statement shared by all
    # threads (accepted once, then known).
    shared = world.statement("farm-a", body=harvest_body("lot:farm-a:shared"))
    plans: list[list[tuple[str, SignedStatement]]] = []
    for t in range(threads):
        plan: list[tuple[str, SignedStatement]] = []
        for n in range(per_thread):
            lot = f"lot:farm-a:t{t}-{n}"
            plan.append(("ok", world.statement("farm-a", body=harvest_body(lot))))
        plan.insert(
            3,
            (
                "exists",
                world.statement("farm-a", body=harvest_body("lot:farm-a:taken", amount=t + 2)),
            ),
        )
        plan.insert(
            6,
            ("bad", _tampered(world.statement("farm-a", body=harvest_body(f"lot:farm-a:bad{t}")))),
        )
        plan.insert(9, ("shared", shared))
        plans.append(plan)
    committer = GroupCommitter(world.ledger, max_batch=64)
    barrier = threading.Barrier(threads)

    def run(plan):
        barrier.wait()
        outcomes = []
        for what, signed in plan:
            try:
                outcomes.append((what, signed, committer.submit(signed)))
            except LedgerError as exc:
                outcomes.append((what, signed, exc))
        return outcomes

    try:
        with ThreadPoolExecutor(threads) as pool:
            answers = [o for outcomes in pool.map(run, plans) for o in outcomes]
    finally:
        committer.stop()

    acknowledged: dict[bytes, int] = {}
    shared_created = 0
    for what, signed, answer in answers:
        if what == "ok":
            assert isinstance(answer, AppendResult)
            assert answer.created
            assert answer.entry.statement == signed.statement.raw
            acknowledged[bytes(signed.event_id)] = answer.entry.index
        elif what == "shared":
            assert isinstance(answer, AppendResult)
            assert answer.entry.statement == shared.statement.raw
            shared_created += answer.created
            acknowledged[bytes(signed.event_id)] = answer.entry.index
        elif what == "exists":
            assert isinstance(answer, RuleError)
            assert (answer.code, answer.lot) == ("lot_exists", "lot:farm-a:taken")
        else:
            assert isinstance(answer, SignatureError)
            assert world.store.entry_by_event_id(signed.event_id) is None
    assert shared_created == 1
    size = world.ledger.size()
    assert size == start + threads * per_thread + 1
    entries = list(world.store.entries(start, size))
    assert [e.index for e in entries] == list(range(start, size))
    assert {bytes(e.event_id): e.index for e in entries} == acknowledged
    assert world.store.lot("lot:farm-a:taken").quantity == 1000 * 1000  # unchanged: 1000 kg
    assert committer.groups <= threads * per_thread + 1
    _audit_clean(world)


class _Gated:
    """A ledger stand-in whose first append_each waits for a signal; records group sizes."""

    def __init__(self, ledger, *, boom: bytes | None = None, storage_error: bool = False):
        self.ledger = ledger
        self.gate = threading.Event()
        self.sizes: list[int] = []
        self.boom = boom
        self.storage_error = storage_error

    def append_each(self, items, *, verified_with=None):
        if not self.sizes:
            self.gate.wait(10)
        self.sizes.append(len(items))
        if self.storage_error and len(items) > 1:
            raise StorageError("database is locked")
        if self.boom is not None and any(bytes(s.event_id) == self.boom for s in items):
            raise RuntimeError("a bug in admission")
        return self.ledger.append_each(items, verified_with=verified_with)

    def append_batch(self, items, *, verified_with=None):
        self.sizes.append(len(items))
        return self.ledger.append_batch(items, verified_with=verified_with)


def _wait_for(predicate) -> None:
    deadline = threading.Event()
    for _ in range(1000):
        if predicate():
            return
        deadline.wait(0.01)
    raise AssertionError("timed out")


def test_submissions_queued_during_a_commit_share_the_next_one(sqlite_world):
    world = sqlite_world
    gated = _Gated(world.ledger)
    committer = GroupCommitter(gated, max_batch=100)  # type: ignore[arg-type]
    first = committer.submit_future(world.statement("farm-a"))
    _wait_for(lambda: committer.pending() == 0)  # the writer holds it, blocked
    later = [committer.submit_future(world.statement("farm-a")) for _ in range(20)]
    assert committer.pending() == 20
    gated.gate.set()
    results = [f.result(10) for f in (first, *later)]
    committer.stop()
    assert gated.sizes == [1, 20]
    assert [r.entry.index for r in results] == list(
        range(results[0].entry.index, results[0].entry.index + 21)
    )


def test_a_withdrawn_submission_is_never_appended(sqlite_world):
    world = sqlite_world
    gated = _Gated(world.ledger)
    committer = GroupCommitter(gated)  # type: ignore[arg-type]
    committer.submit_future(world.statement("farm-a"))
    _wait_for(lambda: committer.pending() == 0)
    withdrawn_statement = world.statement("farm-a")
    withdrawn = committer.submit_future(withdrawn_statement)
    kept = committer.submit_future(world.statement("farm-a"))
    assert withdrawn.cancel()
    gated.gate.set()
    assert kept.result(10).created
    committer.stop()
    with pytest.raises(CancelledError):
        withdrawn.result()
    assert world.store.entry_by_event_id(withdrawn_statement.event_id) is None


def test_an_unexpected_failure_reaches_only_its_submitter(sqlite_world):
    world = sqlite_world
    culprit = world.statement("farm-a")
    gated = _Gated(world.ledger, boom=bytes(culprit.event_id))
    committer = GroupCommitter(gated)  # type: ignore[arg-type]
    committer.submit_future(world.statement("farm-a"))
    _wait_for(lambda: committer.pending() == 0)
    others = [world.statement("farm-a") for _ in range(3)]
    futures = [committer.submit_future(s) for s in (others[0], culprit, *others[1:])]
    gated.gate.set()
    committer.stop()
    assert isinstance(futures[1].exception(10), RuntimeError)
    for future, signed in zip([futures[0], *futures[2:]], others, strict=True):
        assert future.result().entry.statement == signed.statement.raw
    assert world.store.entry_by_event_id(culprit.event_id) is None


def test_a_failed_commit_reaches_every_submitter_of_the_group(sqlite_world):
    world = sqlite_world
    gated = _Gated(world.ledger, storage_error=True)
    committer = GroupCommitter(gated)  # type: ignore[arg-type]
    committer.submit_future(world.statement("farm-a"))
    _wait_for(lambda: committer.pending() == 0)
    size = world.ledger.size()
    futures = [committer.submit_future(world.statement("farm-a")) for _ in range(4)]
    gated.gate.set()
    committer.stop()
    for future in futures:
        assert isinstance(future.exception(10), StorageError)
    assert world.ledger.size() == size + 1  # only the first, alone in its group


def test_stop_commits_everything_already_submitted(tmp_path):
    url = default_sqlite_url(tmp_path / "ledger.db")
    migrate(url)
    store = SqlStore.open(url)
    world = new_world(store)
    world.enrol("farm-a", seeded(20))
    committer = GroupCommitter(world.ledger, max_batch=7)
    committer.start()
    statements = [world.statement("farm-a") for _ in range(60)]
    futures = [committer.submit_future(s) for s in statements]
    committer.stop()
    assert not committer.running
    assert all(f.done() for f in futures)
    store.close()
    reopened = SqlStore.open(url)
    try:
        for signed, future in zip(statements, futures, strict=True):
            assert reopened.entry_by_event_id(signed.event_id) == future.result().entry
    finally:
        reopened.close()


def test_an_idle_writer_exits_and_the_next_submission_restarts_it():
    world = new_world()
    world.enrol("farm-a")
    committer = GroupCommitter(world.ledger, idle_s=0.02)
    assert committer.submit(world.statement("farm-a")).created
    _wait_for(lambda: not committer.running)
    assert committer.submit(world.statement("farm-a")).created
    committer.stop()
    assert not committer.running


def test_arguments_are_checked():
    world = new_world()
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(world.ledger, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        GroupCommitter(world.ledger, max_wait_ms=-1)


def test_a_max_wait_gathers_a_group():
    world = new_world()
    world.enrol("farm-a")
    committer = GroupCommitter(world.ledger, max_wait_ms=200, max_batch=5)
    futures = [committer.submit_future(world.statement("farm-a")) for _ in range(5)]
    assert [f.result(10).created for f in futures] == [True] * 5
    committer.stop()
    assert committer.groups == 1


# --------------------------------------------------------------------------- the writer lock


def test_the_writer_lock_orders_processes_and_threads(tmp_path):
    path = tmp_path / "ledger.db-writer.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(0.4)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lock = WriterLock(path)
    try:
        assert holder.stdout.readline().strip() == "held"
        began = time.monotonic()
        with lock.hold():
            waited = time.monotonic() - began
        assert waited >= 0.2
        assert holder.wait(10) == 0

        inside = []
        overlaps = []

        def critical():
            for _ in range(50):
                with lock.hold():
                    inside.append(1)
                    overlaps.append(len(inside))
                    inside.pop()

        threads = [threading.Thread(target=critical) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert overlaps == [1] * 200
    finally:
        lock.close()
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()


def test_the_committer_holds_its_lock_around_each_commit(sqlite_world, tmp_path):
    lock = WriterLock(tmp_path / "w.lock")
    committer = GroupCommitter(sqlite_world.ledger, lock=lock)
    seen = []
    original = sqlite_world.ledger.append_each

    def checking(items, *, verified_with=None):
        # Another open file description cannot take the lock while a commit runs.
        fd = os.open(lock.path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        seen.append(len(items))
        return original(items, verified_with=verified_with)

    sqlite_world.ledger.append_each = checking
    try:
        assert committer.submit(sqlite_world.statement("farm-a")).created
        with committer.hold_writer_lock():
            pass
    finally:
        committer.stop()
        lock.close()
    assert seen == [1]


def test_batches_share_the_writer_and_stay_all_or_none(sqlite_world):
    world = sqlite_world
    gated = _Gated(world.ledger)
    committer = GroupCommitter(gated)  # type: ignore[arg-type]
    committer.submit_future(world.statement("farm-a"))
    _wait_for(lambda: committer.pending() == 0)
    size = world.ledger.size() + 1
    before = committer.submit_future(world.statement("farm-a"))
    good = [world.statement("farm-a") for _ in range(3)]
    batch = committer.submit_batch_future(good)
    bad = [world.statement("farm-a"), _tampered(world.statement("farm-a"))]
    refused = committer.submit_batch_future(bad)
    after = committer.submit_future(world.statement("farm-a"))
    gated.gate.set()
    assert before.result(10).entry.index == size
    assert [r.entry.index for r in batch.result(10)] == [size + 1, size + 2, size + 3]
    assert isinstance(refused.exception(10), SignatureError)
    assert after.result(10).entry.index == size + 4
    committer.stop()
    assert world.store.entry_by_event_id(bad[0].event_id) is None
    # The singles around the batches are not merged into them.
    assert gated.sizes == [1, 1, 3, 2, 1]


# --------------------------------------------------------------------------- verified_with


def test_the_ledger_learns_the_keys_of_admitted_signers():
    world = new_world()
    signer = world.enrol("farm-a")
    assert world.ledger.signer_key(signer.key_id) is None  # enrolled, but signed nothing yet
    world.ledger.append(world.statement("farm-a"))
    assert world.ledger.signer_key(signer.key_id) == signer.public.raw
    assert world.ledger.signer_key(seeded(77).key_id) is None


def test_a_signature_verified_with_the_resolved_key_is_not_verified_again(monkeypatch):
    world = new_world()
    signer = world.enrol("farm-a")
    calls = count_verifications(monkeypatch)
    [result] = world.ledger.append_each(
        [world.statement("farm-a")], verified_with=[signer.public.raw]
    )
    assert isinstance(result, AppendResult)
    assert result.created
    assert calls[0] == 0
    [result] = world.ledger.append_each([world.statement("farm-a")], verified_with=[None])
    assert isinstance(result, AppendResult)
    assert result.created
    assert calls[0] == 1


def test_a_claim_made_with_another_key_does_not_skip_the_check():
    world = new_world()
    world.enrol("farm-a")
    other = world.enrol("farm-b")
    size = world.ledger.size()
    bad = _tampered(world.statement("farm-a"))
    # The caller says it verified with farm-b's key; the registry resolves farm-a's.
    [result] = world.ledger.append_each([bad], verified_with=[other.public.raw])
    assert isinstance(result, SignatureError)
    assert result.code == "bad_signature"
    assert world.ledger.size() == size
    with pytest.raises(ValueError, match="one slot per item"):
        world.ledger.append_each([bad], verified_with=[])


def test_the_committer_passes_each_verified_key_to_its_statement(sqlite_world, monkeypatch):
    world = sqlite_world
    signer = world.enrol("farm-a")
    committer = GroupCommitter(world.ledger)
    try:
        calls = count_verifications(monkeypatch)
        verified = committer.submit_future(
            world.statement("farm-a"), verified_with=signer.public.raw
        )
        assert verified.result(30).created
        assert calls[0] == 0
        refused = committer.submit_future(
            _tampered(world.statement("farm-a")), verified_with=seeded(77).public.raw
        )
        with pytest.raises(SignatureError):
            refused.result(30)
        assert calls[0] == 1
    finally:
        committer.stop()


def test_verify_ahead_answers_only_for_a_known_key_and_a_good_signature():
    world = new_world()
    signer = world.enrol("farm-a")
    first = world.statement("farm-a")
    assert world.ledger.verify_ahead(first) is None  # the key signed nothing here yet
    world.ledger.append(first)
    assert world.ledger.verify_ahead(world.statement("farm-a")) == signer.public.raw
    assert world.ledger.verify_ahead(_tampered(world.statement("farm-a"))) is None


def test_a_batch_skips_only_the_checks_made_with_the_resolved_key(monkeypatch):
    world = new_world()
    signer = world.enrol("farm-a")
    other = world.enrol("farm-b")
    calls = count_verifications(monkeypatch)
    items = [world.statement("farm-a") for _ in range(3)]
    results = world.ledger.append_batch(items, verified_with=[signer.public.raw, None, None])
    assert [r.created for r in results] == [True, True, True]
    assert calls[0] == 2
    size = world.ledger.size()
    bad = [world.statement("farm-a"), _tampered(world.statement("farm-a"))]
    with pytest.raises(SignatureError):
        world.ledger.append_batch(bad, verified_with=[signer.public.raw, other.public.raw])
    assert world.ledger.size() == size
    with pytest.raises(ValueError, match="one slot per item"):
        world.ledger.append_batch(bad, verified_with=[None])


def test_the_committer_passes_a_batch_its_verified_keys(sqlite_world, monkeypatch):
    world = sqlite_world
    signer = world.enrol("farm-a")
    committer = GroupCommitter(world.ledger)
    try:
        calls = count_verifications(monkeypatch)
        items = [world.statement("farm-a") for _ in range(2)]
        done = committer.submit_batch_future(items, verified_with=[signer.public.raw] * 2)
        assert [r.created for r in done.result(30)] == [True, True]
        assert calls[0] == 0
    finally:
        committer.stop()
