"""The cooperative's daily commands: `mandi sync`, `mandi outbox`, `mandi import`, `mandi keys`.

Also the pieces the other client commands share: the configuration options
(:mod:`client.config` resolves flag, environment, config file, default), one
error handler for the client's exception family (exit 1; an audit failure is
loud and exits 3), and opening the server, the outbox and the auditor.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from client.auditor import Auditor, AuditOutcome
from client.config import ClientConfig, load_config
from client.errors import AuditError, ImportRowsError, TransportError
from client.http import MandiClient
from client.importer import ImportReport, PreparedRow, prepare_file, queue_and_push, template
from client.keystore import KeyStore
from client.outbox import Outbox, OutboxItem, PushReport, push_pending
from client.records import KINDS
from ledger.errors import LedgerError
from ledger.keys import Signer
from ledger.service import MAX_BATCH

__all__ = [
    "EXIT_AUDIT",
    "checkpoint_from_server",
    "cli_errors",
    "connect",
    "import_command",
    "keys_app",
    "origin_for",
    "outbox_command",
    "passphrase_for",
    "sync_command",
]

EXIT_AUDIT = 3
"""Exit status when the server showed an inconsistent log (never a transient failure)."""

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_ENV_HELP = "(env {var}; config {key})"

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Server URL, e.g. http://127.0.0.1:8000. "
        + _ENV_HELP.format(var="MANDI_SERVER", key="server"),
        show_default=False,
    ),
]
LogVkeyOpt = Annotated[
    str | None,
    typer.Option(
        "--log-vkey",
        help="The log's verifier key (string or file): the trust anchor. "
        + _ENV_HELP.format(var="MANDI_LOG_VKEY", key="log_vkey"),
        show_default=False,
    ),
]
OriginOpt = Annotated[
    str | None,
    typer.Option(
        "--origin",
        help="Log origin the statements are for (default: the vkey's name). "
        + _ENV_HELP.format(var="MANDI_ORIGIN", key="origin"),
        show_default=False,
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Name of your key in the key directory. "
        + _ENV_HELP.format(var="MANDI_KEY", key="key"),
        show_default=False,
    ),
]
KeysDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--keys-dir",
        help="Key directory (default ~/.config/mandi/keys). "
        + _ENV_HELP.format(var="MANDI_KEYS_DIR", key="keys_dir"),
        show_default=False,
    ),
]
OutboxOpt = Annotated[
    Path | None,
    typer.Option(
        "--outbox",
        help="Outbox database (default ~/.config/mandi/outbox.db). "
        + _ENV_HELP.format(var="MANDI_OUTBOX", key="outbox"),
        show_default=False,
    ),
]
WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait-checkpoint",
        min=0,
        help="Seconds to wait for a checkpoint covering what was sent, to prove it included.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show tracebacks on errors.")]


# ---------------------------------------------------------------------------
# Shared pieces


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``mandi: error: message`` on stderr and exit."""
    err.print(f"mandi: error: {message}", highlight=False, markup=False)
    raise typer.Exit(code)


@contextmanager
def cli_errors(verbose: bool) -> Iterator[None]:
    """Turn the client's errors into one line and an exit status (audit failures: loud, 3)."""
    try:
        yield
    except AuditError as exc:
        if verbose:
            raise
        err.print(
            f"[bold red]mandi: AUDIT FAILURE ({exc.code})[/]: {exc.message}\n"
            "Do not trust this server's answers; keep the outbox database as evidence.",
            highlight=False,
        )
        raise typer.Exit(EXIT_AUDIT) from exc
    except ImportRowsError as exc:
        if verbose:
            raise
        for row in exc.rows:
            err.print(f"  {row.to_text()}", highlight=False, markup=False)
        fail(exc.message)
    except LedgerError as exc:
        if verbose:
            raise
        field = f" [{exc.field}]" if exc.field else ""
        fail(f"{exc.code}{field}: {exc.message}")


