"""``/v1/lots``: a lot's current state, its history, its trace back and forward; holdings.

Reads only, and public. Every answer comes from the ledger's indexed state
(:meth:`Ledger.lot`, :meth:`Ledger.history`, :meth:`Ledger.trace_back`,
:meth:`Ledger.trace_forward`, :meth:`Ledger.held_by`), never from scanning the log.

**Lot ids in paths.** The canonical lot id is URL-path-safe and is written in
the path *as it is*, escapes included: ``/v1/lots/gtin:09506000134352:AB%2F1``
names the lot whose id is the 26 characters ``gtin:09506000134352:AB%2F1``
(AI (10) value ``AB/1``). ASGI servers hand the router a *decoded* path, in
which that ``%2F`` has become a ``/`` (another segment) and a ``%25`` a ``%``
(another id). :class:`RawPathRoute` therefore matches these routes against the
path exactly as the client sent it (``raw_path``), so the id reaches the
handler unaltered; :func:`lot_id_from_path` then validates it with
:meth:`LotId.parse` (400 ``bad_lot_id`` otherwise). A client that
percent-encoded the whole id once (JavaScript's ``encodeURIComponent`` turns
``:`` into ``%3A``) is understood too: a canonical id always holds a literal
``:``, so a segment without one is decoded once, and then must be canonical.

Other routes that take a lot id in the path (the QR code, the public page) can
use the same :class:`RawPathRoute` and :data:`LotIdPath`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from starlette.routing import Match
from starlette.types import Scope

from api.deps import LedgerDep
from api.problems import ApiError, problem_responses
from api.routes.participants import ParticipantIdPath
from api.schemas import HEX64, b64
from ledger import Ledger, NotFoundError
from ledger.domain import MAX_TRACE_DEPTH, MAX_TRACE_LOTS, LotId, LotState, base_unit
from ledger.encoding import MAX_SAFE_INTEGER

__all__ = [
    "HistoryItemOut",
    "HistoryOut",
    "HoldingsOut",
    "LotIdPath",
    "LotOut",
    "LotStateOut",
    "QuantityOut",
    "RawPathRoute",
    "TraceOut",
    "lot_id_from_path",
    "lot_state_out",
    "router",
]


class RawPathRoute(APIRoute):
    """An API route matched against the path as sent, so escapes in path parameters survive.

    Only when ``raw_path`` is the same path as ``path`` once decoded (it is not
    when a mount or a redirect rewrote ``path``); otherwise as usual.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = _undecoded_path(scope)
        if raw is not None:
            scope = {**scope, "path": raw}
        return super().matches(scope)


def _undecoded_path(scope: Scope) -> str | None:
    raw = scope.get("raw_path")
    if scope.get("type") != "http" or not isinstance(raw, bytes):
        return None
    text = raw.split(b"?", 1)[0].decode("latin-1")
    return text if unquote(text) == scope.get("path") else None


router = APIRouter(prefix="/v1", tags=["lots"], route_class=RawPathRoute)
_T = TypeVar("_T")

_EX_LOT = "lot:mill.gujranwala:rice-02"
_EX_GS1_LOT = "gtin:09506000134352:AB%2F1"
LotIdPath = Annotated[
    str,
    Path(
        description="The canonical lot id, written as it is (its `%XX` escapes are part of "
        "the id and are not decoded): `gtin:{14 digits}:{percent-encoded AI (10)}` or "
        "`lot:{participant}:{code}`. An id percent-encoded as a whole once (`:` as `%3A`) "
        "is accepted too.",
        examples=[_EX_LOT, _EX_GS1_LOT],
    ),
]


def lot_id_from_path(text: str, *, field: str = "lot_id") -> str:
    """The canonical lot id a path segment names (see the module docstring).

    Raises:
        EncodingError: ``bad_lot_id`` naming ``field``.
    """
    if ":" not in text and "%3a" in text.lower():
        with contextlib.suppress(UnicodeDecodeError):  # not UTF-8: refused below as it is
            text = unquote(text, errors="strict")
    return LotId.parse(text, field=field).text


# ---------------------------------------------------------------------------
# Wire models


