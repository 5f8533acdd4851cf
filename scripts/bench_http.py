"""HTTP phase: `mandi serve` as a real process, loaded from another process.

Writes: for one and then two uvicorn workers, a fresh data directory made the
way ``mandi demo`` makes one (:func:`init_data_dir`, then :func:`run_demo`),
``mandi serve --workers N`` on a free loopback port (its defaults: uvloop,
httptools, no access log), and a load generator in a separate process
(multiprocessing ``spawn``) running one thread per client, each with its own
keep-alive HTTP/1.1 connection on a plain socket (:class:`_Connection`: the
request bytes are built before the clock starts, and the whole answer is
read; ``MANDI_BENCH_HTTP_CLIENT=httpx`` uses httpx clients instead, which
cost the load generator several times more CPU per request):

* single submissions: 32 clients, each posting pre-signed distinct statements
  to ``POST /v1/events`` back to back (a closed loop); events/s and the p50/p99
  latency of one request;
* batch submissions: 4 clients posting ``POST /v1/events:batch`` with 100
  statements each; events/s.

Every statement is signed before the clock starts (signing is the client's
cost) and serialised to its request body in advance, so the load generator
only sends bytes and reads answers. Every answer must be 201, and afterwards the
log must have grown by exactly the number of statements sent.

Reads: ``GET /v1/lots/{lot}/history`` of random demo lots at 8 and 32 clients,
on a log of ``MANDI_BENCH_HTTP_LOG`` entries (default 1,000,000; 3,000 with
``--quick``). That log is the demo story followed by synthetic harvests
appended with :meth:`Ledger.append_batch` in transactions of 500 (the ledger's
normal path: every signature verified, every lot indexed); building 1,000,000
takes several minutes, so it is cached as a data directory in
``bench/cache/http-log-<size>-schema<revision>-v<recipe>/`` and served from
there read-only. ``--quick`` and ``--no-cache`` build it in the scratch
directory.

Two cores serve both sides: the notes of each figure give the CPU the server
processes and the load generator used during the timed window (in cores, from
``/proc`` and ``getrusage``), so the share each had is on record. Rates are
reported next to ``append.rate`` (the core append rate of the same run).
"""

from __future__ import annotations

import base64
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bench_core import BenchContext, BenchError, Phase, Target, percentile, run_in_child

from client.demo import run_demo, synthetic_statements
from ledger.datadir import init_data_dir, open_ledger, read_operator, rfc3339_from_ms
from ledger.service import MAX_BATCH, wall_clock_ms
from ledger.statements import SignedStatement
from ledger.storage.sql import default_sqlite_url, schema_status

__all__ = [
    "BATCH_TARGET",
    "HISTORY_TARGET",
    "HTTP_ORIGIN",
    "PHASES",
    "RECIPE_VERSION",
    "SINGLE_P99_TARGET",
    "SINGLE_TARGET",
]

HTTP_ORIGIN = "bench-http.mandi.example/log"
SINGLE_TARGET = Target(op=">=", threshold=1000)
"""Issue 4: single submissions at 32 clients, at least 1,000 events/s ..."""
SINGLE_P99_TARGET = Target(op="<=", threshold=50)
"""... with a p99 latency of at most 50 ms."""
BATCH_TARGET = Target(op=">=", threshold=0.9, on="ratio")
"""Issue 4: batch submission at 90% or more of the core append rate (and >= 3,000/s)."""
HISTORY_TARGET = Target(op="<=", threshold=10)
"""Issue 4: a lot history read p99 at most 10 ms at 8 clients, 1,000,000 entries."""
RECIPE_VERSION = 1
"""Bump when the cached history log changes shape: it is part of the cache key."""

CLIENT_ENV = "MANDI_BENCH_HTTP_CLIENT"
"""``httpx`` runs the load through httpx clients (the method before 2026-11-28) for comparison."""
SERVE_ARGS_ENV = "MANDI_BENCH_HTTP_SERVE_ARGS"
"""More ``mandi serve`` options for every server this phase starts (for comparisons)."""
LOG_ENV = "MANDI_BENCH_HTTP_LOG"
"""Entries in the log the history reads run on (default 1,000,000; quick 3,000)."""
WORKERS = (1, 2)
SINGLE_CLIENTS = 32
BATCH_CLIENTS = 4
BATCH_SIZE = 100
HISTORY_CLIENTS = (8, 32)
_META = "bench-http.json"
_CORE_RATE = "append.rate"
_MANDI = Path(sys.executable).parent / "mandi"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Sizes:
    singles: int
    batches: int
    reads: int
    log: int


