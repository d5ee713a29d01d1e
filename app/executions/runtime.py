"""Builds this process's pipeline actors: their dependencies and the supervisor."""

from __future__ import annotations

import os
import time
from functools import partial
from hashlib import sha256
from uuid import UUID

from actors.bus.base import EventBus
from actors.pipeline_actor import ExecutionEvents, PipelineActor, PipelineActorDeps
from actors.runtime import Supervisor
from app.connectors.service import ConnectorService
from app.executions.wiring import connections_for, connector_context
from app.settings import Settings


def process_token() -> str:
    """Unique per process start: an execution's owner_token names the process running it."""
    raw = f"{os.getpid()}:{time.time_ns()}:{os.urandom(8).hex()}"
    return sha256(raw.encode()).hexdigest()[:32]


def actor_supervisor(
    settings: Settings,
    connectors: ConnectorService,
    events: ExecutionEvents,
    bus: EventBus,
    token: str,
) -> Supervisor:
    deps = PipelineActorDeps(
        owner_token=token,
        data_dir=settings.DATA_DIR,
        events=events,
        connector_context=connector_context(settings),
        publish_live=bus.publish,
        connections=partial(connections_for, connectors),
        batch_size=settings.PIPELINE_BATCH_SIZE,
        retry_cache=settings.PIPELINE_RETRY_CACHE,
    )

    def spawn(pipeline_id: UUID) -> PipelineActor:
        return PipelineActor(pipeline_id=pipeline_id, deps=deps)

    return Supervisor(spawn, idle_seconds=settings.ACTOR_IDLE_SECONDS)
