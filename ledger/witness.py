"""The C2SP ``tlog-witness`` protocol: the add-checkpoint request, and the witness's checks.

A log asks a witness to cosign a new checkpoint by POSTing ``add-checkpoint``
(c2sp.org/tlog-witness): an ``old <size>`` line naming the size of the last
checkpoint the log believes the witness cosigned, the consistency proof from
that size to the new one (one base64 hash per line), an empty line, then the
signed checkpoint note. The witness checks, in the order the spec gives them,
and only then cosigns (c2sp.org/tlog-cosignature):

1. the body is well-formed (else 400);
2. the checkpoint's origin is a log it witnesses (else 404);
3. the log's signature verifies with the key it holds for that origin (else 403);
4. ``old`` is not larger than the new size (else 400);
5. ``old`` equals the size it last cosigned for that origin, or 0 if none
   (else 409 with its known size, ``text/x.tlog.size``); when the sizes are
   equal the roots must be too (a fork of the same size: 409 as well);
6. the consistency proof from its stored root to the new root verifies (else 422).

So a witness never cosigns a rollback (a smaller tree) or a fork (a tree that
does not extend the one it cosigned). This module is pure: it holds the wire
format and :func:`check_add_checkpoint`; persisting the witness's state (with a
compare-and-swap, so two requests cannot both advance it) and the HTTP server
live with the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ledger.checkpoint import (
    MAX_NOTE_SIZE,
    SIG_TYPE_ED25519,
    NoteVerifier,
    SignedNote,
    VerifiedCheckpoint,
    open_checkpoint,
)
from ledger.errors import EncodingError, LedgerError, ProofError, VerificationError
from ledger.hashing import EMPTY_ROOT, HASH_SIZE
from ledger.keys import b64decode, b64encode
from ledger.merkle import verify_consistency

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_SIZE",
    "SIZE_CONTENT_TYPE",
    "AddCheckpointRequest",
    "WitnessRefusalError",
    "WitnessedTree",
    "check_add_checkpoint",
    "format_size_response",
    "log_verifiers",
    "parse_size_response",
]

ADD_CHECKPOINT_PATH = "/add-checkpoint"
"""tlog-witness: the request path, under the witness's URL prefix."""

SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""tlog-witness: the Content-Type of a 409 response carrying the witness's known size."""

MAX_PROOF_LINES = 63
"""A consistency proof within a tree of at most 2^64 - 1 leaves has at most 63 hashes."""

MAX_REQUEST_SIZE = MAX_NOTE_SIZE + 64 + MAX_PROOF_LINES * 45
"""The largest add-checkpoint body accepted: a note, the old line and a full proof."""

_OLD_PREFIX = "old "
_MAX_SIZE_DIGITS = 20


