"""Group commit: many concurrent single-statement submissions, one transaction between them.

A durable append costs one commit, and on SQLite with ``synchronous=FULL`` a
commit is an fsync of a few milliseconds, so a server that commits each
submission alone tops out at a few hundred statements a second however many
clients it has. :class:`GroupCommitter` runs one writer thread that takes every
submission waiting in its queue (up to ``max_batch``), appends them with
:meth:`Ledger.append_each` in one transaction, and only then hands each
submitter its own result or its own refusal. While one group commits, the next
one gathers, so the group size follows the load without tuning: one client sees
one commit per statement, 32 clients share each commit.

Per submission the semantics are exactly those of :meth:`Ledger.append`: a
statement is admitted against the log including everything committed before it
(in its group too), a refusal changes nothing and reaches only its submitter,
a known statement returns its entry with ``created=False``, and nothing is
acknowledged before the commit that makes it durable.

Several processes on one SQLite file (``mandi serve --workers N``) take turns
through :class:`WriterLock`, an OS file lock held around each transaction.
SQLite's own wait for its write lock (``busy_timeout``) polls with sleeps of
up to 100 ms, so a writer that finds another one committing would otherwise lose
tens of milliseconds each time; ``flock`` wakes the next writer as soon as the
lock is free.

This module owns the queue, the writer thread, its lifetime and the writer
lock. It decides nothing about what may be appended (that is
:meth:`Ledger.append_each`), and knows nothing of HTTP.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import LedgerError
from ledger.service import MAX_BATCH, AppendResult, Ledger
from ledger.statements import SignedStatement

__all__ = ["DEFAULT_IDLE_S", "DEFAULT_MAX_WAIT_MS", "GroupCommitter", "WriterLock"]

DEFAULT_MAX_WAIT_MS = 0.0
"""How long a group waits for more submissions once it has one (0: take what is queued)."""
DEFAULT_IDLE_S = 2.0
"""An idle writer thread exits after this long; the next submission starts another."""

log = logging.getLogger("mandi.commit")

_Pending = tuple[SignedStatement, bytes | None, "Future[AppendResult]"]


@dataclass(slots=True)
class _Batch:
    """A batch submission: appended alone, all or none, by :meth:`Ledger.append_batch`."""

    items: Sequence[SignedStatement]
    verified_with: Sequence[bytes | None] | None
    future: Future[list[AppendResult]]


class WriterLock:
    """An exclusive lock shared by the threads of this process and by other processes.

    A :class:`threading.Lock` orders this process's threads; ``flock`` on
    ``path`` (created if missing, never removed) orders the processes. Both
    wake a waiter as soon as the holder releases. POSIX only.

    Args:
        path: the lock file, next to the database it guards.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block."""
        with self._thread_lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (the lock must not be held)."""
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class GroupCommitter:
    """Append submissions from many threads in shared transactions.

    Args:
        ledger: the ledger to append to.
        max_batch: most submissions in one transaction (1 to :data:`MAX_BATCH`).
        max_wait_ms: once a group holds one submission, how long to wait for
            more before committing (0: commit what is queued at once; the
            groups then grow by themselves while the previous one commits).
        idle_s: the writer thread exits after this long without work and is
            started again by the next submission (so an app whose lifespan
            never runs, as under a test transport, leaves no thread behind).
        lock: held around each transaction (a :class:`WriterLock` when other
            processes write to the same SQLite file); default none.

    The writer thread starts with :meth:`start` or with the first submission;
    :meth:`stop` commits everything already submitted and joins it. A
    committer may be started again after :meth:`stop`.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_batch: int = MAX_BATCH,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        idle_s: float = DEFAULT_IDLE_S,
        lock: WriterLock | None = None,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be in [1, {MAX_BATCH}]")
        if max_wait_ms < 0 or idle_s <= 0:
            raise ValueError("requires max_wait_ms >= 0 and idle_s > 0")
        self.ledger = ledger
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.idle_s = idle_s
        self.lock = lock
        self._queue: deque[_Pending | _Batch] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.groups = 0
        """Transactions committed so far (for tests and metrics)."""

    # -- submitting --------------------------------------------------------------

    def submit(self, signed: SignedStatement) -> AppendResult:
        """Append one statement; block until it is durable (or refused).

        Returns:
            The entry holding the statement and whether this call created it.

        Raises:
            LedgerError: the statement's refusal (nothing changed), or the
                storage error that failed its group's commit.
        """
        return self.submit_future(signed).result()

    def submit_future(
        self, signed: SignedStatement, *, verified_with: bytes | None = None
    ) -> Future[AppendResult]:
        """Queue one statement; the future resolves after the commit that holds it.

        ``verified_with``: a raw key the caller verified the signature with (see
        :meth:`Ledger.append_each`), so the writer need not verify it again.
        Cancelling the future before the writer takes the statement withdraws
        it (it is never appended); once taken, cancelling has no effect.
        """
        future: Future[AppendResult] = Future()
        with self._cond:
            self._queue.append((signed, verified_with, future))
            self._ensure_thread()
            self._cond.notify()
        return future

    def submit_batch_future(
        self,
        items: Sequence[SignedStatement],
        *,
        verified_with: Sequence[bytes | None] | None = None,
    ) -> Future[list[AppendResult]]:
        """Queue a batch: appended in its own transaction, all or none, in queue order.

        The writer thread runs :meth:`Ledger.append_batch` on ``items`` (which it
        iterates there) and resolves the future with its results or its error.
        Batches and single submissions share one writer, so a process's
        appends never wait on each other's database lock. ``verified_with``:
        one slot per item, as for :meth:`submit_future`.
        """
        future: Future[list[AppendResult]] = Future()
        with self._cond:
            self._queue.append(_Batch(items=items, verified_with=verified_with, future=future))
            self._ensure_thread()
            self._cond.notify()
        return future

    # -- lifetime ------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._cond:
            self._stopping = False
            self._ensure_thread()

    def stop(self, timeout: float | None = None) -> None:
        """Commit everything already submitted, then end the writer thread.

        Submissions that arrive while stopping are still committed; call this
        once no new ones arrive (a server: after it stopped taking requests).
        """
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._stopping = False

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive."""
        with self._cond:
            return self._thread is not None

    def pending(self) -> int:
        """Submissions waiting for the writer."""
        with self._cond:
            return len(self._queue)

    def hold_writer_lock(self) -> AbstractContextManager[None]:
        """The writer lock, for other writers of this process (a batch append)."""
        return self.lock.hold() if self.lock is not None else nullcontext()

    def _ensure_thread(self) -> None:
        # Called with the condition held.
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="mandi-group-commit", daemon=True
            )
            self._thread.start()

    # -- the writer ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            group = self._next_group()
            if group is None:
                return
            if isinstance(group, _Batch):
                self._commit_batch(group)
            else:
                self._commit(group)

    def _next_group(self) -> list[_Pending] | _Batch | None:
        """The next submissions to commit, or None when the thread should end."""
        with self._cond:
            idle_until = time.monotonic() + self.idle_s
            while not self._queue:
                if self._stopping:
                    self._thread = None
                    return None
                left = idle_until - time.monotonic()
                if left <= 0:
                    self._thread = None
                    return None
                self._cond.wait(left)
            if self.max_wait_s > 0 and not self._stopping:
                deadline = time.monotonic() + self.max_wait_s
                while len(self._queue) < self.max_batch and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            first = self._queue[0]
            if isinstance(first, _Batch):
                self._queue.popleft()
                return first if first.future.set_running_or_notify_cancel() else []
            group: list[_Pending] = []
            while self._queue and len(group) < self.max_batch:
                pending = self._queue[0]
                if isinstance(pending, _Batch):
                    break  # its own transaction, next round
                self._queue.popleft()
                # A submitter that gave up before we took it is not appended.
                if pending[2].set_running_or_notify_cancel():
                    group.append(pending)
            return group

    def _commit_batch(self, batch: _Batch) -> None:
        try:
            with self.hold_writer_lock():
                results = self.ledger.append_batch(batch.items, verified_with=batch.verified_with)
        except Exception as exc:  # noqa: BLE001 - the error goes to its submitter
            batch.future.set_exception(exc)
            return
        self.groups += 1
        batch.future.set_result(results)

    def _commit(self, group: Sequence[_Pending]) -> None:
        if not group:
            return
        try:
            with self.hold_writer_lock():
                results = self.ledger.append_each(
                    [signed for signed, _, _ in group],
                    verified_with=[verified for _, verified, _ in group],
                )
        except LedgerError as exc:
            # The transaction failed as a whole (storage): nothing of the group
            # is stored, and every submitter gets the error.
            for _, _, future in group:
                future.set_exception(exc)
            return
        except Exception as exc:
            if len(group) == 1:
                group[0][2].set_exception(exc)
                return
            # Nothing was stored; find the culprit by committing each alone.
            log.exception("group commit of %d statements failed; retrying one by one", len(group))
            for pending in group:
                self._commit_alone(pending)
            return
        self.groups += 1
        for (_, _, future), result in zip(group, results, strict=True):
            if isinstance(result, LedgerError):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _commit_alone(self, pending: _Pending) -> None:
        signed, verified, future = pending
        try:
            with self.hold_writer_lock():
                [result] = self.ledger.append_each([signed], verified_with=[verified])
        except Exception as exc:  # noqa: BLE001 - the error goes to its submitter
            future.set_exception(exc)
            return
        self.groups += 1
        if isinstance(result, LedgerError):
            future.set_exception(result)
        else:
            future.set_result(result)
