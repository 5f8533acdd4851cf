"""``GET /v1/lots/{lot}/qr.png`` and ``.svg``: the QR code on a lot's label.

The code carries the lot's GS1 Digital Link URI on the public base URL
(``MANDI_PUBLIC_BASE_URL``): ``{base}/01/{gtin}/10/{lot}`` for GS1 lots,
``{base}/l/{lot id}`` for producer lots (:meth:`ledger.domain.ids.LotId.digital_link_path`),
encoded by the ``qrcode`` package at error-correction level M (15 % of the
symbol may be lost: a crease, a smear of mud).

A lot's QR image never changes, and encoding one costs milliseconds (the mask
search), so images are kept in an in-process LRU cache keyed by URI (lot and
public base URL), format, size and border, and served with a strong ETag and a
year-long ``max-age``; a matching ``If-None-Match`` gets 304. The lot must
exist (404 otherwise); the cache is consulted first, which is safe because lots
are never deleted. A cache hit is answered on the event loop, with no thread
pool hop and no query; a miss (the lot lookup and the encoding) runs in the
thread pool.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Annotated, Literal

import qrcode
import qrcode.constants
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from qrcode.image.pil import PilImage
from starlette.concurrency import run_in_threadpool

from api.cache import LruCache, etag_matches, strong_etag
from api.deps import LedgerDep, SettingsDep
from api.problems import problem_responses
from api.routes.lots import LotIdPath, RawPathRoute, lot_id_from_path
from ledger import Ledger
from ledger.domain.ids import LotId

__all__ = [
    "DEFAULT_BORDER",
    "DEFAULT_SIZE",
    "MAX_BORDER",
    "MAX_SIZE",
    "qr_image",
    "router",
]

router = APIRouter(prefix="/v1/lots", tags=["qr"], route_class=RawPathRoute)

DEFAULT_SIZE = 8
"""Pixels per module (PNG) or user units per module (SVG)."""
MAX_SIZE = 40
DEFAULT_BORDER = 4
"""Quiet zone in modules; ISO/IEC 18004 asks for 4."""
MAX_BORDER = 16
_CACHE_CONTROL = "public, max-age=31536000, immutable"
_MEDIA = {"png": "image/png", "svg": "image/svg+xml"}
_BINARY = {"type": "string", "format": "binary"}

_Size = Annotated[
    int, Query(ge=1, le=MAX_SIZE, description="Pixels (PNG) or units (SVG) per module.")
]
_Border = Annotated[int, Query(ge=0, le=MAX_BORDER, description="Quiet zone in modules.")]


@router.get(
    "/{lot_id}/qr.png",
    summary="The lot's QR code (GS1 Digital Link URI) as PNG",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": _BINARY, "example": "(PNG bytes)"}}},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **problem_responses(400, 404, 422),
    },
)
async def qr_png(
    request: Request,
    lot_id: LotIdPath,
    ledger: LedgerDep,
    settings: SettingsDep,
    size: _Size = DEFAULT_SIZE,
    border: _Border = DEFAULT_BORDER,
) -> Response:
    """PNG, black on white, ``size`` pixels per module."""
    return await _serve(
        request,
        ledger,
        public_uri_of(settings.public_base_url, lot_id),
        lot_id,
        "png",
        size,
        border,
    )


@router.get(
    "/{lot_id}/qr.svg",
    summary="The lot's QR code (GS1 Digital Link URI) as SVG",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {"schema": _BINARY, "example": "<svg ...>"}}},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **problem_responses(400, 404, 422),
    },
)
async def qr_svg(
    request: Request,
    lot_id: LotIdPath,
    ledger: LedgerDep,
    settings: SettingsDep,
    size: _Size = DEFAULT_SIZE,
    border: _Border = DEFAULT_BORDER,
) -> Response:
    """SVG (one path, crisp edges), ``size`` units per module."""
    return await _serve(
        request,
        ledger,
        public_uri_of(settings.public_base_url, lot_id),
        lot_id,
        "svg",
        size,
        border,
    )


def public_uri_of(base_url: str, lot: str) -> str:
    """The Digital Link URI of canonical lot id ``lot``.

    Raises:
        EncodingError: ``bad_lot_id`` naming ``lot_id``.
    """
    canonical = lot_id_from_path(lot, field="lot_id")
    return base_url.rstrip("/") + LotId.parse(canonical, field="lot_id").digital_link_path()


async def _serve(
    request: Request,
    ledger: LedgerDep,
    uri: str,
    lot: str,
    fmt: Literal["png", "svg"],
    size: int,
    border: int,
) -> Response:
    key = (uri, fmt, size, border)
    cached = _store.get(key)
    if cached is None:
        cached = await run_in_threadpool(_render, ledger, lot, key)
    body, etag = cached
    headers = {"ETag": etag, "Cache-Control": _CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_MEDIA[fmt], headers=headers)


_Key = tuple[str, Literal["png", "svg"], int, int]
"""URI, format, size, border."""
_MAX_CACHED = 4096
"""Images kept per worker: a few MB (a default PNG is about 0.6 KB)."""
_store: LruCache[_Key, tuple[bytes, str]] = LruCache(_MAX_CACHED)
"""Body and ETag by key; filled only once the lot is known to exist."""


def _render(ledger: Ledger, lot: str, key: _Key) -> tuple[bytes, str]:
    ledger.lot(lot_id_from_path(lot, field="lot_id"))  # 404 unknown_lot: nothing cached for it
    uri, fmt, size, border = key
    body = qr_image(uri, fmt, size, border)
    etag = strong_etag(body)
    _store.put(key, (body, etag))
    return body, etag


@lru_cache(maxsize=256)
def _matrix(uri: str) -> tuple[tuple[bool, ...], ...]:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(uri)
    code.make(fit=True)
    return tuple(tuple(row) for row in code.get_matrix())


def qr_image(uri: str, fmt: Literal["png", "svg"], size: int, border: int) -> bytes:
    """Encode ``uri`` (error correction M) as a PNG or SVG image.

    Args:
        uri: the text to encode.
        fmt: ``png`` or ``svg``.
        size: pixels (PNG) or user units (SVG) per module, >= 1.
        border: quiet zone in modules, >= 0.
    """
    if fmt == "svg":
        return _svg(_matrix(uri), size, border)
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=size, border=border
    )
    code.add_data(uri)
    code.make(fit=True)
    image = code.make_image(image_factory=PilImage)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


def _svg(matrix: tuple[tuple[bool, ...], ...], size: int, border: int) -> bytes:
    n = len(matrix)
    side = (n + 2 * border) * size
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                left, top, width = (start + border) * size, (y + border) * size, (x - start) * size
                runs.append(f"M{left},{top}h{width}v{size}h-{width}z")
            else:
                x += 1
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" '
        f'viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    ).encode("ascii")
