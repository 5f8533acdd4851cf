"""Lot queries over a database: `mandi history`, `mandi trace`, `mandi lots`.

Human tables by default, ``--json`` for scripts. The answers come from the
ledger's indexed state (ledger.service.Ledger), never from scanning the log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ledger.datadir import resolve_db_url
from ledger.domain.quantities import base_unit
from ledger.domain.rules import LotState
from ledger.domain.trace import MAX_TRACE_DEPTH
from ledger.errors import LedgerError
from ledger.service import Ledger
from ledger.storage.sql import SqlStore

__all__ = ["history_command", "lots_command", "trace_command"]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Data directory (default database).")]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy database URL.", envvar="MANDI_DATABASE_URL"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _reader(data_dir: Path, db: str | None) -> Iterator[Ledger]:
    try:
        store = SqlStore.open(resolve_db_url(data_dir, db))
    except LedgerError as exc:
        err.print(f"mandi: error: {exc.code}: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    try:
        yield Ledger.reader(store)
    except LedgerError as exc:
        field = f" [{exc.field}]" if exc.field else ""
        err.print(f"mandi: error: {exc.code}{field}: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    finally:
        store.close()


def _lot_json(state: LotState) -> dict[str, Any]:
    return {
        "lot": state.lot_id,
        "crop": state.crop,
        "quantity": state.quantity,
        "unit_class": state.unit_class,
        "custodian": state.custodian,
        "status": state.status,
        "producer": state.producer,
        "recalled_at": state.recalled_at,
        "recall_reason": state.recall_reason,
        "unit": state.unit,
        "contents": list(state.contents),
    }


def history_command(
    lot: Annotated[str, typer.Argument(help="Canonical lot id, e.g. lot:farm.punjab.1:paddy-01.")],
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A lot's statements in log order, corrections included."""
    with _reader(data_dir, db) as ledger:
        state = ledger.lot(lot)
        items = ledger.history(lot)
        recalled = ledger.recalled_upstream(lot)
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "lot": _lot_json(state),
                    "recalled_upstream": [r.lot_id for r in recalled],
                    "history": [
                        {
                            "index": item.index,
                            "event_id": item.event_id.hex(),
                            "kind": item.kind,
                            "participant": item.participant,
                            "time": item.time,
                            "accepted_ms": item.accepted_ms,
                            "corrected_by": item.corrected_by,
                            "body": item.body,
                        }
                        for item in items
                    ],
                },
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
        return
    table = Table(title=f"{lot}: {state.crop}, {state.status}, held by {state.custodian or '-'}")
    for column in ("index", "time", "kind", "participant", "note"):
        table.add_column(column)
    for item in items:
        note = f"corrected at {item.corrected_by}" if item.corrected_by is not None else ""
        table.add_row(str(item.index), item.time, item.kind, item.participant, note)
    out.print(table)
    if recalled:
        out.print(f"RECALLED: {', '.join(r.lot_id for r in recalled)}", highlight=False)


def trace_command(
    lot: Annotated[str, typer.Argument(help="Canonical lot id.")],
    back: Annotated[bool, typer.Option("--back", help="Upstream, to the farms.")] = False,
    forward: Annotated[
        bool, typer.Option("--forward", help="Downstream, to every holder (recall list).")
    ] = False,
    depth: Annotated[
        int, typer.Option("--depth", min=0, max=MAX_TRACE_DEPTH, help="Most levels to walk.")
    ] = MAX_TRACE_DEPTH,
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Trace a lot back to its farms or forward to everyone who holds a part of it."""
    if back == forward:
        err.print("mandi: error: give exactly one of --back or --forward", highlight=False)
        raise typer.Exit(2)
    with _reader(data_dir, db) as ledger:
        trace = (
            ledger.trace_back(lot, max_depth=depth)
            if back
            else ledger.trace_forward(lot, max_depth=depth)
        )
        states = {lot_id: ledger.store.lot(lot_id) for lot_id in trace.lot_ids}
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "root": trace.root,
                    "direction": trace.direction,
                    "truncated": trace.truncated,
                    "lots": [
                        {"depth": d, **_lot_json(s)}
                        for lot_id, d in trace.lots
                        if (s := states[lot_id]) is not None
                    ],
                    "edges": [
                        {"parent": e.parent, "child": e.child, "index": e.index, "kind": e.kind}
                        for e in trace.edges
                    ],
                },
                indent=2,
            )
            + "\n"
        )
        return
    table = Table(title=f"trace {trace.direction} from {trace.root}")
    for column in ("depth", "lot", "crop", "status", "holder", "recalled"):
        table.add_column(column)
    for lot_id, d in trace.lots:
        s = states[lot_id]
        if s is None:  # pragma: no cover - traced lots exist
            continue
        recalled = "RECALLED" if s.recalled_at is not None else ""
        table.add_row(str(d), lot_id, s.crop, s.status, s.custodian or "-", recalled)
    out.print(table)
    if trace.truncated:
        out.print("(truncated: raise --depth to see more)")


def lots_command(
    holder: Annotated[str, typer.Option("--holder", help="Participant id.")],
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What a participant holds now."""
    with _reader(data_dir, db) as ledger:
        held = ledger.held_by(holder)
    if json_out:
        sys.stdout.write(json.dumps([_lot_json(s) for s in held], indent=2) + "\n")
        return
    table = Table(title=f"held by {holder}: {len(held)} lots")
    for column in ("lot", "crop", "quantity", "status"):
        table.add_column(column)
    for s in held:
        table.add_row(s.lot_id, s.crop, f"{s.quantity} {_unit(s.unit_class)}", s.status)
    out.print(table)


def _unit(unit_class: str) -> str:
    return base_unit(unit_class)
