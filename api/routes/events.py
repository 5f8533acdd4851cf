"""``/v1/events``: submit signed statements (one or a batch) and read them back by event id.

Submission is authenticated by the statement's own signature, which the ledger
checks against the registry; the server never sees a private key. Resubmitting a
statement already in the log is idempotent: 200 with the existing entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Annotated, overload

from fastapi import APIRouter, Path, Request, Response

from api.deps import AppState, CommitterDep, LedgerDep, MetricsDep, SettingsDep
from api.problems import ApiError, problem_responses
from api.schemas import HEX64, BatchItemOut, BatchOut, BatchRequest, EntryOut, Envelope
from ledger import AppendResult, Ledger, LedgerError, SignedStatement, digest_from_hex

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])

_WRITE_PROBLEMS = problem_responses(400, 403, 409, 413, 415, 422)
EventIdPath = Annotated[
    str,
    Path(
        pattern=HEX64,
        description="Event id: SHA-256 of the statement bytes, 64 lowercase hex digits.",
        examples=["7b78750011665150d2df707e848f22c28edd5d3f16ac4bf1eb6c4aae031057b6"],
    ),
]


@router.post(
    "/events",
    status_code=201,
    response_model=EntryOut,
    summary="Submit one signed statement",
    responses={
        201: {"description": "Appended: the new entry."},
        200: {"model": EntryOut, "description": "Already in the log: the existing entry."},
        **_WRITE_PROBLEMS,
    },
)
async def submit_event(envelope: Envelope, request: Request) -> Response:
    """Append a statement signed by a registered key (201), or return its entry if known (200).

    Concurrent submissions share one commit (group commit); the answer comes
    only once the statement is durable.
    """
    # The hottest route: it reads the app state from the request rather than
    # through dependencies (FastAPI solves each dependency on every request),
    # and serialises its answer itself, to the bytes FastAPI would make.
    state: AppState = request.app.state.mandi
    signed = envelope.to_signed()
    # Verified here, not by the writer thread, which holds the write lock. One
    # check is too short to be worth handing to another thread.
    public = state.ledger.verify_ahead(signed)
    result = await asyncio.wrap_future(state.committer.submit_future(signed, verified_with=public))
    state.metrics.appends.inc(int(result.created))
    response = Response(
        EntryOut.from_entry(result.entry).model_dump_json(),
        status_code=201 if result.created else 200,
        media_type="application/json",
    )
    response.headers["Location"] = f"/v1/events/{result.entry.event_id.hex()}"
    return response


@router.post(
    "/events:batch",
    status_code=201,
    response_model=BatchOut,
    summary="Submit a batch of signed statements, all or none",
    responses={
        201: {"description": "Appended (at least one statement is new)."},
        200: {"model": BatchOut, "description": "Every statement was already in the log."},
        **_WRITE_PROBLEMS,
    },
)
async def submit_batch(
    batch: BatchRequest,
    ledger: LedgerDep,
    committer: CommitterDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    """Append up to the batch limit in order, in one transaction: all of them or none.

    A refusal names the item: ``field`` is ``items[<i>].<field>``.
    """
    if len(batch.items) > settings.max_batch:
        raise ApiError(
            "batch_too_large",
            f"a batch holds at most {settings.max_batch} statements, got {len(batch.items)}",
            field="items",
        )
    signed = []
    for position, envelope in enumerate(batch.items):
        try:
            signed.append(envelope.to_signed())
        except LedgerError as exc:
            _name_item(exc, position)
            raise
    # The signatures are checked in a thread (libsodium releases the GIL), on the
    # other core while this worker parses requests or its writer commits, and
    # not by the writer, which holds the write lock.
    verified = await asyncio.to_thread(_verify_ahead, ledger, signed)
    cursor = _Cursor(signed)
    try:
        # Its own transaction, run by the same writer as the single submissions.
        results = await asyncio.wrap_future(
            committer.submit_batch_future(cursor, verified_with=verified)
        )
    except LedgerError as exc:
        if cursor.position is not None:
            _name_item(exc, cursor.position)
        raise
    created = sum(r.created for r in results)
    metrics.appends.inc(created)
    answer = BatchOut(
        created=created,
        items=[
            BatchItemOut(created=r.created, entry=EntryOut.from_entry(r.entry)) for r in results
        ],
    )
    # Serialised here, to the bytes FastAPI would make of the response model, so
    # FastAPI does not validate and serialise 100 entries a second time.
    return Response(
        answer.model_dump_json(),
        status_code=201 if created else 200,
        media_type="application/json",
    )


@router.get(
    "/events/{event_id}",
    response_model=EntryOut,
    summary="Get an event's entry by event id",
    responses=problem_responses(404, 422),
)
def get_event(event_id: EventIdPath, ledger: LedgerDep) -> EntryOut:
    """The entry holding the statement with this event id, with its log index."""
    return EntryOut.from_entry(ledger.entry_by_event_id(digest_from_hex(event_id)))


def entry_response(result: AppendResult, response: Response) -> EntryOut:
    """201 for a new entry, 200 for an existing one; ``Location`` names the event."""
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = f"/v1/events/{result.entry.event_id.hex()}"
    return EntryOut.from_entry(result.entry)


def _verify_ahead(ledger: Ledger, items: Sequence[SignedStatement]) -> list[bytes | None]:
    return [ledger.verify_ahead(signed) for signed in items]


def _name_item(exc: LedgerError, position: int) -> None:
    exc.field = f"items[{position}].{exc.field}" if exc.field else f"items[{position}]"


class _Cursor(Sequence[SignedStatement]):
    """The batch as the ledger iterates it, remembering which item it is on.

    ``append_batch`` admits items in order and raises at the first refusal, so
    ``position`` names that item; it is None once the loop is over (a failure at
    commit or while signing the checkpoint belongs to no single item).
    """

    def __init__(self, items: list[SignedStatement]) -> None:
        self._items = items
        self.position: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> SignedStatement: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[SignedStatement]: ...

    def __getitem__(self, index: int | slice) -> SignedStatement | Sequence[SignedStatement]:
        return self._items[index]

    def __iter__(self) -> Iterator[SignedStatement]:
        for position, item in enumerate(self._items):
            self.position = position
            yield item
        self.position = None
