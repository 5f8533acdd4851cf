"""The `mandi` command: one Typer app, commands grouped by audience.

Every command catches :class:`~ledger.errors.LedgerError` once and prints a
one-line message naming the field and the rule, then exits non-zero (1; 2 for
usage errors). ``--verbose`` re-raises for a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from client.cli.audit import export_command, proof_command, verify_command
from client.cli.logcmd import log_app
from client.cli.lots import history_command, lots_command, trace_command
from client.cli.personal import personal_app
from client.cli.qr import labels_command, qr_command
from client.cli.record import admin_enrol_command, record_app, register_command
from client.cli.serve import serve_command
from client.cli.sync import (
    checkpoint_from_server,
    cli_errors,
    import_command,
    keys_app,
    outbox_command,
    sync_command,
)
from client.cli.witness import witness_app
from client.demo import run_demo, synthetic_statements
from ledger.errors import LedgerError
from ledger.service import Ledger, wall_clock_ms

# Imported in the commands that use them: `mandi` must start fast, and
# ledger.datadir and ledger.storage.sql pull in SQLAlchemy and Alembic.

__all__ = ["app", "main"]

app = typer.Typer(
    name="mandi",
    help="Mandi: a provenance ledger for agricultural produce, signed, chained and Merkle-logged."
    "\n\nClient settings come from flags, else MANDI_SERVER, MANDI_LOG_VKEY, MANDI_ORIGIN, "
    "MANDI_KEY, MANDI_PARTICIPANT, MANDI_OUTBOX, MANDI_KEYS_DIR, else the config file "
    "~/.config/mandi/config.toml (or MANDI_CONFIG) with the keys server, log_vkey, origin, key, "
    "participant, outbox, keys_dir.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
admin_app = typer.Typer(help="Operator commands: initialise and migrate a data directory.")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(personal_app, name="personal")
app.command("serve")(serve_command)
app.add_typer(log_app, name="log")
app.command("history")(history_command)
app.command("trace")(trace_command)
app.command("lots")(lots_command)
app.command("qr")(qr_command)
app.command("labels")(labels_command)
app.command("verify")(verify_command)
app.command("export")(export_command)
app.command("proof")(proof_command)
app.add_typer(record_app, name="record")
app.command("register")(register_command)
admin_app.command("enrol")(admin_enrol_command)
app.command("sync")(sync_command)
app.command("outbox")(outbox_command)
app.command("import")(import_command)
app.add_typer(keys_app, name="keys")
app.add_typer(witness_app, name="witness")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="Data directory (keys, default SQLite database).")
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy database URL (default: SQLite in the data directory).",
        envvar="MANDI_DATABASE_URL",
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show tracebacks on errors.")]

EXIT_FINDINGS = 1
EXIT_USAGE = 2


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"mandi: error: {message}", highlight=False, markup=False)
    raise typer.Exit(code)


@contextmanager
def _errors(verbose: bool) -> Iterator[None]:
    try:
        yield
    except LedgerError as exc:
        if verbose:
            raise
        field = f" [{exc.field}]" if exc.field else ""
        _fail(f"{exc.code}{field}: {exc.message}")


@admin_app.command("init")
def admin_init(
    origin: Annotated[
        str, typer.Option("--origin", help="Log origin, e.g. mandi.example.org/log.")
    ],
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    operator_id: Annotated[
        str, typer.Option("--operator-id", help="Participant id of the operator.")
    ] = "operator",
    verbose: VerboseOpt = False,
) -> None:
    """Create the log key, the operator key and the genesis entry (once)."""
    from ledger.datadir import init_data_dir

    with _errors(verbose):
        result = init_data_dir(data_dir, origin=origin, db_url=db, operator_id=operator_id)
    out.print(f"initialised {result.data_dir} on {_redact(result.db_url)}", highlight=False)
    out.print(f"log vkey: {result.vkey}", highlight=False)


@admin_app.command("migrate")
def admin_migrate(
    data_dir: DataDirOpt = Path("var"), db: DbOpt = None, verbose: VerboseOpt = False
) -> None:
    """Upgrade the database schema to the newest revision."""
    from ledger.datadir import resolve_db_url
    from ledger.storage.sql import migrate

    with _errors(verbose):
        url = resolve_db_url(data_dir, db)
        migrate(url)
    out.print(f"schema of {_redact(url)} is up to date", highlight=False)


@app.command("demo")
def demo(
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    origin: Annotated[str, typer.Option("--origin", help="Origin if the data dir is new.")] = (
        "demo.mandi.example/log"
    ),
    events: Annotated[
        int, typer.Option("--events", min=0, help="Also append N synthetic signed statements.")
    ] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Initialise DIR if needed, enrol demo participants and record a small demo."""
    from ledger.datadir import DataDirError, init_data_dir, open_ledger, read_operator

    with _errors(verbose):
        if not (data_dir / "log.key").exists():
            init_data_dir(data_dir, origin=origin, db_url=db)
        ledger = open_ledger(data_dir, db_url=db)
        operator_id, operator = read_operator(data_dir)
        if ledger.size() > 1:
            raise DataDirError(f"{data_dir} holds a log with entries already; use a fresh one")
        summary = run_demo(ledger, operator_id=operator_id, operator=operator)
        if events:
            _append_synthetic(ledger, events)
        size = ledger.size()
        ledger.store.close()
    result = {
        "data_dir": str(data_dir),
        "vkey_file": str(data_dir / "log.vkey"),
        "synthetic_statements": events,
        **summary.to_json(),
        "log_size": size,
    }
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table(title=f"demo ledger in {data_dir}: {size} entries, {len(summary.lots)} lots")
    for column in ("lot", "crop", "holder", "status", "recalled"):
        table.add_column(column)
    for lot in summary.lots:
        table.add_row(
            lot.lot, lot.crop, lot.holder or "-", lot.status, "RECALLED" if lot.recalled else ""
        )
    out.print(table)
    out.print(
        f"recalled at the source: {summary.recalled_lot}; affected downstream, e.g. "
        f"{summary.page_lot}",
        highlight=False,
    )


