"""Scaled mode: jobs go to Redis through ARQ and run in `aggregator worker` processes.

Only the job id travels through Redis (JSON-serialised, never pickle); the payload, status
and result stay in the `jobs` table. The ARQ job id is our job id (scoped by queue name), so
ARQ's dedup by id makes a repeated enqueue harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from arq import Retry, Worker, func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from loguru import logger

from actors.bus.base import EventBus
from actors.jobs.base import JobQueue, JobStatus
from actors.jobs.runner import JobRunner, RunnerPolicy
from actors.jobs.schedule import Schedule, run_schedules
from storage.models import Job

ARQ_FUNCTION = "run_job"
SWEEP_BATCH = 1000
# The application side of a worker process (database, bus, job kinds), loaded by dotted path
# so that this package does not import `app` (as arq's own CLI loads WorkerSettings).
DEFAULT_ENVIRONMENT = "app.jobs.environment:job_environment"


def serialize(value: Any) -> bytes:
    return orjson.dumps(value, default=str)


def deserialize(data: bytes) -> Any:
    return orjson.loads(data)


@dataclass
class JobEnvironment:
    """What a worker process needs to run jobs, opened once at worker start-up."""

    bus: EventBus
    policy: RunnerPolicy
    resources: dict[str, Any] = field(default_factory=dict)
    schedules: list[Schedule] = field(default_factory=list)  # periodic jobs the workers start


EnvironmentFactory = Callable[[Any], AbstractAsyncContextManager[JobEnvironment]]


class ArqJobQueue(JobQueue):
    def __init__(
        self,
        runner: JobRunner,
        *,
        queue_name: str,
        redis_url: str | None = None,
        pool: ArqRedis | None = None,
    ):
        super().__init__(runner)
        self.queue_name = queue_name
        self._redis_url = redis_url
        self._pool = pool
        self._owns_pool = pool is None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                RedisSettings.from_dsn(self._redis_url),
                job_serializer=serialize,
                job_deserializer=deserialize,
                default_queue_name=self.queue_name,
            )

    async def close(self) -> None:
        if self._owns_pool and self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def _arq_id(self, job_id: UUID) -> str:
        # ARQ keeps job and result keys per Redis database, not per queue: scoping the id by
        # queue keeps deployments (or test servers) that share a database apart.
        return f"{self.queue_name}:{job_id}"

    async def _submit(self, job_id: UUID) -> bool:
        """False when ARQ holds the job already (queued, running or just finished)."""
        job = await self._pool.enqueue_job(
            ARQ_FUNCTION, str(job_id), _job_id=self._arq_id(job_id), _queue_name=self.queue_name
        )
        return job is not None

    async def recover(self, older_than: timedelta = timedelta(0)) -> None:
        """The table is the truth, Redis may forget (flushed, failed over, a crash between
        storing a row and enqueueing it): queued rows are enqueued again — ARQ ignores ids
        it holds — and `running` rows no worker holds any more are queued again or failed.
        Run at worker start-up and then every JOB_SWEEP_SECONDS."""
        cutoff = datetime.now(UTC) - older_than
        for row in await Job.filter(status=JobStatus.RUNNING, started_at__lt=cutoff):
            if not await self._pool.exists(in_progress_key_prefix + self._arq_id(row.id)):
                await self.runner.requeue_interrupted(row)
        queued = (
            await Job.filter(status=JobStatus.QUEUED, created_at__lt=cutoff)
            .order_by("created_at")
            .limit(SWEEP_BATCH)
            .values_list("id", flat=True)
        )
        resent = [job_id for job_id in queued if await self._submit(job_id)]
        if resent:
            logger.warning("job worker: {} queued job(s) were missing from Redis", len(resent))

    async def sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.recover(older_than=timedelta(seconds=interval))
            except Exception as exc:  # Redis or the database briefly away: next round
                logger.opt(exception=exc).warning("job worker: sweep failed")


async def run_job(ctx: dict[str, Any], job_id: str) -> str | None:
    """The one ARQ function: runs whatever kind the row names."""
    queue: ArqJobQueue = ctx["job_queue"]
    # ARQ runs an id on one worker at a time, so a `running` row here was left by a worker
    # that died: taking it over is safe.
    outcome = await queue.runner.execute(UUID(job_id), jobs=queue, resume_running=True)
    if outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.status.value if outcome.status else None


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _load_environment(path: str) -> EnvironmentFactory:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def create_worker(settings: Any, environment: str = DEFAULT_ENVIRONMENT) -> Worker:
    open_environment = _load_environment(environment)
    resources = contextlib.AsyncExitStack()

    async def startup(ctx: dict[str, Any]) -> None:
        env = await resources.enter_async_context(open_environment(settings))
        runner = JobRunner(env.bus, env.resources, env.policy)
        queue = ArqJobQueue(runner, queue_name=settings.JOB_QUEUE_NAME, pool=ctx["redis"])
        ctx["job_queue"] = queue
        await queue.recover()
        for background in (
            queue.sweep_forever(settings.JOB_SWEEP_SECONDS),
            run_schedules(queue, env.schedules),
        ):
            resources.push_async_callback(_cancel, asyncio.create_task(background))

    async def shutdown(ctx: dict[str, Any]) -> None:
        await resources.aclose()

    timeout = settings.JOB_TIMEOUT_SECONDS + 30  # ours fires first and is recorded
    return Worker(
        functions=[
            # Our runner counts attempts and decides on retries; ARQ's limit is a backstop.
            func(
                run_job, name=ARQ_FUNCTION, max_tries=settings.JOB_MAX_ATTEMPTS + 2, timeout=timeout
            )
        ],
        queue_name=settings.JOB_QUEUE_NAME,
        redis_settings=RedisSettings.from_dsn(settings.REDIS_URL),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=settings.JOB_CONCURRENCY,
        job_serializer=serialize,
        job_deserializer=deserialize,
        keep_result=60,  # the row keeps the result; ARQ's copy only serves dedup
        poll_delay=0.2,
    )


def run_worker(settings: Any) -> None:
    """`aggregator worker`: run jobs until SIGINT/SIGTERM."""
    create_worker(settings).run()
