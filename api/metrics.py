"""Prometheus metrics of one API process, and the ASGI middleware that records requests.

Exported at ``GET /metrics`` in the Prometheus text format:

* ``mandi_http_requests_total{method, route, status}``: requests answered;
* ``mandi_http_request_duration_seconds{method, route, status}``: latency histogram;
* ``mandi_appends_total``: statements this server appended (idempotent replays excluded);
* ``mandi_log_size`` and ``mandi_checkpoint_size``: read from the ledger at scrape time;
* ``mandi_witness_push_total{witness, outcome}``: checkpoint pushes to each witness
  (:mod:`api.witnessing`), by :class:`ledger.cosigning.PushOutcome`;
* ``mandi_witness_cosigned_size{witness}``: the largest checkpoint size each
  configured witness has cosigned (stored cosignatures), read at scrape time.

``route`` is the route template (``/v1/events/{event_id}``), never the raw path,
so label cardinality stays bounded. With several uvicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` (``mandi serve --workers N`` does) and the counters
and histograms of all workers are summed at scrape time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger import Ledger, NoteVerifier

__all__ = ["Metrics", "MetricsMiddleware"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _LogCollector(Collector):
    """Log size and newest checkpoint size, read when scraped (right in every worker)."""

    def __init__(self, ledger: Ledger, witnesses: Sequence[NoteVerifier] = ()) -> None:
        self._ledger = ledger
        self._witnesses = witnesses

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("mandi_log_size", "Entries in the log (the tree size).")
        checkpoint = GaugeMetricFamily(
            "mandi_checkpoint_size", "Tree size of the newest signed checkpoint."
        )
        try:
            size.add_metric([], self._ledger.size())
            latest = self._ledger.store.latest_checkpoint()
            checkpoint.add_metric([], latest.size if latest is not None else 0)
            cosigned = GaugeMetricFamily(
                "mandi_witness_cosigned_size",
                "Largest checkpoint size each configured witness has cosigned (0: none).",
                labels=["witness"],
            )
            for w in self._witnesses:
                found = self._ledger.store.witness_size(w.name, w.key_hash)
                cosigned.add_metric([w.name], found or 0)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB is down
            return
        yield size
        yield checkpoint
        if self._witnesses:
            yield cosigned


class Metrics:
    """The metric objects of one app and the registry ``/metrics`` exposes."""

    def __init__(self, ledger: Ledger, witnesses: Sequence[NoteVerifier] = ()) -> None:
        own = CollectorRegistry()
        self.requests = Counter(
            "mandi_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "mandi_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=own,
        )
        self.appends = Counter("mandi_appends", "Statements appended by this server.", registry=own)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.witness_pushes = Counter(
            "mandi_witness_push",
            "Checkpoint pushes to witnesses, by outcome.",
            ["witness", "outcome"],
            registry=own,
        )
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            self.registry = own
        self.registry.register(_LogCollector(ledger, witnesses))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            # ``labels()`` validates and locks on every call; the label sets
            # are few (route templates), so each pair of children is kept.
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)
