"""The auditor's commands: `mandi verify`, `mandi export`, `mandi proof`.

``verify`` re-checks a log from a bundle file, a database or a server, with
the vkey the auditor was given as the only trust anchor, on every core
(:func:`ledger.audit_parallel.audit_entries`), optionally resuming from a saved
audit state (``--since``) and saving one (``--save-state``); or checks a
lot's proof bundle offline (``--proof``). Exit 0 when everything holds, 1 with
findings, 2 on usage errors. ``export`` writes a resumable bundle with a
progress bar; ``proof`` writes a lot's proof bundle.

Reports: a short text (default), ``--json`` for machines, ``--report FILE.html``
for the auditor's files (Jinja2, autoescaped: nothing from the log can inject
markup).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ledger.audit import AuditReport, Finding
from ledger.audit_parallel import (
    AuditOutcome,
    audit_entries,
    compare_registry,
    first_rewritten,
)
from ledger.audit_state import AuditStateError, StateMeta, StoredReplay, nodes_of
from ledger.bundle import BundleReader, parse_entry_line, verify_proof_bundle
from ledger.checkpoint import SIG_TYPE_COSIGNATURE_V1, NoteVerifier
from ledger.errors import LedgerError
from ledger.hashing import leaf_hash

# client.export, ledger.datadir (both pull in SQLAlchemy and Alembic) and jinja2
# are imported in the functions that use them: `mandi` must start fast.
if TYPE_CHECKING:
    import jinja2

    from client.export import LogSource

__all__ = ["export_command", "proof_command", "verify_command"]

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MIN_PARALLEL = 20_000
"""Below this many entries, starting worker processes costs more than it saves."""

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy database URL of the log to audit.",
        envvar="MANDI_DATABASE_URL",
    ),
]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server", help="Audit the log a server shows (http://host:port).", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show tracebacks on errors.")]


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


def _progress(*columns: Any) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


# --------------------------------------------------------------------------- verify


def verify_command(
    db: DbOpt = None,
    log_vkey: Annotated[
        str | None,
        typer.Option(
            "--log-vkey",
            help="The log's verifier key (string or file): the trust anchor.",
            envvar="MANDI_LOG_VKEY",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint saved earlier that the log must extend."),
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Audit an export bundle file (mandi export).")
    ] = None,
    server: ServerOpt = None,
    proof: Annotated[
        Path | None,
        typer.Option("--proof", help="Check a lot's proof bundle (mandi proof) offline."),
    ] = None,
    witness_vkey: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-vkey",
            help="A witness's cosignature vkey (string or file); repeat for several.",
        ),
    ] = None,
    quorum: Annotated[
        int,
        typer.Option("--quorum", min=0, help="Witnesses (of --witness-vkey) that must cosign."),
    ] = 0,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=1, help="Worker processes (default: every core)."),
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option("--since", help="Resume from a saved audit state: check new entries only."),
    ] = None,
    save_state: Annotated[
        Path | None,
        typer.Option("--save-state", help="After a clean audit, save its state here."),
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Also write an HTML report to this file.")
    ] = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Re-verify a log (signatures, chain, rules, Merkle roots, checkpoints) or a proof bundle.

    Exit 0 when everything holds, 1 with the findings, 2 on usage errors.
    """
    if (
        db is not None
        and os.environ.get("MANDI_DATABASE_URL") == db
        and (bundle or server or proof)
    ):
        db = None  # from the environment; an explicit source wins
    chosen = [
        name
        for name, value in (
            ("--db", db),
            ("--bundle", bundle),
            ("--server", server),
            ("--proof", proof),
        )
        if value
    ]
    if len(chosen) != 1:
        _fail(
            "give one of --bundle FILE, --db URL (or MANDI_DATABASE_URL), --server URL, "
            f"--proof FILE{'' if not chosen else '; got ' + ', '.join(chosen)}",
            EXIT_USAGE,
        )
    if not log_vkey:
        _fail(
            "--log-vkey VKEY (or MANDI_LOG_VKEY) is required: the audit needs a trust anchor "
            "that does not come from the data it checks",
            EXIT_USAGE,
        )
    from ledger.datadir import load_verifier

    try:
        verifier: NoteVerifier = load_verifier(log_vkey)
        witnesses = [load_verifier(w) for w in witness_vkey or ()]
        saved = checkpoint.read_text(encoding="utf-8") if checkpoint is not None else None
    except (LedgerError, OSError) as exc:
        _fail(f"{exc}", EXIT_USAGE)
    if any(w.sig_type != SIG_TYPE_COSIGNATURE_V1 for w in witnesses):
        _fail("--witness-vkey: a witness key must be a cosignature/v1 (type 0x04) vkey", EXIT_USAGE)
    if quorum > len({(w.name, w.key_hash) for w in witnesses}):
        _fail(f"--quorum {quorum} is more than the {len(witnesses)} witnesses given", EXIT_USAGE)
    if proof is not None:
        _verify_proof(proof, verifier, witnesses, quorum, json_out, verbose)
        return
    with _errors(verbose):
        outcome, source_name, notes = _audit_log(
            verifier,
            witnesses=witnesses,
            quorum=quorum,
            saved=saved,
            db=db,
            bundle=bundle,
            server=server,
            jobs=jobs,
            since=since,
            save_state=save_state,
        )
    report = outcome.report
    if json_out:
        data = report.to_json()
        data.update(
            {"source": source_name, "start": outcome.start, "size": outcome.size, "notes": notes}
        )
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        head = f"source: {source_name}"
        if outcome.start:
            head += f" (incremental: entries {outcome.start} to {outcome.size - 1})"
        out.print(head, highlight=False, markup=False)
        out.print(report.to_text(), highlight=False, markup=False)
        for note in notes:
            out.print(note, highlight=False, markup=False)
    if report_file is not None:
        report_file.write_text(
            render_html(outcome, source=source_name, vkey=verifier.to_vkey(), notes=notes),
            encoding="utf-8",
        )
    if not report.ok:
        raise typer.Exit(EXIT_FINDINGS)


