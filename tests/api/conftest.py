"""Fixtures of the API tests: a fresh in-memory ledger and app per test, no sockets."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.settings import Settings
from tests.api.support import Api
from tests.ledger.builders import new_world


@pytest.fixture
def world():
    return new_world()


@pytest.fixture
def settings():
    return Settings(run_checkpointer=False)


@pytest.fixture
def app(world, settings):
    return create_app(settings, world.ledger)


@pytest.fixture
def api(app):
    client = Api(app)
    yield client
    client.close()