class QuantityOut(BaseModel):
    """A quantity in the base unit of the lot's unit class (grams for mass)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 4812000, "unit": "g"}]})

    amount: int = Field(ge=0)
    unit: str = Field(description="`g` for mass; the count unit (`crate`, `piece`, ...) else.")


_EX_RECALL: dict[str, Any] = {
    "lot_id": "lot:farm.punjab.2:paddy-05",
    "index": 497,
    "reason": "pesticide residue above the MRL",
}


class RecallOut(BaseModel):
    """A lot's recall: the log index of the recall statement and its reason."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EX_RECALL]})

    lot_id: str
    index: int = Field(ge=0, description="Log index of the recall statement.")
    reason: str | None = None


_EX_STATE: dict[str, Any] = {
    "lot_id": _EX_LOT,
    "crop": "rice",
    "unit_class": "mass",
    "quantity": {"amount": 4812000, "unit": "g"},
    "holder": "market.lahore",
    "status": "held",
    "producer": "mill.gujranwala",
    "created_at": 431,
    "last_time": "2026-10-04T11:02:00+00:00",
    "recall": None,
    "packed_in": None,
    "contents": [],
    "shipment": None,
}


class LotStateOut(BaseModel):
    """A lot (or shipping unit) as it is now."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EX_STATE]})

    lot_id: str = Field(description="The canonical lot id.")
    crop: str = Field(description="The crop; `mixed` for a unit whose contents differ.")
    unit_class: str = Field(description="`mass` or a count unit; fixed at creation.")
    quantity: QuantityOut = Field(description="What it holds now; 0 once consumed or sold.")
    holder: str | None = Field(
        description="Who holds it now; null while it (or its unit) is in transit. For consumed "
        "and sold lots, the last holder."
    )
    status: str = Field(description="`held`, `in_transit`, `packed`, `consumed` or `sold`.")
    producer: str = Field(description="Who created it.")
    created_at: int = Field(ge=0, description="Log index of the statement that created it.")
    last_time: str = Field(description="Claimed time (RFC 3339) of its latest statement.")
    recall: RecallOut | None = Field(description="Its own recall, if recalled.")
    packed_in: str | None = Field(description="The shipping unit it is packed in, if packed.")
    contents: list[str] = Field(description="For a shipping unit: the lots packed in it.")
    shipment: str | None = Field(
        description="Event id (hex) of the open shipment while in transit."
    )


class LotOut(LotStateOut):
    """A lot as it is now, with the recalls that affect it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_EX_STATE, "recalled_upstream": [_EX_RECALL]}]}
    )

    recalled_upstream: list[RecallOut] = Field(
        description="The recalled lots among this lot and everything upstream of it (a recall "
        "applies downstream): the lot is affected exactly when this is not empty."
    )


def lot_state_out(state: LotState) -> LotStateOut:
    """The wire form of a lot's state."""
    return LotStateOut(**_state_fields(state))


def _state_fields(state: LotState) -> dict[str, Any]:
    return {
        "lot_id": state.lot_id,
        "crop": state.crop,
        "unit_class": state.unit_class,
        "quantity": QuantityOut(amount=state.quantity, unit=base_unit(state.unit_class)),
        "holder": state.custodian,
        "status": state.status,
        "producer": state.producer,
        "created_at": state.created_at,
        "last_time": state.last_time,
        "recall": _recall(state),
        "packed_in": state.unit,
        "contents": list(state.contents),
        "shipment": state.shipment,
    }


def _recall(state: LotState) -> RecallOut | None:
    if state.recalled_at is None:
        return None
    return RecallOut(lot_id=state.lot_id, index=state.recalled_at, reason=state.recall_reason)


_EX_HISTORY_ITEM: dict[str, Any] = {
    "index": 431,
    "event_id": "5d1a4c0e0fb7e1a3c7d7f0ad3b3f8e0c2b0d3e6f4a1c9b8e7d6c5b4a39281706",
    "kind": "transform",
    "participant": "mill.gujranwala",
    "time": "2026-10-03T08:15:00+00:00",
    "accepted_ms": 1790000000000,
    "corrected_by": None,
    "body": {"process": "milling", "inputs": ["..."], "outputs": ["..."]},
    "statement": "eyJib2R5Ijp7...",
    "signature": "SPM/vUWeb3kF...AA==",
}


