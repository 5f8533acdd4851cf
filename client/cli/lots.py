"""Lot queries over a database or a server: `mandi history`, `mandi trace`, `mandi lots`.

Human tables by default, ``--json`` for scripts; the JSON has the same shape
whether it comes from ``--db`` or ``--server URL``. Over a database the answers
come from the ledger's indexed state (ledger.service.Ledger), never from
scanning the log; over a server from its ``/v1/lots`` endpoints, and each
history item's event id and body are checked against the statement bytes it
carries. ``mandi lots --mine`` asks for the configured participant's holdings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from client.config import load_config
from client.errors import AuditError
from client.http import MandiClient
from ledger.domain.quantities import base_unit
from ledger.domain.rules import LotState
from ledger.domain.trace import MAX_TRACE_DEPTH
from ledger.errors import LedgerError
from ledger.hashing import event_id
from ledger.keys import b64decode
from ledger.service import Ledger
from ledger.statements import Statement

# ledger.datadir and ledger.storage.sql (SQLAlchemy, Alembic) are imported in
# _reader, the one place that opens a database: `mandi` must start fast.

__all__ = ["history_command", "lots_command", "trace_command"]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Data directory (default database).")]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy database URL.", envvar="MANDI_DATABASE_URL"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Ask this server (http://host:port) instead of a database.",
        show_default=False,
    ),
]


@contextmanager
def _reader(data_dir: Path, db: str | None) -> Iterator[Ledger]:
    from ledger.datadir import resolve_db_url
    from ledger.storage.sql import SqlStore

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


@contextmanager
def _remote(server: str) -> Iterator[MandiClient]:
    """A client for ``server``; its errors become one line and exit 1 (3 for an audit failure)."""
    try:
        client = MandiClient.from_url(server)
    except LedgerError as exc:
        err.print(f"mandi: error: {exc.code}: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    try:
        yield client
    except AuditError as exc:
        err.print(
            f"mandi: AUDIT FAILURE ({exc.code}): {exc.message}", markup=False, highlight=False
        )
        raise typer.Exit(3) from exc
    except LedgerError as exc:
        field = f" [{exc.field}]" if exc.field else ""
        err.print(f"mandi: error: {exc.code}{field}: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    finally:
        client.close()


def _wire_lot_json(lot: Mapping[str, Any]) -> dict[str, Any]:
    """A server's lot state in the shape of :func:`_lot_json`."""
    recall = lot.get("recall") or {}
    return {
        "lot": lot["lot_id"],
        "crop": lot["crop"],
        "quantity": lot["quantity"]["amount"],
        "unit_class": lot["unit_class"],
        "custodian": lot["holder"],
        "status": lot["status"],
        "producer": lot["producer"],
        "recalled_at": recall.get("index"),
        "recall_reason": recall.get("reason"),
        "unit": lot.get("packed_in"),
        "contents": list(lot.get("contents", [])),
    }


