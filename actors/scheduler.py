"""Cron schedules: every process checks the active pipelines' schedules periodically; a due
tick is claimed by inserting its `scheduled_runs` row, whose unique (pipeline, scheduled_for)
key lets exactly one process win, so a tick runs once however many processes there are.

Only the latest tick is considered (a server that was down for an hour runs one catch-up,
not sixty), and only if it is recent (`window`) and after the pipeline was created.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from uuid import UUID

from croniter import croniter
from loguru import logger
from tortoise.exceptions import IntegrityError

from actors.directory import ActorDirectory
from actors.pipeline_actor import Run
from storage.models import Pipeline, ScheduledRun


def latest_tick(expression: str, now: datetime) -> datetime:
    return croniter(expression, now).get_prev(datetime).astimezone(UTC)


class Scheduler:
    def __init__(self, directory: ActorDirectory, interval: float, window: float | None = None):
        self.directory = directory
        self.interval = interval
        self.window = timedelta(seconds=window if window is not None else max(120, 4 * interval))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pipeline-scheduler")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again
                logger.opt(exception=exc).error("scheduler round failed")
            await asyncio.sleep(self.interval)

    async def run_due(self, now: datetime | None = None) -> list[UUID]:
        """Claim and start every due tick; the ids of the executions this process started."""
        now = now or datetime.now(UTC)
        started = []
        pipelines = await Pipeline.filter(status="active", schedule__isnull=False).only(
            "id", "schedule", "created_at"
        )
        for pipeline in pipelines:
            try:
                tick = latest_tick(pipeline.schedule, now)
            except (ValueError, KeyError):
                continue  # saved before validation existed: never fires
            if tick <= pipeline.created_at or now - tick > self.window:
                continue
            execution_id = await self._claim_and_run(pipeline.id, tick)
            if execution_id is not None:
                started.append(execution_id)
        return started

    async def _claim_and_run(self, pipeline_id: UUID, tick: datetime) -> UUID | None:
        try:
            claim = await ScheduledRun.create(pipeline_id=pipeline_id, scheduled_for=tick)
        except IntegrityError:
            return None  # another process (or an earlier round) has this tick
        try:
            reply = await self.directory.ask(pipeline_id, Run(trigger="schedule"))
        except Exception as exc:
            logger.warning("scheduled run of {} at {} not started: {}", pipeline_id, tick, exc)
            return None
        execution_id = UUID(reply)
        claim.execution_id = execution_id
        await claim.save(update_fields=["execution_id"])
        logger.info("scheduled run {} of pipeline {} for {}", execution_id, pipeline_id, tick)
        return execution_id