def origin_for(cfg: ClientConfig) -> str:
    """The log origin to sign for: configured or from the configured vkey, else from the vkey
    this outbox pinned at an earlier sync (so a clerk can keep recording offline).

    Raises:
        ConfigError: none of these is known.
    """
    if cfg.origin or cfg.log_vkey or not cfg.outbox.exists():
        return cfg.require_origin()
    with Outbox(cfg.outbox) as box:
        pinned = box.meta("log_vkey")
    if pinned is None:
        return cfg.require_origin()
    return replace(cfg, log_vkey=pinned).require_origin()


def connect(url: str) -> MandiClient:
    """A client for ``url`` (tests replace :func:`client.http.new_http_client`)."""
    return MandiClient.from_url(url)


def passphrase_for(name: str) -> Callable[[], str]:
    """Asks for a key's passphrase only if it is encrypted: MANDI_KEY_PASSPHRASE, else a prompt."""

    def ask() -> str:
        secret = os.environ.get("MANDI_KEY_PASSPHRASE")
        if secret:
            return secret
        if not sys.stdin.isatty():
            return ""
        return str(typer.prompt(f"passphrase for key {name!r}", hide_input=True, err=True))

    return ask


def progress_bar() -> Progress:
    """The Rich progress bar of long steps (on stderr; hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _warn(message: str) -> None:
    err.print(f"mandi: warning: {message}", highlight=False, markup=False)


def _problem_text(problem: dict[str, Any]) -> str:
    field = f" [{problem['field']}]" if problem.get("field") else ""
    return f"{problem.get('code', 'refused')}{field}: {problem.get('detail', '')}"


def _short(event: bytes) -> str:
    return event.hex()[:16]


def run_sync(
    cfg: ClientConfig,
    *,
    batch: int = MAX_BATCH,
    wait_s: float = 5.0,
    retry_refused: bool = False,
) -> tuple[PushReport, AuditOutcome, int]:
    """Push the outbox to the configured server, then audit; returns (push, audit, pending).

    Raises:
        TransportError: the server cannot be reached (nothing is lost: the rest stays queued).
        AuditError: the server showed an inconsistent log.
    """
    url = cfg.require_server()
    with Outbox(cfg.outbox) as outbox, connect(url) as client, outbox.lock():
        if retry_refused:
            outbox.retry_refused()
        auditor = Auditor(client, outbox, cfg.verifier(), warn=_warn)
        auditor.verifier()  # pin (or check) the log before sending it anything
        total = outbox.counts()["pending"]
        with progress_bar() as bar:
            task = bar.add_task("sending", total=total)
            report = push_pending(
                outbox,
                client,
                batch_size=batch,
                progress=lambda n: bar.update(task, completed=n),
            )
        outcome = auditor.audit(wait_s=wait_s)
        pending = outbox.counts()["pending"]
    return report, outcome, pending


def _print_refused(items: list[tuple[OutboxItem, dict[str, Any]]]) -> None:
    table = Table(title=f"refused by the server: {len(items)}", title_justify="left")
    for column in ("source", "kind", "event", "reason"):
        table.add_column(column, overflow="fold")
    for item, problem in items:
        table.add_row(item.source or "-", item.kind, _short(item.event_id), _problem_text(problem))
    err.print(table)


def _audit_text(outcome: AuditOutcome) -> str:
    text = (
        f"checkpoint of size {outcome.tree_size} verified; {outcome.proven} of your statements "
        f"proven included"
    )
    if outcome.unproven:
        text += f"; {outcome.unproven} await a checkpoint (run `mandi sync` later)"
    return text


# ---------------------------------------------------------------------------
# mandi sync


def sync_command(
    server: ServerOpt = None,
    log_vkey: LogVkeyOpt = None,
    outbox: OutboxOpt = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=MAX_BATCH, help="Statements per request.")
    ] = MAX_BATCH,
    wait: WaitOpt = 5.0,
    retry_refused: Annotated[
        bool, typer.Option("--retry-refused", help="Send refused statements again.")
    ] = False,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Send the outbox to the server in order; report what it accepted and what it refused.

    Safe to interrupt at any point (even kill -9) and to run again: nothing is
    lost or sent twice. Exit 0 when everything was accepted, 1 when something
    was refused or the server is unreachable, 3 when the server showed an
    inconsistent log.
    """
    with cli_errors(verbose):
        cfg = load_config(server=server, log_vkey=log_vkey, outbox=outbox)
        try:
            report, outcome, pending = run_sync(
                cfg, batch=batch, wait_s=wait, retry_refused=retry_refused
            )
        except TransportError as exc:
            with Outbox(cfg.outbox) as box:
                left = box.counts()["pending"]
            fail(f"{exc.message}; {left} statements stay queued: run `mandi sync` again")
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "appended": report.appended,
                    "already_in_log": report.known,
                    "refused": [
                        {**item.to_json(), "refusal": problem} for item, problem in report.refused
                    ],
                    "pending": pending,
                    "checkpoint_size": outcome.tree_size,
                    "proven": outcome.proven,
                    "unproven": outcome.unproven,
                },
                indent=2,
            )
            + "\n"
        )
    else:
        if report.refused:
            _print_refused(report.refused)
        out.print(
            f"sent {report.accepted + len(report.refused)}: {report.appended} appended, "
            f"{report.known} already in the log, {len(report.refused)} refused; "
            f"{pending} pending",
            highlight=False,
        )
        out.print(_audit_text(outcome), highlight=False)
    if report.refused:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------