def _sizes(quick: bool) -> _Sizes:
    default_log = 3_000 if quick else 1_000_000
    log = int(os.environ.get(LOG_ENV) or default_log)
    if log < 2_000:
        raise BenchError(f"{LOG_ENV} must be at least 2000 (the demo alone is about 1,000)")
    if quick:
        return _Sizes(singles=300, batches=6, reads=300, log=log)
    return _Sizes(singles=8_000, batches=100, reads=4_000, log=log)


def run_http(ctx: BenchContext) -> None:
    """Measure submissions and history reads over HTTP, with one and with two workers."""
    sizes = _sizes(ctx.config.quick)
    ctx.say(
        f"  {sizes.singles:,} single and {sizes.batches * BATCH_SIZE:,} batched statements "
        f"per worker count; history reads on a {sizes.log:,}-entry log"
    )
    bodies = _presign(ctx, sizes)
    history_dir, lots, how = _history_log(ctx, sizes.log)
    rng = random.Random(ctx.config.seed)
    paths = [f"/v1/lots/{rng.choice(lots)}/history" for _ in range(sizes.reads + 64)]
    paths_file = ctx.workdir / "http-history-paths.json"
    paths_file.write_text(json.dumps(paths), encoding="utf-8")
    for workers in WORKERS:
        data_dir = ctx.workdir / f"http-w{workers}"
        _fresh_demo_dir(data_dir)
        with _server(ctx, data_dir, workers) as server:
            _writes(ctx, server, workers, bodies)
        with _server(ctx, history_dir, workers) as server:
            for clients in HISTORY_CLIENTS:
                _history(ctx, server, workers, clients, paths_file, sizes.log, how)


# --------------------------------------------------------------------------- writes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bodies:
    singles: Path
    batches: Path
    single_count: int
    batch_count: int


def _presign(ctx: BenchContext, sizes: _Sizes) -> _Bodies:
    """Sign the statements (untimed) and write their request bodies, one per line."""
    now = rfc3339_from_ms(wall_clock_ms())
    warm = SINGLE_CLIENTS + BATCH_CLIENTS * BATCH_SIZE
    total = sizes.singles + sizes.batches * BATCH_SIZE + warm
    statements: Iterator[SignedStatement] = synthetic_statements(
        origin=HTTP_ORIGIN, count=total, time=now, start=0
    )
    singles = ctx.workdir / "http-singles.jsonl"
    batches = ctx.workdir / "http-batches.jsonl"
    with ctx.progress("signing statements (client side, untimed)", total) as advance:
        with singles.open("wb") as out:
            for _ in range(sizes.singles + SINGLE_CLIENTS):
                out.write(json.dumps(_envelope(next(statements))).encode() + b"\n")
            advance(sizes.singles + SINGLE_CLIENTS)
        with batches.open("wb") as out:
            for _ in range(sizes.batches + BATCH_CLIENTS):
                items = [_envelope(next(statements)) for _ in range(BATCH_SIZE)]
                out.write(json.dumps({"items": items}).encode() + b"\n")
                advance(BATCH_SIZE)
    return _Bodies(
        singles=singles,
        batches=batches,
        single_count=sizes.singles,
        batch_count=sizes.batches,
    )


def _envelope(signed: SignedStatement) -> dict[str, str]:
    return {
        "statement": base64.b64encode(signed.statement.raw).decode("ascii"),
        "signature": base64.b64encode(signed.signature).decode("ascii"),
    }


def _fresh_demo_dir(data_dir: Path) -> None:
    init_data_dir(data_dir, origin=HTTP_ORIGIN)
    ledger = open_ledger(data_dir)
    try:
        operator_id, operator = read_operator(data_dir)
        run_demo(ledger, operator_id=operator_id, operator=operator)
    finally:
        ledger.store.close()


