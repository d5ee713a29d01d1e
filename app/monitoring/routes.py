from __future__ import annotations

import asyncio
import time
from uuid import UUID

from pydantic import Field
from sanic import Blueprint, Request

from actors.bus.base import BusEvent
from app.auth.access import current_principal, requires
from app.auth.schemas import StrictModel
from app.core.docs import doc
from app.core.errors import NotFound
from app.core.http import json_response, parse_body
from app.realtime.topics import authorize
from storage.models import Role

bp = Blueprint("monitoring", url_prefix="/api/v1/monitoring")


@bp.get("/system")
@requires(Role.VIEWER)
@doc(
    tag="monitoring",
    summary="CPU, memory, disk, network, connections and queue depths (as on metrics:system)",
)
async def system(request: Request):
    return json_response(await request.app.ctx.services.realtime.system.snapshot())


@bp.get("/pipelines")
@requires(Role.VIEWER)
@doc(
    tag="monitoring",
    summary="Running and queued executions, recent failures, rows/s (as on metrics:pipelines)",
)
async def pipelines(request: Request):
    return json_response(await request.app.ctx.services.realtime.pipelines.snapshot())


# --- bench hook (BENCH_HOOKS=true only; the blueprint is not registered otherwise) ---------

bench_bp = Blueprint("bench", url_prefix="/api/v1/bench")


class BenchPublish(StrictModel):
    topic: str = Field(max_length=120)
    count: int = Field(ge=1, le=100_000)
    rate: float = Field(gt=0, le=10_000)  # events per second
    payload_bytes: int = Field(0, ge=0, le=65_536)


@bench_bp.post("/publish")
@requires(Role.ADMIN)
@doc(
    tag="bench",
    summary="bench/ws.py: publish `count` events on `topic` through the bus at `rate`/s",
    body=BenchPublish,
    status=202,
)
async def bench_publish(request: Request):
    body = parse_body(request, BenchPublish)
    topic = await authorize(current_principal(request), body.topic)
    if topic is None:
        raise NotFound(f"No topic {body.topic!r} you may see.")
    bus = request.app.ctx.services.bus
    request.app.add_task(_publish_ticks(bus, topic, body), name=f"bench-{time.time_ns()}")
    return json_response({"topic": topic, "count": body.count, "rate": body.rate}, status=202)


async def _publish_ticks(bus, topic: str, body: BenchPublish) -> None:
    """Ephemeral events (seq 0) straight onto the bus, each stamped with its publish time, so
    the bench measures bus → hub → socket fan-out the way real events travel it."""
    padding = "x" * body.payload_bytes
    started = time.perf_counter()
    for n in range(body.count):
        delay = started + n / body.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await bus.publish(
            BusEvent(
                topic=topic,
                seq=0,
                type="bench.tick",
                entity_type="bench",
                entity_id=str(UUID(int=n)),
                data={"n": n, "sent_at": time.time(), "padding": padding},
            )
        )
