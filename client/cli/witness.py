"""`mandi witness`: run a tlog-witness, print its vkey, and compare what two witnesses saw.

* ``mandi witness serve --key NAME --state FILE [--log VKEY ...]`` serves
  :func:`client.witness_app.create_witness_app` under uvicorn (one process: the
  compare-and-swap in the state file keeps it safe even if two were started on
  one file). The key comes from the key store (``mandi keys new NAME``) and
  never leaves this process.
* ``mandi witness vkey --key NAME`` prints the ``cosignature/v1`` vkey from the
  key's public half (the private key is not opened).
* ``mandi witness compare A B --log-vkey VKEY`` looks for a split view. Exit
  codes: 0 consistent; 1 split view, or a consistency proof that is invalid or
  unavailable (the two signed checkpoints are printed as evidence); 2 usage
  error; 3 cannot decide (different sizes, no ``--server``, and neither side's
  history holds the other's newest checkpoint); 4 a side could not be read, or
  holds a checkpoint whose signatures do not verify.

Errors are one line ``mandi: error: ...`` on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console

from client.cli.sync import KeysDirOpt, passphrase_for
from client.config import load_config
from client.errors import ClientError, TransportError
from client.http import MandiClient, RetryPolicy, new_http_client
from client.keystore import KeyStore
from client.witness_state import WitnessState, is_state_file, origin_hash
from ledger.checkpoint import (
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    NoteVerifier,
    VerifiedCheckpoint,
    build_witness_vkey,
    open_checkpoint,
)
from ledger.errors import LedgerError, ProofError
from ledger.keys import VerifyingKey, b64encode
from ledger.merkle import verify_consistency

# uvicorn, client.witness_app (FastAPI) and ledger.datadir (SQLAlchemy, Alembic)
# are imported in the functions that use them: `mandi` must start fast.

__all__ = [
    "EXIT_SOURCE",
    "EXIT_SPLIT_VIEW",
    "EXIT_UNDECIDED",
    "EXIT_USAGE",
    "compare_command",
    "serve_command",
    "vkey_command",
    "witness_app",
]

EXIT_SPLIT_VIEW = 1
"""compare: a split view, or a consistency proof that is invalid or unavailable."""
EXIT_USAGE = 2
"""A usage error (an option is missing or malformed)."""
EXIT_UNDECIDED = 3
"""compare: different sizes and nothing to decide with (no --server, no common checkpoint)."""
EXIT_SOURCE = 4
"""compare: a side could not be read, or holds a checkpoint that does not verify."""

err = Console(stderr=True, soft_wrap=True)

witness_app = typer.Typer(
    help="Witness a log (c2sp.org/tlog-witness): cosign only checkpoints that extend what was "
    "seen, and compare what two witnesses saw to expose a split view.",
    no_args_is_help=True,
)

WitnessKeyOpt = Annotated[
    str,
    typer.Option(
        "--key", help="The witness's key in the key directory (make it with `mandi keys new`)."
    ),
]
WitnessNameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="The witness's note key name (default: the key name).",
        show_default=False,
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show tracebacks on errors.")]


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"mandi: error: {message}", highlight=False, markup=False)
    raise typer.Exit(code)


@contextmanager
def _errors(verbose: bool, code: int = 1) -> Iterator[None]:
    try:
        yield
    except LedgerError as exc:
        if verbose:
            raise
        field = f" [{exc.field}]" if exc.field else ""
        _fail(f"{exc.code}{field}: {exc.message}", code)


def _identity_name(key: str, name: str | None) -> str:
    chosen = name if name is not None else key
    # Checked before the private key is opened (it may ask for a passphrase); the
    # name rules do not depend on the key, so any 32 bytes stand in for it.
    try:
        build_witness_vkey(chosen, VerifyingKey.from_bytes(bytes(32)))
    except LedgerError as exc:
        option = "--name" if name is not None else "--key"
        _fail(f"{option}: {chosen!r} is not a valid note key name ({exc.message})", EXIT_USAGE)
    return chosen


def _log_keys(values: Sequence[str], option: str) -> list[NoteVerifier]:
    from ledger.datadir import load_verifier

    verifiers = []
    for value in values:
        try:
            verifier = load_verifier(value)
        except LedgerError as exc:
            _fail(f"{option}: {value!r}: {exc.message}", EXIT_USAGE)
        if verifier.sig_type != SIG_TYPE_ED25519:
            _fail(f"{option}: {verifier.name!r} is not an Ed25519 (type 0x01) log key", EXIT_USAGE)
        verifiers.append(verifier)
    return verifiers


# --------------------------------------------------------------------------- serve


@witness_app.command("serve")
def serve_command(
    key: WitnessKeyOpt,
    state: Annotated[
        Path,
        typer.Option("--state", help="The witness's SQLite state file (created on first use)."),
    ],
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="A log to witness: its vkey (string or file); the vkey's name is the origin. "
            "Repeat for several; logs in the state file are kept.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8100,
    name: WitnessNameOpt = None,
    keys_dir: KeysDirOpt = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    verbose: VerboseOpt = False,
) -> None:
    """Serve a witness: POST /add-checkpoint, GET /checkpoint/HASH, /checkpoints/HASH,
    /evidence/HASH."""
    import uvicorn

    from client.witness_app import WitnessIdentity, create_witness_app, unix_seconds

    witness_name = _identity_name(key, name)
    logs = _log_keys(log or (), "--log")
    with _errors(verbose):
        cfg = load_config(keys_dir=keys_dir)
        signer = KeyStore(cfg.keys_dir).load(key, passphrase=passphrase_for(key))
        identity = WitnessIdentity(name=witness_name, signer=signer)
        witness_state = WitnessState(state)
        witness_state.bind_witness(identity.vkey)
        now = unix_seconds()
        for verifier in logs:
            witness_state.add_log(verifier, now=now)
        witnessed = witness_state.logs()
    if not witnessed:
        _fail("--log: give at least one log vkey to witness (none in the state file)", EXIT_USAGE)
    try:
        app = create_witness_app(witness_state, identity)
    except ValueError as exc:
        _fail(f"--state: {exc}")
    err.print(f"witness {identity.vkey}", highlight=False, markup=False)
    for verifier in witnessed:
        err.print(
            f"  witnessing {verifier.name} ({origin_hash(verifier.name)})",
            highlight=False,
            markup=False,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
    )


# --------------------------------------------------------------------------- vkey


@witness_app.command("vkey")
def vkey_command(
    key: WitnessKeyOpt,
    name: WitnessNameOpt = None,
    keys_dir: KeysDirOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Print the witness's cosignature/v1 vkey, for log operators and verifiers to configure."""
    witness_name = _identity_name(key, name)
    with _errors(verbose):
        cfg = load_config(keys_dir=keys_dir)
        info = KeyStore(cfg.keys_dir).info(key)
        vkey = build_witness_vkey(witness_name, VerifyingKey.from_bytes(info.public_key))
    sys.stdout.write(vkey + "\n")


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True, slots=True, kw_only=True)
class _Side:
    """One side of a comparison: where it came from and its verified checkpoints."""

    label: str
    source: str
    checkpoints: tuple[VerifiedCheckpoint, ...]

    @property
    def newest(self) -> VerifiedCheckpoint:
        return max(self.checkpoints, key=lambda v: v.checkpoint.size)

    def at(self, size: int) -> VerifiedCheckpoint | None:
        return next((v for v in self.checkpoints if v.checkpoint.size == size), None)


