"""The buyer's lot page and the GS1 Digital Link resolver: ``/l/{lot id}``, ``/01/{gtin}/10/{lot}``.

A QR code on a sack carries a Digital Link URI on the public base URL; this
module answers it. One URI, three representations, chosen by ``Accept``:

* ``text/html`` (browsers, the default): the lot page, server-rendered with
  Jinja2 (autoescaping on, so participant-supplied text is always text),
  readable with JavaScript off, English or Urdu (``?lang=`` switch, else
  ``Accept-Language``). A Content-Security-Policy forbids inline script; the
  page's only script is ``/static/verify.js``, which re-verifies everything in
  the buyer's browser from the log's vkey embedded in the page.
* ``application/json``: the lot's state, its history, the lots upstream and
  any recall. With ``?tree_size=N`` it also carries the *evidence* verify.js
  needs: the exact bytes of every log entry it must check (the lot's events,
  the upstream links, the registry entries that enrolled and revoked the keys
  that signed them, the log's newest entry) and their RFC 9162 inclusion
  proofs at size N. Evidence is data, never a verdict: nothing here says
  whether anything verified.
* ``application/linkset+json`` (or ``?linkType=all``): the GS1 Digital Link
  linkset (RFC 9264) naming this page and the JSON.

It also serves ``/static`` (the CSS, verify.js, the standalone verifier and the
vendored @noble libraries). It reads the ledger; it never writes, and it
decides nothing about what is valid.

Rendered HTML pages are cached per app (an LRU of :data:`PAGES_CACHED`),
each valid for the log size it was rendered at (:func:`_page_version`), and
carry a strong ETag (``If-None-Match`` gets 304). A current cached page is
answered on the event loop after one query (the log size); rendering (some
thirty queries and Jinja2) and the JSON representations run in the thread pool.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.cache import LruCache, etag_matches, strong_etag
from api.deps import LedgerDep, SettingsDep
from api.i18n import JS_KEYS, LANGUAGES, RTL_LANGUAGES, choose_language, strings_for
from api.problems import problem_responses
from api.routes.lots import RawPathRoute, lot_id_from_path
from api.settings import Settings
from ledger import (
    KeyId,
    Ledger,
    NotFoundError,
    Statement,
    build_vkey,
    digest_from_hex,
)
from ledger.domain.ids import LotId
from ledger.domain.rules import LotState
from ledger.encoding import MAX_SAFE_INTEGER
from ledger.keys import b64encode
from ledger.service import HistoryItem

__all__ = [
    "LINKSET_MEDIA_TYPE",
    "PAGES_CACHED",
    "PAGE_CSP",
    "STATIC_DIR",
    "VERIFIER_CSP",
    "lot_page_json",
    "router",
    "static_files",
]

router = APIRouter(tags=["lot page"], route_class=RawPathRoute)

LINKSET_MEDIA_TYPE = "application/linkset+json"
_HERE = FsPath(__file__).resolve().parent.parent
STATIC_DIR = _HERE / "static"
_TEMPLATES = _HERE / "templates"

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The lot page's policy: no inline script or style, nothing from another origin."""

VERIFIER_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src *; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The standalone verifier's policy: it may fetch from whichever log it is pointed at."""

MAX_UPSTREAM_SHOWN = 50
"""Upstream lots listed on the page (and proven in the evidence); the rest are counted."""

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

_Representation = Literal["html", "json", "linkset"]

_EX_URI = "https://mandi.example/l/lot:mill.gujranwala:rice-09"
_RESOLVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "By `Accept` (or `format`): the lot page (HTML, the default), the "
        "lot as JSON (with verification evidence when `tree_size` is given), or the GS1 "
        "linkset.",
        "content": {
            "text/html": {
                "schema": {"type": "string"},
                "example": '<!doctype html><html lang="en" dir="ltr">...',
            },
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "lot": {"lot": "lot:mill.gujranwala:rice-09", "crop": "rice"},
                    "path": "/l/lot:mill.gujranwala:rice-09",
                    "history": [{"index": 431, "kind": "transform"}],
                    "upstream": [],
                    "upstream_more": 0,
                    "recalled": [],
                },
            },
            LINKSET_MEDIA_TYPE: {
                "schema": {"type": "object"},
                "example": {
                    "linkset": [
                        {"anchor": _EX_URI, "https://gs1.org/voc/defaultLink": [{"href": _EX_URI}]}
                    ]
                },
            },
        },
    },
    **problem_responses(400, 404, 422),
}


