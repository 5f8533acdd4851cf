"""QR and lot page phase: label images and the buyer's page from `mandi serve` under load.

Serves the same read-only log as the ``http`` phase's history reads (the demo
story plus synthetic harvests, ``MANDI_BENCH_HTTP_LOG`` entries, default
1,000,000; 3,000 with ``--quick``), obtained through that phase's
:func:`bench_http._history_log`, so both phases share one cached data directory
in ``bench/cache/http-log-<size>-schema<revision>-v<recipe>/``. One
``mandi serve`` (one worker, the default) runs on it as a real process, and
the load generator is bench_http's method: a separate ``spawn`` process with
one thread per client, each with its own keep-alive HTTP/1.1 socket
(bench_http's ``_Connection``: request bytes built before the clock starts),
sending its next request as soon as the previous one is answered (a closed
loop), the latency taken around one request and its whole answer. Unlike
bench_http's, each request here carries headers and every answer must have one
given status.

Measured, at 8 and 32 clients:

* ``GET /healthz``: the server's floor (routing, uvicorn, the load generator), the baseline
  the other latencies are divided by;
* ``GET /v1/lots/{lot}/qr.png`` of random demo lots, after one untimed *cold*
  request per lot (its latency is reported on its own: the lot lookup and the
  encoding); then the conditional variant, ``If-None-Match`` with the lot's
  ETag, every answer 304 (8 clients);
* the lot page, ``GET`` on the lot's Digital Link path (``/01/{gtin}/10/{lot}``
  or ``/l/{lot id}``) with ``Accept: text/html``, after one untimed first
  request per lot (reported on its own: the page rendered from the database).

And in this process, without any cache: the time to encode one QR PNG
(:func:`api.routes.qr.qr_image`), the cost the server's cache saves.

Two cores serve both sides; each figure's note gives the CPU the server and
the load generator used during its timed window, as in the ``http`` phase.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from bench_core import BenchContext, BenchError, Phase, Target, percentile, run_in_child
from bench_http import (
    _META,
    HISTORY_CLIENTS,
    _Connection,
    _history_log,
    _lots_of,
    _Server,
    _server,
    _sizes,
)

from api.routes.qr import DEFAULT_BORDER, DEFAULT_SIZE, qr_image
from api.settings import Settings
from ledger.domain.ids import LotId

__all__ = ["PAGE_TARGET", "PHASES", "QR_TARGET"]

QR_TARGET = Target(op="<=", threshold=10)
"""Issue 6: ``qr.png`` p99 at most 10 ms at 8 clients."""
PAGE_TARGET = Target(op="<=", threshold=20)
"""Issue 6: the lot page p99 at most 20 ms at 8 clients, 1,000,000 entries."""

CLIENTS = HISTORY_CLIENTS
"""8 (the targets) and 32 (reported), as for the history reads."""
WORKERS = 1
_ENCODE_REPEATS = 2
_QUICK_LOTS = 20
"""--quick: the lots requested (the cold requests and the encodings are one per lot)."""
_HTML = {"accept": "text/html"}
_Request = tuple[str, dict[str, str]]
"""A path and its request headers."""


def run_pages(ctx: BenchContext) -> None:
    """Measure healthz, qr.png (plain and conditional) and the lot page over HTTP."""
    sizes = _sizes(ctx.config.quick)
    reads = sizes.reads
    ctx.say(f"  {reads:,} requests per figure on a {sizes.log:,}-entry log")
    data_dir, lots, how = _log(ctx, sizes.log)
    if ctx.config.quick:
        lots = lots[:_QUICK_LOTS]
    _encode_baseline(ctx, lots)
    rng = random.Random(ctx.config.seed)
    picks = [rng.choice(lots) for _ in range(reads + max(CLIENTS))]
    with _server(ctx, data_dir, WORKERS) as server:
        health: list[_Request] = [("/healthz", {})] * len(picks)
        for clients in CLIENTS:
            _measure(ctx, server, "healthz", clients, health, 200, note="GET /healthz")

        etags = _cold(ctx, server, "qr", {lot: (_qr_path(lot), {}) for lot in lots}, "image/png")
        qr: list[_Request] = [(_qr_path(lot), {}) for lot in picks]
        for clients in CLIENTS:
            _measure(
                ctx,
                server,
                "qr",
                clients,
                qr,
                200,
                target=QR_TARGET if clients == 8 else None,
                note="GET /v1/lots/{lot}/qr.png of random demo lots, served from the "
                "server's cache",
            )
        conditional = [(_qr_path(lot), {"if-none-match": etags[lot]}) for lot in picks]
        _measure(
            ctx,
            server,
            "qr.304",
            CLIENTS[0],
            conditional,
            304,
            note="GET /v1/lots/{lot}/qr.png with If-None-Match: the lot's ETag",
        )

        _cold(ctx, server, "page", {lot: (_page_path(lot), _HTML) for lot in lots}, "text/html")
        page = [(_page_path(lot), _HTML) for lot in picks]
        for clients in CLIENTS:
            _measure(
                ctx,
                server,
                "page",
                clients,
                page,
                200,
                target=PAGE_TARGET if clients == 8 else None,
                note=f"GET /01/{{gtin}}/10/{{lot}} or /l/{{lot}}, Accept: text/html, random "
                f"demo lots, {sizes.log:,}-entry SQLite log ({how})",
            )


def _log(ctx: BenchContext, size: int) -> tuple[Path, list[str], str]:
    """The ``http`` phase's read log: the cached one, or the one it built in this run."""
    scratch = ctx.workdir / f"http-log-{size}"  # where _history_log builds without a cache
    if ctx.config.cache_dir is None and (scratch / _META).exists():
        return scratch, _lots_of(scratch), "built by the http phase of this run, not cached"
    return _history_log(ctx, size)