def _describe(side: _Side, verified: VerifiedCheckpoint) -> dict[str, Any]:
    return {
        "side": side.label,
        "source": side.source,
        "size": verified.checkpoint.size,
        "root_hash": b64encode(verified.checkpoint.root_hash),
        "witnesses": list(verified.witnesses_verified),
        "note": verified.note.to_text(),
    }


def _fetch_history(url: str, origin: str) -> list[str]:
    path = f"/checkpoints/{origin_hash(origin)}"
    http = new_http_client(url.rstrip("/"))
    try:
        response = http.get(path)
    except httpx.HTTPError as exc:
        raise TransportError(f"{url}{path}: {type(exc).__name__}: {exc}") from exc
    finally:
        http.close()
    if response.status_code != 200:
        raise TransportError(
            f"{url}{path}: HTTP {response.status_code}: {response.text.strip()[:200]}"
        )
    try:
        notes = response.json()
    except ValueError as exc:
        raise TransportError(f"{url}{path}: not JSON") from exc
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise TransportError(f"{url}{path}: expected a JSON array of signed notes")
    return notes


def _read_notes(source: str, origin: str, label: str) -> list[str]:
    if source.startswith(("http://", "https://")):
        return _fetch_history(source, origin)
    path = Path(source)
    if not path.is_file():
        _fail(f"{label}: {source!r} is neither an http(s) URL nor a file", EXIT_USAGE)
    if is_state_file(path):
        return WitnessState(path, create=False).history(origin)
    try:
        return [path.read_text(encoding="utf-8")]
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"{source}: cannot read a signed note: {exc}", field=label) from exc