def _wire_history_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A history item from a server, checked against the statement bytes it carries."""
    raw = b64decode(str(item["statement"]), field="statement")
    statement = Statement.from_bytes(raw)
    if (
        event_id(raw).hex() != item["event_id"]
        or statement.body != item["body"]
        or statement.kind != item["kind"]
        or statement.time != item["time"]
    ):
        raise AuditError(
            f"history item {item['index']}: its fields differ from its own statement bytes",
            code="entry_mismatch",
        )
    return {
        "index": item["index"],
        "event_id": item["event_id"],
        "kind": item["kind"],
        "participant": item["participant"],
        "time": item["time"],
        "accepted_ms": item["accepted_ms"],
        "corrected_by": item["corrected_by"],
        "body": item["body"],
    }


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
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A lot's statements in log order, corrections included."""
    if server:
        with _remote(server) as client:
            now = client.lot(lot)
            state = _wire_lot_json(now)
            recalled = [r["lot_id"] for r in now["recalled_upstream"]]
            history = [_wire_history_item(i) for i in client.lot_history(lot)["items"]]
    else:
        with _reader(data_dir, db) as ledger:
            state = _lot_json(ledger.lot(lot))
            items = ledger.history(lot)
            recalled = [r.lot_id for r in ledger.recalled_upstream(lot)]
        history = [
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
        ]
    if json_out:
        sys.stdout.write(
            json.dumps(
                {"lot": state, "recalled_upstream": recalled, "history": history},
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
        return
    table = Table(
        title=f"{lot}: {state['crop']}, {state['status']}, held by {state['custodian'] or '-'}"
    )
    for column in ("index", "time", "kind", "participant", "note"):
        table.add_column(column)
    for item in history:
        corrected = item["corrected_by"]
        note = f"corrected at {corrected}" if corrected is not None else ""
        table.add_row(str(item["index"]), item["time"], item["kind"], item["participant"], note)
    out.print(table)
    if recalled:
        out.print(f"RECALLED: {', '.join(recalled)}", highlight=False)


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
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Trace a lot back to its farms or forward to everyone who holds a part of it."""
    if back == forward:
        err.print("mandi: error: give exactly one of --back or --forward", highlight=False)
        raise typer.Exit(2)
    direction: Literal["back", "forward"] = "back" if back else "forward"
    if server:
        with _remote(server) as client:
            answer = client.lot_trace(lot, direction, depth)
        result = {
            "root": answer["lot_id"],
            "direction": answer["direction"],
            "truncated": answer["truncated"],
            "lots": [{"depth": x["depth"], **_wire_lot_json(x)} for x in answer["lots"]],
            "edges": [
                {"parent": e["parent"], "child": e["child"], "index": e["index"], "kind": e["kind"]}
                for e in answer["edges"]
            ],
        }
    else:
        with _reader(data_dir, db) as ledger:
            trace = (
                ledger.trace_back(lot, max_depth=depth)
                if back
                else ledger.trace_forward(lot, max_depth=depth)
            )
            states = {lot_id: ledger.store.lot(lot_id) for lot_id in trace.lot_ids}
        result = {
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
        }
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table(title=f"trace {result['direction']} from {result['root']}")
    for column in ("depth", "lot", "crop", "status", "holder", "recalled"):
        table.add_column(column)
    for s in result["lots"]:
        recalled = "RECALLED" if s["recalled_at"] is not None else ""
        table.add_row(
            str(s["depth"]), s["lot"], s["crop"], s["status"], s["custodian"] or "-", recalled
        )
    out.print(table)
    if result["truncated"]:
        out.print("(truncated: raise --depth to see more)")


def lots_command(
    holder: Annotated[
        str | None, typer.Option("--holder", help="Participant id.", show_default=False)
    ] = None,
    mine: Annotated[
        bool,
        typer.Option(
            "--mine",
            help="What the configured participant holds (MANDI_PARTICIPANT, else the key name).",
        ),
    ] = False,
    data_dir: DataDirOpt = Path("var"),
    db: DbOpt = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What a participant holds now."""
    if mine == (holder is not None):
        err.print("mandi: error: give exactly one of --holder ID or --mine", highlight=False)
        raise typer.Exit(2)
    if holder is None:
        try:
            holder = load_config().participant_id()
        except LedgerError as exc:
            err.print(f"mandi: error: {exc.message}", markup=False, highlight=False)
            raise typer.Exit(2) from exc
    if server:
        with _remote(server) as client:
            held = [_wire_lot_json(x) for x in client.holdings(holder)["lots"]]
    else:
        with _reader(data_dir, db) as ledger:
            held = [_lot_json(s) for s in ledger.held_by(holder)]
    if json_out:
        sys.stdout.write(json.dumps(held, indent=2) + "\n")
        return
    table = Table(title=f"held by {holder}: {len(held)} lots")
    for column in ("lot", "crop", "quantity", "status"):
        table.add_column(column)
    for s in held:
        table.add_row(s["lot"], s["crop"], f"{s['quantity']} {_unit(s['unit_class'])}", s["status"])
    out.print(table)


def _unit(unit_class: str) -> str:
    return base_unit(unit_class)
