"""The background checkpointer: every append is covered by a signed checkpoint within the delay.

An append signs a checkpoint itself when the newest one is older than the
delay; otherwise this thread does, on a timer of ``checkpoint_delay_ms``, by
calling :meth:`ledger.Ledger.flush_checkpoint` whenever the log has grown past
the newest checkpoint. So no entry waits longer than one delay (plus the
signing time).

Several workers (processes) each run one: they are safe together because
``flush_checkpoint`` runs in the store's serialised write transaction and signs
only when the newest stored checkpoint is smaller than the log, so two workers
never sign two checkpoints for one size. The cheap read-only check comes first,
so an idle server takes no write lock.

The flush holds ``writer_lock`` (the group committer's, see
:class:`ledger.commit.GroupCommitter`), so it takes its turn with the group
commits the way other workers' writers do: a writer waiting in SQLite's busy
handler sleeps in steps of up to 100 ms, a writer waiting on the lock wakes as
soon as it is free.

After it signs, it calls ``on_signed`` (the witness pusher's ``poke``, see
:mod:`api.witnessing`); a failure there is logged and never stops the timer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from ledger import Ledger, LedgerError

__all__ = ["MIN_INTERVAL_S", "Checkpointer"]

log = logging.getLogger("mandi.api.checkpointer")

MIN_INTERVAL_S = 0.05
"""The timer never spins faster than this, even with a delay of 0."""


class Checkpointer:
    """A daemon thread calling ``ledger.flush_checkpoint()`` every delay when needed."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        interval_s: float,
        on_signed: Callable[[], None] | None = None,
        writer_lock: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self._ledger = ledger
        self._on_signed = on_signed
        self._writer_lock = writer_lock
        self._interval = max(interval_s, MIN_INTERVAL_S)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Sign a checkpoint if the log has grown past the newest one; True if it was due."""
        latest = self._ledger.store.latest_checkpoint()
        if self._ledger.size() <= (latest.size if latest is not None else 0):
            return False
        with self._writer_lock():
            self._ledger.flush_checkpoint()
        if self._on_signed is not None:
            self._on_signed()
        return True

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mandi-checkpointer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread, after one last flush so a clean shutdown leaves nothing uncovered."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        self._flush_logged()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.run_once()
        except LedgerError as exc:
            # The next tick retries; a DB outage must not kill the thread.
            log.warning("checkpoint not signed: %s: %s", type(exc).__name__, exc)
        except Exception:  # the thread must outlive any one failure
            log.exception("checkpoint not signed")