def _verify_proof(
    path: Path,
    verifier: NoteVerifier,
    witnesses: list[NoteVerifier],
    quorum: int,
    json_out: bool,
    verbose: bool,
) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail(f"{exc}", EXIT_USAGE)
    with _errors(verbose):
        result = verify_proof_bundle(data, verifier, witnesses, quorum)
    if json_out:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    else:
        out.print(result.to_text(), highlight=False, markup=False)
    if not result.ok:
        raise typer.Exit(EXIT_FINDINGS)


def _audit_log(
    verifier: NoteVerifier,
    *,
    witnesses: list[NoteVerifier],
    quorum: int,
    saved: str | None,
    db: str | None,
    bundle: Path | None,
    server: str | None,
    jobs: int | None,
    since: Path | None,
    save_state: Path | None,
) -> tuple[AuditOutcome, str, list[str]]:
    notes: list[str] = []
    with ExitStack() as stack:
        replay, meta = _open_state(stack, since, save_state)
        start = meta.size if meta is not None else 0
        if meta is not None and meta.vkey != verifier.to_vkey():
            raise AuditStateError(
                f"the audit state {since} is of the log {meta.vkey}, not of --log-vkey"
            )
        if bundle is not None:
            handle = stack.enter_context(bundle.open("rb"))
            reader = BundleReader(handle)
            plan = _bundle_plan(reader, start)
            name = f"bundle {bundle}"
        else:
            from client.export import open_source

            source = open_source(db, server)
            stack.callback(source.close)
            plan = _source_plan(source, start)
            name = f"{source.kind} {source.describe()}"
        jobs = jobs or os.cpu_count() or 1
        if plan.count < MIN_PARALLEL:
            jobs = 1
        extra: list[Finding] = list(plan.findings)
        if meta is not None and plan.size < meta.size:
            extra.append(
                Finding(
                    index=plan.size,
                    check="log_truncated",
                    message=f"the log holds {plan.size} entries, fewer than the {meta.size} "
                    "audited before",
                    expected=str(meta.size),
                    found=str(plan.size),
                )
            )

        def after(state: StoredReplay, reached: int, so_far: Sequence[Finding]) -> list[Finding]:
            truncated = meta is not None and plan.size < meta.size
            # A registry replayed further than the log now reaches is no comparison.
            found = [] if truncated else list(plan.after(state, reached))
            if meta is not None and meta.size > 0 and _suspect([*so_far, *found], meta, plan.size):
                rewritten = first_rewritten(
                    state.leaves(0, meta.size), plan.leaves(0, min(meta.size, plan.size))
                )
                if rewritten is not None:
                    found.append(rewritten)
            return found

        with _progress() as bar:
            task = bar.add_task("auditing", total=plan.count)
            outcome = audit_entries(
                plan.items,
                plan.notes,
                log_verifier=verifier,
                replay=replay,
                form=plan.form,
                resume=meta,
                stored_leaves=plan.stored_leaves,
                saved_checkpoint=saved,
                consistency_proof=plan.consistency,
                witnesses=witnesses,
                quorum=quorum,
                jobs=jobs,
                progress=lambda n: bar.update(task, completed=n - start),
                extra_findings=extra,
                after=after,
            )
        if save_state is not None:
            notes.append(_save(replay, outcome, verifier, save_state))
        else:
            replay.close()
    return outcome, name, notes


