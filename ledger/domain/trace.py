"""Trace back and forward through the lot graph, with limits on depth and size.

Lots form a directed graph: an edge ``parent -> child`` says the child was made
from the parent (a transformation input and its output) or holds it (a content
lot and the shipping unit it was packed in). :func:`trace_back` walks edges
into a lot up to the harvested lots on the farms; :func:`trace_forward` walks
edges out of it to every downstream lot, which with each lot's current holder
is the recall list. Both answer from indexed state (:class:`EdgeView`), never
by scanning the log, and stop at ``max_depth`` hops or ``max_lots`` lots,
saying so with ``truncated``.

This module walks; it does not create edges (:mod:`ledger.domain.rules`) or
store them (:mod:`ledger.domain.state` in memory, the SQL store on disk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ledger.domain.rules import LotState
from ledger.errors import NotFoundError

__all__ = [
    "MAX_TRACE_DEPTH",
    "MAX_TRACE_LOTS",
    "Edge",
    "EdgeView",
    "Trace",
    "holdings",
    "recalled_upstream",
    "trace_back",
    "trace_forward",
]

MAX_TRACE_DEPTH = 50
MAX_TRACE_LOTS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """``child`` was made from ``parent`` (transform) or holds it (pack), at log ``index``."""

    parent: str
    child: str
    index: int
    kind: Literal["transform", "pack"]


class EdgeView(Protocol):
    """Read access to the lot graph and the lots' current state."""

    def edges_into(self, lot_id: str) -> list[Edge]:
        """Edges whose child is ``lot_id``, in log order."""
        ...

    def edges_from(self, lot_id: str) -> list[Edge]:
        """Edges whose parent is ``lot_id``, in log order."""
        ...

    def lot(self, lot_id: str) -> LotState | None:
        """The lot's current state, or None."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """The result of a trace.

    Attributes:
        root: the lot traced from.
        direction: ``back`` (upstream) or ``forward`` (downstream).
        lots: ``(lot_id, depth)`` in breadth-first order, the root first at depth 0.
        edges: the edges walked, in the same order.
        truncated: a limit stopped the walk; more lots lie beyond.
    """

    root: str
    direction: Literal["back", "forward"]
    lots: tuple[tuple[str, int], ...]
    edges: tuple[Edge, ...]
    truncated: bool

    @property
    def lot_ids(self) -> tuple[str, ...]:
        """The lot ids, root first."""
        return tuple(lot for lot, _ in self.lots)


def _walk(
    root: str,
    view: EdgeView,
    direction: Literal["back", "forward"],
    max_depth: int,
    max_lots: int,
) -> Trace:
    if max_depth < 0 or max_lots < 1:
        raise ValueError("requires max_depth >= 0 and max_lots >= 1")
    if view.lot(root) is None:
        raise NotFoundError(f"lot {root} does not exist", code="unknown_lot", field="lot")
    step: Callable[[str], list[Edge]] = view.edges_into if direction == "back" else view.edges_from
    depth_of = {root: 0}
    lots: list[tuple[str, int]] = [(root, 0)]
    edges: list[Edge] = []
    truncated = False
    frontier = [root]
    depth = 0
    while frontier and not truncated:
        following: list[str] = []
        for lot in frontier:
            for edge in step(lot):
                other = edge.parent if direction == "back" else edge.child
                if other not in depth_of:
                    if depth == max_depth or len(lots) >= max_lots:
                        truncated = True
                        break
                    depth_of[other] = depth + 1
                    lots.append((other, depth + 1))
                    following.append(other)
                edges.append(edge)
            if truncated:
                break
        frontier = following
        depth += 1
    return Trace(
        root=root, direction=direction, lots=tuple(lots), edges=tuple(edges), truncated=truncated
    )


def trace_back(
    lot: str,
    view: EdgeView,
    *,
    max_depth: int = MAX_TRACE_DEPTH,
    max_lots: int = MAX_TRACE_LOTS,
) -> Trace:
    """All lots upstream of ``lot``: transformation inputs and packed contents, to the farms.

    Args:
        lot: the canonical lot id.
        view: the lot graph.
        max_depth: at most this many hops from ``lot`` (>= 0).
        max_lots: at most this many lots, ``lot`` included (>= 1).

    Raises:
        NotFoundError: ``unknown_lot``.
        ValueError: a limit out of range.
    """
    return _walk(lot, view, "back", max_depth, max_lots)


def trace_forward(
    lot: str,
    view: EdgeView,
    *,
    max_depth: int = MAX_TRACE_DEPTH,
    max_lots: int = MAX_TRACE_LOTS,
) -> Trace:
    """All lots downstream of ``lot``: transformation outputs and the units it went into.

    With :func:`holdings` this is the recall list: every downstream lot and who
    holds it now.

    Raises:
        NotFoundError: ``unknown_lot``.
        ValueError: a limit out of range.
    """
    return _walk(lot, view, "forward", max_depth, max_lots)


def holdings(trace: Trace, view: EdgeView) -> tuple[LotState, ...]:
    """The current state (custodian, status, quantity) of every lot in ``trace``, in order."""
    states = (view.lot(lot) for lot in trace.lot_ids)
    return tuple(state for state in states if state is not None)


def recalled_upstream(
    lot: str,
    view: EdgeView,
    *,
    max_depth: int = MAX_TRACE_DEPTH,
    max_lots: int = MAX_TRACE_LOTS,
) -> tuple[LotState, ...]:
    """The recalled lots among ``lot`` and everything upstream of it (the page banner).

    A recall applies to every lot downstream of the recalled one, so a lot is
    affected exactly when this is non-empty.

    Raises:
        NotFoundError: ``unknown_lot``.
    """
    trace = trace_back(lot, view, max_depth=max_depth, max_lots=max_lots)
    return tuple(s for s in holdings(trace, view) if s.recalled_at is not None)
