"""`mandi admin personal`: personal data kept off the log, over a database.

``set`` stores a participant's clear value and salt once they open the
commitment in the participant's signed profile; ``erase`` deletes them on a
deletion request. Neither command writes to the log, and neither ever prints a
value.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ledger.domain.personal import SALT_SIZE
from ledger.errors import LedgerError
from ledger.service import Ledger

# ledger.datadir and ledger.storage.sql (SQLAlchemy, Alembic) are imported in
# _ledger, the one place that opens a database: `mandi` must start fast.

__all__ = ["personal_app"]

personal_app = typer.Typer(
    help="Personal data kept off the log: store a committed value, erase it on request.",
    no_args_is_help=True,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ParticipantArg = Annotated[str, typer.Argument(help="Participant id.")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Data directory (default database).")]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy database URL.", envvar="MANDI_DATABASE_URL"),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show tracebacks on errors.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"mandi: error: {message}", markup=False, highlight=False)
    return typer.Exit(code)


@contextmanager
def _ledger(data_dir: Path, db: str | None, verbose: bool) -> Iterator[Ledger]:
    from ledger.datadir import resolve_db_url
    from ledger.storage.sql import SqlStore

    try:
        store = SqlStore.open(resolve_db_url(data_dir, db))
    except LedgerError as exc:
        if verbose:
            raise
        raise _fail(f"{exc.code}: {exc.message}") from exc
    try:
        yield Ledger.reader(store)
    except LedgerError as exc:
        if verbose:
            raise
        field = f" [{exc.field}]" if exc.field else ""
        raise _fail(f"{exc.code}{field}: {exc.message}") from exc
    finally:
        store.close()


@personal_app.command("set")
def set_command(
    participant: ParticipantArg,
    field: Annotated[str, typer.Option("--field", help="name, phone or national_id.")],
    value: Annotated[
        str,
        typer.Option(
            "--value", help="The clear value, exactly as committed ('-': read it from stdin)."
        ),
    ],
    salt: Annotated[
        str, typer.Option("--salt", help=f"The value's salt: {2 * SALT_SIZE} hex digits.")
    ],
    public: Annotated[
        bool, typer.Option("--public", help="The participant allows it on the public page.")
    ] = False,
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Store a personal value off the log, once it opens the profile's commitment."""
    try:
        salt_bytes = bytes.fromhex(salt)
    except ValueError:
        salt_bytes = b""
    if len(salt_bytes) != SALT_SIZE:
        raise _fail(f"--salt must be {2 * SALT_SIZE} hex digits", 2)
    if value == "-":
        value = sys.stdin.readline().rstrip("\r\n")
    with _ledger(data_dir, db, verbose) as ledger:
        ledger.put_personal(participant, field, value, salt_bytes, public)
    shown = "public" if public else "not public"
    out.print(f"stored {field} of {participant} off the log ({shown})", highlight=False)


@personal_app.command("erase")
def erase_command(
    participant: ParticipantArg,
    field: Annotated[
        str | None, typer.Option("--field", help="Erase only this field (default: all).")
    ] = None,
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Erase a participant's off-log personal values; the log is unchanged and still verifies."""
    with _ledger(data_dir, db, verbose) as ledger:
        erased = ledger.erase_personal(participant, field)
    what = field or "personal"
    out.print(f"erased {erased} {what} value(s) of {participant}", highlight=False)
