"""The witness HTTP server of ``mandi witness serve`` (c2sp.org/tlog-witness), as an ASGI app.

Endpoints (docs/witness.md):

* ``POST /add-checkpoint`` — the tlog-witness request. The body is parsed with
  :meth:`ledger.witness.AddCheckpointRequest.from_bytes` and checked with
  :func:`ledger.witness.check_add_checkpoint`. A refusal answers with the
  status the check chose: 409 with ``Content-Type: text/x.tlog.size`` and the
  known size; every other refusal as one plain-text line naming the field and
  the rule. A body over :data:`ledger.witness.MAX_REQUEST_SIZE` bytes is 413.
  On success the new tree is stored first (compare-and-swap on the tree the
  request was checked against, :meth:`client.witness_state.WitnessState.commit`)
  and only then is the cosignature line (``cosignature/v1``) returned, as
  ``text/plain``. A request that loses the race is checked again against the
  tree now stored, so it is answered 409 with the now-known size.
* ``GET /checkpoint/{hash}`` — the newest checkpoint cosigned for the log whose
  origin has this lowercase hex SHA-256: the log's signature line(s) and this
  witness's cosignature (``text/plain``); 404 if none.
* ``GET /checkpoints/{hash}`` — every checkpoint cosigned for that log, oldest
  first, as a JSON array of signed-note strings; 404 for a log not witnessed.
* ``GET /evidence/{hash}`` — the refused requests the log had signed that
  conflict with what this witness cosigned (409 ``conflicting_root``, 422
  ``bad_consistency_proof``), a JSON array of objects; 404 for a log not witnessed.
* ``GET /`` — the witness's name and vkey and the logs it witnesses (JSON).

The stored and returned notes carry only the log's signature and this
witness's cosignature: other lines in a request are not this witness's to vouch
for. The private key stays in the process that loaded it from the key store;
the app receives a :class:`~ledger.keys.Signer`, never a path or a secret.

Deliberately not here: the checks (``ledger.witness``, pure), the state file
(:mod:`client.witness_state`), key files and uvicorn (``client.cli.witness``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from client.witness_state import StaleTreeError, WitnessState, origin_hash
from ledger.checkpoint import (
    SIG_TYPE_COSIGNATURE_V1,
    NoteVerifier,
    SignedNote,
    VerifiedCheckpoint,
    build_witness_vkey,
    cosign_checkpoint,
    note_key_hash,
)
from ledger.errors import EncodingError
from ledger.keys import Signer
from ledger.witness import (
    ADD_CHECKPOINT_PATH,
    MAX_REQUEST_SIZE,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    WitnessedTree,
    WitnessRefusalError,
    check_add_checkpoint,
    format_size_response,
    log_verifiers,
)

__all__ = ["EVIDENCE_CODES", "TEXT", "WitnessIdentity", "create_witness_app", "unix_seconds"]

TEXT = "text/plain; charset=utf-8"
"""The content type of notes, cosignature lines and refusal messages."""

EVIDENCE_CODES = frozenset({"conflicting_root", "bad_consistency_proof"})
"""Refusals of a log-signed checkpoint that are kept as evidence against the log."""

_HASH = re.compile("[0-9a-f]{64}")
_CAS_ATTEMPTS = 3


def unix_seconds() -> int:
    """The current POSIX time in whole seconds (the cosignature timestamp)."""
    return int(time.time())


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessIdentity:
    """The witness's note key: its name and private key (signed-note rules apply to the name).

    Raises:
        EncodingError: ``bad_vkey``; the name breaks a signed-note rule.
    """

    name: str
    signer: Signer

    def __post_init__(self) -> None:
        build_witness_vkey(self.name, self.signer.public)

    @property
    def vkey(self) -> str:
        """The ``cosignature/v1`` verifier key a log operator configures."""
        return build_witness_vkey(self.name, self.signer.public)

    @property
    def verifier(self) -> NoteVerifier:
        """The verifier of this witness's cosignatures."""
        return NoteVerifier.from_vkey(self.vkey)


def _text(body: str | bytes, status: int = 200, media_type: str = TEXT) -> Response:
    return Response(content=body, status_code=status, media_type=media_type)


def _refusal_response(refusal: WitnessRefusalError) -> Response:
    if refusal.status == 409:
        return Response(
            content=format_size_response(refusal.known_size or 0),
            status_code=409,
            headers={"Content-Type": SIZE_CONTENT_TYPE},
        )
    field = refusal.field or "body"
    return _text(f"{refusal.code} [{field}]: {refusal.message}\n", refusal.status)


