"""What an auditor fetches: a log from a database or a server, as a bundle or a proof bundle.

A :class:`LogSource` is one of two ways to reach a log: :class:`DbSource` reads
a ledger database directly (the operator's own copy, or one handed over);
:class:`ServerSource` asks a server's public read API (``GET /v1/log/entries``
in JSON Lines pages, ``/v1/log/checkpoint``, ``/v1/log/proof/*``,
``/v1/registry``, ``/v1/lots/*``) with httpx. Both hand out the exact entry
bytes, the checkpoints they hold (a server shows only its newest), the
registry at a size, and proofs.

:func:`export_bundle` streams a source into a ``mandi-bundle`` file
(:mod:`ledger.bundle`) in constant memory. It resumes a partial file: the
header must name the same log, and the last entry written must equal the
source's entry at that index, or the export refuses (the log changed under
it). :func:`build_proof_bundle` gathers a lot's events, its upstream lots'
events and the registry statements behind their signers, each with an
inclusion proof against one checkpoint.

Nothing here decides whether the log is honest; :mod:`ledger.audit_parallel`
and :func:`ledger.bundle.verify_proof_bundle` do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from client.errors import ClientError, TransportError
from client.http import MandiClient, new_http_client, problem_error
from ledger.audit_parallel import Form
from ledger.bundle import (
    BundleCheckpoint,
    BundleError,
    BundleHeader,
    BundleWriter,
    ProofBundle,
    TlogProof,
    resume_point,
)
from ledger.checkpoint import Checkpoint, SignedNote, build_vkey
from ledger.domain.trace import trace_back
from ledger.errors import LedgerError, NotFoundError
from ledger.hashing import Digest, KeyId
from ledger.keys import b64decode
from ledger.registry import KIND_GENESIS, KIND_ROTATE, KeyRecord, ParticipantRecord
from ledger.service import Ledger
from ledger.statements import Entry, Statement
from ledger.storage.sql import SqlStore

__all__ = [
    "DbSource",
    "ExportError",
    "ExportResult",
    "LogSource",
    "ServerSource",
    "build_proof_bundle",
    "export_bundle",
    "open_source",
]

_PAGE = 1000
_FLUSH_EVERY = 4096
_ATTEMPTS = 4


class ExportError(ClientError):
    """An export that cannot go on: a partial file of another log, or a log that changed."""

    code = "export_failed"


class LogSource(Protocol):
    """A log to read: exact entry bytes, checkpoints, registry, proofs, lot histories."""

    kind: str
    """``db`` or ``server``: named in reports."""

    def describe(self) -> str:
        """Where the log is (a database URL without password, a server URL)."""
        ...

    def vkey(self) -> str:
        """The log's vkey as the source states it (informational: no trust anchor)."""
        ...

    def size(self) -> int:
        """Entries in the log now."""
        ...

    def checkpoints(self) -> list[BundleCheckpoint]:
        """The signed checkpoints the source holds, by ascending size."""
        ...

    def entry_items(self, start: int, end: int) -> tuple[Form, Iterator[Any]]:
        """Entries ``[start, end)`` in the cheapest form the auditor accepts."""
        ...

    def entry_bytes(self, start: int, end: int) -> Iterator[bytes]:
        """The exact entry bytes of ``[start, end)``, in order."""
        ...

    def stored_leaves(self, start: int, end: int) -> Iterator[tuple[int, Digest]] | None:
        """The store's own leaf nodes, when the source has them (a database)."""
        ...

    def registry(self, size: int) -> tuple[list[ParticipantRecord], list[KeyRecord]]:
        """The registry the source claims for the first ``size`` entries."""
        ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """An RFC 9162 consistency proof between two sizes."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """An RFC 9162 inclusion proof of ``index`` in the tree of ``size``."""
        ...

    def upstream_lots(self, lot: str) -> list[str]:
        """The lot and every lot upstream of it, root first."""
        ...

    def lot_indices(self, lot: str) -> list[int]:
        """Log indices of the statements on a lot."""
        ...

    def key_added_at(self, key_id: bytes) -> int | None:
        """Index of the statement that registered a key, if known."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_source(db: str | None, server: str | None) -> LogSource:
    """The source named by ``--db`` or ``--server`` (exactly one must be given).

    Raises:
        ValueError: neither or both.
        LedgerError: the database cannot be opened, the URL is unusable.
    """
    if (db is None) == (server is None):
        raise ValueError("give exactly one of --db URL and --server URL")
    if db is not None:
        return DbSource(db)
    assert server is not None
    return ServerSource(server)


