"""The README's `--help` excerpts are the real output of the commands they name.

Each excerpt is an HTML comment ``<!-- help: mandi CMD ... -->`` followed by a
```` ```text ```` block. The commands run through Typer's runner at 100 columns
(the width ``mandi`` sets for itself); one is also run as the installed console
script, to show the runner's output is the real one. Trailing spaces and blank
lines at either end are ignored (Rich pads lines; editors strip them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MANDI = str(Path(sys.executable).parent / "mandi")
_EXCERPT = re.compile(r"<!-- help: (mandi(?: [a-z-]+)*) -->\n```text\n(.*?)\n```", re.DOTALL)
MINE = {
    "mandi record",
    "mandi record harvest",
    "mandi import",
    "mandi sync",
    "mandi outbox",
    "mandi keys",
}


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).strip("\n")


def excerpts() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _EXCERPT.finditer(README.read_text(encoding="utf-8"))}


def test_the_cooperative_excerpts_are_in_the_readme():
    assert set(excerpts()) >= MINE


@pytest.mark.parametrize("command", sorted(excerpts()))
def test_excerpt_matches_the_help_output(command):
    result = CliRunner().invoke(app, [*command.split()[1:], "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert normalise(excerpts()[command]) == normalise(result.stdout), (
        f"README excerpt of `{command} --help` is out of date; paste the current output"
    )


def test_the_runner_shows_what_the_installed_command_prints():
    env = {**os.environ, "COLUMNS": "100"}
    real = subprocess.run(
        [MANDI, "sync", "--help"], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    assert normalise(real.stdout) == normalise(excerpts()["mandi sync"])


def test_the_csv_layout_table_is_the_code_s():
    from client.records import KIND_FIELDS

    text = README.read_text(encoding="utf-8")
    for kind, specs in KIND_FIELDS.items():
        cells = " ".join(f"`{s.name}`" if s.required else f"[`{s.name}`]" for s in specs)
        assert f"| {kind} | {cells} |" in text, f"README's CSV layout of {kind} is out of date"
