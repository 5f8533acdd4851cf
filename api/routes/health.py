"""Liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``).

Not versioned: these are for the machines that run the server, not for clients.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import MetricsDep, ReadinessDep
from api.problems import problem_responses
from api.schemas import HealthOut, ReadyOut

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness")
def healthz() -> HealthOut:
    """The process answers."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: database reachable, schema at head",
    responses=problem_responses(),
)
def readyz(readiness: ReadinessDep) -> ReadyOut:
    """Ready to serve: the database answers and its schema is current (else 503)."""
    return ReadyOut(status="ready", tree_size=readiness())


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "mandi_log_size 6.0\n",
                }
            },
        }
    },
)
def metrics(registry: MetricsDep) -> Response:
    """Request counts and latency by route and status, appends, log and checkpoint size."""
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
