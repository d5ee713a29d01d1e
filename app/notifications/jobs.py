"""Delivery runs as jobs, never in a request or a bus handler: one `notifications.dispatch`
job per event (its id derived from the event id, so every process that saw the event asks
for the same job and only one runs), one `notifications.send_email` job per email (retried
with back-off while the SMTP server is unreachable)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import BaseModel

from actors.bus import outbox
from actors.bus.base import BusEvent
from actors.bus.outbox import record_event
from actors.jobs import JobContext, JobFailed, job
from app.notifications.catalog import EMAIL, KINDS, WEBSOCKET, NotificationKind, html_body
from app.notifications.mailer import Email, mailer_from_settings
from app.notifications.preferences import channels_for
from storage.models import Notification, User

DISPATCH, SEND_EMAIL = "notifications.dispatch", "notifications.send_email"
_IDS = uuid5(NAMESPACE_URL, "https://data-aggregator.dev/notifications")


def dispatch_job_id(event_id: UUID) -> UUID:
    return uuid5(_IDS, f"dispatch:{event_id}")


def email_job_id(notification_id: UUID) -> UUID:
    return uuid5(_IDS, f"email:{notification_id}")


class DispatchPayload(BaseModel):
    event: BusEvent


class EmailPayload(BaseModel):
    notification_id: UUID


@job(DISPATCH, payload=DispatchPayload)
async def dispatch(ctx: JobContext, payload: DispatchPayload) -> dict[str, Any]:
    event = payload.event
    kind = KINDS.get(event.type)
    if kind is None:
        raise JobFailed(f"{event.type} does not notify anyone")
    audience = await kind.resolve(event)
    email_on = ctx["settings"].SMTP_URL is not None
    delivered = []
    for user_id in sorted(audience.recipients):
        notification = await _notification_for(kind, event, user_id, audience.values, email_on)
        if notification is None:
            continue
        delivered.append(str(notification.id))
        if EMAIL in notification.data.get("channels", []):
            # Enqueued even when the notification existed: a run cut short after storing it
            # must still send the email (the job id makes this idempotent).
            await ctx["jobs"].enqueue(
                SEND_EMAIL,
                {"notification_id": str(notification.id)},
                None,
                event.correlation_id,
                job_id=email_job_id(notification.id),
            )
    return {"event_id": str(event.id), "notifications": delivered}


async def _notification_for(
    kind: NotificationKind,
    event: BusEvent,
    user_id: UUID,
    values: dict[str, Any],
    email_on: bool,
) -> Notification | None:
    """The user's notification about `event`: the stored one, or a new one if the user has
    a channel on for it. Stored and announced (notification.created) in one transaction."""
    existing = await Notification.get_or_none(event_id=event.id, user_id=user_id)
    if existing is not None:
        return existing
    if not await User.exists(id=user_id, is_active=True):
        return None
    channels = await channels_for(user_id, kind.event_type)
    if not email_on:
        channels.discard(EMAIL)
    if not channels:
        return None
    title, text = kind.render(values)
    live = WEBSOCKET in channels
    async with outbox.transaction() as conn:
        notification = await Notification.create(
            user_id=user_id,
            type=event.type,
            title=title[:300],
            body=text,
            data={
                "channels": sorted(channels),
                "entity_type": event.entity_type,
                "entity_id": event.entity_id,
                **{k: str(v) for k, v in values.items() if k.endswith("_id") and v},
            },
            event_id=event.id,
            # Only in-app notifications wait to be read; an email-only one is history.
            read_at=None if live else datetime.now(UTC),
            using_db=conn,
        )
        if live:
            # Stored under the user (personal in the audit trail) and published on the
            # user's notifications topic, which the WebSocket hub delivers and replays.
            await record_event(
                conn,
                "notification.created",
                "user",
                user_id,
                {
                    "notification_id": notification.id,
                    "title": notification.title,
                    "body": notification.body,
                    "kind": event.type,
                    "data": notification.data,
                    "created_at": notification.created_at.isoformat(),
                },
                user_id=user_id,
                topics=[f"notifications:{user_id}"],
                correlation_id=event.correlation_id,
            )
    return notification


@job(SEND_EMAIL, payload=EmailPayload, max_attempts=6)
async def send_email(ctx: JobContext, payload: EmailPayload) -> dict[str, Any]:
    notification = await Notification.get_or_none(id=payload.notification_id)
    if notification is None:
        return {"skipped": "the notification was deleted"}
    if notification.data.get("emailed_at"):
        return {"skipped": "already sent"}
    mailer = mailer_from_settings(ctx["settings"])
    if mailer is None:
        raise JobFailed("SMTP_URL is not set: email is off")
    user = await User.get_or_none(id=notification.user_id, is_active=True)
    if user is None:
        return {"skipped": "the user is gone or deactivated"}
    title, text = notification.title, notification.body
    await mailer.send(Email(to=user.email, subject=title, text=text, html=html_body(title, text)))
    notification.data = {**notification.data, "emailed_at": datetime.now(UTC).isoformat()}
    await notification.save(update_fields=["data"])
    return {"to": user.email}
