"""Health, readiness, metrics, CORS, unexpected errors, settings and the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.app import create_app
from api.problems import PROBLEMS, ApiError
from api.settings import Settings, SettingsError
from ledger import StorageError
from ledger.storage.memory import MemoryStore
from tests.api.support import Api, assert_problem, enrol, envelope, harvest
from tests.ledger.builders import new_world

ROOT = Path(__file__).resolve().parents[2]


def test_healthz(api):
    r = api.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_memory(api, world):
    assert api.get("/readyz").json() == {"status": "ready", "tree_size": world.ledger.size()}


def test_readyz_sqlite(sql_store):
    world = new_world(sql_store)
    api = Api(create_app(Settings(run_checkpointer=False), world.ledger))
    try:
        r = api.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["tree_size"] == 1
    finally:
        api.close()


class _BrokenStore(MemoryStore):
    """A store whose database has gone away, with internals in its error messages."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.broken = False

    def size(self) -> int:
        if self.broken:
            raise self.error
        return super().size()

    def entry_by_event_id(self, event_id):
        if self.broken:
            raise self.error
        return super().entry_by_event_id(event_id)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (StorageError("disk I/O error at /secret/path/ledger.db"), 503, "storage_error"),
        (RuntimeError("secret internal state"), 500, "internal_error"),
    ],
)
def test_server_errors_leak_nothing(error, status, code):
    store = _BrokenStore(error)
    world = new_world(store)
    api = Api(create_app(Settings(run_checkpointer=False), world.ledger))
    try:
        store.broken = True
        for r in (
            api.get("/readyz"),
            api.get("/v1/log/root"),
            api.get("/v1/events/" + "ab" * 32),
        ):
            body = assert_problem(r, status, code)
            assert "secret" not in r.text
            assert body["detail"] in (
                "The ledger's database is unavailable. Retry later.",
                "An internal error occurred. It has been logged.",
            )
            if status == 503:
                assert r.headers["retry-after"] == "1"
    finally:
        api.close()


def test_unknown_path_and_method_are_problems(api):
    assert_problem(api.get("/v1/nothing-here"), 404, "not_found")
    assert_problem(api.request("PUT", "/v1/events"), 405, "method_not_allowed")


def test_metrics(api, world):
    enrol(world, "farm-1")
    api.post("/v1/events", json=envelope(harvest(world, "farm-1")))
    api.get("/v1/events/" + "ab" * 32)
    text = api.get("/metrics").text
    assert 'mandi_http_requests_total{method="POST",route="/v1/events",status="201"} 1.0' in text
    assert (
        'mandi_http_requests_total{method="GET",route="/v1/events/{event_id}",status="404"} 1.0'
        in text
    )
    assert 'mandi_http_request_duration_seconds_count{method="POST",route="/v1/events"' in text
    assert "mandi_appends_total 1.0" in text
    assert f"mandi_log_size {float(world.ledger.size())}" in text
    assert "mandi_checkpoint_size" in text


def test_cors_open_for_reads_only(api):
    r = api.get("/v1/log/checkpoint", headers={"origin": "https://elsewhere.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    preflight = api.request(
        "OPTIONS",
        "/v1/events",
        headers={
            "origin": "https://elsewhere.example",
            "access-control-request-method": "POST",
        },
    )
    assert "POST" not in preflight.headers.get("access-control-allow-methods", "")
    assert preflight.status_code == 400


def test_settings_from_env():
    settings = Settings.from_env(
        {
            "MANDI_DATA_DIR": "/d",
            "MANDI_DATABASE_URL": "sqlite:////d/x.db",
            "MANDI_PUBLIC_BASE_URL": "https://mandi.example",
            "MANDI_CHECKPOINT_DELAY_MS": "250",
            "MANDI_MAX_BODY_BYTES": "4096",
            "MANDI_MAX_PAGE_SIZE": "50",
            "MANDI_CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings == Settings(
        data_dir=Path("/d"),
        database_url="sqlite:////d/x.db",
        public_base_url="https://mandi.example",
        checkpoint_delay_ms=250,
        max_body_bytes=4096,
        max_page_size=50,
        cors_origins=("https://a.example", "https://b.example"),
    )
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"MANDI_MAX_PAGE_SIZE": "many"}, "MANDI_MAX_PAGE_SIZE: must be an integer"),
        ({"MANDI_MAX_PAGE_SIZE": "0"}, "max_page_size: must be in"),
        ({"MANDI_MAX_BODY_BYTES": "10"}, "max_body_bytes: must be in"),
        ({"MANDI_CHECKPOINT_DELAY_MS": "-1"}, "checkpoint_delay_ms: must be in"),
    ],
)
def test_bad_settings(env, names):
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_api_errors_are_documented_codes():
    with pytest.raises(ValueError, match="undocumented"):
        ApiError("made_up", "x")


def test_openapi_documents_every_route_with_problems_and_examples(api):
    doc = api.get("/openapi.json").json()
    assert doc["x-problem-codes"] == {
        code: {"status": k.status, "title": k.title} for code, k in PROBLEMS.items()
    }
    expected = {
        ("post", "/v1/events"),
        ("post", "/v1/events:batch"),
        ("get", "/v1/events/{event_id}"),
        ("post", "/v1/participants"),
        ("get", "/v1/participants"),
        ("get", "/v1/participants/{participant_id}"),
        ("post", "/v1/participants/{participant_id}/rotate"),
        ("post", "/v1/participants/{participant_id}/revoke"),
        ("get", "/v1/registry"),
        ("get", "/v1/lots/{lot_id}"),
        ("get", "/v1/lots/{lot_id}/history"),
        ("get", "/v1/lots/{lot_id}/trace"),
        ("get", "/v1/lots/{lot_id}/qr.png"),
        ("get", "/v1/lots/{lot_id}/qr.svg"),
        ("get", "/l/{lot_id}"),
        ("get", "/01/{gtin}/10/{batch}"),
        ("get", "/v1/participants/{participant_id}/lots"),
        ("get", "/v1/log"),
        ("get", "/v1/log/checkpoint"),
        ("get", "/v1/log/vkey"),
        ("get", "/v1/log/entries"),
        ("get", "/v1/log/proof/inclusion"),
        ("get", "/v1/log/proof/consistency"),
        ("get", "/v1/log/root"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    found = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert found == expected
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if status[0] in "45":
                    assert response["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    }, (method, path, status)
            ok = op["responses"].get("200") or op["responses"]["201"]
            for content in ok.get("content", {}).values():
                ref = content.get("schema", {}).get("$ref")
                has_example = "example" in content or (
                    ref and "examples" in schemas[ref.rsplit("/", 1)[1]]
                )
                assert has_example, (method, path)
            body = op.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"]
                assert "examples" in schemas[ref.rsplit("/", 1)[1]]
    assert "HTTPValidationError" not in schemas


def test_docs_list_every_problem_code():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z0-9_]+)` \| (\d{3}) \|", text, flags=re.MULTILINE))
    assert rows == {code: str(kind.status) for code, kind in PROBLEMS.items()}
