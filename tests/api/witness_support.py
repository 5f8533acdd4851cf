"""A tiny in-process tlog-witness for the pusher's tests (the real one is ``mandi witness``).

:class:`FakeWitness` runs the spec's checks with :func:`ledger.witness.check_add_checkpoint`
and cosigns with :func:`ledger.checkpoint.cosign_checkpoint`; ``mode`` makes it
misbehave. It answers an :class:`httpx.MockTransport` (``transport()``) or runs
as an ASGI app (``asgi``), so the e2e test can serve it with uvicorn as well.
"""

from __future__ import annotations

import base64
import threading

import httpx

from ledger import NoteVerifier, Signer, build_witness_vkey, cosign_checkpoint
from ledger.witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    WitnessedTree,
    WitnessRefusalError,
    check_add_checkpoint,
    format_size_response,
)

WITNESS_TIME = 1_795_843_900


class FakeWitness:
    """Witnesses one log; ``mode``: ok, bad_line, other_key_only, status:N, timeout."""

    def __init__(
        self, log_verifier: NoteVerifier, signer: Signer, name: str = "witness.example/w1"
    ) -> None:
        self.logs = {log_verifier.name: log_verifier}
        self.signer = signer
        self.name = name
        self.vkey = build_witness_vkey(name, signer.public)
        self.verifier = NoteVerifier.from_vkey(self.vkey)
        self.trees: dict[str, WitnessedTree] = {}
        self.mode = "ok"
        self.requests: list[AddCheckpointRequest] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()

    def answer(self, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one add-checkpoint request body."""
        with self._lock:
            status, kind, out = self._answer(body)
            self.statuses.append(status)
            return status, kind, out

    def _answer(self, body: bytes) -> tuple[int, str, bytes]:
        if self.mode.startswith("status:"):
            return int(self.mode[7:]), "text/plain", b"no\n"
        request = AddCheckpointRequest.from_bytes(body)
        self.requests.append(request)
        try:
            verified = check_add_checkpoint(request, self.logs, self.trees.get)
        except WitnessRefusalError as exc:
            if exc.known_size is not None:
                return exc.status, SIZE_CONTENT_TYPE, format_size_response(exc.known_size)
            return exc.status, "text/plain", exc.message.encode()
        cp = verified.checkpoint
        self.trees[cp.origin] = WitnessedTree(size=cp.size, root_hash=cp.root_hash)
        text = verified.note.text
        line = cosign_checkpoint(self.signer, self.name, text, WITNESS_TIME)
        if self.mode == "bad_line":
            # Right key, signature over another timestamp: must never be stored.
            other = cosign_checkpoint(self.signer, self.name, text, WITNESS_TIME + 1)
            head, stamped = line.rsplit(" ", 1)
            mixed = base64.b64decode(stamped)[:12] + base64.b64decode(other.rsplit(" ", 1)[1])[12:]
            line = f"{head} {base64.b64encode(mixed).decode()}\n"
        if self.mode == "other_key_only":
            line = cosign_checkpoint(self.signer, "witness.example/other", text, WITNESS_TIME)
        return 200, "text/plain; charset=utf-8", line.encode()

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering ``POST .../add-checkpoint`` in process."""

        def handler(request: httpx.Request) -> httpx.Response:
            if self.mode == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            if request.method != "POST" or not request.url.path.endswith("/add-checkpoint"):
                return httpx.Response(404)
            status, kind, body = self.answer(request.read())
            return httpx.Response(status, headers={"content-type": kind}, content=body)

        return httpx.MockTransport(handler)

    async def asgi(self, scope, receive, send) -> None:
        """The same witness as an ASGI app (for uvicorn)."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and scope["path"].endswith("/add-checkpoint"):
            status, kind, out = self.answer(body)
        else:
            status, kind, out = 404, "text/plain", b"not found\n"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", kind.encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})
