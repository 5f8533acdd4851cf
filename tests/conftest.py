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


# --- store fixtures ---
# The storage contract suite runs every test on each Store: "memory" (the
# reference), "sqlite" (a fresh migrated file under tmp_path) and "postgres" (a
# fresh schema inside MANDI_TEST_DATABASE_URL, dropped afterwards). Without that
# variable the PostgreSQL cases skip on a developer's machine and fail under CI.
# Self-contained: imports happen inside the fixtures.

STORE_KINDS = ("memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres))
SQL_KINDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def _postgres_test_url():
    url = os.environ.get("MANDI_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL store tests: set MANDI_TEST_DATABASE_URL")
        pytest.skip("PostgreSQL store tests need MANDI_TEST_DATABASE_URL")
    return url


@pytest.fixture
def postgres_url():
    """URL of a fresh, empty (not migrated) PostgreSQL schema; dropped afterwards."""
    import secrets

    from sqlalchemy import create_engine, make_url, text

    base = make_url(_postgres_test_url())
    if base.drivername in ("postgresql", "postgres"):
        base = base.set(drivername="postgresql+psycopg")
    schema = f"t_{secrets.token_hex(8)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=SQL_KINDS)
def sql_url(request, tmp_path):
    """URL of an empty (not migrated) SQL database: a new SQLite file or PostgreSQL schema."""
    if request.param == "sqlite":
        from ledger.storage.sql import default_sqlite_url

        return default_sqlite_url(tmp_path / "db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sql_store(sql_url):
    """An open SqlStore on a freshly migrated database."""
    from ledger.storage.sql import SqlStore, migrate

    migrate(sql_url)
    store = SqlStore.open(sql_url)
    yield store
    store.close()


@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path):
    """An empty Store of each kind (see the section header)."""
    if request.param == "memory":
        from ledger.storage.memory import MemoryStore

        yield MemoryStore()
        return
    from ledger.storage.sql import SqlStore, default_sqlite_url, migrate

    if request.param == "sqlite":
        url = default_sqlite_url(tmp_path / "db")
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(url)
    sql = SqlStore.open(url)
    yield sql
    sql.close()


# --- end store fixtures ---
