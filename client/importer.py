"""``mandi import FILE.csv``: many statements of one kind from a CSV file, all checked first.

**Layout.** One layout per kind: a header row naming the columns, then one
statement per row. The columns are ``time`` (the claimed time, RFC 3339 with
offset) followed by the kind's fields (:data:`client.records.KIND_FIELDS`;
``mandi import --template KIND`` prints the header). Optional columns may be
left out of the header or left empty in a row; list cells separate their items
with ``;``. The kind is given with ``--kind`` or recognised from the header.
Files are UTF-8 (a byte-order mark is ignored), comma-separated, quoted as
usual.

**All rows first.** Every row is checked (:func:`client.records.build_statement`:
the ledger's schema and envelope checks) before anything is signed; if any row
is wrong, :class:`~client.errors.ImportRowsError` lists every bad row with its
line number and column, and nothing is signed, queued or sent.

**Same file, same statements.** Every signed field, the claimed time included,
comes from the row, and Ed25519 signatures are deterministic, so a row always
yields the same statement and event id. Importing a file again queues nothing
new (the outbox is keyed by event id) and, even from another outbox, appends
nothing (the server answers 200 for a statement it holds). No list of imported
files is kept anywhere.

**Then sign, queue, send.** Rows are signed and queued in chunks by one thread
while the main thread pushes the queue to the server (:func:`push_pending`), so
signing overlaps with the server's work. Without a server the statements stay
queued for ``mandi sync``.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from client.errors import ClientError, ImportRowsError, RowError
from client.http import Envelope, MandiClient
from client.outbox import Outbox, PushReport, push_pending
from client.records import KIND_FIELDS, KINDS, TIME_COLUMN, build_statement, column_for
from ledger.errors import EncodingError
from ledger.hashing import KeyId
from ledger.keys import Signer
from ledger.service import MAX_BATCH
from ledger.statements import STATEMENT_DOMAIN

__all__ = [
    "ImportReport",
    "PreparedRow",
    "columns",
    "guess_kind",
    "prepare_file",
    "queue_and_push",
    "template",
]

_CHUNK = MAX_BATCH
"""Rows signed and queued per outbox transaction."""


def columns(kind: str) -> list[str]:
    """The CSV columns of ``kind``: ``time``, then its fields in body order."""
    return [TIME_COLUMN, *(spec.name for spec in KIND_FIELDS[kind])]


def template(kind: str, *, example: bool = False) -> str:
    """The header line of ``kind``'s layout (and an example row when asked), CSV-quoted."""
    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(kind))
    if example:
        writer.writerow(
            ["2026-11-28T09:30:00+05:00", *(spec.example for spec in KIND_FIELDS[kind])]
        )
    return buffer.getvalue()


def guess_kind(header: Sequence[str]) -> str | None:
    """The one kind whose layout fits ``header`` (every required column, no unknown one)."""
    names = set(header)
    fits = [
        kind
        for kind in KINDS
        if TIME_COLUMN in names
        and names <= set(columns(kind))
        and all(spec.name in names for spec in KIND_FIELDS[kind] if spec.required)
    ]
    return fits[0] if len(fits) == 1 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedRow:
    """A checked row: its line number and the canonical bytes of its statement (unsigned)."""

    line: int
    statement: bytes


def prepare_file(
    path: Path, *, kind: str | None, origin: str, signer_key: bytes
) -> tuple[str, list[PreparedRow]]:
    """Read and check every row of a CSV file; sign nothing.

    Args:
        path: the CSV file.
        kind: its kind, or None to recognise it from the header.
        origin: the log the statements are for.
        signer_key: the key id that will sign them (it is part of each statement).

    Returns:
        The kind and every row's statement bytes, in file order.

    Raises:
        ImportRowsError: the header or any row is wrong; ``rows`` lists every
            problem with its line number.
        ClientError: the file cannot be read.
    """
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ClientError(f"{path}: cannot read: {exc.strerror}", code="bad_file") from exc
    with handle:
        try:
            return _prepare(handle, path, kind, origin, signer_key)
        except UnicodeDecodeError as exc:
            raise ImportRowsError(
                f"{path}: not UTF-8 text",
                [RowError(line=0, column=None, code="bad_encoding", message=str(exc))],
            ) from exc
        except csv.Error as exc:
            raise ImportRowsError(
                f"{path}: not a readable CSV file",
                [RowError(line=0, column=None, code="bad_csv", message=str(exc))],
            ) from exc


