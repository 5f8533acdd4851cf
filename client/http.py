"""MandiClient: every endpoint of the HTTP API over an injected :class:`httpx.Client`.

The client owns the wire and nothing else: it turns core values into requests
and responses into core values (:class:`~ledger.statements.Entry`, proofs as
bytes), retries what is safe to retry, and raises one exception family
(:mod:`client.errors`). It decides nothing about what to trust; the checks an
auditor makes on top (pinned vkey, consistency, inclusion) are
:mod:`client.auditor`'s.

* **Transport.** The :class:`httpx.Client` is injected, so tests swap the
  transport (``httpx.MockTransport``, or Starlette's ``TestClient`` over the
  ASGI app); :meth:`MandiClient.from_url` makes one with :data:`DEFAULT_TIMEOUT`.
* **Retries.** Connection errors, timeouts, 5xx answers and 409 ``conflict``
  are retried with exponential backoff and jitter (:class:`RetryPolicy`),
  honouring ``Retry-After``. Every write is idempotent (the event id is the hash
  of the statement bytes, and the server answers 200 for a statement it holds),
  so resending a write whose answer was lost is safe. 4xx answers are not retried.
* **Errors.** An error answer raises :class:`~client.errors.RefusedError` (4xx)
  or :class:`~client.errors.ServerError` (5xx) carrying the server's
  problem+json body; a server that cannot be reached raises
  :class:`~client.errors.TransportError`. No httpx exception escapes.
* **Submitted bytes.** The entry returned for a submission is rebuilt from the
  bytes the client sent and compared with the server's ``entry_bytes``; any
  difference raises :class:`~client.errors.AuditError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from client.errors import (
    AuditError,
    ProblemError,
    RefusedError,
    ServerError,
    TransportError,
)
from ledger import __version__
from ledger.domain.ids import LotId
from ledger.errors import LedgerError
from ledger.hashing import Digest, event_id
from ledger.keys import b64decode, b64encode
from ledger.statements import Entry, SignedStatement

__all__ = [
    "DEFAULT_TIMEOUT",
    "BatchResult",
    "ConsistencyProof",
    "Envelope",
    "InclusionProof",
    "MandiClient",
    "RetryPolicy",
    "Signed",
    "Submitted",
    "envelope",
    "new_http_client",
]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""5 s to connect, 30 s for each read, write and pool wait."""

