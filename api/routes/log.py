"""``/v1/log``: the signed checkpoint, the log's verifier key, entries, proofs and roots.

Everything here is public and read-only, and enough for an auditor to verify
the whole log with nothing but the vkey obtained out of band: entries carry
their exact bytes, the checkpoint is the stored signed note byte for byte
followed by every witness cosignature stored for it (c2sp.org/tlog-cosignature
lines, verified before they were stored), and proofs are RFC 9162's. Sizes and
indices are 0-based, ranges half-open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from api.deps import LedgerDep, SettingsDep
from api.problems import ApiError, problem_responses
from api.schemas import (
    HEX64,
    ConsistencyProofOut,
    EntriesPage,
    EntryOut,
    InclusionProofOut,
    LogInfoOut,
    RootOut,
)
from ledger import Entry, Ledger, LedgerError, build_vkey, digest_from_hex
from ledger.encoding import MAX_SAFE_INTEGER

__all__ = ["JSONL_MEDIA_TYPE", "router"]

router = APIRouter(prefix="/v1/log", tags=["log"])

JSONL_MEDIA_TYPE = "application/jsonl"
_TEXT = "text/plain; charset=utf-8"
_EX_NOTE = (
    "mandi.example/log\n3\nA6Z1r4B25S4mtSYLKW9v6Nlve06rgAQLiQewyS0ua34=\n\n"
    "\u2014 mandi.example/log +zv7H/jhNXxyhFte6cfPLQXQtCfblTRyMmAnjGdWlf4PnpIgveGSevtn/"
    "0oAkeGl/oJsbGUiHlwIBfKZkLksyUQokAQ=\n"
)
# cosign_checkpoint(Signer.from_seed(bytes(range(128, 160))), "witness.example/w1",
# <_EX_NOTE's text>, 1795843800): the witness key of scripts/gen_vectors.py.
_EX_COSIGNED = (
    _EX_NOTE + "\u2014 witness.example/w1 nydDYwAAAABrCmbY+A7mo8ast4QIiRwTlbki2NdHv7NyIZhqC3D9"
    "W37VE1oeseZdiZ8sp/Jy3MXslaspL9ejopSCqB+Lis2shY/EDQ==\n"
)
_EX_VKEY = "mandi.example/log+fb3bfb1f+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4\n"


@router.get("", response_model=LogInfoOut, summary="The log's origin, size and vkey")
def log_info(ledger: LedgerDep) -> LogInfoOut:
    """What this log is and how far it has grown."""
    latest = ledger.store.latest_checkpoint()
    return LogInfoOut(
        origin=ledger.log.origin,
        tree_size=ledger.size(),
        checkpoint_size=latest.size if latest is not None else None,
        vkey=build_vkey(ledger.log.origin, ledger.log.log_key),
    )


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="The newest signed checkpoint with its witness cosignatures (C2SP signed note)",
    responses={
        200: {
            "description": "The log-signed note exactly as stored, then one line per stored "
            "witness cosignature (cosignature/v1); ends in LF.",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": _EX_COSIGNED}},
        },
        **problem_responses(404, 422),
    },
)
def checkpoint(
    ledger: LedgerDep,
    min_cosignatures: Annotated[
        int,
        Query(
            ge=0,
            le=100,
            description="The newest checkpoint carrying at least this many stored witness "
            "cosignatures (0: the newest checkpoint). 404 `no_cosigned_checkpoint` if none.",
            examples=[1],
        ),
    ] = 0,
) -> PlainTextResponse:
    """The newest checkpoint (with enough cosignatures), byte for byte as signed and cosigned."""
    note = ledger.cosigned_checkpoint(min_cosignatures).note
    return PlainTextResponse(note, media_type=_TEXT, headers={"Cache-Control": "no-cache"})


@router.get(
    "/vkey",
    response_class=PlainTextResponse,
    summary="The log's C2SP verifier key",
    responses={
        200: {
            "description": "name+keyhash+base64 key, then LF. Fetch it once and pin it; "
            "an auditor should get it out of band.",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": _EX_VKEY}},
        },
        **problem_responses(),
    },
)
def vkey(ledger: LedgerDep) -> PlainTextResponse:
    """The log's verifier key, as in the data directory's log.vkey."""
    return PlainTextResponse(
        build_vkey(ledger.log.origin, ledger.log.log_key) + "\n", media_type=_TEXT
    )


@router.get(
    "/entries",
    response_model=None,
    summary="Entries [start, end), streamed as JSON Lines (or JSON)",
    responses={
        200: {
            "model": EntriesPage,
            "description": "JSON Lines (default): one entry per line, each line the exact "
            "canonical entry bytes. JSON (Accept: application/json or format=json): "
            "an EntriesPage. `end` beyond the log is clamped to the log size.",
            "content": {
                JSONL_MEDIA_TYPE: {
                    "schema": {"type": "string"},
                    "example": '{"accepted_ms":1795843800000,"index":2,"prev":"a4a7...",'
                    '"signature":"SPM/...","statement":"eyJi..."}\n',
                }
            },
        },
        **problem_responses(400, 422),
    },
)
def entries(
    request: Request,
    ledger: LedgerDep,
    settings: SettingsDep,
    start: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER, examples=[0])] = 0,
    end: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SAFE_INTEGER,
            description="Exclusive end (default: start + max page size, clamped to the log size).",
            examples=[100],
        ),
    ] = None,
    format: Annotated[
        Literal["jsonl", "json"] | None,
        Query(description="Overrides the Accept header."),
    ] = None,
) -> Response:
    """A page of entries; at most the max page size per request."""
    size = ledger.size()
    page = settings.max_page_size
    if end is None:
        end = start + page
    if end < start:
        raise ApiError("out_of_range", f"end {end} is before start {start}", field="end")
    if end - start > page:
        raise ApiError(
            "page_too_large",
            f"at most {page} entries per request, asked {end - start}",
            field="end",
        )
    if start > size:
        raise ApiError(
            "out_of_range", f"start {start} is beyond the log size {size}", field="start"
        )
    end = min(end, size)
    headers = {"Mandi-Tree-Size": str(size)}
    if _wants_json(request, format):
        return Response(
            EntriesPage(
                start=start,
                end=end,
                tree_size=size,
                entries=[EntryOut.from_entry(e) for e in ledger.store.entries(start, end)],
            ).model_dump_json(),
            media_type="application/json",
            headers=headers,
        )
    return StreamingResponse(
        _jsonl(ledger.store.entries(start, end)), media_type=JSONL_MEDIA_TYPE, headers=headers
    )


@router.get(
    "/proof/inclusion",
    response_model=InclusionProofOut,
    summary="Inclusion proof of a leaf, by index or by event id",
    responses=problem_responses(400, 404, 422),
)
def inclusion_proof(
    ledger: LedgerDep,
    index: Annotated[
        int | None, Query(ge=0, le=MAX_SAFE_INTEGER, description="Leaf index.", examples=[1])
    ] = None,
    event_id: Annotated[
        str | None, Query(pattern=HEX64, description="Or the event id (hex).")
    ] = None,
    tree_size: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SAFE_INTEGER,
            description="Tree size (default: the newest checkpoint's).",
            examples=[3],
        ),
    ] = None,
) -> InclusionProofOut:
    """RFC 9162 inclusion proof; requires 0 <= index < tree_size <= log size."""
    if index is not None and event_id is not None:
        raise ApiError("bad_proof_request", "give index or event_id, not both", field="event_id")
    found = ledger.entry_by_event_id(digest_from_hex(event_id)) if event_id else None
    leaf = found.index if found is not None else index
    if leaf is None:
        raise ApiError("bad_proof_request", "give index or event_id", field="index")
    size = _default_size(ledger, tree_size)
    with _renamed({"leaf_index": "index"}):
        proof = ledger.inclusion_proof(leaf, size)
    entry = found if found is not None else ledger.entry(leaf)
    return InclusionProofOut(
        leaf_index=leaf,
        tree_size=size,
        leaf_hash=entry.leaf_hash.hex(),
        event_id=entry.event_id.hex(),
        root_hash=ledger.root_hash(size).hex(),
        proof=[p.hex() for p in proof],
    )


@router.get(
    "/proof/consistency",
    response_model=ConsistencyProofOut,
    summary="Consistency proof between two tree sizes",
    responses=problem_responses(400, 404, 422),
)
def consistency_proof(
    ledger: LedgerDep,
    first: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER, examples=[2])],
    second: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SAFE_INTEGER,
            description="Larger size (default: the newest checkpoint's).",
            examples=[3],
        ),
    ] = None,
) -> ConsistencyProofOut:
    """RFC 9162 consistency proof; requires 0 <= first <= second <= log size."""
    size = _default_size(ledger, second)
    with _renamed({"size1": "first", "tree_size": "second"}):
        proof = ledger.consistency_proof(first, size)
    return ConsistencyProofOut(
        first=first,
        second=size,
        first_root=ledger.root_hash(first).hex(),
        second_root=ledger.root_hash(size).hex(),
        proof=[p.hex() for p in proof],
    )


@router.get(
    "/root",
    response_model=RootOut,
    summary="Merkle root at a tree size",
    responses=problem_responses(400, 422),
)
def root(
    ledger: LedgerDep,
    tree_size: Annotated[
        int | None,
        Query(ge=0, le=MAX_SAFE_INTEGER, description="Default: the log size.", examples=[3]),
    ] = None,
) -> RootOut:
    """RFC 9162 root of the first ``tree_size`` entries."""
    size = ledger.size() if tree_size is None else tree_size
    return RootOut(tree_size=size, root_hash=ledger.root_hash(size).hex())


# ---------------------------------------------------------------------------


def _jsonl(entries: Iterator[Entry]) -> Iterator[bytes]:
    for entry in entries:
        yield entry.to_bytes() + b"\n"


def _wants_json(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and JSONL_MEDIA_TYPE not in accept


def _default_size(ledger: Ledger, tree_size: int | None) -> int:
    return ledger.latest_checkpoint().size if tree_size is None else tree_size


@contextmanager
def _renamed(names: dict[str, str]) -> Iterator[None]:
    """Rename the ledger's field names to this route's query parameter names."""
    try:
        yield
    except LedgerError as exc:
        if exc.field in names:
            exc.field = names[exc.field]
        raise
