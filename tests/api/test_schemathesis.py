"""Schemathesis against the app's own OpenAPI document, in process (ASGI, no socket).

Every operation is exercised with examples, schema-derived positive and negative
data and the coverage phase; the test asserts no 5xx and that every response
(status, content type, headers, body) conforms to the document. Bounded so the
whole module runs in well under a minute.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.settings import Settings
from tests.api.support import enrol, harvest
from tests.ledger.builders import new_world


def _app():
    world = new_world()
    enrol(world, "farm-1")
    for _ in range(3):
        world.ledger.append(harvest(world, "farm-1"))
    return create_app(Settings(run_checkpointer=False), world.ledger)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("MANDI_SCHEMATHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_document(case):
    case.call_and_validate(checks=CHECKS)