_JSON = "application/json"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Attempt ``n`` (1-based) that fails is followed by a pause of
    ``min(max_backoff_s, backoff_s * 2**(n-1))``, scaled by a random factor in
    ``[1 - jitter, 1]`` (so many clients coming back at once spread out), or by
    the server's ``Retry-After`` when that is longer (capped the same way).

    Attributes:
        attempts: tries in all, >= 1 (1: no retry).
        backoff_s: the first pause.
        max_backoff_s: the longest pause.
        jitter: fraction of the pause that is random, in [0, 1].
    """

    attempts: int = 5
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be in [0, 1]")

    def delay(self, attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """The pause after failed attempt ``attempt`` (1-based)."""
        base = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        pause = base * (1 - self.jitter * rng())
        if retry_after is not None:
            pause = max(pause, min(retry_after, self.max_backoff_s))
        return pause


@dataclass(frozen=True, slots=True, kw_only=True)
class Submitted:
    """A statement's entry in the log, and whether this submission appended it (201)."""

    entry: Entry
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """The answer to a batch: each item's entry, in request order, and how many were new."""

    created: int
    items: tuple[Submitted, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class InclusionProof:
    """An RFC 9162 inclusion proof as served (verify it with :func:`ledger.verify_inclusion`)."""

    leaf_index: int
    tree_size: int
    leaf_hash: Digest
    event_id: Digest
    root_hash: Digest
    proof: tuple[Digest, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof as served (the roots are the server's claim)."""

    first: int
    second: int
    first_root: Digest
    second_root: Digest
    proof: tuple[Digest, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A signed statement as it travels: its exact canonical bytes and its signature.

    The outbox keeps statements in this form; there is no need to parse a
    statement again to send it.
    """

    statement: bytes
    signature: bytes

    @classmethod
    def of(cls, signed: SignedStatement | Envelope) -> Envelope:
        """The envelope of a signed statement (an envelope is returned as it is)."""
        if isinstance(signed, Envelope):
            return signed
        return cls(statement=signed.statement.raw, signature=signed.signature)

    @property
    def event_id(self) -> Digest:
        """SHA-256 of the statement bytes."""
        return event_id(self.statement)

    def to_json(self) -> dict[str, str]:
        """``{"statement": base64, "signature": base64}``."""
        return {"statement": b64encode(self.statement), "signature": b64encode(self.signature)}


Signed = SignedStatement | Envelope
"""What the submitting methods take."""


def envelope(signed: Signed) -> dict[str, str]:
    """The wire form of a signed statement: base64 of its exact bytes and of its signature."""
    return Envelope.of(signed).to_json()


def new_http_client(base_url: str, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.Client:
    """The :class:`httpx.Client` :meth:`MandiClient.from_url` uses (tests replace this).

    Raises:
        TransportError: ``base_url`` is not a usable http(s) URL.
    """
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise TransportError(f"{base_url!r} is not a valid URL: {exc}", field="server") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise TransportError(
            f"{base_url!r} is not an http(s) URL like http://127.0.0.1:8000", field="server"
        )
    return httpx.Client(
        base_url=base_url,
        timeout=timeout,
        headers={"User-Agent": f"mandi-client/{__version__}"},
    )


class MandiClient:
    """Every endpoint of the Mandi HTTP API (docs/api.md), with retries and one error family.

    Args:
        http: the client to send requests with; its ``base_url`` is the server.
        retry: the retry policy.
        sleep: called with the pause before a retry (tests pass a recorder).
        rng: uniform random numbers in [0, 1) for the jitter.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._rng = rng

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> MandiClient:
        """A client for the server at ``url`` (``http://host:port``)."""
        return cls(new_http_client(url, timeout), retry=retry)

    @property
    def base_url(self) -> str:
        """The server's URL."""
        return str(self._http.base_url).rstrip("/")

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> MandiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- events --------------------------------------------------------------

    def submit(self, signed: Signed) -> Submitted:
        """``POST /v1/events``: append one statement (201), or get its entry if known (200).

        Raises:
            RefusedError: refused (the problem names the field and rule).
            AuditError: the returned entry does not carry the submitted bytes.
        """
        response = self._send("POST", "/v1/events", json_body=envelope(signed))
        return Submitted(
            entry=entry_for_submission(_json(response), signed), created=response.status_code == 201
        )

    def submit_batch(self, items: Sequence[Signed]) -> BatchResult:
        """``POST /v1/events:batch``: append up to 500 statements in order, all or none.

        Raises:
            RefusedError: one item was refused and nothing was stored; ``field``
                names it (``items[3].signature``).
            AuditError: an entry does not carry the submitted bytes.
        """
        if not items:
            return BatchResult(created=0, items=())
        response = self._send(
            "POST", "/v1/events:batch", json_body={"items": [envelope(s) for s in items]}
        )
        body = _json(response)
        answers = _get(body, "items", list)
        if len(answers) != len(items):
            raise _bad_response(response, f"{len(answers)} items answered for {len(items)} sent")
        results = []
        for signed, answer in zip(items, answers, strict=True):
            if not isinstance(answer, dict):
                raise _bad_response(response, "a batch item is not an object")
            results.append(
                Submitted(
                    entry=entry_for_submission(_get(answer, "entry", dict), signed),
                    created=bool(answer.get("created")),
                )
            )
        return BatchResult(created=int(_get(body, "created", int)), items=tuple(results))

    def event(self, event_id: bytes) -> Entry:
        """``GET /v1/events/{event_id}``: the entry holding a statement.

        Raises:
            RefusedError: 404 ``not_found`` for an unknown event.
        """
        return entry_from_json(_json(self._send("GET", f"/v1/events/{event_id.hex()}")))

    # -- participants and registry -------------------------------------------

    def enrol(self, signed: Signed) -> dict[str, Any]:
        """``POST /v1/participants``: an operator-signed ``enrol`` statement."""
        return self._participant_write("/v1/participants", signed)

    def rotate(self, participant_id: str, signed: Signed) -> dict[str, Any]:
        """``POST /v1/participants/{id}/rotate``: an operator-signed ``rotate`` statement."""
        return self._participant_write(f"/v1/participants/{_seg(participant_id)}/rotate", signed)

    def revoke(self, participant_id: str, signed: Signed) -> dict[str, Any]:
        """``POST /v1/participants/{id}/revoke``: an operator-signed ``revoke`` statement."""
        return self._participant_write(f"/v1/participants/{_seg(participant_id)}/revoke", signed)

    def _participant_write(self, path: str, signed: Signed) -> dict[str, Any]:
        response = self._send("POST", path, json_body=envelope(signed))
        body = _json(response)
        entry_for_submission(_get(body, "entry", dict), signed)
        return body

    def participants(self, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """``GET /v1/participants``: one page of participants with their keys."""
        return _json(
            self._send("GET", "/v1/participants", params={"offset": offset, "limit": limit})
        )

    def participant(self, participant_id: str) -> dict[str, Any]:
        """``GET /v1/participants/{id}``: one participant and its keys."""
        return _json(self._send("GET", f"/v1/participants/{_seg(participant_id)}"))

    def registry(self, size: int | None = None) -> dict[str, Any]:
        """``GET /v1/registry``: the registry as the first ``size`` entries define it."""
        params = {} if size is None else {"size": size}
        return _json(self._send("GET", "/v1/registry", params=params))

    # -- lots ------------------------------------------------------------------

    def lot(self, lot_id: str) -> dict[str, Any]:
        """``GET /v1/lots/{lot_id}``: the lot now, and the recalls that affect it."""
        return _json(self._send("GET", f"/v1/lots/{_lot_seg(lot_id)}"))

    def lot_history(self, lot_id: str) -> dict[str, Any]:
        """``GET /v1/lots/{lot_id}/history``: every statement on the lot, in log order."""
        return _json(self._send("GET", f"/v1/lots/{_lot_seg(lot_id)}/history"))

    def lot_trace(
        self, lot_id: str, direction: Literal["back", "forward"], depth: int | None = None
    ) -> dict[str, Any]:
        """``GET /v1/lots/{lot_id}/trace``: lots upstream or downstream, breadth first."""
        params: dict[str, Any] = {"direction": direction}
        if depth is not None:
            params["depth"] = depth
        return _json(self._send("GET", f"/v1/lots/{_lot_seg(lot_id)}/trace", params=params))

    def holdings(self, participant_id: str) -> dict[str, Any]:
        """``GET /v1/participants/{id}/lots``: what a participant holds now."""
        return _json(self._send("GET", f"/v1/participants/{_seg(participant_id)}/lots"))

    def lot_qr(
        self,
        lot_id: str,
        fmt: Literal["png", "svg"] = "png",
        *,
        size: int | None = None,
        border: int | None = None,
    ) -> bytes:
        """``GET /v1/lots/{lot_id}/qr.png|svg``: the lot's QR code image."""
        params: dict[str, Any] = {}
        if size is not None:
            params["size"] = size
        if border is not None:
            params["border"] = border
        path = f"/v1/lots/{_lot_seg(lot_id)}/qr.{fmt}"
        return self._send("GET", path, params=params).content

    def lot_page(self, lot_id: str, *, tree_size: int | None = None) -> dict[str, Any]:
        """The public lot page's JSON (its GS1 Digital Link path, ``format=json``)."""
        try:
            path = LotId.parse(lot_id, field="lot").digital_link_path()
        except LedgerError as exc:
            raise RefusedError(
                400, {"code": exc.code, "field": "lot", "detail": exc.message}
            ) from exc
        params: dict[str, Any] = {"format": "json"}
        if tree_size is not None:
            params["tree_size"] = tree_size
        return _json(self._send("GET", path, params=params))

    # -- log ---------------------------------------------------------------------

    def log_info(self) -> dict[str, Any]:
        """``GET /v1/log``: origin, tree size, newest checkpoint size, vkey."""
        return _json(self._send("GET", "/v1/log"))

    def checkpoint(self) -> str:
        """``GET /v1/log/checkpoint``: the newest signed checkpoint note, byte for byte."""
        return self._send("GET", "/v1/log/checkpoint").content.decode("utf-8")

    def vkey(self) -> str:
        """``GET /v1/log/vkey``: the log's verifier key (pin it; better, get it out of band)."""
        return self._send("GET", "/v1/log/vkey").text.strip()

    def entries(self, start: int, end: int | None = None) -> list[Entry]:
        """``GET /v1/log/entries``: entries ``[start, end)``, each line the exact entry bytes.

        The server clamps ``end`` to its size and pages at its maximum page size;
        fewer entries than asked may come back.
        """
        params: dict[str, Any] = {"start": start, "format": "jsonl"}
        if end is not None:
            params["end"] = end
        response = self._send("GET", "/v1/log/entries", params=params)
        entries = []
        for line in response.content.split(b"\n"):
            if line:
                try:
                    entries.append(Entry.from_bytes(line))
                except LedgerError as exc:
                    raise _bad_response(response, f"entry line: {exc.message}") from exc
        return entries

    def inclusion_proof(
        self,
        *,
        index: int | None = None,
        event_id: bytes | None = None,
        tree_size: int | None = None,
    ) -> InclusionProof:
        """``GET /v1/log/proof/inclusion`` by leaf index or by event id."""
        params: dict[str, Any] = {}
        if index is not None:
            params["index"] = index
        if event_id is not None:
            params["event_id"] = event_id.hex()
        if tree_size is not None:
            params["tree_size"] = tree_size
        response = self._send("GET", "/v1/log/proof/inclusion", params=params)
        body = _json(response)
        return InclusionProof(
            leaf_index=_get(body, "leaf_index", int),
            tree_size=_get(body, "tree_size", int),
            leaf_hash=_hex(response, body, "leaf_hash"),
            event_id=_hex(response, body, "event_id"),
            root_hash=_hex(response, body, "root_hash"),
            proof=_hex_list(response, body, "proof"),
        )

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """``GET /v1/log/proof/consistency`` between tree sizes ``first <= second``."""
        params: dict[str, Any] = {"first": first}
        if second is not None:
            params["second"] = second
        response = self._send("GET", "/v1/log/proof/consistency", params=params)
        body = _json(response)
        return ConsistencyProof(
            first=_get(body, "first", int),
            second=_get(body, "second", int),
            first_root=_hex(response, body, "first_root"),
            second_root=_hex(response, body, "second_root"),
            proof=_hex_list(response, body, "proof"),
        )

    def root(self, tree_size: int | None = None) -> dict[str, Any]:
        """``GET /v1/log/root``: the Merkle root at a size (default: the log size)."""
        params = {} if tree_size is None else {"tree_size": tree_size}
        return _json(self._send("GET", "/v1/log/root", params=params))

    # -- operations ----------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: liveness."""
        return _json(self._send("GET", "/healthz"))

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: the database answers and its schema is current."""
        return _json(self._send("GET", "/readyz"))

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text."""
        return self._send("GET", "/metrics").text

    # -- the one place requests are sent ---------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, params=params, json=json_body)
            except httpx.UnsupportedProtocol as exc:
                raise TransportError(f"{method} {path}: {exc}", field="server") from exc
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise TransportError(
                        f"{method} {self.base_url}{path}: {type(exc).__name__}: {exc} "
                        f"(after {attempts} attempts)"
                    ) from exc
                self._sleep(self._retry.delay(attempt, None, self._rng))
                continue
            except httpx.HTTPError as exc:
                raise TransportError(f"{method} {self.base_url}{path}: {exc}") from exc
            if _retryable(response) and attempt < attempts:
                self._sleep(self._retry.delay(attempt, _retry_after(response), self._rng))
                continue
            if response.is_error:
                raise problem_error(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# ---------------------------------------------------------------------------
# Responses -> core values


def problem_error(response: httpx.Response) -> ProblemError:
    """The exception for an error answer: its problem+json body, or one made from the status."""
    problem: dict[str, Any] | None = None
    if "json" in response.headers.get("content-type", ""):
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            problem = parsed
    if problem is None:
        problem = {
            "status": response.status_code,
            "title": response.reason_phrase,
            "detail": response.text[:200] or response.reason_phrase,
            "code": f"http_{response.status_code}",
        }
    cls = ServerError if response.status_code >= 500 else RefusedError
    return cls(response.status_code, problem)


def entry_for_submission(obj: Mapping[str, Any], signed: Signed) -> Entry:
    """The entry the server returned for ``signed``, rebuilt from the bytes we sent.

    The entry is ``{accepted_ms, index, prev, signature, statement}``: the server
    chooses the first three; the last two must be exactly ours. The rebuilt
    entry's canonical bytes must equal the server's ``entry_bytes``, and its
    event id and leaf hash the ones the server states.

    Raises:
        AuditError: ``entry_mismatch``: the server's entry does not carry the
            submitted bytes, or contradicts itself.
        ServerError: the answer is malformed.
    """
    sent = Envelope.of(signed)
    try:
        prev = bytes.fromhex(str(obj["prev"]))
        entry = Entry(
            index=int(obj["index"]),
            accepted_ms=int(obj["accepted_ms"]),
            prev=Digest(prev),
            statement=sent.statement,
            signature=sent.signature,
        )
        served = b64decode(str(obj["entry_bytes"]), field="entry_bytes")
    except (KeyError, TypeError, ValueError, LedgerError) as exc:
        raise ServerError(
            200, {"code": "bad_response", "detail": f"malformed entry in the answer: {exc}"}
        ) from exc
    if (
        served != entry.to_bytes()
        or obj.get("event_id") != entry.event_id.hex()
        or obj.get("leaf_hash") != entry.leaf_hash.hex()
    ):
        raise AuditError(
            f"the server's entry {entry.index} for event {entry.event_id.hex()} does not carry "
            "the statement and signature this client submitted",
            code="entry_mismatch",
        )
    return entry


def entry_from_json(obj: Mapping[str, Any]) -> Entry:
    """An entry from its JSON form, checked against its own ``entry_bytes``.

    Raises:
        AuditError: ``entry_mismatch``: the JSON fields contradict the entry bytes.
        ServerError: the answer is malformed.
    """
    try:
        entry = Entry.from_bytes(b64decode(str(obj["entry_bytes"]), field="entry_bytes"))
    except (KeyError, LedgerError) as exc:
        raise ServerError(
            200, {"code": "bad_response", "detail": f"malformed entry in the answer: {exc}"}
        ) from exc
    claimed = (
        obj.get("index"),
        obj.get("accepted_ms"),
        obj.get("prev"),
        obj.get("event_id"),
        obj.get("leaf_hash"),
        obj.get("statement"),
        obj.get("signature"),
    )
    actual = (
        entry.index,
        entry.accepted_ms,
        entry.prev.hex(),
        entry.event_id.hex(),
        entry.leaf_hash.hex(),
        b64encode(entry.statement),
        b64encode(entry.signature),
    )
    if claimed != actual:
        raise AuditError(
            f"entry {entry.index}: the JSON fields contradict the entry bytes",
            code="entry_mismatch",
        )
    return entry


def _retryable(response: httpx.Response) -> bool:
    if response.status_code >= 500:
        return True
    if response.status_code == 409:
        # A lost race for the log head; anything else at 409 (key_exists) is final.
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("code") == "conflict"
    return False


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise _bad_response(response, "the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise _bad_response(response, "the answer is not a JSON object")
    return body


def _get(body: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ServerError(
            200, {"code": "bad_response", "detail": f"the answer's {name!r} is missing or invalid"}
        )
    return value


def _hex(response: httpx.Response, body: Mapping[str, Any], name: str) -> Digest:
    return _digest(response, _get(body, name, str), name)


def _hex_list(response: httpx.Response, body: Mapping[str, Any], name: str) -> tuple[Digest, ...]:
    return tuple(_digest(response, value, name) for value in _get(body, name, list))


def _digest(response: httpx.Response, value: Any, name: str) -> Digest:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise _bad_response(response, f"{name}: not 64 hex digits")
    return Digest(raw)


def _bad_response(response: httpx.Response, detail: str) -> ServerError:
    return ServerError(response.status_code, {"code": "bad_response", "detail": detail})


def _seg(participant_id: str) -> str:
    return quote(participant_id, safe="")


def _lot_seg(lot_id: str) -> str:
    # A canonical lot id is written in the path as it is, escapes included
    # (docs/api.md, "Lots"); anything else is quoted whole and refused by the server.
    try:
        return LotId.parse(lot_id, field="lot").text
    except LedgerError:
        return quote(lot_id, safe="")
