"""Embedded mode: a worker task inside the server process that claims queued rows of the
`jobs` table. The table is the queue, so jobs queued before a restart run after it."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

from loguru import logger

from actors.jobs.base import JobQueue, JobStatus
from actors.jobs.runner import JobRunner
from actors.jobs.schedule import Schedule, run_schedules
from storage.models import Job


class InProcessJobQueue(JobQueue):
    def __init__(
        self,
        runner: JobRunner,
        *,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
        consume: bool = True,
        schedules: list[Schedule] | None = None,
    ):
        super().__init__(runner)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.consume = consume  # False: this process only enqueues (rows wait in the table)
        self._wake = asyncio.Event()
        self._running: dict[UUID, asyncio.Task[None]] = {}
        self._not_before: dict[UUID, float] = {}  # retry back-off, by job id
        self.schedules = schedules or []  # run by this process when it consumes
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self.consume:
            return
        # One process in embedded mode: whatever is `running` now was left by a dead one.
        for row in await Job.filter(status=JobStatus.RUNNING):
            await self.runner.requeue_interrupted(row)
        self._tasks = [
            asyncio.create_task(self._consume(), name="job-worker"),
            asyncio.create_task(run_schedules(self, self.schedules), name="job-schedules"),
        ]

    async def close(self) -> None:
        tasks = [*self._tasks, *self._running.values()]
        for task in tasks:
            task.cancel()  # the runner puts an interrupted job back in the queue
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def _submit(self, job_id: UUID) -> bool:
        self._wake.set()
        return True

    async def _consume(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._start_ready_jobs()
            except Exception as exc:  # a database hiccup must not end the worker
                logger.opt(exception=exc).error("job worker: could not claim jobs")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def _start_ready_jobs(self) -> None:
        free = self.concurrency - len(self._running)
        if free <= 0:
            return
        now = asyncio.get_running_loop().time()
        self._not_before = {job_id: at for job_id, at in self._not_before.items() if at > now}
        waiting = list(self._not_before)
        candidates = await (
            Job.filter(status=JobStatus.QUEUED)
            .exclude(id__in=waiting + list(self._running))
            .order_by("created_at")
            .limit(free)
            .values_list("id", flat=True)
        )
        for job_id in candidates:
            task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
            self._running[job_id] = task

    async def _run(self, job_id: UUID) -> None:
        try:
            outcome = await self.runner.execute(job_id, jobs=self)
            if outcome.retry_in is not None:
                loop = asyncio.get_running_loop()
                self._not_before[job_id] = loop.time() + outcome.retry_in
                loop.call_later(outcome.retry_in, self._wake.set)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.opt(exception=exc).error("job worker: job {} crashed the runner", job_id)
        finally:
            self._running.pop(job_id, None)
            self._wake.set()