# --------------------------------------------------------------------------- database


class DbSource:
    """A ledger database read directly (SQLite or PostgreSQL, through :class:`SqlStore`)."""

    kind = "db"

    def __init__(self, url: str) -> None:
        self._url = url
        self.store = SqlStore.open(url)
        self._reader: Ledger | None = None

    def _ledger(self) -> Ledger:
        if self._reader is None:
            self._reader = Ledger.reader(self.store)
        return self._reader

    def describe(self) -> str:
        """The database URL with any password hidden."""
        if "@" in self._url and "://" in self._url:
            scheme, rest = self._url.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self._url

    def vkey(self) -> str:
        """The vkey the genesis entry names."""
        log = self._ledger().log
        return build_vkey(log.origin, log.log_key)

    def size(self) -> int:
        """Entries stored."""
        return self.store.size()

    def checkpoints(self) -> list[BundleCheckpoint]:
        """Every stored checkpoint, each with every witness cosignature stored for it."""
        return [BundleCheckpoint(size=c.size, note=c.note) for c in self._ledger().checkpoints()]

    def entry_items(self, start: int, end: int) -> tuple[Form, Iterator[Any]]:
        """Entry values, as the store reads them."""
        return "entries", self.store.entries(start, end)

    def entry_bytes(self, start: int, end: int) -> Iterator[bytes]:
        """Canonical entry bytes (the store keeps the fields; the bytes are rebuilt exactly)."""
        for entry in self.store.entries(start, end):
            yield entry.to_bytes()

    def stored_leaves(self, start: int, end: int) -> Iterator[tuple[int, Digest]]:
        """The store's level-0 Merkle nodes."""
        return self.store.leaf_hashes(start, end)

    def registry(self, size: int) -> tuple[list[ParticipantRecord], list[KeyRecord]]:
        """Participants and keys as of ``size`` (later changes left out)."""
        return _registry_at(self.store.participants(), self.store.keys(), size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """From the stored nodes."""
        return list(self._ledger().consistency_proof(size1, size2))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """From the stored nodes."""
        return list(self._ledger().inclusion_proof(index, size))

    def upstream_lots(self, lot: str) -> list[str]:
        """Trace back through the stored lot graph."""
        return list(trace_back(lot, self.store).lot_ids)

    def lot_indices(self, lot: str) -> list[int]:
        """The stored lot history."""
        history = self.store.history(lot)
        if not history and self.store.lot(lot) is None:
            raise NotFoundError(f"lot {lot} does not exist", code="unknown_lot", field="lot")
        return [item.index for item in history]

    def key_added_at(self, key_id: bytes) -> int | None:
        """From the stored registry."""
        record = self.store.key(KeyId(bytes(key_id)))
        return None if record is None else record.added_at

    def close(self) -> None:
        """Close the database."""
        self.store.close()


def _registry_at(
    participants: Sequence[ParticipantRecord], keys: Sequence[KeyRecord], size: int
) -> tuple[list[ParticipantRecord], list[KeyRecord]]:
    chosen_p = [p for p in participants if p.enrolled_at < size]
    chosen_k = []
    for k in keys:
        if k.added_at >= size:
            continue
        if k.revoked_at is not None and k.revoked_at >= size:
            k = KeyRecord(
                key_id=k.key_id, participant=k.participant, public=k.public, added_at=k.added_at
            )
        chosen_k.append(k)
    return chosen_p, chosen_k


# --------------------------------------------------------------------------- server


class ServerSource:
    """A server's public read API, over httpx."""

    kind = "server"

    def __init__(self, url: str, *, http: httpx.Client | None = None) -> None:
        self._http = http if http is not None else new_http_client(url)
        self.client = MandiClient(self._http)
        self._url = url.rstrip("/")
        self._registry: dict[int, tuple[list[ParticipantRecord], list[KeyRecord]]] = {}

    def describe(self) -> str:
        """The server URL."""
        return self._url

    def vkey(self) -> str:
        """``GET /v1/log/vkey``."""
        return self.client.vkey()

    def size(self) -> int:
        """``GET /v1/log``: the tree size."""
        return int(self.client.log_info()["tree_size"])

    def checkpoints(self) -> list[BundleCheckpoint]:
        """The newest checkpoint, with its cosignatures (a server serves no older ones)."""
        note = self.client.checkpoint()
        return [BundleCheckpoint(size=_note_size(note), note=note)]

    def entry_items(self, start: int, end: int) -> tuple[Form, Iterator[Any]]:
        """The exact JSON Lines the server sends."""
        return "entry_bytes", self.entry_bytes(start, end)

    def entry_bytes(self, start: int, end: int) -> Iterator[bytes]:
        """Pages of ``GET /v1/log/entries`` (JSON Lines), each line the exact entry bytes."""
        page = _PAGE
        cursor = start
        while cursor < end:
            response = self._get(
                "/v1/log/entries",
                {"start": cursor, "end": min(end, cursor + page), "format": "jsonl"},
            )
            if response.status_code == 400 and page > 1:
                page = max(1, page // 2)  # the server's page limit is lower
                continue
            if response.is_error:
                raise problem_error(response)
            lines = [line for line in response.content.split(b"\n") if line]
            if not lines:
                raise ExportError(
                    f"the server returned no entries at {cursor} though the log holds {end}",
                    field="start",
                )
            yield from lines
            cursor += len(lines)

    def stored_leaves(self, start: int, end: int) -> None:
        """A server does not expose its leaf nodes."""
        return None

    def registry(self, size: int) -> tuple[list[ParticipantRecord], list[KeyRecord]]:
        """``GET /v1/registry?size=N``."""
        if size not in self._registry:
            self._registry[size] = _registry_from_json(self.client.registry(size))
        return self._registry[size]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """``GET /v1/log/proof/consistency``."""
        return list(self.client.consistency_proof(size1, size2).proof)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """``GET /v1/log/proof/inclusion``."""
        return list(self.client.inclusion_proof(index=index, tree_size=size).proof)

    def upstream_lots(self, lot: str) -> list[str]:
        """``GET /v1/lots/{lot}/trace?direction=back``."""
        trace = self.client.lot_trace(lot, "back")
        return [str(item["lot_id"]) for item in trace["lots"]]

    def lot_indices(self, lot: str) -> list[int]:
        """``GET /v1/lots/{lot}/history``."""
        return [int(item["index"]) for item in self.client.lot_history(lot)["items"]]

    def key_added_at(self, key_id: bytes) -> int | None:
        """From ``GET /v1/registry``."""
        size = self.size()
        for key in self.registry(size)[1]:
            if key.key_id == key_id:
                return key.added_at
        return None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        for attempt in range(_ATTEMPTS):
            try:
                response = self._http.get(path, params=params)
            except httpx.HTTPError as exc:
                if attempt + 1 == _ATTEMPTS:
                    raise TransportError(f"{self._url}{path}: {exc}") from exc
            else:
                if response.status_code < 500 or attempt + 1 == _ATTEMPTS:
                    return response
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _note_size(note: str) -> int:
    try:
        return Checkpoint.from_text(SignedNote.from_text(note).text).size
    except LedgerError as exc:
        raise ExportError(f"the server's checkpoint is malformed: {exc.message}") from exc


def _registry_from_json(body: dict[str, Any]) -> tuple[list[ParticipantRecord], list[KeyRecord]]:
    participants: list[ParticipantRecord] = []
    keys: list[KeyRecord] = []
    try:
        for p in body["participants"]:
            participants.append(
                ParticipantRecord(
                    participant_id=str(p["participant_id"]),
                    profile=dict(p["profile"]),
                    enrolled_at=int(p["enrolled_at"]),
                    operator=bool(p["operator"]),
                )
            )
            for k in p["keys"]:
                revoked = k.get("revoked_at")
                keys.append(
                    KeyRecord(
                        key_id=KeyId(bytes.fromhex(str(k["key_id"]))),
                        participant=str(p["participant_id"]),
                        public=b64decode(str(k["public_key"]), field="public_key"),
                        added_at=int(k["added_at"]),
                        revoked_at=None if revoked is None else int(revoked),
                    )
                )
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"the server's registry is malformed: {exc}") from exc
    keys.sort(key=lambda k: (k.added_at, k.key_id))
    participants.sort(key=lambda p: (p.enrolled_at, p.participant_id))
    return participants, keys


# --------------------------------------------------------------------------- export


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """What an export wrote.

    ``entries`` is what the file holds; ``size`` what the source said it holds
    (they differ only for a damaged source, which the audit then reports).
    """

    path: Path
    entries: int
    checkpoints: int
    resumed_from: int | None
    size: int
    already_complete: bool = False


def export_bundle(
    source: LogSource,
    path: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write (or finish) a ``mandi-bundle`` of ``source`` at ``path``, streaming.

    A file already at ``path`` is treated as a partial export of the same log:
    its header must match the source, its last entry must equal the source's
    entry at that index; then the export goes on from there. An interrupt
    (``KeyboardInterrupt``) leaves a file that the next call resumes.

    Args:
        source: where the log is.
        path: the bundle file.
        progress: called with ``(entries written, total)`` now and then.

    Raises:
        ExportError: the partial file is of another log, or the log changed under it.
        LedgerError: the source failed.
    """
    vkey = source.vkey()
    origin = vkey.split("+", 1)[0]
    if path.exists() and path.stat().st_size > 0:
        return _resume(source, path, origin, vkey, progress)
    checkpoints = source.checkpoints()
    size = max(source.size(), max((c.size for c in checkpoints), default=0))
    checkpoints = [c for c in checkpoints if c.size <= size]
    header = BundleHeader(origin=origin, vkey=vkey, size=size)
    with path.open("wb") as out:
        writer = BundleWriter(out)
        writer.begin(header, checkpoints)
        writer.flush()
        written = _write_entries(source, writer, 0, size, progress)
        writer.finish(*source.registry(size))
    return ExportResult(
        path=path, entries=written, checkpoints=len(checkpoints), resumed_from=None, size=size
    )


def _resume(
    source: LogSource,
    path: Path,
    origin: str,
    vkey: str,
    progress: Callable[[int, int], None] | None,
) -> ExportResult:
    with path.open("rb") as handle:
        try:
            point = resume_point(handle)
        except BundleError as exc:
            raise ExportError(
                f"{path} exists and is not a resumable bundle: {exc.message}; remove it first"
            ) from exc
    header = point.header
    if (header.origin, header.vkey) != (origin, vkey):
        raise ExportError(f"{path} is a bundle of another log ({header.vkey}); remove it first")
    if point.complete:
        return ExportResult(
            path=path,
            entries=header.size,
            checkpoints=point.checkpoints,
            resumed_from=point.next_index,
            size=header.size,
            already_complete=True,
        )
    if source.size() < header.size:
        raise ExportError(
            f"the log now holds {source.size()} entries, fewer than the {header.size} this "
            "partial export began with: it shrank"
        )
    if point.last_entry is not None:
        index = point.next_index - 1
        now = next(source.entry_bytes(index, index + 1), None)
        if now != point.last_entry:
            raise ExportError(
                f"entry {index} of the log differs from the one already exported: the log "
                "changed under the export",
                field="entry",
            )
    with path.open("r+b") as out:
        out.truncate(point.truncate_to)
        out.seek(point.truncate_to)
        writer = BundleWriter(
            out, entries_written=point.next_index, checkpoints_written=point.checkpoints
        )
        written = _write_entries(source, writer, point.next_index, header.size, progress)
        writer.finish(*source.registry(header.size))
    return ExportResult(
        path=path,
        entries=written,
        checkpoints=point.checkpoints,
        resumed_from=point.next_index,
        size=header.size,
    )


def _write_entries(
    source: LogSource,
    writer: BundleWriter,
    start: int,
    end: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    written = start
    try:
        for raw in source.entry_bytes(start, end):
            writer.entry(raw)
            written += 1
            if written % _FLUSH_EVERY == 0:
                writer.flush()
                if progress is not None:
                    progress(written, end)
    finally:
        writer.flush()  # an interrupt keeps every whole line written so far
    if progress is not None:
        progress(written, end)
    # A source that gives fewer or more entries than it said is written as it is:
    # the end line records what the file holds, and the audit reports the rest.
    return written


# --------------------------------------------------------------------------- proof bundles


def build_proof_bundle(source: LogSource, lot: str) -> tuple[ProofBundle, int]:
    """Gather a lot's provenance with inclusion proofs against the newest checkpoint.

    Returns:
        The bundle, and how many statements on those lots were left out because
        no checkpoint covers them yet.

    Raises:
        NotFoundError: ``unknown_lot``.
        ExportError: the source has no checkpoint.
    """
    checkpoints = source.checkpoints()
    if not checkpoints:
        raise ExportError("the log has no checkpoint yet")
    newest = checkpoints[-1]
    size = newest.size
    lots = source.upstream_lots(lot)
    on_lots: dict[int, list[str]] = {}
    for lot_id in lots:
        for index in source.lot_indices(lot_id):
            on_lots.setdefault(index, []).append(lot_id)
    left_out = sum(1 for index in on_lots if index >= size)
    indices = sorted(i for i in on_lots if i < size)
    entries = {i: _entry_bytes(source, i) for i in indices}
    registry = _registry_indices(source, entries, size)
    events = tuple(
        (tuple(on_lots[i]), _tlog_proof(source, i, size, newest.note, entries[i])) for i in indices
    )
    bundle = ProofBundle(
        origin=newest.note.split("\n", 1)[0],
        vkey=source.vkey(),
        lot=lot,
        lots=tuple(lots),
        checkpoint=newest.note,
        registry=tuple(
            _tlog_proof(source, i, size, newest.note, raw) for i, raw in sorted(registry.items())
        ),
        events=events,
    )
    return bundle, left_out


def _entry_bytes(source: LogSource, index: int) -> bytes:
    raw = next(source.entry_bytes(index, index + 1), None)
    if raw is None:
        raise ExportError(f"the source has no entry {index}")
    return raw


def _tlog_proof(source: LogSource, index: int, size: int, note: str, raw: bytes) -> str:
    proof = source.inclusion_proof(index, size)
    return TlogProof(index=index, proof=tuple(proof), checkpoint=note, extra=raw).to_text()


def _registry_indices(source: LogSource, entries: dict[int, bytes], size: int) -> dict[int, bytes]:
    """The registry statements that bind every signer's key, back to the genesis."""
    needed: dict[int, bytes] = {}
    todo = list(entries.values())
    while todo:
        raw = todo.pop()
        statement = Statement.from_bytes(Entry.from_bytes(raw).statement)
        key_ids = [statement.signer]
        if statement.kind == KIND_ROTATE:
            request = statement.body.get("request", {})
            old = request.get("old_key_id") if isinstance(request, dict) else None
            if isinstance(old, str):
                key_ids.append(KeyId(bytes.fromhex(old)))
        if statement.kind == KIND_GENESIS:
            continue
        for key_id in key_ids:
            added = source.key_added_at(key_id)
            if added is None:
                added = 0  # the log key: its statement is the genesis
            if added < size and added not in needed:
                needed[added] = _entry_bytes(source, added)
                todo.append(needed[added])
    needed.setdefault(0, _entry_bytes(source, 0))
    return needed