# ---------------------------------------------------------------------------
# Routes


@router.get(
    "/l/{lot_id}",
    summary="Digital Link resolver for producer lots (HTML, JSON or linkset)",
    response_class=HTMLResponse,
    responses=_RESOLVER_RESPONSES,
)
async def producer_lot(
    request: Request,
    lot_id: str,
    ledger: LedgerDep,
    settings: SettingsDep,
    lang: Annotated[str | None, Query(description="en or ur; overrides Accept-Language")] = None,
    tree_size: Annotated[
        int | None,
        Query(ge=1, le=MAX_SAFE_INTEGER, description="JSON only: add evidence at this size"),
    ] = None,
) -> Response:
    """The lot ``lot:{participant}:{code}``."""
    lot = LotId.parse(lot_id_from_path(lot_id, field="path"), field="path")
    return await _resolve(request, ledger, settings, lot, lang, tree_size)


@router.get(
    "/01/{gtin}/10/{batch}",
    summary="GS1 Digital Link resolver: /01/{gtin}/10/{lot} (HTML, JSON or linkset)",
    response_class=HTMLResponse,
    responses=_RESOLVER_RESPONSES,
)
async def gs1_lot(
    request: Request,
    gtin: str,
    batch: Annotated[str, Path(description="The AI (10) value, percent-encoded.")],
    ledger: LedgerDep,
    settings: SettingsDep,
    lang: Annotated[str | None, Query(description="en or ur; overrides Accept-Language")] = None,
    tree_size: Annotated[
        int | None,
        Query(ge=1, le=MAX_SAFE_INTEGER, description="JSON only: add evidence at this size"),
    ] = None,
) -> Response:
    """A GS1 lot (the route sees the path as sent, so ``%2F`` in the lot stays an escape)."""
    lot = LotId.from_digital_link_path(f"/01/{gtin}/10/{batch}")
    return await _resolve(request, ledger, settings, lot, lang, tree_size)


def static_files() -> StaticFiles:
    """The ``/static`` app: cached for an hour; HTML pages get the verifier's CSP."""
    return _Static(directory=STATIC_DIR)


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
        response.headers["X-Content-Type-Options"] = "nosniff"
        if path.endswith(".html"):
            response.headers["Content-Security-Policy"] = VERIFIER_CSP
        return response


# ---------------------------------------------------------------------------
# Resolution


async def _resolve(
    request: Request,
    ledger: Ledger,
    settings: Settings,
    lot: LotId,
    lang: str | None,
    tree_size: int | None,
) -> Response:
    if _representation(request) == "html":
        language = choose_language(lang, request.headers.get("accept-language"))
        page = _pages_of(request.app).get((lot.text, language))
        if page is not None and page.version == _page_version(ledger):
            return _html_page(request, page, _html_headers(language))
    return await run_in_threadpool(_respond, request, ledger, settings, lot, lang, tree_size)


def _respond(
    request: Request,
    ledger: Ledger,
    settings: Settings,
    lot: LotId,
    lang: str | None,
    tree_size: int | None,
) -> Response:
    kind = _representation(request)
    headers = {"Vary": "Accept, Accept-Language", "X-Content-Type-Options": "nosniff"}
    if kind == "linkset":
        ledger.lot(lot.text)
        return JSONResponse(_linkset(settings, lot), media_type=LINKSET_MEDIA_TYPE, headers=headers)
    if kind == "json":
        body = lot_page_json(ledger, lot.text, tree_size=tree_size)
        return JSONResponse(body, headers={**headers, "Cache-Control": "no-cache"})
    language = choose_language(lang, request.headers.get("accept-language"))
    headers = _html_headers(language)
    version = _page_version(ledger)  # read first: the page below is at least this new
    try:
        context = _page_context(ledger, settings, lot, language)
    except NotFoundError as exc:
        if exc.code != "unknown_lot":
            raise
        html = _env.get_template("not_found.html").render(_base_context(language, lot))
        return HTMLResponse(html, status_code=404, headers=headers)
    rendered = _env.get_template("lot.html").render(context).encode()
    page = _Page(version=version, body=rendered, etag=strong_etag(rendered))
    _pages_of(request.app).put((lot.text, language), page)
    return _html_page(request, page, headers)