def _qr_path(lot: str) -> str:
    return f"/v1/lots/{lot}/qr.png"


def _page_path(lot: str) -> str:
    return LotId.parse(lot).digital_link_path()


# --------------------------------------------------------------------------- baselines


def _encode_baseline(ctx: BenchContext, lots: Sequence[str]) -> None:
    """One QR PNG encoded in this process, no cache: what a cache hit saves."""
    base = Settings().public_base_url.rstrip("/")
    uris = [base + _page_path(lot) for lot in lots]
    qr_image(uris[0], "png", DEFAULT_SIZE, DEFAULT_BORDER)  # imports and first-call costs
    times: list[float] = []
    for _ in range(_ENCODE_REPEATS):
        for uri in uris:
            began = time.perf_counter_ns()
            qr_image(uri, "png", DEFAULT_SIZE, DEFAULT_BORDER)
            times.append((time.perf_counter_ns() - began) / 1e6)
    ctx.record(
        "qr.encode_ms",
        statistics.median(times),
        "ms",
        note=f"median of {len(times)} qr_image(uri, 'png', {DEFAULT_SIZE}, {DEFAULT_BORDER}) "
        f"calls in the bench process ({len(uris)} demo lot URIs, error correction M, mask "
        f"search included), no cache; max {max(times):.1f} ms",
    )


def _cold(
    ctx: BenchContext,
    server: _Server,
    name: str,
    requests: dict[str, _Request],
    media: str,
) -> dict[str, str]:
    """One request per lot, one client, in turn: the first, uncached answer. Returns ETags."""
    etags: dict[str, str] = {}
    times: list[float] = []
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        client.get("/healthz")  # open the connection outside the timing
        for lot, (path, headers) in requests.items():
            began = time.perf_counter_ns()
            answer = client.get(path, headers=headers)
            times.append((time.perf_counter_ns() - began) / 1e6)
            if answer.status_code != 200 or not answer.headers["content-type"].startswith(media):
                raise BenchError(f"GET {path}: {answer.status_code} {answer.headers}")
            etags[lot] = answer.headers.get("etag", "")
    ctx.record(
        f"{name}.cold_ms",
        statistics.median(times),
        "ms",
        note=f"median of the first request for each of {len(times)} demo lots, one client "
        f"in turn, before the timed runs; max {max(times):.1f} ms",
    )
    return etags