def _suspect(found: list[Finding], meta: StateMeta, size: int) -> bool:
    """Whether the log may have changed before the saved size (then look for where)."""
    return size < meta.size or any(
        f.check in {"chain_broken", "inconsistent_with_saved_checkpoint", "root_mismatch"}
        for f in found
    )


def _open_state(
    stack: ExitStack, since: Path | None, save_state: Path | None
) -> tuple[StoredReplay, StateMeta | None]:
    """The replay state: resumed from ``since`` (a copy when saving elsewhere), or fresh."""
    if since is not None:
        path = since
        if save_state is not None and save_state.resolve() != since.resolve():
            partial = save_state.with_name(f".{save_state.name}.{os.getpid()}.partial")
            shutil.copyfile(since, partial)
            stack.callback(partial.unlink, missing_ok=True)
            path = partial
        replay, meta = StoredReplay.open(path)
        stack.callback(replay.close)
        return replay, meta
    if save_state is not None:
        partial = save_state.with_name(f".{save_state.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        replay = StoredReplay.create(partial)
    else:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mandi-audit-")))
        replay = StoredReplay.create(scratch / "state.db")
        replay.keep_leaves = False
    stack.callback(replay.close)
    return replay, None


def _save(
    replay: StoredReplay,
    outcome: AuditOutcome,
    verifier: NoteVerifier,
    target: Path,
) -> str:
    if not outcome.report.ok:
        replay.close()
        return f"audit state not saved to {target}: the audit found problems"
    cp = outcome.checkpoint
    meta = StateMeta(
        origin=outcome.report.origin,
        vkey=verifier.to_vkey(),
        size=outcome.size,
        last_leaf=outcome.last_leaf,
        nodes=nodes_of(outcome.tree),
        checkpoint=cp[2] if cp is not None else None,
        checkpoint_size=cp[0] if cp is not None else None,
        checkpoint_root=cp[1] if cp is not None else None,
    )
    replay.commit(meta, final=target)
    return f"audit state saved to {target} ({outcome.size} entries)"


class _Plan:
    """What to walk and how to check what follows, for one kind of source."""

    def __init__(
        self,
        *,
        form: Any,
        items: Iterable[Any],
        notes: list[str],
        size: int,
        count: int,
        leaves: Callable[[int, int], Iterator[tuple[int, bytes]]],
        after: Callable[[StoredReplay, int], list[Finding]],
        stored_leaves: Iterator[Any] | None = None,
        consistency: Callable[[int, int], list[bytes]] | None = None,
        findings: Iterable[Finding] = (),
    ) -> None:
        self.form = form
        self.items = items
        self.notes = notes
        self.size = size
        self.count = count
        self.leaves = leaves
        self.after = after
        self.stored_leaves = stored_leaves
        self.consistency = consistency
        self.findings = list(findings)


def _bundle_plan(reader: BundleReader, start: int) -> _Plan:
    size = reader.header.size

    def after(state: StoredReplay, reached: int) -> list[Finding]:
        tail = reader.tail()
        found = [
            Finding(index=None, check="bundle_malformed", message=problem)
            for problem in tail.problems
        ]
        if tail.end is None:
            found.append(
                Finding(
                    index=reached,
                    check="bundle_incomplete",
                    message="the bundle has no end line: the export did not finish",
                )
            )
        elif tail.end[0] != reached or reached != size:
            found.append(
                Finding(
                    index=min(reached, size),
                    check="bundle_size_mismatch",
                    message=f"the header says {size} entries, the end line {tail.end[0]}, "
                    f"the file holds {reached}",
                    expected=str(size),
                    found=str(reached),
                )
            )
        found.extend(
            compare_registry(state.registry, tail.participants, tail.keys, source="bundle's")
        )
        return found

    def leaves(begin: int, end: int) -> Iterator[tuple[int, bytes]]:
        for index, line in enumerate(reader.entry_lines(begin), begin):
            if index >= end:
                return
            try:
                yield index, leaf_hash(parse_entry_line(line))
            except LedgerError:
                yield index, leaf_hash(line)

    return _Plan(
        form="bundle_lines",
        items=reader.entry_lines(start) if size > start else iter(()),
        notes=[c.note for c in reader.checkpoints],
        size=size,
        count=max(0, size - start),
        leaves=leaves,
        after=after,
    )


def _source_plan(source: LogSource, start: int) -> _Plan:
    notes = [c.note for c in source.checkpoints()]
    size = source.size()
    form, items = source.entry_items(start, size) if size > start else ("entries", iter(()))

    def after(state: StoredReplay, reached: int) -> list[Finding]:
        participants, keys = source.registry(reached)
        return compare_registry(state.registry, participants, keys, source=f"{source.kind}'s")

    def leaves(begin: int, end: int) -> Iterator[tuple[int, bytes]]:
        for index, raw in enumerate(source.entry_bytes(begin, end), begin):
            yield index, leaf_hash(raw)

    return _Plan(
        form=form,
        items=items,
        notes=notes,
        size=size,
        count=max(0, size - start),
        leaves=leaves,
        after=after,
        stored_leaves=source.stored_leaves(start, size) if size > start else None,
        consistency=source.consistency_proof,
    )


# --------------------------------------------------------------------------- HTML report

_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Mandi audit report: {{ report.origin }}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.4rem; } table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd;
         vertical-align: top; }
