"""`mandi record KIND ...`, `mandi register` and `mandi admin enrol REQUEST`.

``mandi record`` has one command per supply-chain kind; its options mirror the
kind's fields (docs/domain.md, :data:`client.records.KIND_FIELDS`). The
statement is checked with the ledger's own schema code *before* the key is
opened, then signed locally and written to the outbox; ``--sync`` also sends
the outbox at once. The claimed time is ``--time`` or now.

``mandi register`` writes a participant's enrolment request (its profile and
public key, signed by the key itself) for the operator, who appends it with
``mandi admin enrol REQUEST`` to the database (``--db``/``--data-dir``) or
through a server (``--server``), signing with the operator key of the data
directory.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from client.cli.sync import (
    JsonOpt,
    KeyOpt,
    KeysDirOpt,
    LogVkeyOpt,
    OriginOpt,
    OutboxOpt,
    ServerOpt,
    VerboseOpt,
    cli_errors,
    connect,
    err,
    fail,
    origin_for,
    out,
    passphrase_for,
    run_sync,
)
from client.config import load_config
from client.errors import ConfigError, TransportError
from client.keystore import KeyStore
from client.outbox import Outbox
from client.records import Value, build_statement, column_for
from ledger.checkpoint import NoteVerifier
from ledger.domain.kinds import INSPECTIONS, PROCESSES, RESULTS, TRANSPORT_MODES
from ledger.domain.participants import ROLES, validate_profile
from ledger.errors import EncodingError, LedgerError
from ledger.registry import SignedRequest, build_enrolment, build_enrolment_request
from ledger.statements import sign_statement

# ledger.datadir (it pulls in SQLAlchemy and Alembic) is imported in the
# functions that use it: `mandi record` must start fast.

__all__ = ["admin_enrol_command", "record_app", "register_command"]

record_app = typer.Typer(
    help="Record a supply-chain statement: checked, signed with your key, queued in the outbox.",
    no_args_is_help=True,
)


def now_rfc3339() -> str:
    """Now, UTC, second precision: ``2026-11-28T04:30:00+00:00``."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------
# The options every record command has, added to each command's signature.

_COMMON: tuple[inspect.Parameter, ...] = tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, annotation, default in (
        (
            "time",
            Annotated[
                str | None,
                typer.Option(
                    "--time",
                    help="Claimed time, RFC 3339 with offset (default: now).",
                    show_default=False,
                ),
            ],
            None,
        ),
        ("key", KeyOpt, None),
        ("keys_dir", KeysDirOpt, None),
        ("origin", OriginOpt, None),
        ("log_vkey", LogVkeyOpt, None),
        ("outbox", OutboxOpt, None),
        ("server", ServerOpt, None),
        (
            "sync",
            Annotated[bool, typer.Option("--sync", help="Send the outbox to the server now.")],
            False,
        ),
        ("json_out", JsonOpt, False),
        ("verbose", VerboseOpt, False),
    )
)


def _recorder(kind: str) -> Callable[[Callable[..., Mapping[str, Value]]], Callable[..., None]]:
    """Make ``fn`` (kind options -> flat field values) a record command with the common options."""

    def decorate(fn: Callable[..., Mapping[str, Value]]) -> Callable[..., None]:
        own = inspect.signature(fn, eval_str=True)

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            common = {p.name: kwargs.pop(p.name) for p in _COMMON}
            _record(kind, fn(**kwargs), **common)

        signature = own.replace(
            parameters=[*own.parameters.values(), *_COMMON], return_annotation=None
        )
        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        record_app.command(kind)(command)
        return command

    return decorate


