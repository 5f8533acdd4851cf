"""Request body limits, enforced before any route parses a byte.

:class:`BodyLimitMiddleware` (pure ASGI) guards every request that carries a body:

* ``Content-Encoding`` other than ``identity`` is refused (415
  ``unsupported_media_type``): no compressed bodies, so no decompression bombs;
* a ``Content-Length`` above the limit is refused at once (413 ``body_too_large``),
  and so is a body whose streamed bytes exceed the limit, whatever the header says;
* a body that is not JSON by its ``Content-Type`` is refused (415);
* a JSON body may nest at most :data:`MAX_JSON_DEPTH` arrays and objects deep
  (400 ``too_deep``; checked by a scan before any parser recurses);
* a JSON body must be strict I-JSON (no repeated member names, no floats, no
  NaN, integers within 2^53-1, valid UTF-8): the ledger's own strict decoder
  decides, and a refusal is a 400 naming the rule (``duplicate_key``, ...).

The body is read once (at most ``max_bytes``) and replayed to the app.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response
from ledger import EncodingError
from ledger.encoding import decode_json

__all__ = ["MAX_JSON_DEPTH", "BodyLimitMiddleware", "json_depth_exceeds"]

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have (the envelopes need 3)."""

_STRUCTURAL = re.compile(rb'["\\\[\]{}]')


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit`` (strings are skipped).

    A linear scan that never recurses, so it is safe on any input; malformed
    JSON is left for the parser to refuse.
    """
    depth = 0
    in_string = False
    skip_to = -1
    for match in _STRUCTURAL.finditer(body):
        pos = match.start()
        if pos < skip_to:
            continue
        char = body[pos]
        if in_string:
            if char == 0x5C:  # backslash: the next byte is escaped
                skip_to = pos + 2
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class BodyLimitMiddleware:
    """Cap, type-check and strictly parse request bodies (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response = problem_response(
                "unsupported_media_type",
                f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed",
                field="Content-Encoding",
            )
            await response(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get("content-type")
        if body and content_type is not None and not _is_json(content_type):
            response = problem_response(
                "unsupported_media_type",
                f"Content-Type {content_type!r} is not accepted; send application/json",
                field="Content-Type",
            )
            await response(scope, receive, send)
            return
        if body and json_depth_exceeds(body):
            response = problem_response(
                "too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels", field="body"
            )
            await response(scope, receive, send)
            return
        if body:
            try:
                decode_json(body)
            except EncodingError as exc:
                await problem_response(exc.code, exc.message, field=exc.field)(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            "body_too_large",
            f"request body exceeds the limit of {self.max_bytes} bytes",
            field="body",
            limit=self.max_bytes,
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