# mandi outbox


def outbox_command(
    outbox: OutboxOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also list accepted statements.")] = False,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """List what waits in the outbox: pending statements, and refused ones with the reason."""
    with cli_errors(verbose):
        cfg = load_config(outbox=outbox)
        with Outbox(cfg.outbox) as box:
            states: tuple[Any, ...] = (
                ("pending", "refused", "accepted") if show_all else ("pending", "refused")
            )
            items = box.items(states)
            counts = box.counts()
            unproven = box.count_unproven()
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "outbox": str(cfg.outbox),
                    "counts": counts,
                    "unproven": unproven,
                    "items": [i.to_json() for i in items],
                },
                indent=2,
            )
            + "\n"
        )
        return
    table = Table(
        title=f"outbox {cfg.outbox}: {counts['pending']} pending, {counts['refused']} refused, "
        f"{counts['accepted']} accepted ({unproven} not yet proven included)",
        title_justify="left",
    )
    for column in ("seq", "kind", "event", "source", "state", "note"):
        table.add_column(column, overflow="fold")
    for item in items:
        if item.refusal is not None:
            note = _problem_text(item.refusal)
        elif item.log_index is not None:
            note = f"index {item.log_index}" + ("" if item.proven_size else ", unproven")
        else:
            note = ""
        table.add_row(
            str(item.seq), item.kind, _short(item.event_id), item.source or "-", item.state, note
        )
    out.print(table)


# ---------------------------------------------------------------------------
# mandi import


def import_command(
    file: Annotated[
        Path | None,
        typer.Argument(help="CSV file, one statement per row.", metavar="FILE", show_default=False),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help=f"The file's kind ({', '.join(KINDS)}); default: from the header."
        ),
    ] = None,
    template_kind: Annotated[
        str | None,
        typer.Option("--template", metavar="KIND", help="Print KIND's CSV header and exit."),
    ] = None,
    example: Annotated[
        bool, typer.Option("--example", help="With --template: add an example row.")
    ] = False,
    server: ServerOpt = None,
    origin: OriginOpt = None,
    log_vkey: LogVkeyOpt = None,
    key: KeyOpt = None,
    keys_dir: KeysDirOpt = None,
    outbox: OutboxOpt = None,
    no_sync: Annotated[
        bool, typer.Option("--no-sync", help="Only sign and queue; send later with `mandi sync`.")
    ] = False,
    wait: WaitOpt = 5.0,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Import statements of one kind from a CSV file: check every row, then sign, queue and send.

    Every row is checked first; if any is wrong, each bad row is listed with
    its line number and nothing is signed. Importing the same file again adds
    nothing: each row always yields the same statement and event id.
    """
    if template_kind is not None:
        if template_kind not in KINDS:
            fail(f"unknown kind {template_kind!r} (kinds: {', '.join(KINDS)})", 2)
        sys.stdout.write(template(template_kind, example=example))
        return
    if file is None:
        fail("give a CSV FILE, or --template KIND", 2)
    if kind is not None and kind not in KINDS:
        fail(f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})", 2)
    with cli_errors(verbose):
        cfg = load_config(
            server=server,
            origin=origin,
            log_vkey=log_vkey,
            key=key,
            keys_dir=keys_dir,
            outbox=outbox,
        )
        key_name = cfg.require_key()
        store = KeyStore(cfg.keys_dir)
        info = store.info(key_name)
        found_kind, rows = prepare_file(
            file, kind=kind, origin=origin_for(cfg), signer_key=info.key_id
        )
        signer = store.load(key_name, passphrase=passphrase_for(key_name))
        report, outcome = _import(cfg, file, found_kind, rows, signer, no_sync, wait)
    _print_import(report, outcome, json_out, cfg)
    if report.push is not None and report.push.refused:
        raise typer.Exit(1)
    if report.error is not None:
        raise typer.Exit(1)