def _record(
    kind: str,
    values: Mapping[str, Value],
    *,
    time: str | None,
    key: str | None,
    keys_dir: Path | None,
    origin: str | None,
    log_vkey: str | None,
    outbox: Path | None,
    server: str | None,
    sync: bool,
    json_out: bool,
    verbose: bool,
) -> None:
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
        try:
            statement = build_statement(
                kind,
                values,
                time=time or now_rfc3339(),
                origin=origin_for(cfg),
                signer=info.key_id,
            )
        except EncodingError as exc:
            column = column_for(kind, exc.field)
            option = f"--{column.replace('_', '-')}" if column else exc.field
            fail(f"{exc.code} [{option}]: {exc.message}; nothing was signed")
        signed = sign_statement(
            store.load(key_name, passphrase=passphrase_for(key_name)), statement
        )
        with Outbox(cfg.outbox) as box:
            new = box.add(signed, source=f"record {kind}")
            pending = box.counts()["pending"]
    event = signed.event_id.hex()
    if json_out and not sync:
        sys.stdout.write(
            json.dumps(
                {"event_id": event, "kind": kind, "queued": new, "pending": pending}, indent=2
            )
            + "\n"
        )
    elif not json_out:
        state = "queued" if new else "already in the outbox"
        out.print(f"{kind} {event} {state}; {pending} pending", highlight=False)
    if sync:
        with cli_errors(verbose):
            try:
                report, outcome, left = run_sync(cfg)
            except TransportError as exc:
                fail(f"{exc.message}; the statement stays queued: run `mandi sync` later")
        item_refused = [p for i, p in report.refused if i.event_id.hex() == event]
        if json_out:
            sys.stdout.write(
                json.dumps(
                    {
                        "event_id": event,
                        "kind": kind,
                        "appended": report.appended,
                        "already_in_log": report.known,
                        "refused": [p for _, p in report.refused],
                        "pending": left,
                        "checkpoint_size": outcome.tree_size,
                    },
                    indent=2,
                )
                + "\n"
            )
        else:
            out.print(
                f"sent: {report.appended} appended, {report.known} already in the log, "
                f"{len(report.refused)} refused; {left} pending",
                highlight=False,
            )
        for problem in item_refused:
            field = f" [{problem.get('field')}]" if problem.get("field") else ""
            err.print(
                f"mandi: refused: {problem.get('code')}{field}: {problem.get('detail')}",
                highlight=False,
                markup=False,
            )
        if report.refused:
            raise typer.Exit(1)