def _measure(
    ctx: BenchContext,
    server: _Server,
    name: str,
    clients: int,
    requests: Sequence[_Request],
    expected: int,
    *,
    note: str,
    target: Target | None = None,
) -> None:
    count = len(requests) - clients
    source = ctx.workdir / f"pages-{name}-c{clients}.json"
    source.write_text(json.dumps(requests), encoding="utf-8")
    cpu_before = server.cpu_seconds()
    result = run_in_child(
        ctx,
        _get_child,
        (server.base_url, str(source), clients, count, expected),
        description=f"{name}, {clients} clients",
        total=count,
    )
    server_cpu = server.cpu_seconds() - cpu_before
    elapsed = float(result["elapsed"])
    if result["bad"]:
        raise BenchError(f"{name}, {clients} clients: unexpected answers {result['bad']}")
    latencies: list[float] = list(result["latencies"])
    cpu_note = (
        f"CPU during the run: server {server_cpu / elapsed:.2f} cores "
        f"({server_cpu / len(latencies) * 1000:.2f} ms per request), load generator "
        f"{float(result['cpu']) / elapsed:.2f} cores (of 2)"
    )
    prefix = f"{name}.c{clients}"
    floor = f"healthz.c{clients}.p99_ms"
    ctx.record(
        f"{prefix}.p50_ms",
        percentile(latencies, 50),
        "ms",
        note=f"{note}; {clients} clients, `mandi serve --workers {WORKERS}`, "
        f"{len(latencies):,} requests, {len(latencies) / elapsed:,.0f}/s; {cpu_note}",
    )
    ctx.record(
        f"{prefix}.p99_ms",
        percentile(latencies, 99),
        "ms",
        baseline=None if name == "healthz" else floor,
        target=target,
        note=f"max {max(latencies):.1f} ms"
        + ("" if name == "healthz" else f"; ratio to {floor}, the server's floor"),
    )


# --------------------------------------------------------------------------- the load generator


def _get_child(
    send: Callable[[tuple[str, Any]], None],
    base_url: str,
    source: str,
    clients: int,
    count: int,
    expected: int,
) -> None:
    """In the child: bench_http's closed loop, for GETs with headers and one expected status.

    The first ``clients`` requests warm the connections up (one each,
    untimed); the next ``count`` are timed, handed out in order to whichever
    client is free.
    """
    items: list[_Request] = [
        (path, headers) for path, headers in json.loads(Path(source).read_text("utf-8"))
    ]
    if len(items) < clients + count:
        raise BenchError(f"{source} holds {len(items)} requests, {clients + count} needed")
    warm, timed = items[:clients], items[clients : clients + count]
    lock = threading.Lock()
    latencies: list[float] = []
    bad: dict[int, int] = {}
    done = [0]
    start_line = threading.Barrier(clients + 1)

    host = base_url.split("//", 1)[1]

    def raw(item: _Request) -> bytes:
        extra = "".join(f"{name}: {value}\r\n" for name, value in item[1].items())
        return f"GET {item[0]} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")

    warm_bytes = [raw(item) for item in warm]
    timed_bytes = [raw(item) for item in timed]
    cursor = iter(timed_bytes)

    def worker(first: bytes) -> None:
        client = _Connection(base_url)
        try:
            status = client.request(first)
            if status != expected:
                with lock:
                    bad[status] = bad.get(status, 0) + 1
            start_line.wait()
            mine: list[float] = []
            while True:
                with lock:
                    item = next(cursor, None)
                if item is None:
                    break
                began = time.perf_counter_ns()
                status = client.request(item)
                mine.append((time.perf_counter_ns() - began) / 1e6)
                if status != expected:
                    with lock:
                        bad[status] = bad.get(status, 0) + 1
                with lock:
                    done[0] += 1
                    if done[0] % 250 == 0:
                        send(("progress", done[0]))
            with lock:
                latencies.extend(mine)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(item,)) for item in warm_bytes]
    for thread in threads:
        thread.start()
    start_line.wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    send(
        (
            "done",
            {
                "count": len(latencies),
                "elapsed": elapsed,
                "latencies": latencies,
                "cpu": cpu,
                "bad": bad,
            },
        )
    )


PHASES: Sequence[Phase] = (
    Phase(
        name="pages",
        title="`mandi serve` under load: the QR image and the lot page",
        run=run_pages,
    ),
)