def _load_side(
    label: str, source: str, log: NoteVerifier, witnesses: Sequence[NoteVerifier]
) -> _Side:
    notes = _read_notes(source, log.name, label)
    checkpoints = []
    for i, note in enumerate(notes):
        try:
            checkpoints.append(open_checkpoint(note, log, witnesses, 1 if witnesses else 0))
        except LedgerError as exc:
            raise ClientError(
                f"{source}: checkpoint {i}: {exc.message}", code=exc.code, field=label
            ) from exc
    return _Side(label=label, source=source, checkpoints=tuple(checkpoints))


def _split_view(a: _Side, b: _Side) -> tuple[_Side, VerifiedCheckpoint, _Side, VerifiedCheckpoint]:
    """Two checkpoints of one size with different roots, preferring one from each side."""
    held = [(side, v) for side in (a, b) for v in side.checkpoints]
    found: tuple[_Side, VerifiedCheckpoint, _Side, VerifiedCheckpoint] | None = None
    for i, (side1, v1) in enumerate(held):
        for side2, v2 in held[i + 1 :]:
            c1, c2 = v1.checkpoint, v2.checkpoint
            if c1.size == c2.size and c1.root_hash != c2.root_hash:
                if side1 is not side2:
                    return side1, v1, side2, v2
                found = found or (side1, v1, side2, v2)
    if found is None:
        raise LookupError("no split view")
    return found


class _Verdict:
    def __init__(self, result: str, message: str, code: int) -> None:
        self.result = result
        self.message = message
        self.code = code
        self.evidence: list[dict[str, Any]] = []


def _decide(a: _Side, b: _Side, server: str | None) -> _Verdict:
    try:
        s1, v1, s2, v2 = _split_view(a, b)
    except LookupError:
        pass
    else:
        size = v1.checkpoint.size
        verdict = _Verdict(
            "split_view",
            f"SPLIT VIEW: the log {v1.checkpoint.origin} signed two different trees of size "
            f"{size}; these two signed checkpoints cannot both be true",
            EXIT_SPLIT_VIEW,
        )
        verdict.evidence = [_describe(s1, v1), _describe(s2, v2)]
        return verdict
    newest_a, newest_b = a.newest, b.newest
    if newest_a.checkpoint.size == newest_b.checkpoint.size:
        return _Verdict(
            "consistent",
            f"consistent: both at size {newest_a.checkpoint.size} with the same root",
            0,
        )
    (small_side, small), (large_side, large) = sorted(
        ((a, newest_a), (b, newest_b)), key=lambda pair: pair[1].checkpoint.size
    )
    m, n = small.checkpoint.size, large.checkpoint.size
    if server is not None:
        problem = _prove(server, small, large)
        if problem is None:
            return _Verdict(
                "consistent",
                f"consistent: the server proved size {n} extends size {m}",
                0,
            )
        verdict = _Verdict(
            "inconsistent",
            f"NOT PROVEN CONSISTENT: size {n} ({large_side.label}) does not provably extend "
            f"size {m} ({small_side.label}): {problem}",
            EXIT_SPLIT_VIEW,
        )
        verdict.evidence = [_describe(a, newest_a), _describe(b, newest_b)]
        return verdict
    if large_side.at(m) is not None:
        return _Verdict(
            "consistent",
            f"consistent: {large_side.label}'s history holds the checkpoint of size {m} that "
            f"{small_side.label} holds; its witness proved each step from it to size {n}",
            0,
        )
    return _Verdict(
        "undecided",
        f"cannot decide: {a.label} is at size {newest_a.checkpoint.size}, {b.label} at "
        f"{newest_b.checkpoint.size}, with no checkpoint in common; give --server URL to "
        "check a consistency proof",
        EXIT_UNDECIDED,
    )


