"""The log's side of c2sp.org/tlog-witness: ask one witness to cosign, sans I/O.

:func:`push_checkpoint` asks one configured witness to cosign the log's newest
checkpoint. It builds the ``add-checkpoint`` request
(:class:`~ledger.witness.AddCheckpointRequest`: the size the witness last
cosigned as far as the log knows, the consistency proof from that size, and the
log-signed note), hands it to an injected ``post`` callable, and reads the
answer:

* 200: the body holds signature lines; each line by the witness's key is
  verified with :func:`~ledger.checkpoint.open_cosignature` and only then
  stored (:meth:`~ledger.service.Ledger.add_cosignature`); lines by other keys
  are ignored; a line by its key that does not verify is never stored;
* 409 with ``text/x.tlog.size``: the witness knows another size. If it is one
  the log can prove from (``<=`` the checkpoint's size) the request is sent
  once more from that size; a size beyond the checkpoint, or a second conflict
  at the size just sent (a fork), means the witness has seen *another* tree
  for this origin: outcome ``other_log``, which an operator must look at;
* anything else, or ``post`` raising :class:`WitnessTransportError`: the push
  failed and is retried later by the caller.

It owns no HTTP client, no thread, no timer and no metric: the server
(``api.witnessing``) and the one-shot CLI wrap it with httpx. It never raises
for a witness's misbehaviour; every result is a :class:`PushResult`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.checkpoint import SIG_TYPE_COSIGNATURE_V1, NoteSignature, NoteVerifier
from ledger.errors import EncodingError, LedgerError, VerificationError
from ledger.service import Ledger
from ledger.storage import StoredCheckpoint, StoredCosignature
from ledger.witness import (
    ADD_CHECKPOINT_PATH,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    parse_size_response,
)

__all__ = [
    "MAX_RESPONSE_SIZE",
    "PushOutcome",
    "PushResult",
    "WitnessEndpoint",
    "WitnessReply",
    "WitnessTransportError",
    "parse_witness_list",
    "parse_witness_spec",
    "push_checkpoint",
]

MAX_RESPONSE_SIZE = 64 * 1024
"""The largest add-checkpoint answer read: a few signature lines need far less."""


class WitnessTransportError(LedgerError):
    """The witness could not be reached or did not answer in time."""

    code = "witness_unreachable"


class PushOutcome(enum.StrEnum):
    """What came of one push (the ``outcome`` label of the server's metric)."""

    COSIGNED = "cosigned"
    """The witness cosigned; its verified line is stored."""
    UP_TO_DATE = "up_to_date"
    """A cosignature of this witness for the newest checkpoint is stored already: nothing sent."""
    CONFLICT = "conflict"
    """409 again after resyncing to the witness's size (another pusher raced us): retry later."""
    REFUSED = "refused"
    """Any other status (400, 403, 404, 422, 5xx...), or a 409 without the size body."""
    UNREACHABLE = "unreachable"
    """Connection failure or timeout."""
    INVALID_COSIGNATURE = "invalid_cosignature"
    """200, but no line by the witness's key verified: nothing stored."""
    OTHER_LOG = "other_log"
    """The witness cosigned a tree this log cannot prove it extends: a split view.

    Its known size is beyond the checkpoint, or it conflicts at the size sent,
    or it refuses (422) the proof from the size it named itself.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessEndpoint:
    """One witness the log pushes to: its URL prefix and its cosignature/v1 key.

    Attributes:
        url: the tlog-witness URL prefix (``add-checkpoint`` is appended), no
            trailing slash.
        verifier: the witness's key (type ``0x04``); its name labels the metrics.
    """

    url: str
    verifier: NoteVerifier

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"witness URL must be http(s)://..., got {self.url!r}")
        if self.url.endswith("/"):
            raise ValueError(f"witness URL must not end in '/', got {self.url!r}")
        if self.verifier.sig_type != SIG_TYPE_COSIGNATURE_V1:
            raise ValueError(
                f"witness {self.url}: the key must be a cosignature/v1 (type 0x04) vkey"
            )

    @property
    def add_checkpoint_url(self) -> str:
        """``<url>/add-checkpoint``."""
        return self.url + ADD_CHECKPOINT_PATH

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self.verifier.name


def parse_witness_spec(spec: str) -> tuple[str, str]:
    """Split ``URL=VKEY`` (or ``URL VKEY``) into the URL and the key text.

    The URL is everything before the first ``=`` (or space): a tlog-witness URL
    is a prefix, with no query string. The key is not parsed here (it may be a
    file name for the caller to read).

    Raises:
        ValueError: no separator, or an empty part.
    """
    text = spec.strip()
    cut = min((i for i in (text.find("="), text.find(" ")) if i >= 0), default=-1)
    url, key = (text[:cut].strip(), text[cut + 1 :].strip()) if cut >= 0 else ("", "")
    if not url or not key:
        raise ValueError(f"expected URL=VKEY, got {spec!r}")
    return url.rstrip("/"), key


def parse_witness_list(text: str) -> list[tuple[str, str]]:
    """Parse a witness list into (URL, key text) pairs.

    The list is either lines of ``URL VKEY`` or ``URL=VKEY`` (blank lines and
    lines starting with ``#`` skipped), or a JSON array whose items are
    ``"URL=VKEY"`` strings or ``{"url": URL, "vkey": VKEY}`` objects.

    Raises:
        ValueError: naming the line (``line 3``) or item (``[2]``) that is malformed.
    """
    items: list[tuple[str, str]] = []
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a JSON array ({exc})") from None
        if not isinstance(data, list):
            raise ValueError("not a JSON array")
        for n, item in enumerate(data):
            if isinstance(item, str):
                items.append(_spec(item, f"[{n}]"))
            elif (
                isinstance(item, dict)
                and isinstance(item.get("url"), str)
                and isinstance(item.get("vkey"), str)
            ):
                items.append((item["url"].strip().rstrip("/"), item["vkey"].strip()))
            else:
                raise ValueError(f'[{n}]: expected "URL=VKEY" or {{"url": ..., "vkey": ...}}')
        return items
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            items.append(_spec(line, f"line {n}"))
    return items


def _spec(text: str, where: str) -> tuple[str, str]:
    try:
        return parse_witness_spec(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessReply:
    """A witness's HTTP answer, as far as the protocol needs it."""

    status: int
    content_type: str
    body: bytes


Post = Callable[[str, bytes], WitnessReply]
"""Sends a request body to a URL and returns the answer; raises WitnessTransportError."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PushResult:
    """The result of :func:`push_checkpoint`.

    Attributes:
        outcome: what happened.
        size: the checkpoint size pushed (or found cosigned already).
        known_size: the size the witness has cosigned as far as the log now
            knows (pass it to the next push), or None when unknown.
        stored: the cosignatures verified and stored.
        message: a sentence for the log.
    """

    outcome: PushOutcome
    size: int
    known_size: int | None
    stored: tuple[StoredCosignature, ...] = ()
    message: str = ""


def push_checkpoint(
    ledger: Ledger,
    witness: WitnessEndpoint,
    post: Post,
    *,
    known_size: int | None = None,
    checkpoint: StoredCheckpoint | None = None,
) -> PushResult:
    """Ask ``witness`` to cosign ``checkpoint`` (default: the newest) and store what verifies.

    Args:
        ledger: the log (its store holds the checkpoints and cosignatures).
        witness: where to send and which key must have signed the answer.
        post: sends one request body to a URL (see :data:`Post`).
        known_size: the size the witness last cosigned, as remembered from an
            earlier push; default: the largest size it has cosigned in the store,
            else 0.
        checkpoint: the log-signed checkpoint to push (no cosignatures).

    Returns:
        The outcome; never raises for anything the witness does.

    Raises:
        NotFoundError: the log has no checkpoint.
        LedgerError: the store failed.
    """
    cp = checkpoint if checkpoint is not None else ledger.latest_checkpoint()
    key = witness.verifier
    if known_size is None:
        known_size = ledger.store.witness_size(key.name, key.key_hash)
    if known_size is not None and known_size > cp.size:
        return PushResult(
            outcome=PushOutcome.OTHER_LOG,
            size=cp.size,
            known_size=known_size,
            message=f"witness {key.name} has cosigned size {known_size}, more than this "
            f"log's checkpoint {cp.size}",
        )
    if known_size == cp.size and any(
        (c.name, c.key_hash) == (key.name, key.key_hash) for c in ledger.store.cosignatures(cp.size)
    ):
        return PushResult(outcome=PushOutcome.UP_TO_DATE, size=cp.size, known_size=cp.size)
    old = known_size or 0
    reply = _send(ledger, witness, post, cp, old)
    if isinstance(reply, PushResult):
        return reply
    if reply.status == 409 and _is_size(reply):
        try:
            their_size = parse_size_response(reply.body)
        except EncodingError as exc:
            return _refused(cp, None, reply, f"malformed 409 body: {exc.message}")
        if their_size > cp.size or their_size == old:
            # Beyond our newest tree, or a different root at the very size we
            # proved from: the witness cosigned a tree this log never made.
            return PushResult(
                outcome=PushOutcome.OTHER_LOG,
                size=cp.size,
                known_size=their_size,
                message=f"witness {key.name} has cosigned a size-{their_size} tree this log "
                f"cannot prove its size-{cp.size} checkpoint extends",
            )
        old = their_size
        reply = _send(ledger, witness, post, cp, old)
        if isinstance(reply, PushResult):
            return reply
        if reply.status == 422:
            return PushResult(
                outcome=PushOutcome.OTHER_LOG,
                size=cp.size,
                known_size=their_size,
                message=f"witness {key.name} refuses the proof from its size {their_size}: "
                "the tree it cosigned at that size is not this log's",
            )
        if reply.status == 409 and _is_size(reply) and _size_or_none(reply) == old:
            return PushResult(
                outcome=PushOutcome.OTHER_LOG,
                size=cp.size,
                known_size=old,
                message=f"witness {key.name} has cosigned another tree of size {old}",
            )
        if reply.status == 409:
            return PushResult(
                outcome=PushOutcome.CONFLICT,
                size=cp.size,
                known_size=None,
                message=f"witness {key.name}: 409 again after resyncing to size {old}",
            )
    if reply.status != 200:
        return _refused(cp, old, reply, _excerpt(reply.body))
    return _store_lines(ledger, witness, cp, reply.body)


def _send(
    ledger: Ledger, witness: WitnessEndpoint, post: Post, cp: StoredCheckpoint, old: int
) -> WitnessReply | PushResult:
    proof = tuple(ledger.consistency_proof(old, cp.size)) if 0 < old < cp.size else ()
    body = AddCheckpointRequest(old_size=old, proof=proof, note=cp.note).to_bytes()
    try:
        return post(witness.add_checkpoint_url, body)
    except WitnessTransportError as exc:
        return PushResult(
            outcome=PushOutcome.UNREACHABLE,
            size=cp.size,
            known_size=old,
            message=f"witness {witness.name}: {exc.message}",
        )


def _is_size(reply: WitnessReply) -> bool:
    return reply.content_type.split(";", 1)[0].strip().lower() == SIZE_CONTENT_TYPE


def _size_or_none(reply: WitnessReply) -> int | None:
    try:
        return parse_size_response(reply.body)
    except EncodingError:
        return None


def _refused(cp: StoredCheckpoint, old: int | None, reply: WitnessReply, detail: str) -> PushResult:
    return PushResult(
        outcome=PushOutcome.REFUSED,
        size=cp.size,
        known_size=old,
        message=f"HTTP {reply.status}: {detail}",
    )


def _excerpt(body: bytes) -> str:
    return body[:200].decode("utf-8", errors="replace").strip()


def _store_lines(
    ledger: Ledger, witness: WitnessEndpoint, cp: StoredCheckpoint, body: bytes
) -> PushResult:
    key = witness.verifier
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    stored: list[StoredCosignature] = []
    problems: list[str] = []
    for line in _lines(text):
        try:
            sig = NoteSignature.from_line(line)
        except EncodingError as exc:
            problems.append(exc.message)
            continue
        if (sig.name, sig.key_hash) != (key.name, key.key_hash):
            continue  # another key of the witness (another algorithm): not ours to check
        try:
            stored.append(ledger.add_cosignature(cp.size, line, key))
        except (EncodingError, VerificationError) as exc:
            problems.append(exc.message)
    if not stored:
        return PushResult(
            outcome=PushOutcome.INVALID_COSIGNATURE,
            size=cp.size,
            known_size=None,
            message=f"witness {key.name}: no valid cosignature by its key in the answer"
            + (f" ({problems[0]})" if problems else ""),
        )
    return PushResult(
        outcome=PushOutcome.COSIGNED, size=cp.size, known_size=cp.size, stored=tuple(stored)
    )


def _lines(text: str) -> Sequence[str]:
    if not text.endswith("\n"):
        text += "\n"
    return [line + "\n" for line in text[:-1].split("\n") if line]
