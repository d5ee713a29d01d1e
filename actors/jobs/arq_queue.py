"""Scaled mode: jobs go to Redis through ARQ and run in `aggregator worker` processes.

Only the job id travels through Redis (JSON-serialised, never pickle); the payload, status
and result stay in the `jobs` table, so the ARQ job id is our job id and ARQ's dedup by id
makes a repeated enqueue harmless.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
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
from storage.models import Job

ARQ_FUNCTION = "run_job"
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

    async def _submit(self, job_id: UUID) -> None:
        await self._pool.enqueue_job(
            ARQ_FUNCTION, str(job_id), _job_id=str(job_id), _queue_name=self.queue_name
        )

    async def recover(self) -> None:
        """Worker start-up: rows that lost their Redis entry (Redis flushed, a crash between
        storing the row and enqueueing it) are enqueued again — ARQ ignores ids it holds —
        and `running` rows no worker holds any more are queued again or failed."""
        for row in await Job.filter(status=JobStatus.RUNNING):
            if not await self._pool.exists(in_progress_key_prefix + str(row.id)):
                await self.runner.requeue_interrupted(row)
        queued = await Job.filter(status=JobStatus.QUEUED).values_list("id", flat=True)
        for job_id in queued:
            await self._submit(job_id)
        if queued:
            logger.info("job worker: {} queued job(s) handed to ARQ", len(queued))


async def run_job(ctx: dict[str, Any], job_id: str) -> str | None:
    """The one ARQ function: runs whatever kind the row names."""
    queue: ArqJobQueue = ctx["job_queue"]
    # ARQ runs an id on one worker at a time, so a `running` row here was left by a worker
    # that died: taking it over is safe.
    outcome = await queue.runner.execute(UUID(job_id), jobs=queue, resume_running=True)
    if outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.status.value if outcome.status else None


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
