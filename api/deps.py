"""Dependency aliases for the routes: the app's ledger, settings, metrics and readiness probe.

:func:`api.app.create_app` puts one :class:`AppState` on ``app.state.mandi``;
these functions hand its parts to the routes, so a test swaps the ledger by
passing another one to ``create_app``, never by patching. They are coroutines
because FastAPI runs a plain-function dependency in its thread pool: a hop per
dependency per request, for an attribute read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.metrics import Metrics
from api.settings import Settings
from ledger import Ledger
from ledger.commit import GroupCommitter

__all__ = [
    "AppState",
    "CommitterDep",
    "LedgerDep",
    "MetricsDep",
    "ReadinessDep",
    "SettingsDep",
    "get_committer",
    "get_ledger",
    "get_metrics",
    "get_readiness",
    "get_settings",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppState:
    """Everything a request may need, built once per app."""

    ledger: Ledger
    settings: Settings
    metrics: Metrics
    readiness: Callable[[], int]
    """Returns the log size when the database answers and its schema is current; raises else."""
    committer: GroupCommitter
    """Appends single submissions in shared transactions (group commit)."""


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.mandi
    return state


async def get_ledger(request: Request) -> Ledger:
    """The app's ledger."""
    return _state(request).ledger


async def get_committer(request: Request) -> GroupCommitter:
    """The app's group committer (single-statement submissions go through it)."""
    return _state(request).committer


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return _state(request).settings


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    return _state(request).metrics


async def get_readiness(request: Request) -> Callable[[], int]:
    """The app's readiness probe."""
    return _state(request).readiness


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CommitterDep = Annotated[GroupCommitter, Depends(get_committer)]
ReadinessDep = Annotated[Callable[[], int], Depends(get_readiness)]