class HistoryItemOut(BaseModel):
    """One statement on the lot, decoded from its stored bytes, with the bytes to verify it."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EX_HISTORY_ITEM]})

    index: int = Field(ge=0, description="Its log index (for an inclusion proof).")
    event_id: str = Field(pattern=HEX64, description="SHA-256 of the statement bytes (hex).")
    kind: str
    participant: str = Field(description="The participant whose key signed it.")
    time: str = Field(description="The time the statement claims (RFC 3339).")
    accepted_ms: int = Field(ge=0, description="When the log accepted it, ms since the epoch.")
    corrected_by: int | None = Field(
        description="Log index of the `correct` statement that declared it erroneous, if any."
    )
    body: dict[str, Any] = Field(description="The statement's body, as signed.")
    statement: str = Field(description="Base64 of the exact statement bytes.")
    signature: str = Field(description="Base64 of the Ed25519 signature over them.")


class HistoryOut(BaseModel):
    """Every statement on a lot in log order, corrections and corrected ones included."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"lot_id": _EX_LOT, "items": [_EX_HISTORY_ITEM]}]}
    )

    lot_id: str
    items: list[HistoryItemOut]


class TraceLotOut(LotStateOut):
    """One lot of a trace: its state now and its distance from the traced lot."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**_EX_STATE, "depth": 0}]})

    depth: int = Field(ge=0, description="Hops from the traced lot (0: the lot itself).")


class TraceEdgeOut(BaseModel):
    """``child`` was made from ``parent`` (transform) or holds it (pack), at log ``index``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "parent": "lot:farm.punjab.2:paddy-05",
                    "child": _EX_LOT,
                    "index": 431,
                    "kind": "transform",
                }
            ]
        }
    )

    parent: str
    child: str
    index: int = Field(ge=0)
    kind: Literal["transform", "pack"]


class TraceOut(BaseModel):
    """The lots upstream (``back``) or downstream (``forward``) of a lot, breadth first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lot_id": _EX_LOT,
                    "direction": "back",
                    "depth": MAX_TRACE_DEPTH,
                    "truncated": False,
                    "lots": [{**_EX_STATE, "depth": 0}],
                    "edges": [],
                }
            ]
        }
    )

    lot_id: str
    direction: Literal["back", "forward"]
    depth: int = Field(ge=0, description="The depth limit the walk used.")
    truncated: bool = Field(
        description=f"A limit stopped the walk (the depth, or {MAX_TRACE_LOTS} lots): more "
        "lots lie beyond."
    )
    lots: list[TraceLotOut] = Field(description="The traced lot first, then by depth.")
    edges: list[TraceEdgeOut] = Field(description="The edges walked, in the same order.")


class HoldingsOut(BaseModel):
    """What a participant holds now: held lots, and lots packed in units it holds."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"participant_id": "market.lahore", "lots": [_EX_STATE]}]}
    )

    participant_id: str
    lots: list[LotStateOut]


# ---------------------------------------------------------------------------
# Routes

_LOT_PROBLEMS = problem_responses(400, 404, 422)


@router.get(
    "/lots/{lot_id}",
    response_model=LotOut,
    summary="A lot's current state: holder, quantity, status, recalls",
    responses=_LOT_PROBLEMS,
)
def get_lot(lot_id: LotIdPath, ledger: LedgerDep) -> LotOut:
    """Who holds the lot now, how much it holds, its status, and the recalls that affect it."""
    lot = lot_id_from_path(lot_id)
    state = _named(ledger.lot, lot)
    recalled = _named(ledger.recalled_upstream, lot)
    return LotOut(
        **_state_fields(state),
        recalled_upstream=[r for s in recalled if (r := _recall(s)) is not None],
    )