class _Witness:
    """What one request needs: the state, the identity, the logs, a clock."""

    def __init__(
        self, state: WitnessState, identity: WitnessIdentity, clock: Callable[[], int]
    ) -> None:
        self.state = state
        self.identity = identity
        self.clock = clock
        self.logs = log_verifiers(state.logs())
        self.own_key_hash = note_key_hash(
            identity.name, identity.signer.public.raw, SIG_TYPE_COSIGNATURE_V1
        )

    def add_checkpoint(self, body: bytes) -> Response:
        try:
            request = AddCheckpointRequest.from_bytes(body)
        except EncodingError as exc:
            return _text(f"{exc.code} [{exc.field or 'body'}]: {exc.message}\n", 400)
        for _ in range(_CAS_ATTEMPTS):
            response = self._attempt(request, body)
            if response is not None:
                return response
        # Still losing after several rounds: tell the log what is stored now.
        latest = self.state.latest(request.note.split("\n", 1)[0])
        return Response(
            content=format_size_response(latest.size if latest is not None else 0),
            status_code=409,
            headers={"Content-Type": SIZE_CONTENT_TYPE},
        )

    def _attempt(self, request: AddCheckpointRequest, body: bytes) -> Response | None:
        """Check, cosign, store (compare-and-swap), answer; None when another request
        advanced the stored tree between the check and the store."""
        seen: dict[str, WitnessedTree | None] = {}

        def known(origin: str) -> WitnessedTree | None:
            seen[origin] = self.state.latest(origin)
            return seen[origin]

        try:
            verified = check_add_checkpoint(request, self.logs, known)
        except WitnessRefusalError as refusal:
            self._keep_evidence(refusal, request, body)
            return _refusal_response(refusal)
        checkpoint = verified.checkpoint
        now = self.clock()
        line = cosign_checkpoint(self.identity.signer, self.identity.name, verified.note.text, now)
        try:
            self.state.commit(
                checkpoint.origin,
                expected=seen.get(checkpoint.origin),
                tree=WitnessedTree(size=checkpoint.size, root_hash=checkpoint.root_hash),
                note=self._stored_note(verified, line),
                cosigned_at=now,
            )
        except StaleTreeError:
            return None  # check again against the tree the other request stored
        return _text(line)

    def _stored_note(self, verified: VerifiedCheckpoint, line: str) -> str:
        log = self.logs[verified.checkpoint.origin]
        log_lines = tuple(
            sig
            for sig in verified.note.signatures
            if (sig.name, sig.key_hash) == (log.name, log.key_hash)
        )
        note = SignedNote(text=verified.note.text, signatures=log_lines)
        return note.with_signatures(line).to_text()

    def _keep_evidence(
        self, refusal: WitnessRefusalError, request: AddCheckpointRequest, body: bytes
    ) -> None:
        # Only refusals raised after the log's signature verified reach these codes.
        if refusal.code not in EVIDENCE_CODES:
            return
        origin = request.note.split("\n", 1)[0]
        self.state.add_evidence(
            origin=origin,
            received_at=self.clock(),
            status=refusal.status,
            code=refusal.code,
            message=refusal.message,
            request=body,
            cosigned_note=self.state.latest_note(origin),
        )

    def origin(self, hex_hash: str) -> str | None:
        if _HASH.fullmatch(hex_hash) is None:
            return None
        for origin in self.logs:
            if origin_hash(origin) == hex_hash:
                return origin
        return None


def create_witness_app(
    state: WitnessState,
    identity: WitnessIdentity,
    *,
    clock: Callable[[], int] = unix_seconds,
) -> FastAPI:
    """The witness's ASGI app over a state file (its logs are read once, here).

    Args:
        state: the state file; it lists the logs witnessed.
        identity: the witness's name and private key.
        clock: POSIX seconds, for cosignature timestamps and evidence.

    Raises:
        ValueError: two stored logs share an origin, or one is not an Ed25519 key.
    """
    witness = _Witness(state, identity, clock)
    app = FastAPI(
        title="Mandi witness",
        summary="A c2sp.org/tlog-witness witness: cosigns checkpoints that extend what it saw.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.witness = witness

    @app.post(ADD_CHECKPOINT_PATH)
    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_SIZE:
            return _too_large()
        chunks: list[bytes] = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_REQUEST_SIZE:
                return _too_large()
            chunks.append(chunk)
        return await run_in_threadpool(witness.add_checkpoint, b"".join(chunks))

    @app.get("/checkpoint/{hex_hash}")
    def latest_checkpoint(hex_hash: str) -> Response:
        origin = witness.origin(hex_hash)
        note = None if origin is None else state.latest_note(origin)
        if note is None:
            return _text("not_found [hash]: no checkpoint cosigned for this log\n", 404)
        return _text(note)

    @app.get("/checkpoints/{hex_hash}")
    def checkpoints(hex_hash: str) -> Response:
        origin = witness.origin(hex_hash)
        if origin is None:
            return _text("unknown_log [hash]: this witness does not witness that log\n", 404)
        return _json(state.history(origin))

    @app.get("/evidence/{hex_hash}")
    def evidence(hex_hash: str) -> Response:
        origin = witness.origin(hex_hash)
        if origin is None:
            return _text("unknown_log [hash]: this witness does not witness that log\n", 404)
        return _json([item.to_json() for item in state.evidence(origin)])

    @app.get("/")
    def about() -> Response:
        return _json(
            {
                "name": identity.name,
                "vkey": identity.vkey,
                "logs": [
                    {"origin": origin, "hash": origin_hash(origin), "vkey": log.to_vkey()}
                    for origin, log in sorted(witness.logs.items())
                ],
            }
        )

    return app


def _too_large() -> Response:
    return _text(
        f"bad_witness_request [body]: more than the {MAX_REQUEST_SIZE} bytes accepted\n", 413
    )


def _json(data: object) -> Response:
    return Response(
        content=json.dumps(data, indent=1, ensure_ascii=False) + "\n",
        media_type="application/json",
    )
