"""Liveness, readiness (database and, when configured, Redis) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, HTTPResponse, Request
from tortoise import connections

from app.auth.access import public
from app.core.docs import doc
from app.core.http import json_response
from app.observability.metrics import render_metrics

bp = Blueprint("health", url_prefix="/api/v1")
metrics_bp = Blueprint("metrics")

READY_TIMEOUT_SECONDS = 2.0


@bp.get("/health")
@public
@doc(
    tag="health",
    summary="Liveness",
    secured=False,
    response={"type": "object", "properties": {"status": {"type": "string"}}},
)
async def health(request: Request):
    return json_response({"status": "ok"})


@bp.get("/ready")
@public
@doc(
    tag="health",
    summary="Readiness: database and bus reachable",
    secured=False,
    errors=(503,),
    response={
        "type": "object",
        "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
    },
)
async def ready(request: Request):
    checks = {"database": await _check(_database_ok())}
    redis = request.app.ctx.services.redis
    if redis is not None:
        checks["redis"] = await _check(redis.ping())
    ok = all(value == "ok" for value in checks.values())
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


async def _database_ok() -> None:
    await connections.get("default").execute_query("SELECT 1")


async def _check(probe) -> str:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready", reported, never raised
        return f"error: {type(exc).__name__}"
    return "ok"


@metrics_bp.get("/metrics")
@public
@doc(
    tag="health",
    summary="Prometheus metrics (text exposition format)",
    secured=False,
    response={"type": "string"},
)
async def metrics(request: Request):
    body, content_type = render_metrics()
    return HTTPResponse(body, content_type=content_type)