def _writes(ctx: BenchContext, server: _Server, workers: int, bodies: _Bodies) -> None:
    before = server.log_size()
    single = _load(
        ctx,
        server,
        kind="single",
        source=bodies.singles,
        clients=SINGLE_CLIENTS,
        count=bodies.single_count,
        description=f"{workers} worker(s): single submissions, {SINGLE_CLIENTS} clients",
    )
    batch = _load(
        ctx,
        server,
        kind="batch",
        source=bodies.batches,
        clients=BATCH_CLIENTS,
        count=bodies.batch_count,
        description=f"{workers} worker(s): batches of {BATCH_SIZE}, {BATCH_CLIENTS} clients",
    )
    grown = server.log_size() - before
    sent = (bodies.single_count + SINGLE_CLIENTS) + (
        bodies.batch_count + BATCH_CLIENTS
    ) * BATCH_SIZE
    if grown != sent:
        raise BenchError(f"the log grew by {grown:,} entries for {sent:,} statements sent")
    prefix = f"http.w{workers}"
    rate = single.count / single.elapsed
    ctx.record(
        f"{prefix}.single.rate",
        rate,
        "events/s",
        baseline=_CORE_RATE,
        target=SINGLE_TARGET,
        note=f"POST /v1/events, {SINGLE_CLIENTS} clients, {single.count:,} statements in "
        f"{single.elapsed:.1f} s, `mandi serve --workers {workers}`, group commit; "
        f"{single.cpu_note}",
    )
    ctx.record(
        f"{prefix}.single.p50_ms",
        percentile(single.latencies, 50),
        "ms",
        note="one POST /v1/events at 32 clients, answered once durable",
    )
    ctx.record(
        f"{prefix}.single.p99_ms",
        percentile(single.latencies, 99),
        "ms",
        target=SINGLE_P99_TARGET,
        note=f"max {max(single.latencies):.1f} ms",
    )
    events = batch.count * BATCH_SIZE
    ctx.record(
        f"{prefix}.batch.rate",
        events / batch.elapsed,
        "events/s",
        baseline=_CORE_RATE,
        target=BATCH_TARGET,
        note=f"POST /v1/events:batch of {BATCH_SIZE}, {BATCH_CLIENTS} clients, {events:,} "
        f"statements in {batch.elapsed:.1f} s (issue: also >= 3000/s); one batch p50 "
        f"{percentile(batch.latencies, 50):.0f} ms, p99 {percentile(batch.latencies, 99):.0f} "
        f"ms; {batch.cpu_note}",
    )


# --------------------------------------------------------------------------- reads


def _history(
    ctx: BenchContext,
    server: _Server,
    workers: int,
    clients: int,
    paths_file: Path,
    log_size: int,
    how: str,
) -> None:
    count = len(json.loads(paths_file.read_text(encoding="utf-8"))) - 64
    reads = _load(
        ctx,
        server,
        kind="get",
        source=paths_file,
        clients=clients,
        count=count,
        description=f"{workers} worker(s): lot history reads, {clients} clients",
    )
    prefix = f"http.w{workers}.history.c{clients}"
    ctx.record(
        f"{prefix}.p50_ms",
        percentile(reads.latencies, 50),
        "ms",
        note=f"GET /v1/lots/{{lot}}/history of random demo lots (2-12 statements each), "
        f"{clients} clients, {log_size:,}-entry SQLite log ({how}); "
        f"{reads.count / reads.elapsed:,.0f} reads/s; {reads.cpu_note}",
    )
    ctx.record(
        f"{prefix}.p99_ms",
        percentile(reads.latencies, 99),
        "ms",
        target=HISTORY_TARGET if clients == 8 else None,
        note=f"max {max(reads.latencies):.1f} ms",
    )