def _import(
    cfg: ClientConfig,
    file: Path,
    kind: str,
    rows: list[PreparedRow],
    signer: Signer,
    no_sync: bool,
    wait: float,
) -> tuple[ImportReport, AuditOutcome | None]:
    client = connect(cfg.server) if cfg.server and not no_sync else None
    try:
        if client is not None:
            with Outbox(cfg.outbox) as box:
                try:
                    Auditor(client, box, cfg.verifier(), warn=_warn).verifier()
                except TransportError as exc:
                    _warn(f"{exc.message}; the statements will only be queued")
                    client.close()
                    client = None
        with ExitStack() as stack, progress_bar() as bar:
            if client is not None:
                # One push at a time per outbox: no `mandi sync` may run beside this import.
                stack.enter_context(stack.enter_context(Outbox(cfg.outbox)).lock())
            signing = bar.add_task("signing", total=len(rows))
            sending: TaskID | None = (
                bar.add_task("sending", total=len(rows)) if client is not None else None
            )

            def sent(n: int) -> None:
                if sending is not None:
                    bar.update(sending, completed=n)

            report = queue_and_push(
                rows,
                kind=kind,
                source=file.name,
                signer=signer,
                outbox_path=cfg.outbox,
                client=client,
                on_signed=lambda n: bar.update(signing, completed=n),
                on_sent=sent,
            )
        if isinstance(report.error, AuditError):
            raise report.error
        outcome = None
        if client is not None and report.error is None:
            with Outbox(cfg.outbox) as box:
                outcome = Auditor(client, box, cfg.verifier(), warn=_warn).audit(wait_s=wait)
        return report, outcome
    finally:
        if client is not None:
            client.close()


def _print_import(
    report: ImportReport, outcome: AuditOutcome | None, json_out: bool, cfg: ClientConfig
) -> None:
    push = report.push
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "kind": report.kind,
                    "rows": report.rows,
                    "queued": report.queued,
                    "appended": push.appended if push else 0,
                    "already_in_log": push.known if push else 0,
                    "refused": [
                        {"source": item.source, "event_id": item.event_id.hex(), "refusal": p}
                        for item, p in (push.refused if push else [])
                    ],
                    "error": report.error.message if report.error else None,
                    "checkpoint_size": outcome.tree_size if outcome else None,
                    "proven": outcome.proven if outcome else 0,
                },
                indent=2,
            )
            + "\n"
        )
        return
    out.print(
        f"{report.rows} {report.kind} rows checked and signed; {report.queued} new in the "
        f"outbox ({report.rows - report.queued} were there already)",
        highlight=False,
    )
    if push is None:
        if report.error is None:
            out.print("not sent: run `mandi sync` when the server is reachable", highlight=False)
    else:
        if push.refused:
            _print_refused(push.refused)
        out.print(
            f"sent: {push.appended} appended, {push.known} already in the log, "
            f"{len(push.refused)} refused",
            highlight=False,
        )
    if report.error is not None:
        err.print(
            f"mandi: error: {report.error.code}: {report.error.message}; the rest stays "
            f"queued in {cfg.outbox}: run `mandi sync` again",
            highlight=False,
            markup=False,
        )
    if outcome is not None:
        out.print(_audit_text(outcome), highlight=False)


