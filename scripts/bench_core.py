"""The benchmark's machinery: figures, targets, the phase registry and measuring helpers.

A *phase* is a function that measures something and records :class:`Figure`
values on a :class:`BenchContext`. Phases are listed in :class:`Phase` records
(name, prerequisites, function); ``scripts/bench.py`` collects the ``PHASES``
tuples of the ``bench_*`` modules into one registry, so a later phase (HTTP, QR,
import) is a new module with its own ``PHASES`` and one line in ``bench.py``.

This module owns no measurement itself and knows nothing about the ledger: it
offers rate and latency helpers, Rich progress bars, RSS readings, and a way to
run a measurement in a fresh child process (for memory figures that an already
warm interpreter would hide).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = [
    "MIB",
    "BenchConfig",
    "BenchContext",
    "BenchError",
    "Figure",
    "Phase",
    "Target",
    "best_rate",
    "current_rss_bytes",
    "peak_rss_bytes",
    "percentile",
    "run_in_child",
]

MIB = 1024 * 1024
_T = TypeVar("_T")


class BenchError(Exception):
    """A phase could not measure what it promised (wrong answer, missing prerequisite)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A goal from an issue: ``value`` (or ``ratio``) compared with ``threshold``.

    Attributes:
        op: ``>=`` (at least) or ``<=`` (at most).
        threshold: the number to compare with.
        on: whether the figure's value or its ratio to the baseline is compared.
    """

    op: Literal[">=", "<="]
    threshold: float
    on: Literal["value", "ratio"] = "value"

    def describe(self, unit: str) -> str:
        """Human and JSON form, e.g. ``>= 3000 statements/s`` or ``ratio >= 0.5``."""
        number = f"{self.threshold:g}"
        if self.on == "ratio":
            return f"ratio {self.op} {number}"
        return f"{self.op} {number} {unit}"

    def met(self, value: float, ratio: float | None) -> bool | None:
        """Whether the figure meets the target (None when its ratio is unknown)."""
        actual = value if self.on == "value" else ratio
        if actual is None:
            return None
        return actual >= self.threshold if self.op == ">=" else actual <= self.threshold


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One measured number, as printed and as written to ``bench/latest.json``.

    Attributes:
        name: stable dotted name (``verify.cryptography``, ``append.rate``, ...).
        value: the measurement.
        unit: what ``value`` counts (``verifications/s``, ``ms``, ``MiB``).
        baseline: name of the figure of the same run that ``ratio`` divides by.
        ratio: ``value / baseline value``.
        target: the goal, if an issue sets one.
        note: how it was measured, in a few words.
    """

    name: str
    value: float
    unit: str
    baseline: str | None = None
    ratio: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None without a target)."""
        return None if self.target is None else self.target.met(self.value, self.ratio)

    def to_json(self) -> dict[str, Any]:
        """The JSON record: name, value, unit, baseline, ratio, target, note."""
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "target": None if self.target is None else self.target.describe(self.unit),
            "note": self.note,
        }


def _round(value: float) -> float:
    return float(f"{value:.6g}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """Sizes and knobs of one run (``--quick`` shrinks them all)."""

    quick: bool
    appends: int
    batch: int
    proof_tree: int
    proofs: int
    signatures: int
    min_seconds: float
    repeats: int
    seed: int
    cache_dir: Path | None


@dataclass(slots=True)
class BenchContext:
    """What a phase gets: the config, a private scratch directory, and the figures so far.

    ``artifacts`` passes things between phases by name (the append phase leaves
    its data directory there for the audit phase).
    """

    config: BenchConfig
    workdir: Path
    console: Console
    figures: list[Figure] = field(default_factory=list)
    artifacts: dict[str, object] = field(default_factory=dict)

    def record(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        baseline: str | None = None,
        target: Target | None = None,
        note: str = "",
    ) -> Figure:
        """Add a figure; its ratio is computed from the baseline figure of this run.

        Raises:
            BenchError: the baseline was not measured in this run.
        """
        ratio = None
        if baseline is not None:
            base = self.figure(baseline)
            ratio = value / base.value if base.value else None
        figure = Figure(
            name=name,
            value=value,
            unit=unit,
            baseline=baseline,
            ratio=ratio,
            target=target,
            note=note,
        )
        self.figures.append(figure)
        return figure

    def figure(self, name: str) -> Figure:
        """A figure recorded earlier in this run.

        Raises:
            BenchError: no such figure (its phase did not run).
        """
        for figure in self.figures:
            if figure.name == name:
                return figure
        raise BenchError(f"figure {name!r} was not measured in this run")

    def artifact(self, name: str, kind: type[_T]) -> _T:
        """An artifact left by an earlier phase, checked for its type.

        Raises:
            BenchError: missing or of another type.
        """
        value = self.artifacts.get(name)
        if not isinstance(value, kind):
            raise BenchError(f"artifact {name!r} is missing: its phase did not run")
        return value

    def say(self, text: str) -> None:
        """One progress line on stderr (the results table goes to stdout)."""
        self.console.print(text, highlight=False)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A Rich progress bar for a long step; yields ``advance(n)``.

        The bar refreshes four times a second from Rich's own thread, which
        costs the measured loop well under 1%.
        """
        bar = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            refresh_per_second=4,
        )
        with bar:
            task = bar.add_task(description, total=total)

            def advance(n: int) -> None:
                bar.advance(task, n)

            yield advance


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One registered phase.

    Attributes:
        name: what ``--only`` selects.
        title: one line for the console.
        run: the measuring function; it records figures on the context.
        requires: phases whose figures or artifacts it uses; ``--only`` adds them.
    """

    name: str
    title: str
    run: Callable[[BenchContext], None]
    requires: tuple[str, ...] = ()


# --------------------------------------------------------------------------- measuring


def best_rate(
    one_pass: Callable[[], int], *, min_seconds: float, repeats: int
) -> tuple[float, float]:
    """Operations per second of ``one_pass`` (which returns how many it did).

    Each repeat runs passes back to back until ``min_seconds`` have elapsed.

    Returns:
        ``(best, median)`` rate over the repeats. The best is the machine's
        limit (the least disturbed repeat); the median shows the spread.
    """
    one_pass()  # warm-up: first-call costs (imports, caches) are not the rate
    rates: list[float] = []
    for _ in range(repeats):
        done = 0
        start = time.perf_counter()
        while True:
            done += one_pass()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rates.append(done / elapsed)
    ordered = sorted(rates)
    return ordered[-1], ordered[len(ordered) // 2]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with ``pct`` % at or below it.

    Requires a non-empty ``values`` and ``0 < pct <= 100``.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def current_rss_bytes() -> int:
    """Resident set size now (Linux ``/proc``; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process image.

    Linux: ``VmHWM`` from ``/proc/self/status``, which ``exec`` resets. Not
    ``getrusage``: its ``ru_maxrss`` survives ``exec``, so a spawned child
    would report the parent's RSS at fork time as its own peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------- child processes

ChildTarget = Callable[..., None]
"""``target(send, *args)``: sends ``("progress", n)`` now and then, ``("done", dict)`` once."""


def run_in_child(
    ctx: BenchContext,
    target: ChildTarget,
    args: tuple[Any, ...],
    *,
    description: str,
    total: int,
) -> Mapping[str, Any]:
    """Run ``target`` in a fresh interpreter (spawn) and follow its progress.

    A fresh process makes the child's peak RSS its own, unhidden by
    memory the parent already holds. On Ctrl-C the child is terminated before
    the interrupt propagates.

    Returns:
        The dict the child sent with ``"done"``.

    Raises:
        BenchError: the child failed or died without an answer.
    """
    spawn = multiprocessing.get_context("spawn")
    receiver, sender = spawn.Pipe(duplex=False)
    child = spawn.Process(target=_child_main, args=(target, sender, args), daemon=True)
    child.start()
    sender.close()
    try:
        with ctx.progress(description, total) as advance:
            done = 0
            while True:
                try:
                    kind, payload = receiver.recv()
                except EOFError:
                    raise BenchError(f"{description}: the child process died") from None
                if kind == "progress":
                    advance(int(payload) - done)
                    done = int(payload)
                elif kind == "done":
                    result: Mapping[str, Any] = payload
                    return result
                else:
                    raise BenchError(f"{description}: {payload}")
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        receiver.close()


def _child_main(target: ChildTarget, sender: Any, args: tuple[Any, ...]) -> None:
    try:
        target(sender.send, *args)
    except KeyboardInterrupt:
        pass  # the parent is stopping too and reports the interrupt
    except Exception as exc:  # noqa: BLE001 - any failure goes back to the parent as text
        sender.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()
