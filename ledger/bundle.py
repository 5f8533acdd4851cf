"""Portable export bundles and per-lot proof bundles: their byte formats, read and written.

An **export bundle** (``mandi-bundle`` version 1) is a whole log in one file an
auditor can keep: JSON Lines, UTF-8, each line one RFC 8785 canonical JSON object
and a LF, in this order::

    header        {"format":"mandi-bundle","origin":...,"size":N,"version":1,"vkey":...}
    checkpoints   {"note":...,"size":S,"type":"checkpoint"}          ascending size, S <= N
    entries       {"entry":base64(entry bytes),"type":"entry"}       index 0 .. N-1, in order
    registry      {"type":"participant",...} then {"type":"key",...} the registry at size N
    end           {"checkpoints":M,"entries":N,"type":"end"}

Entries carry the exact canonical entry bytes (section 5 of docs/protocol.md),
base64 so that no JSON tool can re-serialise them on the way. The registry
history is implied by the entries (an audit replays it); the registry section is
the operator's claim of where it ended, which an audit compares with its replay.
Checkpoints come before the entries so that one streaming pass meets each
checkpoint's size with the checkpoint already in hand. A file without the
``end`` line is a partial export (:func:`resume_point` finds where to go on).

A **proof bundle** (``mandi-proof`` version 1) is one canonical JSON object: a
lot, its upstream lots, one signed checkpoint, and for every statement on those
lots (and every registry statement needed to know its signer's key) a C2SP
``tlog-proof`` (c2sp.org/tlog-proof) whose ``extra`` line carries the entry
bytes. :func:`verify_proof_bundle` checks it offline with the log's vkey.

This module owns formats and streaming over open binary files. It opens no
database and no connection: :mod:`client.export` feeds it from a store or a
server, :mod:`ledger.audit_parallel` audits what it reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ledger.admission import LogIdentity, admit, resolve_signer
from ledger.audit import ReplayState
from ledger.checkpoint import NoteVerifier, VerifiedCheckpoint, open_checkpoint
from ledger.encoding import canonical_bytes, decode_json
from ledger.errors import EncodingError, LedgerError, SignatureError
from ledger.hashing import KeyId, leaf_hash
from ledger.keys import b64decode, b64encode
from ledger.merkle import verify_inclusion
from ledger.registry import KeyRecord, ParticipantRecord
from ledger.statements import Entry, SignedStatement

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "PROOF_FORMAT",
    "PROOF_VERSION",
    "TLOG_PROOF_HEADER",
    "BundleCheckpoint",
    "BundleError",
    "BundleHeader",
    "BundleReader",
    "BundleTail",
    "BundleWriter",
    "ProofBundle",
    "ProofEvent",
    "ProofReport",
    "ResumePoint",
    "TlogProof",
    "checkpoint_line",
    "end_line",
    "entry_line",
    "header_line",
    "key_line",
    "parse_entry_line",
    "participant_line",
    "resume_point",
    "verify_proof_bundle",
]

BUNDLE_FORMAT = "mandi-bundle"
BUNDLE_VERSION = 1
PROOF_FORMAT = "mandi-proof"
PROOF_VERSION = 1
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"

_ENTRY_PREFIX = b'{"entry":"'
_ENTRY_SUFFIX = b'","type":"entry"}'
_TAIL_BLOCK = 64 * 1024


class BundleError(EncodingError):
    """A bundle or proof bundle that breaks its format (names the line or field)."""

    code = "bad_bundle"


# --------------------------------------------------------------------------- lines


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleHeader:
    """The first line: what log this is and how many entries the bundle holds."""

    origin: str
    vkey: str
    size: int

    def to_line(self) -> bytes:
        """The canonical header line, LF included."""
        return header_line(self.origin, self.vkey, self.size)

    @classmethod
    def from_line(cls, line: bytes) -> BundleHeader:
        """Parse a header line.

        Raises:
            BundleError: not a ``mandi-bundle`` header of a known version.
        """
        obj = _json_object(line, "header")
        if obj.get("format") != BUNDLE_FORMAT:
            raise BundleError("line 1 is not a mandi-bundle header", field="format")
        if obj.get("version") != BUNDLE_VERSION:
            raise BundleError(
                f"bundle version {obj.get('version')!r} is not {BUNDLE_VERSION}", field="version"
            )
        origin, vkey, size = obj.get("origin"), obj.get("vkey"), obj.get("size")
        if not isinstance(origin, str) or not isinstance(vkey, str):
            raise BundleError("header: origin and vkey must be strings", field="origin")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError("header: size must be a non-negative integer", field="size")
        return cls(origin=origin, vkey=vkey, size=size)


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleCheckpoint:
    """A checkpoint line: the tree size and the whole signed note, every signature line kept."""

    size: int
    note: str


def header_line(origin: str, vkey: str, size: int) -> bytes:
    """``{"format":"mandi-bundle","origin":...,"size":N,"version":1,"vkey":...}`` LF."""
    return _line(
        {
            "format": BUNDLE_FORMAT,
            "origin": origin,
            "size": size,
            "version": BUNDLE_VERSION,
            "vkey": vkey,
        }
    )


def checkpoint_line(size: int, note: str) -> bytes:
    """A checkpoint line; ``note`` is the signed note exactly as stored."""
    return _line({"note": note, "size": size, "type": "checkpoint"})


def entry_line(entry_bytes: bytes) -> bytes:
    """An entry line for the exact canonical entry bytes."""
    return _ENTRY_PREFIX + b64encode(entry_bytes).encode("ascii") + _ENTRY_SUFFIX + b"\n"


def participant_line(record: ParticipantRecord) -> bytes:
    """A registry participant line."""
    return _line(
        {
            "enrolled_at": record.enrolled_at,
            "operator": record.operator,
            "participant_id": record.participant_id,
            "profile": dict(record.profile),
            "type": "participant",
        }
    )


def key_line(record: KeyRecord) -> bytes:
    """A registry key line (key id hex, public key base64)."""
    return _line(
        {
            "added_at": record.added_at,
            "key_id": record.key_id.hex(),
            "participant": record.participant,
            "public": b64encode(record.public),
            "revoked_at": record.revoked_at,
            "type": "key",
        }
    )


def end_line(entries: int, checkpoints: int) -> bytes:
    """The last line: how many entries and checkpoints the bundle holds."""
    return _line({"checkpoints": checkpoints, "entries": entries, "type": "end"})


def parse_entry_line(line: bytes) -> bytes:
    """The entry bytes an entry line carries (base64-decoded, canonical base64 required).

    Raises:
        BundleError: not an entry line.
    """
    body = line.rstrip(b"\n")
    if not (body.startswith(_ENTRY_PREFIX) and body.endswith(_ENTRY_SUFFIX)):
        raise BundleError(
            'not an entry line {"entry":"<base64>","type":"entry"}', code="bundle_malformed"
        )
    text = body[len(_ENTRY_PREFIX) : -len(_ENTRY_SUFFIX)]
    try:
        return b64decode(text.decode("ascii"), field="entry")
    except (EncodingError, UnicodeDecodeError) as exc:
        raise BundleError(
            "entry: not canonical base64", code="bundle_malformed", field="entry"
        ) from exc


def _line(obj: Mapping[str, Any]) -> bytes:
    return canonical_bytes(obj) + b"\n"


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        obj = decode_json(line.rstrip(b"\n"))
    except EncodingError as exc:
        raise BundleError(f"{what} line: {exc.message}", field=what) from exc
    if not isinstance(obj, dict):
        raise BundleError(f"{what} line: not a JSON object", field=what)
    return obj


def _is_entry_line(line: bytes) -> bool:
    return line.startswith(_ENTRY_PREFIX)


# --------------------------------------------------------------------------- writing


class BundleWriter:
    """Writes a bundle section by section to a binary file, streaming.

    The caller writes the header and checkpoints (:meth:`begin`), then entries
    in index order (:meth:`entry`), then :meth:`finish` with the registry. Each
    line is written whole; :meth:`flush` makes what was written durable, so an
    interrupted export leaves a file :func:`resume_point` can continue.

    Args:
        out: an open binary file, positioned where the next line goes.
        entries_written: entries already in the file (when resuming).
        checkpoints_written: checkpoint lines already in the file.
    """

    def __init__(self, out: IO[bytes], *, entries_written: int = 0, checkpoints_written: int = 0):
        self._out = out
        self.entries_written = entries_written
        self.checkpoints_written = checkpoints_written

    def begin(self, header: BundleHeader, checkpoints: Iterable[BundleCheckpoint]) -> None:
        """Write the header and the checkpoint lines (sizes ascending, at most the header's)."""
        self._out.write(header.to_line())
        last = -1
        for cp in checkpoints:
            if cp.size <= last or cp.size > header.size:
                raise ValueError("checkpoints must have ascending sizes <= the header's size")
            last = cp.size
            self._out.write(checkpoint_line(cp.size, cp.note))
            self.checkpoints_written += 1

    def entry(self, entry_bytes: bytes) -> None:
        """Write the next entry's exact bytes."""
        self._out.write(entry_line(entry_bytes))
        self.entries_written += 1

    def finish(self, participants: Iterable[ParticipantRecord], keys: Iterable[KeyRecord]) -> None:
        """Write the registry section and the end line, then flush."""
        for participant in participants:
            self._out.write(participant_line(participant))
        for key in keys:
            self._out.write(key_line(key))
        self._out.write(end_line(self.entries_written, self.checkpoints_written))
        self.flush()

    def flush(self) -> None:
        """Push written lines to the operating system and to disk."""
        self._out.flush()
        # A BytesIO (tests) has no file descriptor to sync.
        with contextlib.suppress(OSError, ValueError):
            os.fsync(self._out.fileno())


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleTail:
    """What follows the entries: the registry the operator claims, and the end line."""

    participants: tuple[ParticipantRecord, ...]
    keys: tuple[KeyRecord, ...]
    end: tuple[int, int] | None
    """``(entries, checkpoints)`` from the end line; None when the file has none."""
    problems: tuple[str, ...] = ()


class BundleReader:
    """Reads a bundle from a binary file: header and checkpoints at once, entries streamed.

    Memory holds the checkpoints and one line at a time. Entry lines are handed
    out raw (:meth:`entry_lines`) for a verifier that decodes them itself, or as
    :class:`~ledger.statements.Entry` values (:meth:`entries`).

    Raises:
        BundleError: the header or a checkpoint line is malformed.
    """

    def __init__(self, source: IO[bytes]) -> None:
        self._file = source
        first = source.readline()
        if not first:
            raise BundleError("empty bundle", field="header")
        self.header = BundleHeader.from_line(first)
        checkpoints: list[BundleCheckpoint] = []
        while True:
            offset = source.tell()
            line = source.readline()
            if not line or _is_entry_line(line):
                break
            obj = _json_object(line, "checkpoint")
            if obj.get("type") != "checkpoint":
                break
            size, note = obj.get("size"), obj.get("note")
            if not isinstance(size, int) or isinstance(size, bool) or not isinstance(note, str):
                raise BundleError("checkpoint line: needs size and note", field="checkpoint")
            checkpoints.append(BundleCheckpoint(size=size, note=note))
        self.checkpoints: tuple[BundleCheckpoint, ...] = tuple(checkpoints)
        self._entries_offset = offset
        self._tail_offset: int | None = None

    def entry_lines(self, start: int = 0) -> Iterator[bytes]:
        """The raw entry lines from index ``start`` on (found by bisection when > 0).

        Stops at the first line that is not an entry line, and remembers where
        the registry section begins.
        """
        handle = self._file
        handle.seek(self._seek_entry(start) if start else self._entries_offset)
        while True:
            offset = handle.tell()
            line = handle.readline()
            if not line or not _is_entry_line(line):
                self._tail_offset = offset
                return
            yield line

    def entries(self, start: int = 0) -> Iterator[Entry]:
        """Entries from index ``start`` on, decoded.

        Raises:
            BundleError, EncodingError: a malformed entry line.
        """
        for line in self.entry_lines(start):
            yield Entry.from_bytes(parse_entry_line(line))

    def tail(self) -> BundleTail:
        """The registry section and the end line (reads past the entries if needed)."""
        if self._tail_offset is None:
            for _ in self.entry_lines(self._skip_to_last_entries()):
                pass
        assert self._tail_offset is not None
        self._file.seek(self._tail_offset)
        participants: list[ParticipantRecord] = []
        keys: list[KeyRecord] = []
        end: tuple[int, int] | None = None
        problems: list[str] = []
        for number, line in enumerate(self._file):
            try:
                obj = _json_object(line, "registry")
                kind = obj.get("type")
                if end is not None:
                    problems.append("lines after the end line")
                    break
                if kind == "participant":
                    participants.append(_participant_from(obj))
                elif kind == "key":
                    keys.append(_key_from(obj))
                elif kind == "end":
                    end = (int(obj["entries"]), int(obj["checkpoints"]))
                else:
                    problems.append(f"unexpected line of type {kind!r} after the entries")
            except (LedgerError, KeyError, TypeError, ValueError) as exc:
                problems.append(f"line {number + 1} after the entries: {exc}")
        return BundleTail(
            participants=tuple(participants), keys=tuple(keys), end=end, problems=tuple(problems)
        )

    def _skip_to_last_entries(self) -> int:
        # Bisect to the header's size: lands on the first non-entry line quickly.
        return self.header.size if self.header.size else 0

    def _seek_entry(self, index: int) -> int:
        """The file offset of entry line ``index``, by bisection over the entry section.

        Entry lines are in index order in a well-formed bundle; in a damaged one
        the auditor's chain and index checks flag whatever this lands on.
        """
        handle = self._file
        handle.seek(0, os.SEEK_END)
        lo, hi = self._entries_offset, handle.tell()
        # Invariant: the entry at `lo` (a line start) has index < `index`, or lo is the start.
        while hi - lo > 4096:
            mid = (lo + hi) // 2
            handle.seek(mid)
            handle.readline()  # skip to the next line start
            start = handle.tell()
            found = _line_index(handle.readline())
            if found is None or found >= index:
                hi = mid
            else:
                lo = start
        handle.seek(lo)
        while True:
            offset = handle.tell()
            line = handle.readline()
            found = _line_index(line)
            if found is None or found >= index:
                return offset


def _line_index(line: bytes) -> int | None:
    """The index of the entry an entry line carries; None for any other line."""
    if not line.startswith(_ENTRY_PREFIX):
        return None
    try:
        return Entry.from_bytes(parse_entry_line(line)).index
    except LedgerError:
        return None


def _participant_from(obj: Mapping[str, Any]) -> ParticipantRecord:
    profile = obj["profile"]
    if not isinstance(profile, dict):
        raise BundleError("participant: profile must be an object", field="profile")
    return ParticipantRecord(
        participant_id=str(obj["participant_id"]),
        profile=profile,
        enrolled_at=int(obj["enrolled_at"]),
        operator=bool(obj["operator"]),
    )


def _key_from(obj: Mapping[str, Any]) -> KeyRecord:
    revoked = obj.get("revoked_at")
    return KeyRecord(
        key_id=KeyId(bytes.fromhex(str(obj["key_id"]))),
        participant=str(obj["participant"]),
        public=b64decode(str(obj["public"]), field="public"),
        added_at=int(obj["added_at"]),
        revoked_at=None if revoked is None else int(revoked),
    )


# --------------------------------------------------------------------------- resuming


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumePoint:
    """Where an interrupted export goes on.

    Attributes:
        header: the partial file's header.
        checkpoints: how many checkpoint lines it holds.
        next_index: the index of the next entry to write.
        truncate_to: the byte offset to cut the file at before appending (drops
            a half-written line, or a registry section written before a crash).
        last_entry: the bytes of the last complete entry, to compare with the
            source (None when no entry was written).
        complete: the file already ends with a valid end line.
    """

    header: BundleHeader
    checkpoints: int
    next_index: int
    truncate_to: int
    last_entry: bytes | None
    complete: bool


def resume_point(source: IO[bytes]) -> ResumePoint:
    """Examine a partial bundle: validate its header and tail, and say where to go on.

    Reads the header and checkpoints from the start and the last complete lines
    from the end (a bounded amount, whatever the file size).

    Raises:
        BundleError: the file is not a bundle, or its last entry line is damaged.
    """
    reader = BundleReader(source)
    source.seek(0, os.SEEK_END)
    size = source.tell()
    if size <= reader._entries_offset:
        return ResumePoint(
            header=reader.header,
            checkpoints=len(reader.checkpoints),
            next_index=0,
            truncate_to=reader._entries_offset,
            last_entry=None,
            complete=False,
        )
    # Walk back over complete lines until the last entry line.
    end = size
    source.seek(end - 1)
    if source.read(1) != b"\n":
        end = _previous_line_start(source, end)  # cut the half-written last line
    complete = False
    cursor = end
    while cursor > reader._entries_offset:
        start = _previous_line_start(source, cursor)
        source.seek(start)
        line = source.read(cursor - start)
        if line.startswith(_ENTRY_PREFIX):
            try:
                entry_bytes = parse_entry_line(line)
                entry = Entry.from_bytes(entry_bytes)
            except LedgerError as exc:
                raise BundleError(
                    f"the last entry line of the partial bundle is damaged: {exc.message}"
                ) from exc
            return ResumePoint(
                header=reader.header,
                checkpoints=len(reader.checkpoints),
                next_index=entry.index + 1,
                truncate_to=cursor,
                last_entry=entry_bytes,
                complete=complete,
            )
        if cursor == end and b'"type":"end"' in line:
            complete = True
        cursor = start
    return ResumePoint(
        header=reader.header,
        checkpoints=len(reader.checkpoints),
        next_index=0,
        truncate_to=reader._entries_offset,
        last_entry=None,
        complete=complete,
    )


def _previous_line_start(source: IO[bytes], end: int) -> int:
    """Offset of the start of the line that ends (with its LF) at ``end``."""
    pos = end - 1  # skip the LF that ends this line
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        source.seek(pos - step)
        block = source.read(step)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return pos - step + cut + 1
        pos -= step
    return 0


# --------------------------------------------------------------------------- tlog-proof


@dataclass(frozen=True, slots=True, kw_only=True)
class TlogProof:
    """One C2SP ``tlog-proof``: an index, its inclusion proof, extra data and the checkpoint.

    Mandi puts the entry's exact bytes in ``extra``, so a proof is self-contained:
    the record hash is ``leaf_hash(extra)``.
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def to_text(self) -> str:
        """The text form (c2sp.org/tlog-proof, "Format")."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def from_text(cls, text: str) -> TlogProof:
        """Parse the text form strictly.

        Raises:
            BundleError: not a ``c2sp.org/tlog-proof@v1`` text.
        """
        head, sep, checkpoint = text.partition("\n\n")
        if not sep:
            raise BundleError("tlog-proof: no empty line before the checkpoint", field="proof")
        lines = head.split("\n")
        if lines[0] != TLOG_PROOF_HEADER:
            raise BundleError(f"tlog-proof: first line must be {TLOG_PROOF_HEADER}", field="proof")
        position = 1
        extra = None
        if position < len(lines) and lines[position].startswith("extra "):
            extra = b64decode(lines[position][6:], field="extra")
            position += 1
        if position >= len(lines) or not lines[position].startswith("index "):
            raise BundleError("tlog-proof: missing index line", field="index")
        digits = lines[position][6:]
        if not digits.isascii() or not digits.isdigit() or (digits != "0" and digits[0] == "0"):
            raise BundleError("tlog-proof: index must be ASCII decimal", field="index")
        hashes = []
        for line in lines[position + 1 :]:
            value = b64decode(line, field="proof")
            if len(value) != 32:
                raise BundleError("tlog-proof: a proof hash is not 32 bytes", field="proof")
            hashes.append(value)
        return cls(index=int(digits), proof=tuple(hashes), checkpoint=checkpoint, extra=extra)


# --------------------------------------------------------------------------- proof bundles


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofBundle:
    """A lot's provenance, provable offline: its events and its upstream lots' events.

    Attributes:
        origin / vkey: the log (informational; the verifier brings its own vkey).
        lot: the lot asked about; ``lots`` it and its upstream lots, root first.
        checkpoint: the one signed checkpoint every proof is against.
        registry: tlog-proofs of the registry statements that bind the signers' keys.
        events: ``(lots, tlog-proof)`` per statement on those lots, in log order.
    """

    origin: str
    vkey: str
    lot: str
    lots: tuple[str, ...]
    checkpoint: str
    registry: tuple[str, ...]
    events: tuple[tuple[tuple[str, ...], str], ...]

    def to_bytes(self) -> bytes:
        """Canonical JSON and a LF."""
        return _line(
            {
                "checkpoint": self.checkpoint,
                "events": [{"lots": list(lots), "proof": p} for lots, p in self.events],
                "format": PROOF_FORMAT,
                "lot": self.lot,
                "lots": list(self.lots),
                "origin": self.origin,
                "registry": list(self.registry),
                "version": PROOF_VERSION,
                "vkey": self.vkey,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ProofBundle:
        """Parse a proof bundle.

        Raises:
            BundleError: not a ``mandi-proof`` of a known version, or a field of the wrong type.
        """
        obj = _json_object(data, "proof bundle")
        if obj.get("format") != PROOF_FORMAT or obj.get("version") != PROOF_VERSION:
            raise BundleError(f"not a {PROOF_FORMAT} version {PROOF_VERSION} file", field="format")
        try:
            events = tuple(
                (tuple(str(x) for x in item["lots"]), _str(item["proof"])) for item in obj["events"]
            )
            return cls(
                origin=_str(obj["origin"]),
                vkey=_str(obj["vkey"]),
                lot=_str(obj["lot"]),
                lots=tuple(_str(x) for x in obj["lots"]),
                checkpoint=_str(obj["checkpoint"]),
                registry=tuple(_str(x) for x in obj["registry"]),
                events=events,
            )
        except (KeyError, TypeError) as exc:
            raise BundleError(f"proof bundle: missing or malformed field {exc}") from exc


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofEvent:
    """One statement a proof bundle proves: where it is, what it says, who signed it."""

    index: int
    lots: tuple[str, ...]
    kind: str
    participant: str
    time: str
    event_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofReport:
    """What :func:`verify_proof_bundle` established, or the problems it found."""

    lot: str
    lots: tuple[str, ...]
    tree_size: int | None
    witnesses: tuple[str, ...]
    events: tuple[ProofEvent, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every proof and signature held."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "lot": self.lot,
            "lots": list(self.lots),
            "tree_size": self.tree_size,
            "witnesses": list(self.witnesses),
            "events": [
                {
                    "index": e.index,
                    "lots": list(e.lots),
                    "kind": e.kind,
                    "participant": e.participant,
                    "time": e.time,
                    "event_id": e.event_id,
                }
                for e in self.events
            ],
            "problems": list(self.problems),
        }

    def to_text(self) -> str:
        """A short human report."""
        head = (
            f"lot {self.lot}: {len(self.events)} statements on {len(self.lots)} lots, "
            f"checkpoint size {self.tree_size}"
        )
        if self.witnesses:
            head += f", cosigned by {', '.join(self.witnesses)}"
        lines = [head]
        if self.ok:
            lines.append(
                "OK: every statement is in the signed log and signed by a key the log registered"
            )
        else:
            lines.append(f"FAILED: {len(self.problems)} problems")
            lines.extend(f"  {p}" for p in self.problems)
        for e in self.events:
            lines.append(f"  {e.index:>8}  {e.kind:<10} {e.participant:<20} {', '.join(e.lots)}")
        return "\n".join(lines)


def verify_proof_bundle(
    data: bytes,
    log_verifier: NoteVerifier,
    witnesses: Sequence[NoteVerifier] = (),
    quorum: int = 0,
) -> ProofReport:
    """Check a proof bundle offline against the log's vkey (and witnesses, if given).

    Checks: the checkpoint's log signature (and a quorum of witness
    cosignatures); every tlog-proof is against that same checkpoint, carries
    canonical entry bytes at its index, and proves inclusion (RFC 9162
    2.1.3.2); the registry statements replay through the admission gate from
    the genesis on; and each event's signature verifies with the key that
    registry holds for its signer at its index.

    What it cannot show: that no revocation lies between a key's enrolment and
    an event (only a full audit sees every entry), and that the domain rules
    held (the lots' state needs the whole log). It also takes the bundle's word
    for which lot an event belongs to.

    Returns:
        The report; ``report.ok`` only when nothing failed.

    Raises:
        BundleError: the file is not a proof bundle at all.
    """
    bundle = ProofBundle.from_bytes(data)
    problems: list[str] = []
    try:
        verified = open_checkpoint(bundle.checkpoint, log_verifier, witnesses, quorum)
    except LedgerError as exc:
        return ProofReport(
            lot=bundle.lot,
            lots=bundle.lots,
            tree_size=None,
            witnesses=(),
            events=(),
            problems=(f"checkpoint: {exc.code}: {exc.message}",),
        )
    # (index, lots, entry); lots is None for a registry statement.
    proven: list[tuple[int, tuple[str, ...] | None, Entry]] = []
    items: list[tuple[tuple[str, ...] | None, str]] = [(None, t) for t in bundle.registry]
    items.extend(bundle.events)
    for lots, text in items:
        entry = _proven_entry(text, bundle.checkpoint, verified, problems)
        if entry is not None:
            proven.append((entry.index, lots, entry))
    proven.sort(key=lambda item: (item[0], item[1] is not None))
    log = LogIdentity(origin=log_verifier.name, log_key=log_verifier.public)
    state = ReplayState()
    events: list[ProofEvent] = []
    for index, lots, entry in proven:
        try:
            signed = SignedStatement.from_bytes(entry.statement, entry.signature)
            if lots is None:
                admission = admit(
                    signed, index=index, accepted_ms=entry.accepted_ms, log=log, view=state
                )
                state.registry.apply(admission.changes)
                continue
            key, record = resolve_signer(signed, index=index, log=log, view=state)
            key.verify(signed.signature, signed.statement.signing_input())
        except SignatureError as exc:
            problems.append(f"index {index}: bad_signature: {exc.message}")
            continue
        except LedgerError as exc:
            problems.append(f"index {index}: {exc.code}: {exc.message}")
            continue
        events.append(
            ProofEvent(
                index=index,
                lots=lots,
                kind=signed.statement.kind,
                participant=record.participant if record is not None else "(log)",
                time=signed.statement.time,
                event_id=signed.event_id.hex(),
            )
        )
    return ProofReport(
        lot=bundle.lot,
        lots=bundle.lots,
        tree_size=verified.checkpoint.size,
        witnesses=verified.witnesses_verified,
        events=tuple(events),
        problems=tuple(problems),
    )


def _proven_entry(
    text: str, note: str, verified: VerifiedCheckpoint, problems: list[str]
) -> Entry | None:
    try:
        proof = TlogProof.from_text(text)
    except LedgerError as exc:
        problems.append(f"proof: {exc.message}")
        return None
    where = f"index {proof.index}"
    if proof.checkpoint != note:
        problems.append(f"{where}: proof is against another checkpoint than the bundle's")
        return None
    if proof.extra is None:
        problems.append(f"{where}: proof carries no entry bytes (extra line)")
        return None
    try:
        entry = Entry.from_bytes(proof.extra)
        if entry.index != proof.index:
            problems.append(f"{where}: the entry bytes are those of index {entry.index}")
            return None
        cp = verified.checkpoint
        verify_inclusion(leaf_hash(proof.extra), proof.index, cp.size, proof.proof, cp.root_hash)
    except LedgerError as exc:
        problems.append(f"{where}: {exc.code}: {exc.message}")
        return None
    return entry
