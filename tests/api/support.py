"""A synchronous façade over httpx's ASGI transport, and helpers shared by the API tests."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import anyio.from_thread
import httpx

from ledger import SignedStatement, Signer
from ledger.keys import b64encode
from ledger.registry import build_enrolment, build_enrolment_request
from tests.ledger.builders import ORIGIN, TIME

PROBLEM = "application/problem+json"


class Api:
    """httpx.AsyncClient over httpx.ASGITransport, driven from sync tests through an anyio portal.

    No socket is opened: requests go straight into the ASGI app. Unexpected app
    exceptions become 500 responses (``raise_app_exceptions=False``), as a
    server would send them.
    """

    def __init__(self, app: Any) -> None:
        self._stack = ExitStack()
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self.app = app
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://testserver",
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(lambda: self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.portal.call(fn)

    def close(self) -> None:
        self.portal.call(self._client.aclose)
        self._stack.close()


def envelope(signed: SignedStatement) -> dict[str, str]:
    return {"statement": b64encode(signed.statement.raw), "signature": b64encode(signed.signature)}


def assert_problem(response: httpx.Response, status: int, code: str, field: str | None = None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"] == f"https://mandi.example/problems/{code}"
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    if field is not None:
        assert body["field"] == field, body
    return body


def snapshot(ledger) -> tuple:
    """Everything a refused request must leave unchanged."""
    store = ledger.store
    latest = store.latest_checkpoint()
    return (
        store.size(),
        store.keys(),
        store.participants(),
        latest.size if latest else None,
        [c.size for c in store.checkpoints()],
    )


# --- domain-valid statements (docs/domain.md) --------------------------------

LOCATION = {"district": "Sheikhupura", "province": "Punjab"}
HARVEST_DATE = TIME[:10]


def profile(pid: str, role: str = "producer") -> dict[str, Any]:
    """A valid enrolment profile for ``role``."""
    return {"role": role, "local_id": pid, "location": dict(LOCATION)}


def enrolment(
    world, pid: str, signer: Signer, *, role: str = "producer", operator: Signer | None = None
) -> SignedStatement:
    """The operator's ``enrol`` statement for ``pid`` with ``signer``'s key."""
    request = build_enrolment_request(
        origin=ORIGIN, participant_id=pid, signer=signer, time=TIME, profile=profile(pid, role)
    )
    return build_enrolment(
        origin=ORIGIN, operator=operator or world.operator, request=request, time=TIME
    )


def enrol(world, pid: str, role: str = "producer", signer: Signer | None = None) -> Signer:
    """Enrol ``pid`` directly in the world's ledger; returns its key."""
    signer = signer or Signer.generate()
    world.ledger.append(enrolment(world, pid, signer, role=role))
    world.signers[pid] = signer
    return signer


def quantity(amount: int = 1200, unit: str = "kg") -> dict[str, Any]:
    return {"amount": amount, "unit": unit}


def harvest(world, pid: str, *, signer: Signer | None = None, **extra: Any) -> SignedStatement:
    """A new lot harvested by producer ``pid`` (a fresh lot id each call)."""
    body = {
        "lot": f"lot:{pid}:L{next(world.counter)}",
        "crop": "basmati paddy",
        "plot": "plot 7",
        "harvest_date": HARVEST_DATE,
        "quantity": quantity(),
        **extra,
    }
    return world.statement_by(signer or world.signers[pid], "harvest", body)
