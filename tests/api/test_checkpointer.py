"""The background checkpointer: coverage within the delay, and safety with several workers."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from api.app import create_app
from api.checkpointer import Checkpointer
from api.settings import Settings
from ledger import Ledger
from ledger.storage.sql import SqlStore
from tests.api.support import Api, enrol, envelope, harvest
from tests.ledger.builders import new_world


def test_run_once_signs_only_when_behind():
    world = new_world(checkpoint_delay_ms=3_600_000)
    enrol(world, "farm-1")
    world.ledger.append(harvest(world, "farm-1"))
    assert world.store.latest_checkpoint().size < world.ledger.size()
    checkpointer = Checkpointer(world.ledger, interval_s=1)
    assert checkpointer.run_once() is True
    assert world.store.latest_checkpoint().size == world.ledger.size()
    assert checkpointer.run_once() is False


def test_on_signed_is_called_after_signing_only():
    world = new_world(checkpoint_delay_ms=3_600_000)
    enrol(world, "farm-1")
    world.ledger.append(harvest(world, "farm-1"))
    pokes: list[int] = []
    checkpointer = Checkpointer(
        world.ledger,
        interval_s=1,
        on_signed=lambda: pokes.append(world.store.latest_checkpoint().size),
    )
    assert checkpointer.run_once() is True
    assert pokes == [world.ledger.size()]
    assert checkpointer.run_once() is False
    assert len(pokes) == 1


def test_lifespan_covers_every_append_within_the_delay():
    world = new_world(checkpoint_delay_ms=100)
    enrol(world, "farm-1")
    app = create_app(Settings(), world.ledger)
    api = Api(app)
    lifespan = app.router.lifespan_context(app)
    api.call(lifespan.__aenter__)
    try:
        for _ in range(3):
            r = api.post("/v1/events", json=envelope(harvest(world, "farm-1")))
            assert r.status_code == 201
        size = world.ledger.size()
        deadline = time.monotonic() + 2.0
        while world.store.latest_checkpoint().size < size and time.monotonic() < deadline:
            time.sleep(0.02)
        assert world.store.latest_checkpoint().size == size
    finally:
        api.call(lambda: lifespan.__aexit__(None, None, None))
        api.close()


def test_several_workers_sign_one_checkpoint_per_size(tmp_path):
    from ledger.storage.sql import default_sqlite_url, migrate

    url = default_sqlite_url(tmp_path)
    migrate(url)
    first = SqlStore.open(url)
    world = new_world(first, checkpoint_delay_ms=3_600_000)
    enrol(world, "farm-1")
    stores = [first] + [SqlStore.open(url) for _ in range(3)]
    ledgers = [
        Ledger(
            s,
            log=world.ledger.log,
            log_signer=world.log_signer,
            clock=world.clock,
            checkpoint_delay_ms=3_600_000,
        )
        for s in stores
    ]
    workers = [Checkpointer(ledger, interval_s=1) for ledger in ledgers]
    try:
        for round_ in range(5):
            ledgers[round_ % 4].append(harvest(world, "farm-1"))
            barrier = threading.Barrier(len(workers))

            def tick(worker, barrier=barrier):
                barrier.wait()
                worker.run_once()

            threads = [threading.Thread(target=tick, args=(w,)) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        sizes = [c.size for c in first.checkpoints()]
        assert len(sizes) == len(set(sizes))
        assert sizes[-1] == first.size()
    finally:
        for s in stores:
            s.close()


def test_the_flush_holds_the_writer_lock():
    world = new_world(checkpoint_delay_ms=3_600_000)
    enrol(world, "farm-1")
    world.ledger.append(harvest(world, "farm-1"))
    held: list[bool] = []
    inside = [False]

    @contextmanager
    def lock():
        inside[0] = True
        try:
            yield
        finally:
            inside[0] = False

    original = world.ledger.flush_checkpoint

    def flush():
        held.append(inside[0])
        return original()

    world.ledger.flush_checkpoint = flush  # type: ignore[method-assign]
    checkpointer = Checkpointer(world.ledger, interval_s=1, writer_lock=lock)
    assert checkpointer.run_once() is True
    assert held == [True]