def _history_log(ctx: BenchContext, size: int) -> tuple[Path, list[str], str]:
    """The data directory of a ``size``-entry log, its demo lots, and how it was obtained."""
    cache_dir = ctx.config.cache_dir
    if cache_dir is None:
        path = ctx.workdir / f"http-log-{size}"
        seconds = _build_log(ctx, size, path)
        return path, _lots_of(path), f"built in {seconds:.0f} s, not cached"
    _, head = schema_status(default_sqlite_url(ctx.workdir / "schema-probe"))
    path = cache_dir / f"http-log-{size}-schema{head}-v{RECIPE_VERSION}"
    if path.exists():
        if _cached_log_ok(path, size):
            ctx.say(f"  using the cached log {path}")
            return path, _lots_of(path), "cached"
        ctx.say(f"  the cached log {path} is incomplete: rebuilding it")
        shutil.rmtree(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    build = cache_dir / f".build-{path.name}-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    try:
        seconds = _build_log(ctx, size, build)
        os.replace(build, path)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    ctx.say(f"  cached the log in {path}")
    return path, _lots_of(path), f"built in {seconds:.0f} s, now cached"


def _cached_log_ok(path: Path, size: int) -> bool:
    meta = path / _META
    if not meta.exists():
        return False
    ledger = open_ledger(path)
    try:
        return ledger.size() == size == int(json.loads(meta.read_text("utf-8"))["size"])
    finally:
        ledger.store.close()


def _lots_of(path: Path) -> list[str]:
    lots: list[str] = json.loads((path / _META).read_text("utf-8"))["lots"]
    return lots


def _build_log(ctx: BenchContext, size: int, data_dir: Path) -> float:
    """The demo story, then synthetic harvests up to ``size`` entries, then a checkpoint."""
    start = time.perf_counter()
    init_data_dir(data_dir, origin=HTTP_ORIGIN)
    ledger = open_ledger(data_dir)
    try:
        operator_id, operator = read_operator(data_dir)
        summary = run_demo(ledger, operator_id=operator_id, operator=operator)
        remaining = size - ledger.size()
        if remaining < 0:
            raise BenchError(f"the demo alone has {ledger.size():,} entries, more than {size:,}")
        now = rfc3339_from_ms(wall_clock_ms())
        statements = synthetic_statements(
            origin=HTTP_ORIGIN, count=remaining, time=now, start=10**8
        )
        with ctx.progress("building the history log (append_batch of 500)", remaining) as adv:
            batch: list[SignedStatement] = []
            for signed in statements:
                batch.append(signed)
                if len(batch) == MAX_BATCH:
                    ledger.append_batch(batch)
                    adv(len(batch))
                    batch = []
            if batch:
                ledger.append_batch(batch)
                adv(len(batch))
        ledger.flush_checkpoint()
        if ledger.size() != size:
            raise BenchError(f"the history log has {ledger.size():,} entries, not {size:,}")
    finally:
        ledger.store.close()
    meta = {"size": size, "page_lot": summary.page_lot, "lots": [lot.lot for lot in summary.lots]}
    (data_dir / _META).write_text(json.dumps(meta), encoding="utf-8")
    return time.perf_counter() - start


# --------------------------------------------------------------------------- the server


class _Server:
    """A running ``mandi serve`` process tree."""

    def __init__(self, proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.proc = proc
        self.base_url = base_url
        self.log = log

    def log_size(self) -> int:
        size: int = httpx.get(f"{self.base_url}/v1/log", timeout=30).json()["tree_size"]
        return size

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its worker processes so far."""
        return _tree_cpu_seconds(self.proc.pid)


@contextmanager
def _server(
    ctx: BenchContext, data_dir: Path, workers: int, *, serve_args: Sequence[str] = ()
) -> Iterator[_Server]:
    """``mandi serve`` on ``data_dir`` with ``workers`` workers, on a free loopback port.

    ``serve_args`` are added to its command line, after any from ``MANDI_BENCH_HTTP_SERVE_ARGS``
    (for comparisons, such as ``--loop asyncio --http h11``).
    """
    extra = [*os.environ.get(SERVE_ARGS_ENV, "").split(), *serve_args]
    port = _free_port()
    log = ctx.workdir / f"serve-{data_dir.name}-w{workers}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANDI_", "PROMETHEUS_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(_MANDI),
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = _Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(server, workers)
        yield server
    finally:
        _stop(proc)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(server: _Server, workers: int) -> None:
    deadline = time.monotonic() + 60
    ready = 0
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise BenchError(f"`mandi serve` exited with {server.proc.returncode}: {tail}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200:
                ready += 1
                # Several workers: give each a moment to come up after the first answers.
                if ready >= 3 * workers:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError("`mandi serve` did not become ready within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this script started
            proc.wait(10)


def _tree_cpu_seconds(root: int) -> float:
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = int(fields[11]) + int(fields[12])
    total = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the load generator


@dataclass(frozen=True, slots=True, kw_only=True)
class _Result:
    count: int
    elapsed: float
    latencies: list[float]
    cpu_note: str


def _load(
    ctx: BenchContext,
    server: _Server,
    *,
    kind: str,
    source: Path,
    clients: int,
    count: int,
    description: str,
) -> _Result:
    """Run the load generator in a fresh process; the timed window is its own."""
    cpu_before = server.cpu_seconds()
    result = run_in_child(
        ctx,
        _load_child,
        (server.base_url, kind, str(source), clients, count),
        description=description,
        total=count,
    )
    server_cpu = server.cpu_seconds() - cpu_before
    elapsed = float(result["elapsed"])
    bad = result["bad"]
    if bad:
        raise BenchError(f"{description}: unexpected answers {bad}")
    note = (
        f"CPU during the run: server {server_cpu / elapsed:.2f} cores, load generator "
        f"{float(result['cpu']) / elapsed:.2f} cores (of 2)"
    )
    return _Result(
        count=int(result["count"]),
        elapsed=elapsed,
        latencies=list(result["latencies"]),
        cpu_note=note,
    )


def _load_child(
    send: Callable[[tuple[str, Any]], None],
    base_url: str,
    kind: str,
    source: str,
    clients: int,
    count: int,
) -> None:
    """In the child: ``clients`` threads, each with its own keep-alive connection, run the requests.

    The first ``clients`` items warm the connections up (one each, untimed);
    the next ``count`` are timed, handed out in order to whichever client is
    free. Each request is built as bytes before the clock starts; a client
    writes it and reads the whole answer (:class:`_Connection`), so the load
    generator spends its CPU on little more than the system calls.
    ``MANDI_BENCH_HTTP_CLIENT=httpx`` uses one ``httpx.Client`` per thread instead.
    """
    if kind == "get":
        items: list[Any] = json.loads(Path(source).read_text(encoding="utf-8"))
    else:
        items = Path(source).read_bytes().splitlines()
    if len(items) < clients + count:
        raise BenchError(f"{source} holds {len(items)} items, {clients + count} needed")
    expected = 200 if kind == "get" else 201
    path = {"single": "/v1/events", "batch": "/v1/events:batch"}.get(kind, "")
    use_httpx = os.environ.get(CLIENT_ENV) == "httpx"
    if use_httpx:
        requests: list[Any] = items[: clients + count]
    else:
        host = base_url.split("//", 1)[1]
        requests = [_request_bytes(host, kind, path, item) for item in items[: clients + count]]
    warm, timed = requests[:clients], requests[clients : clients + count]
    lock = threading.Lock()
    cursor = iter(timed)
    latencies: list[float] = []
    bad: dict[int, int] = {}
    done = [0]
    start_line = threading.Barrier(clients + 1)

    def connect() -> Callable[[Any], int]:
        if use_httpx:
            client = httpx.Client(base_url=base_url, timeout=120)
            headers = {"content-type": "application/json"}
            if kind == "get":
                return lambda item: client.get(item).status_code
            return lambda item: client.post(path, content=item, headers=headers).status_code
        return _Connection(base_url).request

    def worker(first: Any) -> None:
        one = connect()
        status = one(first)
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
            status = one(item)
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

    threads = [threading.Thread(target=worker, args=(item,)) for item in warm]
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


def _request_bytes(host: str, kind: str, path: str, item: Any) -> bytes:
    """One HTTP/1.1 request, as the bytes a client writes (keep-alive is HTTP/1.1's default)."""
    if kind == "get":
        return f"GET {item} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("ascii")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(item)}\r\n\r\n"
    )
    return head.encode("ascii") + bytes(item)


class _Connection:
    """A keep-alive HTTP/1.1 connection on a blocking socket, for answers with a Content-Length.

    :meth:`request` writes a request's bytes and reads its whole answer (the
    head up to the blank line, then exactly Content-Length bytes of body), and
    returns the status. Anything else (chunked, a closed connection) fails the
    run.
    """

    def __init__(self, base_url: str) -> None:
        host, port = base_url.split("//", 1)[1].rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=120)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def request(self, data: bytes) -> int:
        self._sock.sendall(data)
        end = self._buffer.find(b"\r\n\r\n")
        while end < 0:
            self._buffer += self._receive()
            end = self._buffer.find(b"\r\n\r\n")
        head = self._buffer[:end].decode("latin-1").lower()
        status = int(head[9:12])
        marker = head.find("\r\ncontent-length:")
        if status in (204, 304):  # never a body (RFC 9110), whatever the headers say
            self._buffer = self._buffer[end + 4 :]
            return status
        if marker < 0:
            raise BenchError(f"an answer without Content-Length: {head[:200]!r}")
        stop = head.find("\r\n", marker + 2)
        length = int(head[marker + 17 : stop if stop >= 0 else None])
        total = end + 4 + length
        while len(self._buffer) < total:
            self._buffer += self._receive()
        self._buffer = self._buffer[total:]
        return status

    def close(self) -> None:
        self._sock.close()

    def _receive(self) -> bytes:
        chunk = self._sock.recv(262144)
        if not chunk:
            raise BenchError("the server closed a keep-alive connection")
        return chunk


PHASES: Sequence[Phase] = (
    Phase(
        name="http",
        title="`mandi serve` under load: submissions and lot history reads over HTTP",
        run=run_http,
        requires=("baselines", "append"),
    ),
)