def _prove(server: str, small: VerifiedCheckpoint, large: VerifiedCheckpoint) -> str | None:
    """Check the server's consistency proof between the two checkpoints; None when it holds."""
    m, n = small.checkpoint.size, large.checkpoint.size
    try:
        with MandiClient.from_url(server, retry=RetryPolicy(attempts=2)) as client:
            proof = client.consistency_proof(m, n)
    except ClientError as exc:
        return f"no consistency proof from {server}: {exc.message}"
    if (proof.first, proof.second) != (m, n):
        return f"the server answered a proof between {proof.first} and {proof.second}"
    try:
        verify_consistency(
            m, n, proof.proof, small.checkpoint.root_hash, large.checkpoint.root_hash
        )
    except ProofError as exc:
        return f"the consistency proof does not verify ({exc.message})"
    return None


def compare_command(
    a: Annotated[
        str, typer.Argument(metavar="A", help="A witness URL, a witness state file or a note file.")
    ],
    b: Annotated[
        str, typer.Argument(metavar="B", help="The other side, in any of the same forms.")
    ],
    log_vkey: Annotated[
        str | None,
        typer.Option(
            "--log-vkey",
            help="The log's verifier key (string or file): the trust anchor.",
            envvar="MANDI_LOG_VKEY",
            show_default=False,
        ),
    ] = None,
    witness_vkey: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-vkey",
            help="A witness's cosignature vkey (string or file); repeat for several. Each "
            "checkpoint must then carry a valid cosignature from one of them.",
            show_default=False,
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="A Mandi server to ask for a consistency proof when the sizes differ.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Compare what two witnesses (or saved checkpoints) hold of one log: expose a split view.

    Exit 0 consistent; 1 split view or unproven consistency (evidence printed); 2 usage
    error; 3 cannot decide; 4 a side could not be read or does not verify.
    """
    if not log_vkey:
        _fail("--log-vkey VKEY (or MANDI_LOG_VKEY) is required: the trust anchor", EXIT_USAGE)
    from ledger.datadir import load_verifier

    log = _log_keys([log_vkey], "--log-vkey")[0]
    witnesses = []
    for value in witness_vkey or ():
        try:
            witness = load_verifier(value)
        except LedgerError as exc:
            _fail(f"--witness-vkey: {value!r}: {exc.message}", EXIT_USAGE)
        if witness.sig_type != SIG_TYPE_COSIGNATURE_V1:
            _fail(
                f"--witness-vkey: {witness.name!r} is not a cosignature/v1 (type 0x04) vkey",
                EXIT_USAGE,
            )
        witnesses.append(witness)
    if server is not None and not server.startswith(("http://", "https://")):
        _fail(f"--server: {server!r} is not an http(s) URL", EXIT_USAGE)
    with _errors(verbose, EXIT_SOURCE):
        side_a = _load_side("A", a, log, witnesses)
        side_b = _load_side("B", b, log, witnesses)
    empty = [side for side in (side_a, side_b) if not side.checkpoints]
    if empty:
        verdict = _Verdict(
            "undecided",
            "cannot decide: "
            + ", ".join(f"{s.label} ({s.source}) holds no checkpoint of {log.name}" for s in empty),
            EXIT_UNDECIDED,
        )
    else:
        verdict = _decide(side_a, side_b, server)
    _report(verdict, log, side_a, side_b, json_out)
    if verdict.code:
        raise typer.Exit(verdict.code)


def _report(verdict: _Verdict, log: NoteVerifier, a: _Side, b: _Side, json_out: bool) -> None:
    newest = {
        side.label: (_describe(side, side.newest) if side.checkpoints else None) for side in (a, b)
    }
    if json_out:
        data = {
            "result": verdict.result,
            "message": verdict.message,
            "origin": log.name,
            "a": {"source": a.source, "checkpoints": len(a.checkpoints), "newest": newest["A"]},
            "b": {"source": b.source, "checkpoints": len(b.checkpoints), "newest": newest["B"]},
            "evidence": verdict.evidence,
        }
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    lines = [verdict.message]
    for side in (a, b):
        facts = newest[side.label]
        where = f"  {side.label}: {side.source}: {len(side.checkpoints)} checkpoints"
        if facts is not None:
            where += f", newest size {facts['size']} root {facts['root_hash']}"
        lines.append(where)
    text = "".join(line + "\n" for line in lines)
    for item in verdict.evidence:
        # The notes are printed byte for byte: they are the evidence.
        text += (
            f"\n--- evidence from {item['side']} ({item['source']}): size {item['size']} "
            f"root {item['root_hash']}\n{item['note']}"
        )
    sys.stdout.write(text)


witness_app.command("compare")(compare_command)