code { font-size: 13px; word-break: break-all; }
.ok { color: #0a6b2d; font-weight: bold; } .bad { color: #a11; font-weight: bold; }
</style>
</head>
<body>
<h1>Mandi audit report</h1>
<p class="{{ 'ok' if report.ok else 'bad' }}">
{% if report.ok %}OK: every signature, chain link, rule and checkpoint holds.
{% else %}FAILED: {{ report.findings|length }} findings; first damaged index
{{ report.first_damaged_index }}.{% endif %}</p>
<table>
<tr><th>Log (origin)</th><td>{{ report.origin }}</td></tr>
<tr><th>Trust anchor (vkey)</th><td><code>{{ vkey }}</code></td></tr>
<tr><th>Source</th><td>{{ source }}</td></tr>
<tr><th>Entries checked</th><td>{{ report.entries_checked }}{% if start %}
 (incremental, from index {{ start }}){% endif %}</td></tr>
<tr><th>Log size reached</th><td>{{ size }}</td></tr>
<tr><th>Checkpoints checked</th><td>{{ report.checkpoints_checked }}</td></tr>
<tr><th>Newest checkpoint size</th><td>{{ report.latest_checkpoint_size }}</td></tr>
<tr><th>Root hash</th><td><code>{{ report.root_hash }}</code></td></tr>
<tr><th>Generated</th><td>{{ generated }}</td></tr>
</table>
{% if report.findings %}
<h2>Findings</h2>
<table>
<tr><th>Index</th><th>Check</th><th>Lot</th><th>What</th><th>Expected</th><th>Found</th></tr>
{% for f in report.findings %}
<tr><td>{{ f.index if f.index is not none else "log" }}</td><td><code>{{ f.check }}</code></td>
<td>{{ f.lot or "" }}</td><td>{{ f.message }}</td><td><code>{{ f.expected or "" }}</code></td>
<td><code>{{ f.found or "" }}</code></td></tr>
{% endfor %}
</table>
{% if report.findings_truncated %}<p>More findings were cut.</p>{% endif %}
{% endif %}
{% for note in notes %}<p>{{ note }}</p>{% endfor %}
<p>Checked by <code>mandi verify</code>: every entry's canonical bytes and leaf hash,
the chain, each statement's signature with the key the replayed registry held at its
index, every supply-chain rule (replayed with the server's own rule code), the Merkle
root at every checkpoint and each checkpoint's signatures.</p>
</body>
</html>
"""


@functools.cache
def _env() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def render_html(outcome: AuditOutcome, *, source: str, vkey: str, notes: list[str]) -> str:
    """The HTML report of an audit (autoescaped: log data cannot inject markup)."""
    report: AuditReport = outcome.report
    return (
        _env()
        .from_string(_HTML)
        .render(
            report=report,
            source=source,
            vkey=vkey,
            start=outcome.start,
            size=outcome.size,
            notes=notes,
            generated=datetime.now(UTC).replace(microsecond=0).isoformat(),
        )
    )


# --------------------------------------------------------------------------- export, proof


def export_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle file to write.")],
    db: DbOpt = None,
    server: ServerOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Export a log as a portable bundle (resumes a partial file; Ctrl-C is safe)."""
    if db is not None and server is not None and os.environ.get("MANDI_DATABASE_URL") == db:
        db = None
    if (db is None) == (server is None):
        _fail("give one of --db URL (or MANDI_DATABASE_URL) and --server URL", EXIT_USAGE)
    from client.export import export_bundle, open_source

    with _errors(verbose):
        source = open_source(db, server)
        try:
            with _progress(TransferSpeedColumn()) as bar:
                task = bar.add_task("exporting", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                try:
                    result = export_bundle(source, output, progress=progress)
                except KeyboardInterrupt:
                    err.print(
                        f"interrupted: {output} is a partial bundle; run the same command "
                        "again to resume",
                        highlight=False,
                        markup=False,
                    )
                    raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            source.close()
    if result.already_complete:
        message = f"{output} is already a complete bundle of {result.entries} entries"
    elif result.resumed_from is not None:
        message = (
            f"resumed at entry {result.resumed_from}: {output} now holds {result.entries} "
            f"entries and {result.checkpoints} checkpoints"
        )
    else:
        message = f"wrote {output}: {result.entries} entries, {result.checkpoints} checkpoints"
    if result.entries != result.size:
        message += (
            f"; WARNING: the source said it holds {result.size} entries but gave "
            f"{result.entries} (audit the bundle to see why)"
        )
    out.print(message, highlight=False, markup=False)


def proof_command(
    lot: Annotated[str, typer.Argument(help="The lot id, e.g. lot:farm-1:paddy-01.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The proof bundle to write.")],
    db: DbOpt = None,
    server: ServerOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Write a lot's proof bundle: its and its upstream lots' events, with inclusion proofs."""
    if db is not None and server is not None and os.environ.get("MANDI_DATABASE_URL") == db:
        db = None
    if (db is None) == (server is None):
        _fail("give one of --db URL (or MANDI_DATABASE_URL) and --server URL", EXIT_USAGE)
    from client.export import build_proof_bundle, open_source

    with _errors(verbose):
        source = open_source(db, server)
        try:
            bundle, left_out = build_proof_bundle(source, lot)
        finally:
            source.close()
    data = bundle.to_bytes()
    output.write_bytes(data)
    message = (
        f"wrote {output}: {len(bundle.events)} statements on {len(bundle.lots)} lots, "
        f"{len(bundle.registry)} registry statements, {len(data):,} bytes"
    )
    if left_out:
        message += f"; {left_out} newer statements wait for a checkpoint"
    out.print(message, highlight=False, markup=False)
