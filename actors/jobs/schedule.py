"""Periodic jobs (e.g. the daily event purge): one job per period, whichever process asks
first — the job id is derived from the kind and the period, so several processes asking at
once still make one job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from loguru import logger

from actors.jobs.base import JobQueue
from storage.models import Job

_IDS = uuid5(NAMESPACE_URL, "https://data-aggregator.dev/jobs/schedule")
MAX_CHECK_SECONDS = 60.0


@dataclass(frozen=True)
class Schedule:
    kind: str
    every: timedelta
    payload: dict[str, Any] = field(default_factory=dict)

    def job_id(self, now: datetime) -> UUID:
        period = int(now.timestamp() // self.every.total_seconds())
        return uuid5(_IDS, f"{self.kind}:{self.every.total_seconds()}:{period}")


async def enqueue_due(queue: JobQueue, schedules: list[Schedule]) -> None:
    now = datetime.now(UTC)
    for schedule in schedules:
        job_id = schedule.job_id(now)
        if not await Job.exists(id=job_id):
            await queue.enqueue(schedule.kind, schedule.payload, None, None, job_id=job_id)


async def run_schedules(queue: JobQueue, schedules: list[Schedule]) -> None:
    if not schedules:
        return
    shortest = min(s.every.total_seconds() for s in schedules)
    check = max(0.5, min(MAX_CHECK_SECONDS, shortest / 2))
    while True:
        try:
            await enqueue_due(queue, schedules)
        except Exception as exc:  # the database briefly away: next round
            logger.opt(exception=exc).warning("job schedules: could not enqueue")
        await asyncio.sleep(check)