def _opt(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


_LOT_HELP = "Lot id: lot:PARTICIPANT:CODE or gtin:GTIN:LOT."
_QTY_HELP = "Quantity: amount and unit, e.g. '1200 kg' (g, kg, t, crate, sack, bag, box, ...)."


@_recorder("harvest")
def harvest(
    lot: Annotated[
        str, _opt("--lot", help="Lot id of the new lot (lot:YOU:CODE or gtin:GTIN:LOT).")
    ],
    crop: Annotated[str, _opt("--crop", help="Crop, e.g. rice.")],
    plot: Annotated[str, _opt("--plot", help="Plot or farm.")],
    harvest_date: Annotated[str, _opt("--harvest-date", help="Harvest date, YYYY-MM-DD.")],
    quantity: Annotated[str, _opt("--quantity", help=_QTY_HELP)],
    variety: Annotated[str | None, _opt("--variety", help="Variety.")] = None,
) -> Mapping[str, Value]:
    """Harvest (CBV commissioning): create a lot from a plot (producers)."""
    return {
        "lot": lot,
        "crop": crop,
        "variety": variety,
        "plot": plot,
        "harvest_date": harvest_date,
        "quantity": quantity,
    }


@_recorder("store")
def store(
    lot: Annotated[str, _opt("--lot", help=_LOT_HELP)],
    facility: Annotated[str, _opt("--facility", help="Where the lot is kept.")],
    condition: Annotated[str | None, _opt("--condition", help="Storage condition.")] = None,
    temperature_dc: Annotated[
        str | None, _opt("--temperature-dc", help="Temperature in tenths of a degree C.")
    ] = None,
) -> Mapping[str, Value]:
    """Store (CBV storing): where and how you keep a lot you hold."""
    return {
        "lot": lot,
        "facility": facility,
        "condition": condition,
        "temperature_dc": temperature_dc,
    }


@_recorder("transform")
def transform(
    process: Annotated[str, _opt("--process", help=f"One of {', '.join(PROCESSES)}.")],
    inputs: Annotated[
        list[str],
        _opt("--input", "--inputs", help="Consumed: LOT=QUANTITY, e.g. 'lot:a:b=600 kg' (repeat)."),
    ],
    outputs: Annotated[
        list[str],
        _opt("--output", "--outputs", help="New lot: LOT=QUANTITY=CROP[=VARIETY] (repeat)."),
    ],
) -> Mapping[str, Value]:
    """Transform (CBV transforming): consume input lots, create output lots."""
    return {"process": process, "inputs": inputs, "outputs": outputs}


@_recorder("pack")
def pack(
    unit: Annotated[str, _opt("--unit", help="Lot id of the new shipping unit.")],
    contents: Annotated[
        list[str], _opt("--content", "--contents", help="A lot to pack, whole (repeat).")
    ],
) -> Mapping[str, Value]:
    """Pack (CBV packing): whole lots you hold into a new shipping unit."""
    return {"unit": unit, "contents": contents}


@_recorder("unpack")
def unpack(
    unit: Annotated[str, _opt("--unit", help="Lot id of the shipping unit.")],
) -> Mapping[str, Value]:
    """Unpack (CBV unpacking): empty a shipping unit; its lots are held again."""
    return {"unit": unit}


@_recorder("ship")
def ship(
    lot: Annotated[str, _opt("--lot", help=_LOT_HELP + " Shipped whole.")],
    to: Annotated[str, _opt("--to", help="Participant id of the consignee.")],
    quantity: Annotated[str, _opt("--quantity", help="The whole lot, e.g. '1200 kg'.")],
    mode: Annotated[str, _opt("--mode", help=f"Transport: {', '.join(TRANSPORT_MODES)}.")],
    vehicle: Annotated[str | None, _opt("--vehicle", help="Vehicle.")] = None,
    carrier: Annotated[str | None, _opt("--carrier", help="Participant id of the carrier.")] = None,
) -> Mapping[str, Value]:
    """Ship (CBV shipping): send a whole lot to a consignee."""
    return {
        "lot": lot,
        "to": to,
        "quantity": quantity,
        "mode": mode,
        "vehicle": vehicle,
        "carrier": carrier,
    }


@_recorder("receive")
def receive(
    shipment: Annotated[str, _opt("--shipment", help="Event id of the ship statement (64 hex).")],
    quantity: Annotated[str, _opt("--quantity", help="Quantity received, e.g. '1180 kg'.")],
) -> Mapping[str, Value]:
    """Receive (CBV receiving): take custody of a shipment sent to you."""
    return {"shipment": shipment, "quantity": quantity}


@_recorder("inspect")
def inspect_(
    lot: Annotated[str, _opt("--lot", help=_LOT_HELP)],
    inspection: Annotated[str, _opt("--inspection", help=f"One of {', '.join(INSPECTIONS)}.")],
    result: Annotated[str, _opt("--result", help=f"One of {', '.join(RESULTS)}.")],
    document: Annotated[
        str | None, _opt("--document", help="SHA-256 (64 hex) of the report, kept off the log.")
    ] = None,
    document_file: Annotated[
        Path | None, _opt("--document-file", help="The report file: its SHA-256 is recorded.")
    ] = None,
    grade: Annotated[str | None, _opt("--grade", help="Grade.")] = None,
    certificate: Annotated[str | None, _opt("--certificate", help="Certificate number.")] = None,
    valid_until: Annotated[
        str | None, _opt("--valid-until", help="Valid until, YYYY-MM-DD.")
    ] = None,
) -> Mapping[str, Value]:
    """Inspect (CBV inspecting): an inspector's result, with the report's SHA-256."""
    if document_file is not None:
        if document is not None:
            fail("give --document or --document-file, not both", 2)
        try:
            document = hashlib.sha256(document_file.read_bytes()).hexdigest()
        except OSError as exc:
            fail(f"--document-file: cannot read {document_file}: {exc.strerror}", 2)
    return {
        "lot": lot,
        "inspection": inspection,
        "result": result,
        "grade": grade,
        "document": document,
        "certificate": certificate,
        "valid_until": valid_until,
    }


@_recorder("sell")
def sell(
    lot: Annotated[str, _opt("--lot", help=_LOT_HELP)],
    quantity: Annotated[str, _opt("--quantity", help="Quantity sold, e.g. '50 kg'.")],
    price: Annotated[
        str | None, _opt("--price", help="Price in minor units and currency, e.g. '25000 PKR'.")
    ] = None,
) -> Mapping[str, Value]:
    """Sell (CBV retail_selling): sell some or all of a lot (markets)."""
    return {"lot": lot, "quantity": quantity, "price": price}


@_recorder("recall")
def recall(
    lot: Annotated[str, _opt("--lot", help=_LOT_HELP)],
    reason: Annotated[str, _opt("--reason", help="Why.")],
) -> Mapping[str, Value]:
    """Recall: the lot and everything made from it (its producer, or the operator)."""
    return {"lot": lot, "reason": reason}


@_recorder("correct")
def correct(
    corrects: Annotated[str, _opt("--corrects", help="Event id of your statement that was wrong.")],
    reason: Annotated[str, _opt("--reason", help="What was wrong.")],
    replacement: Annotated[
        str | None, _opt("--replacement", help="Event id of your statement that replaces it.")
    ] = None,
) -> Mapping[str, Value]:
    """Correct (EPCIS errorDeclaration): declare one of your own statements wrong."""
    return {"corrects": corrects, "reason": reason, "replacement": replacement}


# ---------------------------------------------------------------------------
# mandi register


def register_command(
    participant: Annotated[
        str, _opt("--participant", help="Your participant id, e.g. farm.punjab.7.")
    ],
    role: Annotated[str, _opt("--role", help=f"One of {', '.join(ROLES)}.")],
    district: Annotated[str | None, _opt("--district", help="District.")] = None,
    province: Annotated[str | None, _opt("--province", help="Province.")] = None,
    local_id: Annotated[
        str | None, _opt("--local-id", help="Local id, e.g. a cooperative member number.")
    ] = None,
    gln: Annotated[
        str | None, _opt("--gln", help="GS1 GLN (13 digits), instead of --local-id.")
    ] = None,
    name: Annotated[str | None, _opt("--name", help="Public display name (organisations).")] = None,
    key: KeyOpt = None,
    keys_dir: KeysDirOpt = None,
    origin: OriginOpt = None,
    log_vkey: LogVkeyOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the request here (default stdout).")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Write an enrolment request for the operator: your profile and public key, signed by it.

    The key is --key (default: a key named like the participant). Hand the
    file to the operator, who runs `mandi admin enrol FILE`.
    """
    profile: dict[str, Any] = {"role": role}
    if name is not None:
        profile["name"] = name
    if gln is not None:
        profile["gln"] = gln
    if local_id is not None:
        profile["local_id"] = local_id
    if district is not None or province is not None:
        profile["location"] = {
            k: v for k, v in (("district", district), ("province", province)) if v
        }
    with cli_errors(verbose):
        validate_profile(profile, path="profile")  # the check the registry runs, before signing
        cfg = load_config(key=key or None, keys_dir=keys_dir, origin=origin, log_vkey=log_vkey)
        key_name = cfg.key or participant
        store = KeyStore(cfg.keys_dir)
        signer = store.load(key_name, passphrase=passphrase_for(key_name))
        request = build_enrolment_request(
            origin=origin_for(cfg),
            participant_id=participant,
            signer=signer,
            time=now_rfc3339(),
            profile=profile,
        )
    text = json.dumps(request.to_json(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(
            f"enrolment request for {participant} (key {signer.key_id.hex()[:16]}) written to "
            f"{output}: give it to the operator",
            highlight=False,
        )


# ---------------------------------------------------------------------------
# mandi admin enrol


def admin_enrol_command(
    request_file: Annotated[Path, typer.Argument(help="The request `mandi register` wrote.")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory (operator key, default database).")
    ] = Path("var"),
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLAlchemy database URL.", envvar="MANDI_DATABASE_URL"),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server", help="Submit through this server instead of appending to the database."
        ),
    ] = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Enrol a participant: sign its request with the operator key and append it."""
    from ledger.datadir import open_ledger, read_operator

    with cli_errors(verbose):
        request = _read_request(request_file)
        operator_id, operator = read_operator(data_dir)
        if server:
            with connect(server) as client:
                origin = _origin_of(data_dir) or str(client.log_info().get("origin", ""))
                signed = build_enrolment(
                    origin=origin, operator=operator, request=request, time=now_rfc3339()
                )
                answer = client.enrol(signed)
            index = int(answer["entry"]["index"])
            created = bool(answer.get("created"))
        else:
            ledger = open_ledger(data_dir, db_url=db)
            try:
                signed = build_enrolment(
                    origin=ledger.log.origin, operator=operator, request=request, time=now_rfc3339()
                )
                result = ledger.append(signed)
                ledger.flush_checkpoint()
            finally:
                ledger.store.close()
            index, created = result.entry.index, result.created
    participant = request.request["participant"]
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "participant": participant,
                    "index": index,
                    "created": created,
                    "event_id": signed.event_id.hex(),
                    "operator": operator_id,
                },
                indent=2,
            )
            + "\n"
        )
        return
    state = "enrolled" if created else "was already enrolled with this request"
    out.print(f"{participant} {state} at index {index} (signed by {operator_id})", highlight=False)


def _read_request(path: Path) -> SignedRequest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON request: {exc}", field="request") from exc
    if not isinstance(data, dict) or set(data) != {"request", "signatures"}:
        raise EncodingError(
            f'{path}: an enrolment request is {{"request": ..., "signatures": ...}}',
            code="bad_request",
            field="request",
        )
    request, signatures = data["request"], data["signatures"]
    if not isinstance(request, dict) or not isinstance(signatures, dict):
        raise EncodingError(f"{path}: malformed request", code="bad_request", field="request")
    return SignedRequest(
        request=request, signatures={str(k): str(v) for k, v in signatures.items()}
    )


def _origin_of(data_dir: Path) -> str | None:
    from ledger.datadir import LOG_VKEY_FILE

    try:
        return NoteVerifier.from_vkey(
            (data_dir / LOG_VKEY_FILE).read_text(encoding="ascii").strip()
        ).name
    except (OSError, LedgerError):
        return None
