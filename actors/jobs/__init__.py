"""Background jobs: one `JobQueue` interface, an in-process implementation (embedded mode) and
an ARQ one (scaled mode), both running the same job functions registered with `@job`."""

from actors.jobs.base import JobInfo, JobNotCancellable, JobQueue, JobStatus, UnknownJobKind
from actors.jobs.registry import JobContext, JobFailed, job

__all__ = [
    "JobContext",
    "JobFailed",
    "JobInfo",
    "JobNotCancellable",
    "JobQueue",
    "JobStatus",
    "UnknownJobKind",
    "job",
]
