"""Maintenance jobs an administrator starts (or a schedule will)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from actors.jobs import JobContext, job
from app.auth.schemas import StrictModel
from storage.models import Event, Job

PURGE_BATCH = 1000


class PurgeEventsPayload(StrictModel):
    older_than_days: int | None = Field(
        None, ge=1, le=3650, description="default: the EVENT_RETENTION_DAYS setting"
    )


@job("maintenance.purge_events", payload=PurgeEventsPayload)
async def purge_events(ctx: JobContext, payload: PurgeEventsPayload) -> dict[str, Any]:
    """Delete audit events older than the retention period, in batches (short locks).

    Idempotent: a second run finds nothing more to delete. Events not yet published are the
    outbox's pending work and are kept whatever their age.
    """
    days = payload.older_than_days or ctx["settings"].EVENT_RETENTION_DAYS
    cutoff = datetime.now(UTC) - timedelta(days=days)
    expired = Event.filter(created_at__lt=cutoff, published_at__isnull=False)
    total = await expired.count()
    deleted = 0
    while ids := await expired.limit(PURGE_BATCH).values_list("id", flat=True):
        deleted += await Event.filter(id__in=ids).delete()
        await ctx["progress"](deleted / total if total else 1.0)
    return {"deleted": deleted, "older_than_days": days, "cutoff": cutoff.isoformat()}


class PurgeJobsPayload(StrictModel):
    older_than_days: int | None = Field(
        None, ge=1, le=3650, description="default: the JOB_RETENTION_DAYS setting"
    )


FINISHED = ("succeeded", "failed", "cancelled")


@job("maintenance.purge_jobs", payload=PurgeJobsPayload)
async def purge_jobs(ctx: JobContext, payload: PurgeJobsPayload) -> dict[str, Any]:
    """Delete finished jobs (notification deliveries, past purges...) completed before the
    retention period; queued and running jobs are never touched. Idempotent."""
    days = payload.older_than_days or ctx["settings"].JOB_RETENTION_DAYS
    cutoff = datetime.now(UTC) - timedelta(days=days)
    expired = Job.filter(status__in=FINISHED, completed_at__lt=cutoff)
    total = await expired.count()
    deleted = 0
    while ids := await expired.limit(PURGE_BATCH).values_list("id", flat=True):
        deleted += await Job.filter(id__in=ids).delete()
        await ctx["progress"](deleted / total if total else 1.0)
    return {"deleted": deleted, "older_than_days": days, "cutoff": cutoff.isoformat()}
