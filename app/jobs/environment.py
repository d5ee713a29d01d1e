"""The application side of an `aggregator worker` process (scaled mode): logging, database,
bus and job kinds, opened once when the ARQ worker starts (see actors/jobs/arq_queue.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from redis.asyncio import Redis

from actors.bus.outbox import outbox
from actors.bus.redis import RedisBus
from actors.jobs.arq_queue import JobEnvironment
from actors.jobs.runner import RunnerPolicy
from actors.jobs.schedule import Schedule
from app.jobs.kinds import load_job_kinds
from app.logging import configure_logging
from app.settings import Settings
from storage.db import close_db, init_db


def job_policy(settings: Settings) -> RunnerPolicy:
    return RunnerPolicy(
        max_attempts=settings.JOB_MAX_ATTEMPTS,
        timeout_seconds=settings.JOB_TIMEOUT_SECONDS,
        retry_backoff_seconds=settings.JOB_RETRY_BACKOFF_SECONDS,
    )


def job_schedules(settings: Settings) -> list[Schedule]:
    """Periodic jobs, started by whichever process runs jobs (one job per period)."""
    every = timedelta(seconds=settings.MAINTENANCE_INTERVAL_SECONDS)
    return [
        Schedule(kind, every)
        for kind in (
            "maintenance.purge_events",
            "maintenance.purge_jobs",
            "maintenance.purge_notifications",
        )
    ]


def job_resources(settings: Settings) -> dict[str, object]:
    """What job functions find in ctx besides the job's own fields."""
    return {"settings": settings}


@asynccontextmanager
async def job_environment(settings: Settings) -> AsyncIterator[JobEnvironment]:
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    load_job_kinds()
    await init_db(settings.database_url)
    redis = Redis.from_url(settings.REDIS_URL)
    bus = RedisBus(redis)
    await bus.start()
    outbox.bus = bus  # events jobs record (e.g. notification.created) go out after commit
    try:
        yield JobEnvironment(
            bus, job_policy(settings), job_resources(settings), job_schedules(settings)
        )
    finally:
        outbox.bus = None
        await bus.close()
        await redis.aclose()
        await close_db()
