"""Running one job, the same way in both modes: claim the row, call the job function with an
arq-style ctx, persist the outcome, publish `job.*` events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from loguru import logger
from pydantic import ValidationError
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from actors.bus.base import BusEvent, EventBus
from actors.events import event_data
from actors.jobs.base import (
    JobInfo,
    JobNotCancellable,
    JobNotFound,
    JobQueue,
    JobStatus,
    UnknownJobKind,
)
from actors.jobs.registry import JobContext, JobFailed, JobSpec, spec_for
from storage.models import Job

MAX_ERROR_MESSAGE = 2000


@dataclass(frozen=True)
class Outcome:
    status: JobStatus | None  # None: the job was not claimable (finished, cancelled, taken)
    retry_in: float | None = None  # set when the job failed and will be tried again


@dataclass(frozen=True)
class RunnerPolicy:
    max_attempts: int = 3
    timeout_seconds: float = 600.0
    retry_backoff_seconds: float = 5.0

    def backoff(self, attempt: int) -> float:
        return self.retry_backoff_seconds * 2 ** max(attempt - 1, 0)


def _now() -> datetime:
    return datetime.now(UTC)


def _error(exc: BaseException, kind: str | None = None) -> dict[str, str]:
    return {"type": kind or type(exc).__name__, "message": str(exc)[:MAX_ERROR_MESSAGE]}


class JobRunner:
    def __init__(self, bus: EventBus, resources: dict[str, Any], policy: RunnerPolicy):
        self.bus = bus
        self.resources = resources  # extra ctx entries (settings...) for job functions
        self.policy = policy

    # --- the table -------------------------------------------------------------------------

    async def create(
        self,
        kind: str,
        payload: dict[str, Any],
        created_by: UUID | None,
        correlation_id: str | None,
        job_id: UUID | None,
    ) -> UUID:
        spec = spec_for(kind)
        if spec is None:
            raise UnknownJobKind(f"unknown job kind {kind!r}")
        row = Job(
            id=job_id or uuid4(),
            kind=kind,
            payload=spec.validate_payload(payload),
            created_by_id=created_by,
            correlation_id=correlation_id,
        )
        try:
            await row.save(force_create=True)
        except IntegrityError:
            if await Job.exists(id=row.id):
                return row.id  # enqueued before (another process, a retry): same work
            raise
        await self._publish(row, "job.queued")
        return row.id

    async def info(self, job_id: UUID) -> JobInfo | None:
        row = await Job.get_or_none(id=job_id)
        return _info(row) if row else None

    async def cancel(self, job_id: UUID) -> JobInfo:
        cancelled = await Job.filter(id=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, completed_at=_now()
        )
        row = await Job.get_or_none(id=job_id)
        if row is None:
            raise JobNotFound(str(job_id))
        if not cancelled:
            raise JobNotCancellable(JobStatus(row.status))
        await self._publish(row, "job.cancelled")
        return _info(row)

    async def requeue_interrupted(self, row: Job) -> None:
        """A job whose process died while running it: queue it again, or fail it when it
        has used its attempts (it may be what kills the process)."""
        spec = spec_for(row.kind)
        if row.attempts >= self._max_attempts(spec):
            await self._finish_failed(
                row,
                {"type": "interrupted", "message": f"interrupted {row.attempts} times; gave up"},
            )
            return
        await Job.filter(id=row.id, status=JobStatus.RUNNING).update(status=JobStatus.QUEUED)
        logger.warning("job {} ({}) was interrupted; queued again", row.id, row.kind)

    # --- running ---------------------------------------------------------------------------

    async def execute(
        self, job_id: UUID, *, jobs: JobQueue, resume_running: bool = False
    ) -> Outcome:
        """Run the job if it can be claimed. `resume_running`: the caller knows no one else
        runs it (ARQ re-running a job whose worker died), so a `running` row is taken over."""
        row = await self._claim(job_id, resume_running)
        if row is None:
            return Outcome(None)
        with logger.contextualize(correlation_id=row.correlation_id or "-"):
            return await self._run_claimed(row, jobs)

    async def _claim(self, job_id: UUID, resume_running: bool) -> Job | None:
        claimable = [JobStatus.QUEUED, JobStatus.RUNNING] if resume_running else [JobStatus.QUEUED]
        claimed = await Job.filter(id=job_id, status__in=claimable).update(
            status=JobStatus.RUNNING, started_at=_now(), attempts=F("attempts") + 1
        )
        return await Job.get_or_none(id=job_id) if claimed else None

    async def _run_claimed(self, row: Job, jobs: JobQueue) -> Outcome:
        spec = spec_for(row.kind)
        if spec is None:
            return await self._finish_failed(row, _error(UnknownJobKind(row.kind), "unknown_kind"))
        if row.attempts > self._max_attempts(spec):
            message = f"gave up after {row.attempts - 1} attempts"
            return await self._finish_failed(row, {"type": "interrupted", "message": message})
        try:
            payload = spec.load_payload(row.payload)
        except ValidationError as exc:
            return await self._finish_failed(row, _error(exc, "invalid_payload"))
        await self._publish(row, "job.started")
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                result = await spec.function(self._context(row, jobs), payload)
        except JobFailed as exc:
            return await self._finish_failed(row, _error(exc))
        except asyncio.CancelledError:
            # Shutdown, not the job's fault: give the attempt back and leave it queued.
            await asyncio.shield(self._release(row))
            raise
        except Exception as exc:
            return await self._retry_or_fail(row, spec, exc)
        return await self._finish_succeeded(row, result or {})

    def _context(self, row: Job, jobs: JobQueue) -> JobContext:
        async def progress(fraction: float) -> None:
            row.progress = min(max(float(fraction), 0.0), 1.0)
            await Job.filter(id=row.id).update(progress=row.progress)
            await self._publish(row, "job.progress")

        return {
            **self.resources,
            "job_id": str(row.id),
            "job_try": row.attempts,
            "kind": row.kind,
            "created_by": str(row.created_by_id) if row.created_by_id else None,
            "correlation_id": row.correlation_id,
            "progress": progress,
            "bus": self.bus,
            "jobs": jobs,
        }

    async def _retry_or_fail(self, row: Job, spec: JobSpec, exc: Exception) -> Outcome:
        if row.attempts >= self._max_attempts(spec):
            logger.opt(exception=exc).error("job {} ({}) failed", row.id, row.kind)
            return await self._finish_failed(row, _error(exc))
        delay = self.policy.backoff(row.attempts)
        logger.warning(
            "job {} ({}) attempt {} failed: {!r}; retrying in {}s",
            row.id,
            row.kind,
            row.attempts,
            exc,
            delay,
        )
        await Job.filter(id=row.id, status=JobStatus.RUNNING).update(
            status=JobStatus.QUEUED, error=_error(exc)
        )
        return Outcome(JobStatus.QUEUED, retry_in=delay)

    async def _release(self, row: Job) -> None:
        await Job.filter(id=row.id, status=JobStatus.RUNNING).update(
            status=JobStatus.QUEUED, attempts=F("attempts") - 1
        )

    async def _finish_succeeded(self, row: Job, result: dict[str, Any]) -> Outcome:
        row.status, row.progress, row.result = JobStatus.SUCCEEDED, 1.0, result
        row.error, row.completed_at = None, _now()
        await Job.filter(id=row.id).update(
            status=row.status,
            progress=row.progress,
            result=row.result,
            error=None,
            completed_at=row.completed_at,
        )
        await self._publish(row, "job.succeeded")
        return Outcome(JobStatus.SUCCEEDED)

    async def _finish_failed(self, row: Job, error: dict[str, Any]) -> Outcome:
        row.status, row.error, row.completed_at = JobStatus.FAILED, error, _now()
        await Job.filter(id=row.id).update(
            status=row.status, error=error, completed_at=row.completed_at
        )
        await self._publish(row, "job.failed")
        return Outcome(JobStatus.FAILED)

    def _max_attempts(self, spec: JobSpec | None) -> int:
        return (spec.max_attempts if spec else None) or self.policy.max_attempts

    async def _publish(self, row: Job, event_type: str) -> None:
        # The row is the source of truth (GET /jobs/{id}); an event lost to a bus outage
        # must not fail the job, so publishing errors are logged, not raised.
        data: dict[str, Any] = {
            "kind": row.kind,
            "status": event_type.removeprefix("job."),
            "progress": row.progress,
        }
        if event_type == "job.succeeded":
            data["result"] = row.result
        if event_type == "job.failed":
            data["error"] = row.error
        if event_type in {"job.progress", "job.started"}:
            data["status"] = JobStatus.RUNNING.value
        event = BusEvent(
            topic=f"job:{row.id}",
            seq=0,
            type=event_type,
            entity_type="job",
            entity_id=str(row.id),
            data=event_data(event_type, data),
            user_id=row.created_by_id,
            correlation_id=row.correlation_id,
        )
        try:
            await self.bus.publish(event)
        except Exception as exc:
            logger.warning("could not publish {} for job {}: {!r}", event_type, row.id, exc)


def _info(row: Job) -> JobInfo:
    return JobInfo(
        id=row.id,
        kind=row.kind,
        status=JobStatus(row.status),
        progress=row.progress,
        result=row.result,
        error=row.error,
        attempts=row.attempts,
        created_by=row.created_by_id,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
    )