def _append_synthetic(ledger: Ledger, count: int) -> None:
    from ledger.datadir import rfc3339_from_ms

    time = rfc3339_from_ms(wall_clock_ms())
    start = ledger.size()
    with _progress() as progress:
        task = progress.add_task("appending", total=count)
        batch = []
        for signed in synthetic_statements(
            origin=ledger.log.origin, count=count, time=time, start=start
        ):
            batch.append(signed)
            if len(batch) == 100:
                ledger.append_batch(batch)
                progress.advance(task, len(batch))
                batch = []
        if batch:
            ledger.append_batch(batch)
            progress.advance(task, len(batch))
    ledger.flush_checkpoint()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@app.command("checkpoint")
def checkpoint_cmd(
    db: DbOpt = None,
    data_dir: DataDirOpt = Path("var"),
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the note here (default stdout).")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Fetch it from this server instead: verified with the log vkey and proven "
            "to extend the newest checkpoint seen before.",
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Save the newest signed checkpoint (C2SP signed note)."""
    if server:
        with cli_errors(verbose):
            checkpoint_from_server(server, log_vkey=None, outbox=None, output=output)
        return
    from ledger.datadir import resolve_db_url
    from ledger.storage.sql import SqlStore

    with _errors(verbose):
        store = SqlStore.open(resolve_db_url(data_dir, db))
        try:
            latest = store.latest_checkpoint()
        finally:
            store.close()
    if latest is None:
        _fail("the log has no checkpoint yet")
    if output is None:
        sys.stdout.write(latest.note)
    else:
        output.write_text(latest.note, encoding="utf-8")
        out.print(f"checkpoint of size {latest.size} written to {output}", highlight=False)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("COLUMNS", "100")
    app()
