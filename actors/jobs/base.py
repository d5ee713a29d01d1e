"""The job queue contract shared by the in-process and the ARQ implementation.

Both keep the truth in the `jobs` table (status, progress, result, error); they differ only
in how a queued row reaches a worker: the in-process worker polls the table, ARQ gets the
job id pushed to Redis.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel

if TYPE_CHECKING:
    from actors.jobs.runner import JobRunner


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobInfo(BaseModel):
    id: UUID
    kind: str
    status: JobStatus
    progress: float
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_by: UUID | None
    correlation_id: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class UnknownJobKind(ValueError):
    pass


class JobNotFound(LookupError):
    pass


class JobNotCancellable(Exception):
    """Only a queued job can be cancelled; one that runs or has finished cannot."""

    def __init__(self, status: JobStatus):
        super().__init__(f"the job is {status.value}; only queued jobs can be cancelled")
        self.status = status


class JobQueue(ABC):
    def __init__(self, runner: JobRunner):
        self.runner = runner

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start consuming (if this process runs jobs) and recover interrupted work."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        created_by: UUID | None,
        correlation_id: str | None,
        job_id: UUID | None = None,
    ) -> UUID:
        """Store the job (queued) and hand it to a worker. Enqueueing an id that exists
        already does not create a second job: an id names one piece of work."""
        job_id = await self.runner.create(kind, payload, created_by, correlation_id, job_id)
        await self._submit(job_id)
        return job_id

    async def get(self, job_id: UUID) -> JobInfo | None:
        return await self.runner.info(job_id)

    async def cancel(self, job_id: UUID) -> JobInfo:
        """Raises JobNotFound, or JobNotCancellable unless the job is still queued."""
        return await self.runner.cancel(job_id)

    @abstractmethod
    async def _submit(self, job_id: UUID) -> bool:
        """Make a stored, queued job reach a worker; False if it was on its way already."""