@router.get(
    "/lots/{lot_id}/history",
    response_model=HistoryOut,
    summary="Every statement on a lot, in log order",
    responses=_LOT_PROBLEMS,
)
async def lot_history(lot_id: LotIdPath, request: Request) -> Response:
    """Each statement decoded from its stored bytes, with the bytes and signature to verify it."""
    # Run on the event loop, not in the thread pool: a history is one indexed
    # query of a local database, holding the GIL but for microseconds; threads
    # would only queue on the GIL for it (measured: half the throughput at 8
    # concurrent clients). The unbounded walks (trace, recalls, holdings) stay
    # in the pool. The answer is serialised here, by pydantic-core, to the same
    # bytes FastAPI would make of a HistoryOut (tests/api/test_lots.py holds it
    # to that) without building and re-validating the models on every read;
    # the ledger comes from the request, not a dependency FastAPI would solve.
    ledger: Ledger = request.app.state.mandi.ledger
    lot = lot_id_from_path(lot_id)
    items = [
        {
            "index": item.index,
            "event_id": item.event_id.hex(),
            "kind": item.kind,
            "participant": item.participant,
            "time": item.time,
            "accepted_ms": item.accepted_ms,
            "corrected_by": item.corrected_by,
            "body": item.body,
            "statement": b64(item.statement),
            "signature": b64(item.signature),
        }
        for item in _named(ledger.history, lot)
    ]
    return Response(to_json({"lot_id": lot, "items": items}), media_type="application/json")


@router.get(
    "/lots/{lot_id}/trace",
    response_model=TraceOut,
    summary="Trace a lot back to the farms or forward to every downstream lot",
    responses=_LOT_PROBLEMS,
)
def lot_trace(
    lot_id: LotIdPath,
    ledger: LedgerDep,
    direction: Annotated[
        Literal["back", "forward"],
        Query(
            description="`back`: upstream, to the harvests; `forward`: downstream, every lot "
            "made from it or holding it, with who holds each now (the recall list).",
            examples=["back"],
        ),
    ],
    depth: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_SAFE_INTEGER,
            description=f"Most hops from the lot, 0 to {MAX_TRACE_DEPTH} (default "
            f"{MAX_TRACE_DEPTH}); more is refused with 400 depth_too_large.",
            examples=[MAX_TRACE_DEPTH],
            json_schema_extra={"maximum": MAX_TRACE_DEPTH},
        ),
    ] = MAX_TRACE_DEPTH,
) -> TraceOut:
    """Breadth first, at most ``depth`` hops and 10,000 lots; ``truncated`` says a limit hit."""
    if depth > MAX_TRACE_DEPTH:
        raise ApiError(
            "depth_too_large",
            f"depth must be at most {MAX_TRACE_DEPTH}, got {depth}",
            field="depth",
        )
    lot = lot_id_from_path(lot_id)
    walk = ledger.trace_back if direction == "back" else ledger.trace_forward
    trace = _named(lambda root: walk(root, max_depth=depth), lot)
    lots = []
    for lot_in, hops in trace.lots:
        state = _named(ledger.lot, lot_in)
        lots.append(TraceLotOut(**_state_fields(state), depth=hops))
    return TraceOut(
        lot_id=lot,
        direction=direction,
        depth=depth,
        truncated=trace.truncated,
        lots=lots,
        edges=[
            TraceEdgeOut(parent=e.parent, child=e.child, index=e.index, kind=e.kind)
            for e in trace.edges
        ],
    )


@router.get(
    "/participants/{participant_id}/lots",
    response_model=HoldingsOut,
    summary="What a participant holds now",
    responses=problem_responses(404, 422),
)
def participant_lots(participant_id: ParticipantIdPath, ledger: LedgerDep) -> HoldingsOut:
    """Lots the participant holds, and lots packed in units it holds, by lot id."""
    if ledger.store.participant(participant_id) is None:
        raise ApiError("not_found", f"no participant {participant_id!r}", field="participant_id")
    return HoldingsOut(
        participant_id=participant_id,
        lots=[lot_state_out(state) for state in ledger.held_by(participant_id)],
    )


def _named(call: Callable[[str], _T], lot: str) -> _T:
    """``call(lot)``, with an unknown lot's problem naming the path parameter."""
    try:
        return call(lot)
    except NotFoundError as exc:
        exc.field = "lot_id"
        raise