def _decimal(text: str, *, field: str) -> int:
    # ASCII decimal without leading zeros, as every size in the tlog specs.
    if (
        not text
        or len(text) > _MAX_SIZE_DIGITS
        or not text.isascii()
        or not text.isdigit()
        or (text[0] == "0" and text != "0")
    ):
        raise EncodingError(
            f"{field}: must be a decimal size without leading zeros, got {text[:24]!r}",
            code="bad_witness_request",
            field=field,
        )
    return int(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddCheckpointRequest:
    """One tlog-witness ``add-checkpoint`` request.

    Attributes:
        old_size: the size of the checkpoint the log believes the witness last
            cosigned for this origin (0 if none).
        proof: the RFC 9162 consistency proof from ``old_size`` to the new size.
        note: the new checkpoint, a signed note with (at least) the log's signature.
    """

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    def __post_init__(self) -> None:
        if self.old_size < 0:
            raise ValueError(f"old_size must be >= 0, got {self.old_size}")
        if len(self.proof) > MAX_PROOF_LINES:
            raise ValueError(f"proof has {len(self.proof)} hashes, at most {MAX_PROOF_LINES}")
        if any(len(h) != HASH_SIZE for h in self.proof):
            raise ValueError(f"every proof hash must be {HASH_SIZE} bytes")

    def to_bytes(self) -> bytes:
        """The request body: ``old N``, the proof lines, an empty line, the note."""
        lines = [f"{_OLD_PREFIX}{self.old_size}", *(b64encode(h) for h in self.proof)]
        return ("".join(line + "\n" for line in lines) + "\n" + self.note).encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> AddCheckpointRequest:
        """Parse a request body strictly.

        Raises:
            EncodingError: ``bad_witness_request`` naming the part that is wrong
                (``body``, ``old``, ``proof[i]``); the note itself is parsed later,
                by :func:`check_add_checkpoint`.
        """
        if len(body) > MAX_REQUEST_SIZE:
            raise EncodingError(
                f"body: {len(body)} bytes is more than the {MAX_REQUEST_SIZE} accepted",
                code="bad_witness_request",
                field="body",
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError(
                "body: not UTF-8", code="bad_witness_request", field="body"
            ) from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise EncodingError(
                "body: no empty line between the proof and the checkpoint",
                code="bad_witness_request",
                field="body",
            )
        lines = head.split("\n")
        if not lines[0].startswith(_OLD_PREFIX):
            raise EncodingError(
                "old: the first line must be 'old <size>'",
                code="bad_witness_request",
                field="old",
            )
        old_size = _decimal(lines[0][len(_OLD_PREFIX) :], field="old")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise EncodingError(
                f"proof: {len(lines) - 1} lines, at most {MAX_PROOF_LINES}",
                code="bad_witness_request",
                field="proof",
            )
        proof: list[bytes] = []
        for i, line in enumerate(lines[1:]):
            field = f"proof[{i}]"
            try:
                raw = b64decode(line, field=field)
            except EncodingError as exc:
                raise EncodingError(exc.message, code="bad_witness_request", field=field) from None
            if len(raw) != HASH_SIZE or b64encode(raw) != line:
                raise EncodingError(
                    f"{field}: must be the canonical base64 of {HASH_SIZE} bytes",
                    code="bad_witness_request",
                    field=field,
                )
            proof.append(raw)
        return cls(old_size=old_size, proof=tuple(proof), note=note)


def format_size_response(size: int) -> bytes:
    """The body of a 409 response: the known size in decimal and a newline."""
    return f"{size}\n".encode()


def parse_size_response(body: bytes) -> int:
    """Parse a 409 ``text/x.tlog.size`` body strictly.

    Raises:
        EncodingError: ``bad_witness_response``; not one decimal line.
    """
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n") or text.count("\n") != 1:
        raise EncodingError(
            f"size: expected one decimal line, got {text[:40]!r}",
            code="bad_witness_response",
            field="size",
        )
    try:
        return _decimal(text[:-1], field="size")
    except EncodingError as exc:
        raise EncodingError(exc.message, code="bad_witness_response", field="size") from None


class WitnessRefusalError(LedgerError):
    """The witness will not cosign; ``status`` is the tlog-witness HTTP status.

    ``known_size`` is set for 409: the size the witness last cosigned.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        field: str | None = None,
        known_size: int | None = None,
    ) -> None:
        super().__init__(message, code=code, field=field)
        self.status = status
        self.known_size = known_size


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessedTree:
    """What a witness remembers of a log: the newest tree it cosigned."""

    size: int
    root_hash: bytes


def _origin_of(note: str) -> str:
    # The origin is the first line of the note text; the signature is checked next.
    return note.split("\n", 1)[0]


def check_add_checkpoint(
    request: AddCheckpointRequest,
    logs: Mapping[str, NoteVerifier],
    known: Callable[[str], WitnessedTree | None],
) -> VerifiedCheckpoint:
    """Run the witness's checks on one request, in the spec's order.

    Args:
        request: the parsed request.
        logs: the logs this witness witnesses: origin → the log's note key
            (type ``0x01``; its name is the origin).
        known: the newest tree the witness cosigned for an origin, or None.

    Returns:
        The verified checkpoint: the caller stores it (compare-and-swap on the
        known size) and only then returns its cosignature.

    Raises:
        WitnessRefusalError: with the HTTP status to answer (400, 403, 404, 409, 422).
    """
    try:
        SignedNote.from_text(request.note)
    except EncodingError as exc:
        raise WitnessRefusalError(
            f"checkpoint: {exc.message}", status=400, code="bad_checkpoint", field="checkpoint"
        ) from None
    origin = _origin_of(request.note)
    verifier = logs.get(origin)
    if verifier is None:
        raise WitnessRefusalError(
            f"origin: this witness does not witness the log {origin[:200]!r}",
            status=404,
            code="unknown_log",
            field="origin",
        )
    try:
        verified = open_checkpoint(request.note, verifier)
    except EncodingError as exc:
        raise WitnessRefusalError(
            f"checkpoint: {exc.message}", status=400, code="bad_checkpoint", field="checkpoint"
        ) from None
    except VerificationError as exc:
        raise WitnessRefusalError(
            f"checkpoint: the log's signature does not verify ({exc.message})",
            status=403,
            code="bad_log_signature",
            field="checkpoint",
        ) from None
    checkpoint = verified.checkpoint
    if request.old_size > checkpoint.size:
        raise WitnessRefusalError(
            f"old: {request.old_size} is larger than the checkpoint's size {checkpoint.size}",
            status=400,
            code="old_size_too_large",
            field="old",
        )
    tree = known(origin) or WitnessedTree(size=0, root_hash=EMPTY_ROOT)
    if request.old_size != tree.size:
        raise WitnessRefusalError(
            f"old: {request.old_size} is not the size this witness last cosigned, {tree.size}",
            status=409,
            code="stale_old_size",
            field="old",
            known_size=tree.size,
        )
    if checkpoint.size == tree.size and checkpoint.root_hash != tree.root_hash:
        raise WitnessRefusalError(
            f"checkpoint: a different root for size {tree.size}, which this witness "
            "cosigned already (a fork)",
            status=409,
            code="conflicting_root",
            field="checkpoint",
            known_size=tree.size,
        )
    try:
        verify_consistency(
            tree.size, checkpoint.size, request.proof, tree.root_hash, checkpoint.root_hash
        )
    except ProofError as exc:
        raise WitnessRefusalError(
            f"proof: does not prove size {checkpoint.size} extends size {tree.size} "
            f"({exc.message})",
            status=422,
            code="bad_consistency_proof",
            field="proof",
        ) from None
    return verified


def log_verifiers(vkeys: Sequence[NoteVerifier]) -> dict[str, NoteVerifier]:
    """Index log keys by origin (their name); each must be a plain Ed25519 note key.

    Raises:
        ValueError: a key is not type ``0x01``, or two keys name the same origin.
    """
    logs: dict[str, NoteVerifier] = {}
    for vkey in vkeys:
        if vkey.sig_type != SIG_TYPE_ED25519:
            raise ValueError(f"log key {vkey.name!r}: must be an Ed25519 (type 0x01) note key")
        if vkey.name in logs:
            raise ValueError(f"two log keys for the origin {vkey.name!r}")
        logs[vkey.name] = vkey
    return logs
