"""``mandi serve``: run the HTTP API under uvicorn on an initialised data directory.

It checks first, and refuses with one line and exit code 1, when the data
directory is not initialised (no ``log.key``), the database is unreachable, not
initialised, or its schema is not at the head revision, or the log key cannot
be read. Then it hands uvicorn the *import string* of the API's app factory
(``api.app:create_app_from_env``, ``factory=True``) and passes the configuration
through ``MANDI_*`` environment variables, so this module never imports ``api``
(the import-linter contract keeps ``api`` and ``client`` independent) and each
worker process builds its own app. Several workers share one database safely:
the store serialises appends, and each worker's checkpointer signs only what is
not yet covered.

``--witness URL=VKEY`` (repeatable) names the witnesses each worker pushes new
checkpoints to (``MANDI_WITNESSES``; without it the workers read
``witnesses.txt`` in the data directory, if any). The keys are checked here, so
a typo refuses to start rather than failing in every worker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console

from client.cli.logcmd import witness_endpoints, witnesses_env
from ledger.errors import LedgerError

# uvicorn, ledger.datadir and ledger.storage.sql (SQLAlchemy, Alembic) are
# imported in the functions that use them: `mandi` must start fast.
if TYPE_CHECKING:
    import uvicorn

__all__ = ["APP_FACTORY", "HttpParser", "Loop", "serve_command"]

APP_FACTORY = "api.app:create_app_from_env"
"""What uvicorn imports in each worker (a string: client never imports api)."""
Loop = Literal["uvloop", "asyncio"]
"""``--loop`` choices; uvloop (a pinned dependency) is the default."""
HttpParser = Literal["httptools", "h11"]
"""``--http`` choices; httptools (a pinned dependency) is the default."""

_err = Console(stderr=True, soft_wrap=True)


def _refuse(message: str) -> NoReturn:
    _err.print(f"mandi: error: {message}", highlight=False, markup=False)
    raise typer.Exit(1)


def check_serveable(data_dir: Path, db_url: str) -> None:
    """Refuse (exit 1, one line) unless the data directory and database can be served."""
    from ledger.datadir import LOG_KEY_FILE, open_ledger
    from ledger.storage.sql import schema_status

    if not (data_dir / LOG_KEY_FILE).exists():
        _refuse(
            f"{data_dir} is not an initialised data directory ({LOG_KEY_FILE} missing): "
            f"run `mandi admin init --data-dir {data_dir} --origin ORIGIN` first"
        )
    try:
        current, head = schema_status(db_url)
    except LedgerError as exc:
        _refuse(f"cannot reach the database: {exc.message}")
    if current is None:
        _refuse(f"the database is not initialised: run `mandi admin init --data-dir {data_dir}`")
    if current != head:
        _refuse(
            f"the database schema is at revision {current}, not {head}: "
            f"run `mandi admin migrate --data-dir {data_dir}`"
        )
    try:
        ledger = open_ledger(data_dir, db_url=db_url)
    except LedgerError as exc:
        _refuse(exc.message)
    ledger.store.close()


def serve_command(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory (keys, default SQLite database).")
    ] = Path("var"),
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="SQLAlchemy database URL (default: SQLite in the data directory).",
            envvar="MANDI_DATABASE_URL",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes.")] = 1,
    checkpoint_delay_ms: Annotated[
        int | None,
        typer.Option(
            "--checkpoint-delay-ms",
            min=0,
            help="Longest wait for a checkpoint after an append (default 1000).",
        ),
    ] = None,
    public_base_url: Annotated[
        str | None,
        typer.Option("--public-base-url", help="URL the public reaches this server at."),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log one line per request (off by default: a reverse proxy usually logs "
            "requests, and each line costs the worker CPU under load).",
        ),
    ] = False,
    loop: Annotated[
        Loop,
        typer.Option(
            "--loop",
            help="Event loop: uvloop (default; libuv) or asyncio (the standard library's).",
        ),
    ] = "uvloop",
    http: Annotated[
        HttpParser,
        typer.Option(
            "--http",
            help="HTTP/1.1 parser: httptools (default; llhttp, in C) or h11 (pure Python).",
        ),
    ] = "httptools",
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="URL=VKEY: push each new checkpoint to this witness (tlog-witness URL prefix, "
            "cosignature vkey string or file); repeat for several.",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (refuses an uninitialised or out-of-date data directory)."""
    import uvicorn

    from ledger.datadir import resolve_db_url

    data_dir = data_dir.resolve()
    db_url = resolve_db_url(data_dir, db)
    try:
        witnesses = witness_endpoints(witness or ())
    except ValueError as exc:
        _refuse(str(exc))
    check_serveable(data_dir, db_url)
    if witnesses:
        os.environ["MANDI_WITNESSES"] = witnesses_env(witnesses)
    os.environ["MANDI_DATA_DIR"] = str(data_dir)
    os.environ["MANDI_DATABASE_URL"] = db_url
    if checkpoint_delay_ms is not None:
        os.environ["MANDI_CHECKPOINT_DELAY_MS"] = str(checkpoint_delay_ms)
    if public_base_url is not None:
        os.environ["MANDI_PUBLIC_BASE_URL"] = public_base_url
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Counters of all workers are summed at scrape time through this directory.
        metrics_dir = tempfile.mkdtemp(prefix="mandi-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": log_level,
        "access_log": access_log,
        "loop": loop,
        "http": http,
        "proxy_headers": False,
        "server_header": False,
    }
    try:
        if workers > 1:
            _run_workers(uvicorn.Config(APP_FACTORY, **options))
        else:
            uvicorn.run(APP_FACTORY, **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(config: uvicorn.Config) -> None:
    """What ``uvicorn.run`` does for several workers, with TCP_NODELAY on every connection.

    uvicorn binds the shared listening socket as ``socket.socket(family)``, so
    its ``proto`` reads 0 and asyncio, which sets TCP_NODELAY only on sockets
    whose proto is TCP, leaves Nagle on for the connections the workers accept:
    every answer on a kept-alive connection then waits ~40 ms for the client's
    delayed ACK. Rewrapping the descriptor lets the kernel report the protocol.
    """
    from uvicorn.supervisors import Multiprocess

    bound = config.bind_socket()
    sock = socket.socket(fileno=bound.detach())  # family, type and proto read from the fd
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is a normal stop
        Multiprocess(config, sockets=[sock]).run()
