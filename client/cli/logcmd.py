"""``mandi log``: the operator's side of witnessing, outside the server.

``mandi log push-witnesses`` pushes the newest checkpoint of a database to each
witness once (c2sp.org/tlog-witness, through :func:`ledger.cosigning.push_checkpoint`)
and stores the cosignatures that verify, exactly as a running server's pusher
does; it is for operators (catching a witness up by hand) and tests. It also
holds :func:`witness_endpoints`, which ``mandi serve --witness`` uses to check
and resolve its options. It never imports ``api``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console

from ledger.cosigning import (
    MAX_RESPONSE_SIZE,
    PushOutcome,
    WitnessEndpoint,
    WitnessReply,
    WitnessTransportError,
    parse_witness_list,
    parse_witness_spec,
    push_checkpoint,
)
from ledger.errors import LedgerError
from ledger.service import Ledger

# ledger.datadir and ledger.storage.sql (SQLAlchemy, Alembic) are imported in the
# functions that use them: `mandi` must start fast.

__all__ = ["log_app", "push_witnesses_command", "witness_endpoints", "witnesses_env"]

WITNESSES_FILE = "witnesses.txt"
"""As the server: the data directory's witness list (api.settings.WITNESSES_FILE)."""

log_app = typer.Typer(help="The log's side of witnessing: push checkpoints to witnesses.")

_err = Console(stderr=True, soft_wrap=True)
_out = Console(soft_wrap=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"mandi: error: {message}", highlight=False, markup=False)
    raise typer.Exit(code)


def witness_endpoints(specs: Sequence[str]) -> list[WitnessEndpoint]:
    """Resolve ``URL=VKEY`` options; ``VKEY`` is a cosignature vkey or a file holding one.

    Raises:
        ValueError: a malformed option, URL or key (the message names the option).
    """
    from ledger.datadir import load_verifier

    endpoints = []
    for spec in specs:
        try:
            url, key = parse_witness_spec(spec)
            endpoints.append(WitnessEndpoint(url=url, verifier=load_verifier(key)))
        except LedgerError as exc:
            raise ValueError(f"--witness {spec!r}: {exc.message}") from None
        except ValueError as exc:
            raise ValueError(f"--witness {spec!r}: {exc}") from None
    keys = [(e.verifier.name, e.verifier.key_hash) for e in endpoints]
    if len(set(keys)) != len(keys):
        raise ValueError("--witness: the same witness key is given twice")
    return endpoints


def witnesses_env(endpoints: Sequence[WitnessEndpoint]) -> str:
    """The ``MANDI_WITNESSES`` value (a JSON array) naming ``endpoints``."""
    return json.dumps([{"url": e.url, "vkey": e.verifier.to_vkey()} for e in endpoints])


def _configured(data_dir: Path) -> list[WitnessEndpoint]:
    """``MANDI_WITNESSES``, else the data directory's witnesses.txt, as the server reads them."""
    text = os.environ.get("MANDI_WITNESSES")
    source = "MANDI_WITNESSES"
    if text is None:
        path = data_dir / WITNESSES_FILE
        source = str(path)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        return witness_endpoints([f"{url}={key}" for url, key in parse_witness_list(text)])
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def _new_client(timeout: float) -> httpx.Client:
    # One place to build the client, so tests can swap the transport.
    return httpx.Client(timeout=timeout, follow_redirects=False)


def _post(client: httpx.Client) -> Callable[[str, bytes], WitnessReply]:
    def post(url: str, body: bytes) -> WitnessReply:
        try:
            response = client.post(url, content=body)
        except httpx.HTTPError as exc:
            raise WitnessTransportError(f"{type(exc).__name__}: {exc}") from exc
        return WitnessReply(
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=response.content[:MAX_RESPONSE_SIZE],
        )

    return post


@log_app.command("push-witnesses")
def push_witnesses_command(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory (default SQLite database).")
    ] = Path("var"),
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLAlchemy database URL.", envvar="MANDI_DATABASE_URL"),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="URL=VKEY: a witness's tlog-witness URL prefix and cosignature vkey (string "
            "or file); repeat for several (default: MANDI_WITNESSES, else witnesses.txt).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each witness.")
    ] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per witness.")] = False,
) -> None:
    """Push the newest checkpoint to each witness once and store the cosignatures that verify.

    Exit 0 when every witness has cosigned the newest checkpoint, 1 otherwise, 2 on usage errors.
    """
    try:
        endpoints = witness_endpoints(witness) if witness else _configured(data_dir)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    if not endpoints:
        _fail("no witness: give --witness URL=VKEY (or set MANDI_WITNESSES, or witnesses.txt)")
    from ledger.datadir import resolve_db_url
    from ledger.storage.sql import SqlStore

    ok = True
    try:
        store = SqlStore.open(resolve_db_url(data_dir, db))
    except LedgerError as exc:
        _fail(exc.message, 1)
    try:
        ledger = Ledger.reader(store)
        with _new_client(timeout) as client:
            post = _post(client)
            for endpoint in endpoints:
                result = push_checkpoint(ledger, endpoint, post)
                done = result.outcome in (PushOutcome.COSIGNED, PushOutcome.UP_TO_DATE)
                ok = ok and done
                if json_out:
                    line = {
                        "witness": endpoint.name,
                        "url": endpoint.url,
                        "outcome": result.outcome.value,
                        "size": result.size,
                        "message": result.message,
                    }
                    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
                else:
                    text = f"{endpoint.name} ({endpoint.url}): {result.outcome.value}, "
                    text += f"checkpoint {result.size}"
                    if result.message:
                        text += f": {result.message}"
                    (_out if done else _err).print(text, highlight=False, markup=False)
    except LedgerError as exc:
        _fail(exc.message, 1)
    finally:
        store.close()
    if not ok:
        raise typer.Exit(1)
