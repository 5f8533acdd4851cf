"""The witness pusher: every new checkpoint goes to each configured witness for a cosignature.

For each witness (``Settings.witnesses``) one daemon thread waits for a new
checkpoint (the checkpointer pokes it after signing; it also polls the newest
checkpoint every interval, since an append may sign one itself) and then calls
:func:`ledger.cosigning.push_checkpoint` over httpx with short timeouts: a
``POST <url>/add-checkpoint`` from the size the witness last cosigned (read
from the stored cosignatures, else 0), resynced once on a 409. A verified
cosignature is stored; an unverified line never is. Nothing here blocks an
append or the signing of a checkpoint: a failed push is logged, counted in
``mandi_witness_push_total{witness, outcome}`` and retried after
``witness_retry_s`` (a witness that has seen another tree of this log,
outcome ``other_log``, is logged at ERROR: that is a split view).

Several workers (``mandi serve --workers N``) each run a pusher. Before
sending, a pusher looks in the shared cosignatures table and sends nothing if
the witness's cosignature of the newest checkpoint is stored already, so the
worker that gets there first usually does the only push; when two race, the
witness answers the second with 409 (its size moved) and, after the resync,
cosigns the same checkpoint again, whose line then replaces the first. Both
outcomes are harmless, so no cross-process lock is taken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import httpx

from api.metrics import Metrics
from ledger import Ledger, LedgerError
from ledger.cosigning import (
    MAX_RESPONSE_SIZE,
    PushOutcome,
    PushResult,
    WitnessEndpoint,
    WitnessReply,
    WitnessTransportError,
    push_checkpoint,
)

__all__ = ["CONNECT_TIMEOUT_S", "REQUEST_TIMEOUT_S", "WitnessPusher", "httpx_post"]

log = logging.getLogger("mandi.api.witnessing")

CONNECT_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 5.0
MIN_POLL_S = 0.25
"""The threads never poll the newest checkpoint faster than this."""

_FAILED = frozenset(
    {
        PushOutcome.CONFLICT,
        PushOutcome.REFUSED,
        PushOutcome.UNREACHABLE,
        PushOutcome.INVALID_COSIGNATURE,
        PushOutcome.OTHER_LOG,
    }
)


def httpx_post(client: httpx.Client) -> Callable[[str, bytes], WitnessReply]:
    """A :data:`ledger.cosigning.Post` over ``client``; reads at most MAX_RESPONSE_SIZE bytes."""

    def post(url: str, body: bytes) -> WitnessReply:
        try:
            with client.stream("POST", url, content=body) as response:
                data = b""
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_RESPONSE_SIZE:
                        break
                return WitnessReply(
                    status=response.status_code,
                    content_type=response.headers.get("content-type", ""),
                    body=data[:MAX_RESPONSE_SIZE],
                )
        except httpx.HTTPError as exc:
            raise WitnessTransportError(f"{type(exc).__name__}: {exc}") from exc

    return post


class WitnessPusher:
    """Pushes the newest checkpoint to each witness: one thread per witness once started."""

    def __init__(
        self,
        ledger: Ledger,
        witnesses: Sequence[WitnessEndpoint],
        *,
        metrics: Metrics | None = None,
        interval_s: float = 1.0,
        retry_s: float = 10.0,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._witnesses = tuple(witnesses)
        self._metrics = metrics
        self._interval = max(interval_s, MIN_POLL_S)
        self._retry = retry_s
        self._clock = clock
        self._owns_http = http is None
        self._http = (
            http
            if http is not None
            else httpx.Client(
                timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                follow_redirects=False,
            )
        )
        self._post = httpx_post(self._http)
        count = len(self._witnesses)
        self._done: list[int | None] = [None] * count
        """Per witness: the checkpoint size known cosigned (nothing to do until a newer one)."""
        self._retry_at: list[float] = [0.0] * count
        self._wake = [threading.Event() for _ in range(count)]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def witnesses(self) -> tuple[WitnessEndpoint, ...]:
        """The configured witnesses."""
        return self._witnesses

    def poke(self) -> None:
        """A checkpoint was signed: wake every witness's thread (failed ones keep their wait)."""
        for event in self._wake:
            event.set()

    def run_once(self) -> list[PushResult]:
        """Push the newest checkpoint to each witness now (retry waits ignored); in order."""
        results = []
        for n in range(len(self._witnesses)):
            self._retry_at[n] = 0.0
            result = self._push(n)
            if result is not None:
                results.append(result)
        return results

    def start(self) -> None:
        """Start one daemon thread per witness (idempotent)."""
        if self._threads:
            return
        self._stop.clear()
        for n, witness in enumerate(self._witnesses):
            thread = threading.Thread(
                target=self._run, args=(n,), name=f"mandi-witness-{witness.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads and close the HTTP client."""
        self._stop.set()
        self.poke()
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout)
        if self._owns_http:
            self._http.close()

    # ------------------------------------------------------------------------

    def _run(self, n: int) -> None:
        while not self._stop.is_set():
            self._push_logged(n)
            self._wake[n].wait(self._interval)
            self._wake[n].clear()

    def _push_logged(self, n: int) -> None:
        try:
            self._push(n)
        except LedgerError as exc:
            # The store failed; the next tick retries.
            log.warning("witness %s: push skipped: %s", self._witnesses[n].name, exc)
        except Exception:  # the thread must outlive any one failure
            log.exception("witness %s: push failed", self._witnesses[n].name)

    def _push(self, n: int) -> PushResult | None:
        """One attempt for witness ``n`` unless nothing is due; None when nothing was due."""
        witness = self._witnesses[n]
        latest = self._ledger.store.latest_checkpoint()
        if latest is None or self._done[n] == latest.size:
            return None
        if self._clock() < self._retry_at[n]:
            return None
        # The known size always comes from the shared table, so workers agree.
        result = push_checkpoint(self._ledger, witness, self._post, checkpoint=latest)
        if result.outcome in _FAILED:
            self._retry_at[n] = self._clock() + self._retry
            level = logging.ERROR if result.outcome is PushOutcome.OTHER_LOG else logging.WARNING
            log.log(
                level,
                "witness %s (%s): checkpoint %d not cosigned: %s: %s",
                witness.name,
                witness.url,
                result.size,
                result.outcome.value,
                result.message,
            )
        else:
            self._done[n] = result.size
            self._retry_at[n] = 0.0
            if result.outcome is PushOutcome.COSIGNED:
                log.info("witness %s cosigned checkpoint %d", witness.name, result.size)
        if self._metrics is not None and result.outcome is not PushOutcome.UP_TO_DATE:
            self._metrics.witness_pushes.labels(witness.name, result.outcome.value).inc()
        return result
