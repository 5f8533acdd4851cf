"""``/v1/participants`` and ``/v1/registry``: enrol, rotate, revoke, list; the registry at a size.

The three writes take the same envelope as ``/v1/events``: an operator-signed
registry statement (the signature is the authentication; the ledger checks it
and the registry rules). This module only checks that the statement fits the
route: its ``kind`` must be the route's, and the participant it names must be
the one in the path. Reads are public.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from api.deps import CommitterDep, LedgerDep, MetricsDep, SettingsDep
from api.metrics import Metrics
from api.problems import ApiError, problem_responses
from api.routes.events import entry_response
from api.schemas import (
    Envelope,
    ParticipantOut,
    ParticipantPage,
    ParticipantWriteOut,
    RegistryOut,
    participant_out,
)
from ledger import (
    KIND_ENROL,
    KIND_REVOKE,
    KIND_ROTATE,
    KeyRecord,
    Ledger,
    SignedStatement,
)
from ledger.commit import GroupCommitter
from ledger.encoding import MAX_SAFE_INTEGER

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["participants"])

_WRITE_PROBLEMS = problem_responses(400, 403, 409, 413, 415, 422)
ParticipantIdPath = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="Participant id: 1-64 of [a-z0-9._-], starting with a letter or digit.",
        examples=["farm-1"],
    ),
]
_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "Appended: the entry and the participant after it."},
    200: {"model": ParticipantWriteOut, "description": "Already in the log (idempotent)."},
    **_WRITE_PROBLEMS,
}


@router.post(
    "/participants",
    status_code=201,
    response_model=ParticipantWriteOut,
    summary="Enrol a participant (operator-signed enrol statement)",
    responses=_WRITE_RESPONSES,
)
def enrol_participant(
    envelope: Envelope,
    ledger: LedgerDep,
    committer: CommitterDep,
    metrics: MetricsDep,
    response: Response,
) -> ParticipantWriteOut:
    """Append an ``enrol`` statement signed by the operator, carrying the participant's request."""
    signed = _statement_for_route(envelope, KIND_ENROL, None)
    participant_id = _named_participant(signed)[0]
    return _write(ledger, committer, metrics, signed, participant_id, response)


@router.post(
    "/participants/{participant_id}/rotate",
    status_code=201,
    response_model=ParticipantWriteOut,
    summary="Rotate a participant's key (operator-signed rotate statement)",
    responses=_WRITE_RESPONSES,
)
def rotate_key(
    participant_id: ParticipantIdPath,
    envelope: Envelope,
    ledger: LedgerDep,
    committer: CommitterDep,
    metrics: MetricsDep,
    response: Response,
) -> ParticipantWriteOut:
    """Append a ``rotate`` statement for the participant in the path."""
    signed = _statement_for_route(envelope, KIND_ROTATE, participant_id)
    return _write(ledger, committer, metrics, signed, participant_id, response)


@router.post(
    "/participants/{participant_id}/revoke",
    status_code=201,
    response_model=ParticipantWriteOut,
    summary="Revoke a participant's key (operator-signed revoke statement)",
    responses=_WRITE_RESPONSES,
)
def revoke_key(
    participant_id: ParticipantIdPath,
    envelope: Envelope,
    ledger: LedgerDep,
    committer: CommitterDep,
    metrics: MetricsDep,
    response: Response,
) -> ParticipantWriteOut:
    """Append a ``revoke`` statement for the participant in the path."""
    signed = _statement_for_route(envelope, KIND_REVOKE, participant_id)
    return _write(ledger, committer, metrics, signed, participant_id, response)


@router.get(
    "/participants",
    response_model=ParticipantPage,
    summary="List participants (paged, by enrolment index)",
    responses=problem_responses(400, 422),
)
def list_participants(
    ledger: LedgerDep,
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER, examples=[0])] = 0,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_SAFE_INTEGER,
            description="Page size (at most the max page size).",
            examples=[100],
        ),
    ] = 100,
) -> ParticipantPage:
    """Participants with their keys, current state."""
    if limit > settings.max_page_size:
        raise ApiError(
            "page_too_large",
            f"limit must be at most {settings.max_page_size}, got {limit}",
            field="limit",
        )
    records = ledger.store.participants()
    keys = _keys_by_participant(ledger.store.keys())
    page = records[offset : offset + limit]
    return ParticipantPage(
        offset=offset,
        limit=limit,
        total=len(records),
        items=[participant_out(r, keys.get(r.participant_id, [])) for r in page],
    )


