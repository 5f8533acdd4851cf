"""Smoke test of `make bench`: `scripts/bench.py --quick` runs every phase and writes its JSON.

No timing is asserted: the quick sizes are far too small for meaningful
figures, and the machine running the tests is busy with other things. The test
checks the shape of bench/latest.json (here a temporary file): every phase's
figures, each with a positive value and a ratio to a baseline of the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench.py"

# Every figure the phases promise; a new phase adds its names here.
EXPECTED = {
    "verify.cryptography",
    "verify.pynacl",
    "sign.cryptography",
    "sha256.300B",
    "rfc8785.dumps",
    "append.rate",
    "append.batch_p99_ms",
    "audit.rate",
    "audit.rss_growth",
    "proof.inclusion.p50_ms",
    "proof.inclusion.p99_ms",
    "proof.consistency.p50_ms",
    "proof.consistency.p99_ms",
    "import.rate",
    "verify.cryptography.cores",
    "verify.pynacl.cores",
    "audit.parallel.rate",
    "audit.parallel.rate_vs_pynacl",
    "audit.parallel.cpu_rate",
    "audit.parallel.peak_rss",
    "audit.incremental.seconds",
    *(
        f"http.w{w}.{name}"
        for w in (1, 2)
        for name in (
            "single.rate",
            "single.p50_ms",
            "single.p99_ms",
            "batch.rate",
            "history.c8.p50_ms",
            "history.c8.p99_ms",
            "history.c32.p50_ms",
            "history.c32.p99_ms",
        )
    ),
    "qr.encode_ms",
    "qr.cold_ms",
    "page.cold_ms",
    *(
        f"{name}.c{c}.{pct}_ms"
        for name in ("healthz", "qr", "page")
        for c in (8, 32)
        for pct in ("p50", "p99")
    ),
    "qr.304.c8.p50_ms",
    "qr.304.c8.p99_ms",
}
KEYS = {"name", "value", "unit", "baseline", "ratio", "target", "note"}


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    result = _run("--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]

    figures = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(figures, list)
    by_name = {f["name"]: f for f in figures}
    assert len(by_name) == len(figures), "figure names must be unique"
    assert set(by_name) == EXPECTED
    for figure in figures:
        assert set(figure) == KEYS, figure
        assert isinstance(figure["value"], int | float), figure
        assert figure["value"] > 0, figure
        assert figure["unit"], figure
        if figure["baseline"] is not None:
            assert figure["baseline"] in by_name, figure
            assert figure["ratio"] > 0, figure
    for name in ("append.rate", "audit.rate", "verify.pynacl"):
        assert by_name[name]["baseline"] == "verify.cryptography"
    targets = {f["name"] for f in figures if f["target"] is not None}
    assert targets == {
        "append.rate",
        "audit.rate",
        "proof.inclusion.p99_ms",
        "proof.consistency.p99_ms",
        "import.rate",
        "audit.parallel.rate",
        "audit.parallel.rate_vs_pynacl",
        "audit.incremental.seconds",
        *(
            f"http.w{w}.{name}"
            for w in (1, 2)
            for name in ("single.rate", "single.p99_ms", "batch.rate", "history.c8.p99_ms")
        ),
        "qr.c8.p99_ms",
        "page.c8.p99_ms",
    }


@pytest.mark.slow
def test_only_adds_prerequisites_and_leaves_no_cache(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    cache = tmp_path / "cache"
    result = _run("--quick", "--only", "audit", "--out", str(out), "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr[-3000:]
    names = {f["name"] for f in json.loads(out.read_text(encoding="utf-8"))}
    assert {"verify.cryptography", "append.rate", "audit.rate"} <= names
    assert not any(name.startswith("proof.") for name in names)
    assert not cache.exists()  # --quick never writes the proof-tree cache