# ---------------------------------------------------------------------------
# mandi checkpoint --server


def checkpoint_from_server(
    server: str, *, log_vkey: str | None, outbox: Path | None, output: Path | None
) -> None:
    """`mandi checkpoint --server URL`: verify the newest checkpoint and that it extends the
    newest one seen before, remember it, and print or save the note."""
    cfg = load_config(server=server, log_vkey=log_vkey, outbox=outbox)
    with Outbox(cfg.outbox) as box, connect(cfg.require_server()) as client:
        verified = Auditor(client, box, cfg.verifier(), warn=_warn).refresh_checkpoint()
    note = verified.note.to_text()
    if output is None:
        sys.stdout.write(note)
    else:
        output.write_text(note, encoding="utf-8")
        out.print(
            f"checkpoint of size {verified.checkpoint.size} verified and written to {output}",
            highlight=False,
        )


# ---------------------------------------------------------------------------
# mandi keys


keys_app = typer.Typer(
    help="Your keys: made and kept on this machine; only the public half is ever shown.",
    no_args_is_help=True,
)


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="Key name, e.g. your participant id.")],
    passphrase: Annotated[
        bool,
        typer.Option(
            "--passphrase",
            help="Encrypt the key with a passphrase (asked for, or MANDI_KEY_PASSPHRASE).",
        ),
    ] = False,
    keys_dir: KeysDirOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Make a new Ed25519 key; the private key file is readable only by you."""
    with cli_errors(verbose):
        cfg = load_config(keys_dir=keys_dir)
        secret = None
        if passphrase:
            secret = os.environ.get("MANDI_KEY_PASSPHRASE") or str(
                typer.prompt(
                    f"passphrase for key {name!r}",
                    hide_input=True,
                    confirmation_prompt=True,
                    err=True,
                )
            )
        info = KeyStore(cfg.keys_dir).create(name, passphrase=secret)
    if json_out:
        sys.stdout.write(json.dumps({**info.to_json(), "path": str(info.path)}, indent=2) + "\n")
        return
    out.print(f"key {info.name} written to {info.path} (mode 600)", highlight=False)
    out.print(f"key id:     {info.key_id.hex()}", highlight=False)
    out.print(f"public key: {info.to_json()['public_key']}", highlight=False)


@keys_app.command("list")
def keys_list(
    keys_dir: KeysDirOpt = None, json_out: JsonOpt = False, verbose: VerboseOpt = False
) -> None:
    """List the keys in the key directory (public facts only)."""
    with cli_errors(verbose):
        cfg = load_config(keys_dir=keys_dir)
        keys = KeyStore(cfg.keys_dir).list()
    if json_out:
        sys.stdout.write(json.dumps([k.to_json() for k in keys], indent=2) + "\n")
        return
    table = Table(title=f"keys in {cfg.keys_dir}: {len(keys)}", title_justify="left")
    for column in ("name", "key id", "public key", "passphrase"):
        table.add_column(column, overflow="fold")
    for k in keys:
        facts = k.to_json()
        table.add_row(k.name, facts["key_id"], facts["public_key"], "yes" if k.encrypted else "no")
    out.print(table)


@keys_app.command("export-public")
def keys_export_public(
    name: Annotated[str, typer.Argument(help="Key name.")],
    keys_dir: KeysDirOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Print a key's public half (base64; --json adds the key id). Never the private key."""
    with cli_errors(verbose):
        cfg = load_config(keys_dir=keys_dir)
        info = KeyStore(cfg.keys_dir).info(name)
    facts = info.to_json()
    if json_out:
        sys.stdout.write(json.dumps(facts, indent=2) + "\n")
    else:
        sys.stdout.write(facts["public_key"] + "\n")