# ---------------------------------------------------------------------------
# Rendered pages, cached

PAGES_CACHED = 1024
"""Rendered pages kept per app and worker (lot x language; 8-10 KB each for the demo)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Page:
    version: Hashable
    body: bytes
    etag: str


# Per app, whose ledger and settings (the pinned witnesses) the pages are rendered from.
_pages: weakref.WeakKeyDictionary[object, LruCache[tuple[str, str], _Page]] = (
    weakref.WeakKeyDictionary()
)
_pages_lock = threading.Lock()


def _pages_of(app: object) -> LruCache[tuple[str, str], _Page]:
    with _pages_lock:
        cache = _pages.get(app)
        if cache is None:
            cache = _pages[app] = LruCache(PAGES_CACHED)
        return cache


def _page_version(ledger: Ledger) -> Hashable:
    """What a rendered page is a function of, besides its lot and language: the log size.

    Everything the page shows is read from the log's entries (states, histories,
    traces, recalls, participant profiles), so a page rendered at one size stays
    right until the log grows. Anything shown from outside the log must be
    added here.
    """
    return ledger.size()


def _html_headers(language: str) -> dict[str, str]:
    return {
        "Vary": "Accept, Accept-Language",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": PAGE_CSP,
        "Content-Language": language,
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
    }


def _html_page(request: Request, page: _Page, headers: dict[str, str]) -> Response:
    headers = {**headers, "ETag": page.etag}
    if etag_matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    return HTMLResponse(page.body, headers=headers)


def _representation(request: Request) -> _Representation:
    if request.query_params.get("linkType") == "all":
        return "linkset"
    forced = request.query_params.get("format")
    if forced in ("html", "json", "linkset"):
        return forced  # type: ignore[return-value]
    weights: dict[str, float] = {}
    for part in request.headers.get("accept", "").split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media.strip():
            weights[media.strip().lower()] = q

    def weight(media: str) -> float:
        top = media.split("/", 1)[0] + "/*"
        for candidate in (media, top, "*/*"):
            if candidate in weights:
                return weights[candidate]
        return 0.0 if weights else 1.0

    choices: tuple[tuple[_Representation, str], ...] = (
        ("html", "text/html"),
        ("json", "application/json"),
        ("linkset", LINKSET_MEDIA_TYPE),
    )
    best, best_q = "html", 0.0
    for name, media in choices:
        q = weight(media)
        if q > best_q:
            best, best_q = name, q
    return best  # type: ignore[return-value]


def _linkset(settings: Settings, lot: LotId) -> dict[str, Any]:
    uri = public_uri(settings, lot)
    page = {"href": uri, "title": "Lot page", "type": "text/html", "hreflang": list(LANGUAGES)}
    return {
        "linkset": [
            {
                "anchor": uri,
                "https://gs1.org/voc/defaultLink": [page],
                "https://gs1.org/voc/pip": [page],
                "https://gs1.org/voc/traceability": [
                    {"href": uri, "title": "Lot history (JSON)", "type": "application/json"}
                ],
            }
        ]
    }


def public_uri(settings: Settings, lot: LotId) -> str:
    """The Digital Link URI of ``lot`` on the public base URL."""
    return settings.public_base_url.rstrip("/") + lot.digital_link_path()


# ---------------------------------------------------------------------------
# What the page shows (shared by the HTML and the JSON)


@dataclass(frozen=True, slots=True, kw_only=True)
class _LotView:
    state: LotState
    history: list[HistoryItem]
    upstream: list[tuple[LotState, int]]
    upstream_more: int
    upstream_edges: list[int]
    recalled: list[LotState]


def _lot_view(ledger: Ledger, lot_id: str) -> _LotView:
    state = ledger.lot(lot_id)
    history = ledger.history(lot_id)
    trace = ledger.trace_back(lot_id)
    upstream: list[tuple[LotState, int]] = []
    for other, depth in trace.lots[1 : MAX_UPSTREAM_SHOWN + 1]:
        found = ledger.store.lot(other)
        if found is not None:
            upstream.append((found, depth))
    shown = {lot_id} | {s.lot_id for s, _ in upstream}
    edges = sorted({e.index for e in trace.edges if e.child in shown and e.parent in shown})
    recalled = list(ledger.recalled_upstream(lot_id))
    return _LotView(
        state=state,
        history=history,
        upstream=upstream,
        upstream_more=max(0, len(trace.lots) - 1 - MAX_UPSTREAM_SHOWN),
        upstream_edges=edges,
        recalled=recalled,
    )


def _state_json(state: LotState) -> dict[str, Any]:
    return {
        "lot": state.lot_id,
        "crop": state.crop,
        "quantity": state.quantity,
        "unit_class": state.unit_class,
        "custodian": state.custodian,
        "status": state.status,
        "producer": state.producer,
        "created_at": state.created_at,
        "last_time": state.last_time,
        "recalled_at": state.recalled_at,
        "recall_reason": state.recall_reason,
        "unit": state.unit,
        "contents": list(state.contents),
    }


def lot_page_json(ledger: Ledger, lot_id: str, *, tree_size: int | None = None) -> dict[str, Any]:
    """The JSON representation of a lot, with verification evidence when ``tree_size`` is given.

    Raises:
        NotFoundError: ``unknown_lot``.
        ProofError: ``tree_size`` beyond the log.
    """
    view = _lot_view(ledger, lot_id)
    out: dict[str, Any] = {
        "lot": _state_json(view.state),
        "path": LotId.parse(lot_id).digital_link_path(),
        "history": [
            {
                "index": item.index,
                "event_id": item.event_id.hex(),
                "kind": item.kind,
                "participant": item.participant,
                "time": item.time,
                "accepted_ms": item.accepted_ms,
                "body": item.body,
                "corrected_by": item.corrected_by,
            }
            for item in view.history
        ],
        "upstream": [{**_state_json(state), "depth": depth} for state, depth in view.upstream],
        "upstream_more": view.upstream_more,
        "recalled": [
            {"lot": s.lot_id, "recalled_at": s.recalled_at, "reason": s.recall_reason}
            for s in view.recalled
        ],
    }
    if tree_size is not None:
        out["evidence"] = _evidence(ledger, view, tree_size)
    return out


def _evidence(ledger: Ledger, view: _LotView, tree_size: int) -> dict[str, Any]:
    """Every entry verify.js must check, and its inclusion proof at ``tree_size``."""
    ledger.root_hash(tree_size)  # raises ProofError (bad_proof_request) beyond the log
    store = ledger.store
    seeds: set[int] = {0, tree_size - 1}
    seeds |= {item.index for item in view.history}
    seeds |= set(view.upstream_edges)
    seeds |= {s.created_at for s, _ in view.upstream}
    seeds |= {s.recalled_at for s in view.recalled if s.recalled_at is not None}
    done: set[int] = set()
    queue = sorted(seeds)
    while queue:
        index = queue.pop()
        if index in done or index >= tree_size:
            continue
        done.add(index)
        statement = Statement.from_bytes(store.entry(index).statement)
        key = store.key(statement.signer)
        participants = set(_referenced_participants(statement))
        rotated = _rotated_key(statement)
        if rotated is not None:
            old = store.key(rotated)
            if old is not None:  # the rotation's "old" signature needs the old key's record
                queue.append(old.added_at)
        if key is not None:
            queue += [key.added_at] + ([key.revoked_at] if key.revoked_at is not None else [])
            participants.add(key.participant)
        for pid in participants:
            record = store.participant(pid)
            if record is not None:
                queue.append(record.enrolled_at)
    pending = sorted(
        {item.index for item in view.history if item.index >= tree_size}
        | {s.recalled_at for s in view.recalled if s.recalled_at and s.recalled_at >= tree_size}
    )
    entries = []
    for index in sorted(done):
        entry = store.entry(index)
        proof = ledger.inclusion_proof(index, tree_size)
        entries.append(
            {
                "index": index,
                "entry": b64encode(entry.to_bytes()),
                "proof": [p.hex() for p in proof],
            }
        )
    for index in pending:
        entries.append({"index": index, "entry": b64encode(store.entry(index).to_bytes())})
    return {
        "tree_size": tree_size,
        "lot": view.state.lot_id,
        "entries": entries,
    }


def _rotated_key(statement: Statement) -> KeyId | None:
    request = statement.body.get("request") if statement.kind == "rotate" else None
    old = request.get("old_key_id") if isinstance(request, dict) else None
    if not isinstance(old, str) or len(old) != 64:
        return None
    try:
        return KeyId(digest_from_hex(old))
    except ValueError:
        return None


def _referenced_participants(statement: Statement) -> Iterable[str]:
    body = statement.body
    if statement.kind == "ship":
        yield str(body.get("to", ""))
        transport = body.get("transport")
        if isinstance(transport, dict) and "carrier" in transport:
            yield str(transport["carrier"])


# ---------------------------------------------------------------------------
# HTML


def _base_context(language: str, lot: LotId) -> dict[str, Any]:
    other = "ur" if language == "en" else "en"
    return {
        "lang": language,
        "dir": "rtl" if language in RTL_LANGUAGES else "ltr",
        "s": strings_for(language),
        "lot_id": lot.text,
        "switch_href": "?lang=" + other,
        "switch_label": strings_for(other)["language_name"],
        "switch_lang": other,
    }


@dataclass(slots=True)
class _Names:
    """Participant display names and places, looked up once per page."""

    ledger: Ledger
    strings: Mapping[str, str]
    cache: dict[str, tuple[str, str, str]]

    def get(self, pid: str | None) -> tuple[str, str, str]:
        """(display name, role label, place) of ``pid``."""
        if not pid:
            return ("", "", "")
        if pid not in self.cache:
            record = self.ledger.store.participant(pid)
            profile: Mapping[str, Any] = record.profile if record is not None else {}
            name = str(profile.get("name") or pid)
            role = self.strings.get(f"role_{profile.get('role')}", str(profile.get("role", "")))
            where = profile.get("location")
            place = ""
            if isinstance(where, dict):
                place = ", ".join(
                    str(where[k]) for k in ("district", "province") if where.get(k) is not None
                )
            self.cache[pid] = (name, role, place)
        return self.cache[pid]


def _lot_href(lot_id: str, language: str) -> str:
    try:
        path = LotId.parse(lot_id).digital_link_path()
    except Exception:  # noqa: BLE001 - a malformed id in a body renders as text, unlinked
        return ""
    return path + ("?lang=ur" if language == "ur" else "")


def _qty(value: Any, strings: Mapping[str, str]) -> str:
    if not isinstance(value, dict):
        return ""
    unit = str(value.get("unit", ""))
    return f"{value.get('amount', '')} {strings.get('unit_' + unit, unit)}"


def _base_qty(state: LotState, strings: Mapping[str, str]) -> str:
    if state.unit_class == "mass":
        grams = state.quantity
        if grams % 1000 == 0 or grams >= 1000:
            kg = grams / 1000
            text = f"{kg:,.3f}".rstrip("0").rstrip(".")
            return f"{text} {strings['unit_kg']}"
        return f"{grams} {strings['unit_g']}"
    return f"{state.quantity} {strings.get('unit_' + state.unit_class, state.unit_class)}"


def _time(text: str) -> str:
    """RFC 3339 as the signer wrote it, made readable: ``2026-11-28 09:30 (+05:00)``."""
    date, _, rest = text.partition("T")
    clock = rest[:5]
    offset = "Z" if rest.endswith("Z") else rest[-6:]
    return f"{date} {clock} ({'UTC' if offset == 'Z' else offset})"


def _rows(
    item: HistoryItem, s: Mapping[str, str], names: _Names, lang: str
) -> list[dict[str, Any]]:
    """The label/value lines of one event, the same fields verify.js renders from the bytes."""
    body = item.body
    rows: list[dict[str, Any]] = []

    def add(label: str, text: Any, *, href: str = "", code: bool = False) -> None:
        if text is None or text == "":
            return
        rows.append({"label": s[label], "text": str(text), "href": href, "code": code})

    def lot(label: str, lot_id: Any, extra: str = "") -> None:
        text = f"{lot_id}{extra}"
        add(label, text, href=_lot_href(str(lot_id), lang))

    kind = item.kind
    if kind == "harvest":
        add("crop", body.get("crop"))
        add("variety", body.get("variety"))
        add("quantity", _qty(body.get("quantity"), s))
        add("plot", body.get("plot"))
        add("harvest_date", body.get("harvest_date"))
    elif kind == "store":
        add("facility", body.get("facility"))
        add("condition", body.get("condition"))
        temp = body.get("temperature_dc")
        if isinstance(temp, int):
            add("temperature", f"{temp / 10:.1f} °C")
    elif kind == "transform":
        add("process", body.get("process"))
        for part in body.get("inputs", []):
            lot("inputs", part.get("lot"), " — " + _qty(part.get("quantity"), s))
        for part in body.get("outputs", []):
            lot("outputs", part.get("lot"), " — " + _qty(part.get("quantity"), s))
    elif kind == "pack":
        lot("unit", body.get("unit"))
        for content in body.get("contents", []):
            lot("contents", content)
    elif kind == "unpack":
        lot("unit", body.get("unit"))
    elif kind == "ship":
        lot("lot", body.get("lot"))
        add("to", names.get(body.get("to"))[0])
        add("quantity", _qty(body.get("quantity"), s))
        transport = body.get("transport") or {}
        add("transport", transport.get("mode"))
        add("vehicle", transport.get("vehicle"))
        if transport.get("carrier"):
            add("carrier", names.get(transport.get("carrier"))[0])
    elif kind == "receive":
        add("quantity", _qty(body.get("quantity"), s))
        add("shipment", str(body.get("shipment", ""))[:16], code=True)
    elif kind == "inspect":
        add(
            "result",
            s["result_" + str(body.get("result"))]
            if body.get("result") in ("pass", "fail")
            else "",
        )
        add("grade", body.get("grade"))
        add("certificate", body.get("certificate"))
        add("valid_until", body.get("valid_until"))
        add("document", body.get("document"), code=True)
    elif kind == "sell":
        add("quantity", _qty(body.get("quantity"), s))
        price = body.get("price")
        if isinstance(price, dict):
            add("price", f"{price.get('amount_minor', 0) / 100:,.2f} {price.get('currency', '')}")
    elif kind == "recall":
        add("reason", body.get("reason"))
    elif kind == "correct":
        add("corrects", str(body.get("corrects", ""))[:16], code=True)
        add("reason", body.get("reason"))
    return rows


def _page_context(ledger: Ledger, settings: Settings, lot: LotId, language: str) -> dict[str, Any]:
    view = _lot_view(ledger, lot.text)
    s = strings_for(language)
    names = _Names(ledger=ledger, strings=s, cache={})
    state = view.state
    events = []
    for item in view.history:
        name, role, place = names.get(item.participant)
        events.append(
            {
                "index": item.index,
                "kind": item.kind,
                "label": s.get("kind_" + item.kind, item.kind),
                "time": _time(item.time),
                "who": name,
                "role": role,
                "where": place,
                "rows": _rows(item, s, names, language),
                "corrected": item.corrected_by is not None,
                "inspection": item.kind == "inspect",
            }
        )
    producer = names.get(state.producer)
    upstream = []
    for other, depth in view.upstream:
        who = names.get(other.producer)
        upstream.append(
            {
                "lot": other.lot_id,
                "href": _lot_href(other.lot_id, language),
                "depth": depth,
                "crop": other.crop,
                "producer": who[0],
                "where": who[2],
                "recalled": other.recalled_at is not None,
            }
        )
    quoted = quote(lot.text, safe=":")
    config = {
        "vkey": build_vkey(ledger.log.origin, ledger.log.log_key),
        # Pinned witness keys: verify.js checks the newest cosigned checkpoint against them.
        "witnesses": [w.verifier.to_vkey() for w in settings.witnesses],
        "path": lot.digital_link_path(),
        "lot": lot.text,
        "lang": language,
        "strings": {key: s[key] for key in JS_KEYS},
    }
    return {
        **_base_context(language, lot),
        "state": state,
        "crop": state.crop,
        "quantity": _base_qty(state, s),
        "status": s.get("status_" + state.status, state.status),
        "holder": names.get(state.custodian)[0],
        "producer": producer[0],
        "producer_where": producer[2],
        "events": events,
        "inspections": [e for e in events if e["inspection"]],
        "upstream": upstream,
        "upstream_more": view.upstream_more,
        "recalled": [
            {"lot": r.lot_id, "href": _lot_href(r.lot_id, language), "reason": r.recall_reason}
            for r in view.recalled
        ],
        "qr_src": f"/v1/lots/{quoted}/qr.svg",
        "json_href": lot.digital_link_path(),
        "verifier_href": "/static/verifier.html?"
        + urlencode(
            {"path": lot.digital_link_path(), "vkey": config["vkey"]}
            | ({"witnesses": "\n".join(config["witnesses"])} if config["witnesses"] else {})
        ),
        "config": json.dumps(config, ensure_ascii=False, separators=(",", ":")),
    }
