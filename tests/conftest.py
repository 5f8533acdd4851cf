"""Shared fixtures and the Hypothesis profiles.

Pick a profile with MANDI_HYPOTHESIS_PROFILE (``dev`` default, ``ci`` under CI).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("MANDI_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)


# --- no skips under CI ---
# A test may skip for a missing outside part (PostgreSQL, Chromium) only on a
# developer's machine. Under CI every skip is a failure of the run.

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("CI") and _skipped:
        terminalreporter.write_line(
            f"CI: {len(_skipped)} tests skipped; under CI a skip is a failure: "
            + ", ".join(_skipped[:10]),
            red=True,
        )
