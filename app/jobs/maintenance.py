"""Maintenance jobs: run on a schedule (app/jobs/environment.py) or started by an admin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from tortoise.models import Model
from tortoise.queryset import QuerySet

from actors.jobs import JobContext, JobStatus, job
from app.auth.schemas import StrictModel
from storage.models import Event, Job, Notification

PURGE_BATCH = 1000
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class PurgePayload(StrictModel):
    older_than_days: int | None = Field(
        None,
        ge=1,
        le=3650,
        description="default: the kind's retention setting (EVENT_RETENTION_DAYS, "
        "JOB_RETENTION_DAYS or NOTIFICATION_RETENTION_DAYS)",
    )


@job("maintenance.purge_events", payload=PurgePayload)
async def purge_events(ctx: JobContext, payload: PurgePayload) -> dict[str, Any]:
    """Delete audit events older than the retention period. Events not yet published are
    the outbox's pending work and are kept whatever their age."""
    days = payload.older_than_days or ctx["settings"].EVENT_RETENTION_DAYS
    return await _purge_older(
        ctx,
        Event,
        days,
        lambda cutoff: Event.filter(created_at__lt=cutoff, published_at__isnull=False),
    )


@job("maintenance.purge_jobs", payload=PurgePayload)
async def purge_jobs(ctx: JobContext, payload: PurgePayload) -> dict[str, Any]:
    """Delete finished jobs (notification deliveries, past purges...) completed before the
    retention period; queued and running jobs are never touched."""
    days = payload.older_than_days or ctx["settings"].JOB_RETENTION_DAYS
    return await _purge_older(
        ctx, Job, days, lambda cutoff: Job.filter(status__in=FINISHED, completed_at__lt=cutoff)
    )


@job("maintenance.purge_notifications", payload=PurgePayload)
async def purge_notifications(ctx: JobContext, payload: PurgePayload) -> dict[str, Any]:
    """Delete notifications, read or not, created before the retention period: an inbox is
    for what happened lately, and without a limit it grows for as long as users have them."""
    days = payload.older_than_days or ctx["settings"].NOTIFICATION_RETENTION_DAYS
    return await _purge_older(
        ctx, Notification, days, lambda cutoff: Notification.filter(created_at__lt=cutoff)
    )


async def _purge_older(
    ctx: JobContext,
    model: type[Model],
    days: int,
    expired_before: Callable[[datetime], QuerySet[Any]],
) -> dict[str, Any]:
    """Purge the rows `expired_before` the cutoff `days` ago; the job's result."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted = await _purge(ctx, model, expired_before(cutoff))
    return {"deleted": deleted, "older_than_days": days, "cutoff": cutoff.isoformat()}


async def _purge(ctx: JobContext, model: type[Model], expired: QuerySet[Any]) -> int:
    """Delete in batches (short locks), reporting progress. Idempotent: a second run finds
    nothing more to delete."""
    total = await expired.count()
    deleted = 0
    while ids := await expired.limit(PURGE_BATCH).values_list("id", flat=True):
        deleted += await model.filter(id__in=ids).delete()
        await ctx["progress"](deleted / total if total else 1.0)
    return deleted