@router.get(
    "/participants/{participant_id}",
    response_model=ParticipantOut,
    summary="Get a participant and its keys",
    responses=problem_responses(404, 422),
)
def get_participant(participant_id: ParticipantIdPath, ledger: LedgerDep) -> ParticipantOut:
    """The participant's current record."""
    out = _participant(ledger, participant_id)
    if out is None:
        raise ApiError("not_found", f"no participant {participant_id!r}", field="participant_id")
    return out


@router.get(
    "/registry",
    response_model=RegistryOut,
    summary="The participant registry as of a tree size",
    responses=problem_responses(400, 422),
)
def registry_at(
    ledger: LedgerDep,
    size: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SAFE_INTEGER,
            description="Tree size N: the registry the first N entries define (default: now).",
            examples=[6],
        ),
    ] = None,
) -> RegistryOut:
    """Participants enrolled and keys added before index N; revocations at indices below N."""
    current = ledger.size()
    tree_size = current if size is None else size
    if tree_size > current:
        raise ApiError(
            "out_of_range", f"size {tree_size} is beyond the log size {current}", field="size"
        )
    every_key = ledger.store.keys()
    keys = _keys_by_participant(k for k in every_key if k.added_at < tree_size)
    return RegistryOut(
        tree_size=tree_size,
        participants=[
            participant_out(p, keys.get(p.participant_id, []), tree_size=tree_size)
            for p in ledger.store.participants()
            if p.enrolled_at < tree_size
        ],
    )


# ---------------------------------------------------------------------------


def _statement_for_route(
    envelope: Envelope, kind: str, participant_id: str | None
) -> SignedStatement:
    signed = envelope.to_signed()
    if signed.statement.kind != kind:
        raise ApiError(
            "kind_mismatch",
            f"this route takes {kind!r} statements, got {signed.statement.kind!r}",
            field="kind",
        )
    if participant_id is not None:
        named, path = _named_participant(signed)
        if named != participant_id:
            raise ApiError(
                "participant_mismatch",
                f"the statement names participant {named!r}, the path {participant_id!r}",
                field=path,
            )
    return signed


def _named_participant(signed: SignedStatement) -> tuple[str | None, str]:
    """The participant a registry statement names, and the field it is in (None if malformed)."""
    body = signed.statement.body
    if signed.statement.kind == KIND_REVOKE:
        value = body.get("participant")
        return (value if isinstance(value, str) else None), "body.participant"
    request = body.get("request")
    value = request.get("participant") if isinstance(request, dict) else None
    return (value if isinstance(value, str) else None), "body.request.participant"


def _write(
    ledger: Ledger,
    committer: GroupCommitter,
    metrics: Metrics,
    signed: SignedStatement,
    participant_id: str | None,
    response: Response,
) -> ParticipantWriteOut:
    result = committer.submit(signed)
    metrics.appends.inc(int(result.created))
    entry = entry_response(result, response)
    participant = _participant(ledger, participant_id) if participant_id else None
    return ParticipantWriteOut(created=result.created, entry=entry, participant=participant)


def _participant(ledger: Ledger, participant_id: str) -> ParticipantOut | None:
    record = ledger.store.participant(participant_id)
    if record is None:
        return None
    every_key = ledger.store.keys()
    keys = [k for k in every_key if k.participant == participant_id]
    return participant_out(record, keys)


def _keys_by_participant(keys: Iterable[KeyRecord]) -> dict[str, list[KeyRecord]]:
    grouped: dict[str, list[KeyRecord]] = defaultdict(list)
    for key in keys:
        grouped[key.participant].append(key)
    return grouped
