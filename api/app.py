"""The FastAPI application factory: routers, error handlers, middleware, lifespan.

:func:`create_app` builds one app over one :class:`ledger.Ledger`: given one
(tests pass a ledger over a ``MemoryStore``), or opened from the settings' data
directory. :func:`create_app_from_env` is what uvicorn imports in each worker
(``mandi serve`` hands it the string ``api.app:create_app_from_env`` with
``factory=True`` and the configuration in ``MANDI_*`` variables).

The app owns HTTP and nothing else: it parses shapes, maps errors through
:mod:`api.problems`, enforces the HTTP limits (:mod:`api.limits`), exposes
metrics (:mod:`api.metrics`) and runs the checkpoint timer
(:mod:`api.checkpointer`) and, when witnesses are configured, the witness
pusher (:mod:`api.witnessing`) during its lifespan. Every rule about what may be
appended is the ledger's.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from api.checkpointer import Checkpointer
from api.deps import AppState
from api.limits import BodyLimitMiddleware
from api.metrics import Metrics, MetricsMiddleware
from api.problems import PROBLEM_MEDIA_TYPE, PROBLEMS, ApiError, install_problem_handlers
from api.routes import events, health, log, lots, pages, participants, qr
from api.settings import Settings
from api.witnessing import WitnessPusher
from ledger import Ledger, __version__
from ledger.commit import GroupCommitter, WriterLock
from ledger.datadir import open_ledger
from ledger.storage.sql import SqlStore, schema_status

__all__ = ["create_app", "create_app_from_env"]

_DESCRIPTION = """\
Mandi is a provenance ledger: participants sign statements, the log appends them
to a hash chain and an RFC 9162 Merkle tree, and signs C2SP checkpoints.

* **Writes** are authenticated by the statement's Ed25519 signature from a key in
  the participant registry (no sessions, no passwords); registry changes must be
  signed by the operator.
* **Reads** are public (provenance is public), and CORS is open for them.
* **Errors** are `application/problem+json` (RFC 9457) with a stable `code`,
  the `field` and the `rule`; see docs/api.md for the table.
"""


def create_app(settings: Settings | None = None, ledger: Ledger | None = None) -> FastAPI:
    """Build the API over ``ledger`` (or the one ``settings`` names).

    Args:
        settings: limits and locations; default :meth:`Settings.from_env`.
        ledger: the ledger to serve; default: opened from ``settings.data_dir``
            (and then closed with the app).

    Raises:
        LedgerError: the data directory or database cannot be opened.
    """
    settings = settings if settings is not None else Settings.from_env()
    owned = ledger is None
    if ledger is None:
        ledger = open_ledger(
            settings.data_dir,
            db_url=settings.database_url,
            checkpoint_delay_ms=settings.checkpoint_delay_ms,
        )
    metrics = Metrics(ledger, [w.verifier for w in settings.witnesses])
    pusher = (
        WitnessPusher(
            ledger,
            settings.witnesses,
            metrics=metrics,
            interval_s=ledger.checkpoint_delay_ms / 1000,
            retry_s=settings.witness_retry_s,
        )
        if settings.run_checkpointer and settings.witnesses
        else None
    )
    # Started here or by the first submission (transports without a lifespan);
    # stopped on shutdown after uvicorn stopped taking requests: it commits
    # what is queued before the store closes.
    committer = GroupCommitter(ledger, lock=_writer_lock(ledger))
    checkpointer = (
        Checkpointer(
            ledger,
            interval_s=ledger.checkpoint_delay_ms / 1000,
            on_signed=pusher.poke if pusher is not None else None,
            writer_lock=committer.hold_writer_lock,
        )
        if settings.run_checkpointer
        else None
    )
    served = ledger

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        committer.start()
        if checkpointer is not None:
            checkpointer.start()
        if pusher is not None:
            pusher.start()
        try:
            yield
        finally:
            committer.stop()
            if checkpointer is not None:
                checkpointer.stop()
            if pusher is not None:
                pusher.stop()
            if owned:
                served.store.close()

    app = FastAPI(
        title="Mandi",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
        # Metrics are Prometheus (api.metrics). FastAPI's OpenTelemetry hooks, even
        # with no provider configured, look providers up on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.mandi = AppState(
        ledger=ledger,
        settings=settings,
        metrics=metrics,
        readiness=_readiness(ledger),
        committer=committer,
    )
    install_problem_handlers(app)
    for module in (events, participants, lots, log, health):
        app.include_router(module.router)
    app.include_router(qr.router)
    app.include_router(pages.router)
    app.mount("/static", pages.static_files(), name="static")
    # Added innermost first: CORS sees every response, metrics time everything.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_cors(app, settings)
    app.openapi = _openapi_with_problems(app)  # type: ignore[method-assign]
    return app


SERVER_SWITCH_INTERVAL_S = 0.0001
"""GIL hand-over interval in a server process (Python's default is 0.005 s)."""


def create_app_from_env() -> FastAPI:
    """The uvicorn factory: settings from ``MANDI_*`` variables, ledger from the data dir.

    It also freezes the objects built so far out of the cyclic garbage
    collector's reach, and shortens the interpreter's GIL switch interval in
    the worker: the group-commit thread holds the database's write lock while
    it appends, and each time it gives up the GIL (every SQLite call) it would
    otherwise wait up to 5 ms for the event loop's thread to hand it back,
    stretching the lock that the other workers queue on.
    """
    sys.setswitchinterval(SERVER_SWITCH_INTERVAL_S)
    app = create_app(Settings.from_env())
    # Everything built so far (modules, the app, the ledger) lives as long as the
    # worker: keep it out of the cyclic collector's full passes. Under a steady
    # write load a full pass took 80-115 ms, eight times in ten seconds, and
    # stalled every request in flight (single submissions: p99 160 ms against a
    # p50 of 47 ms); after freeze() a full pass takes 3-11 ms (p99 71-74 ms).
    gc.freeze()
    return app


def _add_cors(app: FastAPI, settings: Settings) -> None:
    """The one CORS policy: reads from any configured origin, no credentials."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["Accept", "Content-Type"],
        expose_headers=["Mandi-Tree-Size", "Location"],
        allow_credentials=False,
        max_age=600,
    )


def _writer_lock(ledger: Ledger) -> WriterLock | None:
    """For a SQLite file, the lock the workers of ``mandi serve`` take turns with."""
    store = ledger.store
    if not isinstance(store, SqlStore) or store.engine.url.get_backend_name() != "sqlite":
        return None
    database = store.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return WriterLock(Path(f"{database}-writer.lock"))


def _readiness(ledger: Ledger) -> Callable[[], int]:
    store = ledger.store
    url = (
        store.engine.url.render_as_string(hide_password=False)
        if isinstance(store, SqlStore)
        else None
    )

    def probe() -> int:
        size = ledger.size()
        if url is not None:
            current, head = schema_status(url)
            if current != head:
                raise ApiError("not_ready", f"schema revision {current} is not the head {head}")
        return size

    return probe


def _openapi_with_problems(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's document, with every 4xx/5xx as problem+json and the code table attached."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status[:1] in ("4", "5"):
                        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
                        if status == "422":
                            response["description"] = "Well-formed but refused, or not "
                            response["description"] += "matching the schema (validation_failed)"
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        schema["x-problem-codes"] = {
            code: {"status": kind.status, "title": kind.title} for code, kind in PROBLEMS.items()
        }
        app.openapi_schema = schema
        return schema

    return openapi
