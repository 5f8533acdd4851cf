"""`make bench`: measure Mandi against the same machine's raw rates; print and save the figures.

Runs the registered phases in order (``--only`` picks some; their prerequisites
are added), prints a Rich table and writes the same figures to
``bench/latest.json`` as a list of ``{name, value, unit, baseline, ratio,
target, note}``. ``baseline`` names the figure of the same run that ``ratio``
divides by. The JSON is written only when every selected phase finished: on
Ctrl-C the partial table is printed, marked as partial, nothing is written, the
scratch directory is removed and the exit status is 130.

A phase lives in a ``scripts/bench_*.py`` module that exports ``PHASES`` (see
:class:`bench_core.Phase`); add the module to :data:`MODULES` to register it.
See docs/benchmarks.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import bench_audit
import bench_baselines
import bench_http
import bench_import
import bench_ledger
import bench_pages
import bench_proofs
import cryptography
import nacl
from bench_core import BenchConfig, BenchContext, BenchError, Figure, Phase
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "latest.json"
DEFAULT_CACHE = ROOT / "bench" / "cache"

MODULES: tuple[ModuleType, ...] = (
    bench_baselines,
    bench_ledger,
    bench_proofs,
    bench_http,
    bench_pages,
    bench_import,
    bench_audit,
)
"""Modules whose ``PHASES`` make up the registry, in running order."""

EXIT_INTERRUPTED = 130


def registry(modules: Sequence[ModuleType] = MODULES) -> dict[str, Phase]:
    """Every phase by name, in running order.

    Raises:
        BenchError: two phases share a name, or one requires an unknown or later phase.
    """
    phases: dict[str, Phase] = {}
    for module in modules:
        for phase in module.PHASES:
            if phase.name in phases:
                raise BenchError(f"phase {phase.name!r} is registered twice")
            missing = [r for r in phase.requires if r not in phases]
            if missing:
                raise BenchError(f"phase {phase.name!r} requires {missing}, not registered before")
            phases[phase.name] = phase
    return phases


def select(phases: dict[str, Phase], only: Sequence[str] | None) -> list[Phase]:
    """The phases to run: ``only`` and everything they require, in registry order."""
    if not only:
        return list(phases.values())
    wanted: set[str] = set()
    todo = list(only)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(phases[name].requires)
    return [phase for name, phase in phases.items() if name in wanted]


def parse_args(argv: Sequence[str] | None, names: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Mandi benchmarks: append, audit and proof figures next to raw rates.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (smoke test; figures not meaningful)"
    )
    parser.add_argument("--appends", type=int, help="statements to append (default 100000)")
    parser.add_argument(
        "--proof-tree", type=int, help="entries in the proof tree (default 1000000)"
    )
    parser.add_argument("--proofs", type=int, help="proofs of each kind to time (default 2000)")
    parser.add_argument(
        "--only", nargs="+", choices=names, metavar="PHASE", help=f"run only these: {names}"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the proof tree is cached"
    )
    parser.add_argument("--no-cache", action="store_true", help="build the proof tree afresh")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the random proof requests")
    args = parser.parse_args(argv)
    for name in ("appends", "proof_tree", "proofs"):
        value = getattr(args, name)
        if value is not None and value < 2:
            parser.error(f"--{name.replace('_', '-')} must be at least 2")
    return args


def config_from(args: argparse.Namespace) -> BenchConfig:
    """Sizes from the options; ``--quick`` changes the defaults, explicit options win."""
    quick = bool(args.quick)
    return BenchConfig(
        quick=quick,
        appends=args.appends or (2_000 if quick else 100_000),
        batch=100,
        proof_tree=args.proof_tree or (5_000 if quick else 1_000_000),
        proofs=args.proofs or (200 if quick else 2_000),
        signatures=256 if quick else 4_096,
        min_seconds=0.05 if quick else 1.0,
        repeats=2 if quick else 5,
        seed=args.seed,
        cache_dir=None if quick or args.no_cache else args.cache_dir,
    )


def machine() -> str:
    """One line on where the figures come from."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()} · {cores} cores · load {load} · Python {platform.python_version()}"
        f" · SQLite {sqlite3.sqlite_version} · cryptography {cryptography.__version__}"
        f" · PyNaCl {nacl.__version__}"
    )


def table(figures: Sequence[Figure], *, title: str, caption: str) -> Table:
    """The results table: one row per figure, the target marked met or missed."""
    out = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    out.add_column("figure", no_wrap=True)
    out.add_column("value", justify="right", no_wrap=True)
    out.add_column("unit", no_wrap=True)
    out.add_column("ratio", justify="right", no_wrap=True)
    out.add_column("baseline", no_wrap=True)
    out.add_column("target", no_wrap=True)
    out.add_column("note", overflow="fold", min_width=30)
    for f in figures:
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        target = "" if f.target is None else f.target.describe(f.unit)
        if f.met is not None:
            target = f"[green]met: {target}[/]" if f.met else f"[red]MISSED: {target}[/]"
        out.add_row(f.name, _number(f.value), f.unit, ratio, f.baseline or "", target, f.note)
    return out


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def write_json(path: Path, figures: Sequence[Figure]) -> None:
    """Write the figures atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(
        json.dumps([f.to_json() for f in figures], indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    phases = registry()
    args = parse_args(argv, list(phases))
    config = config_from(args)
    selected = select(phases, args.only)
    out = Console()
    if not out.is_terminal:
        out = Console(width=200)  # a file or pipe: do not fold the notes into 80 columns
    err = Console(stderr=True)
    started = datetime.now(UTC).replace(microsecond=0).isoformat()
    err.print(f"[bold]Mandi bench[/] {started} — {machine()}", highlight=False)
    if config.quick:
        err.print("[yellow]--quick: small sizes; the figures are not meaningful[/]")
    stopped: str | None = None
    status = 0
    with tempfile.TemporaryDirectory(prefix="mandi-bench-") as scratch:
        ctx = BenchContext(config=config, workdir=Path(scratch), console=err)
        current = ""
        try:
            for phase in selected:
                current = phase.name
                err.print(f"[bold cyan]{phase.name}[/]: {phase.title}", highlight=False)
                began = time.perf_counter()
                phase.run(ctx)
                err.print(f"  done in {time.perf_counter() - began:.1f} s", highlight=False)
        except KeyboardInterrupt:
            stopped, status = "interrupted", EXIT_INTERRUPTED
        except Exception:  # noqa: BLE001 - report, keep the partial table, exit 1
            err.print_exception(max_frames=8)
            stopped, status = f"phase {current} failed", 1
    caption = machine()
    if stopped is not None:
        out.print(table(ctx.figures, title=f"Mandi bench — PARTIAL ({stopped})", caption=caption))
        err.print(f"[red]{stopped}: partial results, {args.out} not written[/]", highlight=False)
        return status
    out.print(table(ctx.figures, title="Mandi bench", caption=caption))
    write_json(args.out, ctx.figures)
    err.print(f"wrote {len(ctx.figures)} figures to {args.out}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