def _prepare(
    handle: Any, path: Path, kind: str | None, origin: str, signer_key: bytes
) -> tuple[str, list[PreparedRow]]:
    reader = csv.reader(handle)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise ImportRowsError(
            f"{path}: empty file",
            [RowError(line=1, column=None, code="no_header", message="the file has no header row")],
        ) from None
    kind = kind or guess_kind(header)
    if kind is None:
        raise ImportRowsError(
            f"{path}: give --kind",
            [
                RowError(
                    line=1,
                    column=None,
                    code="unknown_layout",
                    message="the header fits no single kind's layout; give --kind KIND "
                    "(`mandi import --template KIND` prints each header)",
                )
            ],
        )
    errors = _header_errors(kind, header)
    if errors:
        raise ImportRowsError(f"{path}: the header does not fit the {kind} layout", errors)
    rows: list[PreparedRow] = []
    key = KeyId(bytes(signer_key))
    for line, cells in _records(reader):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            errors.append(
                RowError(
                    line=line,
                    column=None,
                    code="bad_row",
                    message=f"{len(cells)} cells, the header has {len(header)}",
                )
            )
            continue
        values = dict(zip(header, cells, strict=True))
        time = values.pop(TIME_COLUMN).strip()
        try:
            statement = build_statement(kind, values, time=time, origin=origin, signer=key)
        except EncodingError as exc:
            errors.append(
                RowError(
                    line=line,
                    column=column_for(kind, exc.field),
                    code=exc.code,
                    message=exc.message,
                )
            )
            continue
        rows.append(PreparedRow(line=line, statement=statement.raw))
    if errors:
        raise ImportRowsError(
            f"{path}: {len(errors)} invalid rows; nothing was signed or sent", errors
        )
    return kind, rows


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on (a quoted cell may span lines)."""
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        yield start, cells


def _header_errors(kind: str, header: Sequence[str]) -> list[RowError]:
    known = columns(kind)
    errors = []
    seen: set[str] = set()
    for name in header:
        if name in seen:
            errors.append(
                RowError(line=1, column=name, code="duplicate_column", message="listed twice")
            )
        seen.add(name)
        if name not in known:
            errors.append(
                RowError(
                    line=1,
                    column=name,
                    code="unknown_column",
                    message=f"not a {kind} column (columns: {', '.join(known)})",
                )
            )
    required = [TIME_COLUMN, *(s.name for s in KIND_FIELDS[kind] if s.required)]
    for name in required:
        if name not in seen:
            errors.append(
                RowError(
                    line=1,
                    column=name,
                    code="missing_column",
                    message=f"the {kind} layout needs it",
                )
            )
    return errors


@dataclass(slots=True)
class ImportReport:
    """What an import did."""

    kind: str
    rows: int
    queued: int = 0
    """Statements new to the outbox."""
    push: PushReport | None = None
    """What the push to the server did (None without a server)."""
    error: ClientError | None = None
    """Why the push stopped early (the statements stay queued)."""


def queue_and_push(
    rows: Sequence[PreparedRow],
    *,
    kind: str,
    source: str,
    signer: Signer,
    outbox_path: Path,
    client: MandiClient | None,
    on_signed: Callable[[int], None] | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> ImportReport:
    """Sign every row, queue it, and (with a client) push the queue while signing goes on.

    Args:
        rows: the checked rows (:func:`prepare_file`).
        kind: their kind.
        source: names the file in each item's ``source`` (``FILE:LINE``).
        signer: the key named in the statements.
        outbox_path: the outbox database.
        client: the server, or None to only queue.
        on_signed: told how many rows are signed and queued so far.
        on_sent: told how many statements the server has answered so far.

    Returns:
        The report; a push that stopped early (server unreachable) leaves the
        rest queued and sets ``error``.
    """
    report = ImportReport(kind=kind, rows=len(rows))
    more = threading.Event()
    more.set()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with Outbox(outbox_path) as queue:
                done = 0
                for begin in range(0, len(rows), _CHUNK):
                    chunk = rows[begin : begin + _CHUNK]
                    items = [
                        (
                            Envelope(
                                statement=row.statement,
                                signature=signer.sign(_signing_input(row.statement)),
                            ),
                            kind,
                            f"{source}:{row.line}",
                        )
                        for row in chunk
                    ]
                    report.queued += queue.add_many(items)
                    done += len(chunk)
                    if on_signed is not None:
                        on_signed(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)
        finally:
            more.clear()

    if client is None:
        produce()
        if failure:
            raise failure[0]
        return report
    producer = threading.Thread(target=produce, name="mandi-import-sign", daemon=True)
    producer.start()
    try:
        with Outbox(outbox_path) as queue:
            report.push = push_pending(queue, client, progress=on_sent, more_coming=more)
    except ClientError as exc:
        report.error = exc
    finally:
        producer.join()
    if failure:
        raise failure[0]
    return report


def _signing_input(statement: bytes) -> bytes:
    # What Statement.signing_input() covers, without parsing the bytes again.
    return STATEMENT_DOMAIN + statement
