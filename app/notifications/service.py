"""The bus side (which events become delivery jobs) and the API side (history, unread
counts, read marks, preferences) of notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from loguru import logger
from tortoise.exceptions import IntegrityError

from actors.bus.base import BusEvent, EventBus, Subscription
from actors.events import entity_topic
from actors.jobs import JobQueue
from app.core.errors import Conflict, NotFound
from app.core.listing import ListSpec, fetch_page, given
from app.notifications import preferences
from app.notifications.catalog import CHANNELS, KINDS
from app.notifications.jobs import DISPATCH, dispatch_job_id
from app.notifications.schemas import NotificationListQuery, PreferenceChange
from storage.models import Notification

# Entity topics of the event types in the catalog: each event is handled on its entity's own
# topic only (the outbox also publishes copies under further topics).
WATCHED_PATTERNS = sorted({f"{event_type.split('.')[0]}:*" for event_type in KINDS})
LIST_SPEC = ListSpec({"created_at"}, ("title", "body"))
FIELDS = ("id", "type", "title", "body", "data", "event_id", "read_at", "created_at")


class NotificationService:
    """Turns bus events into `notifications.dispatch` jobs. Runs in every web process; in
    scaled mode all of them see each event, and the job id derived from the event id makes
    them ask for the same single job."""

    def __init__(self, bus: EventBus, jobs: JobQueue, email_available: bool):
        self.bus = bus
        self.jobs = jobs
        self.email_available = email_available
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        for pattern in WATCHED_PATTERNS:
            self._subscriptions.append(await self.bus.subscribe(pattern, self._on_event))

    async def close(self) -> None:
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()

    async def _on_event(self, event: BusEvent) -> None:
        kind = KINDS.get(event.type)
        if kind is None or event.topic != entity_topic(event.entity_type, event.entity_id):
            return
        if not kind.wanted(event):
            return
        try:
            await self.jobs.enqueue(
                DISPATCH,
                {"event": event.model_dump(mode="json")},
                None,
                event.correlation_id,
                job_id=dispatch_job_id(event.id),
            )
        except Exception as exc:  # one lost notification must not stop the subscriber
            logger.opt(exception=exc).error("could not queue notifications for {}", event.id)


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "read": row["read_at"] is not None}


async def unread_count(user_id: UUID) -> int:
    return await Notification.filter(user_id=user_id, read_at=None).count()


async def list_for(user_id: UUID, query: NotificationListQuery) -> dict[str, Any]:
    where = given(user_id=user_id, read_at__isnull=query.unread, type=query.type)
    rows, total = await fetch_page(Notification, LIST_SPEC, query, FIELDS, where)
    return {
        "items": [_out(row) for row in rows],
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "unread_count": await unread_count(user_id),
    }


async def mark_read(user_id: UUID, notification_id: UUID) -> dict[str, Any]:
    """Idempotent: reading a read notification keeps its first read time."""
    await Notification.filter(id=notification_id, user_id=user_id, read_at=None).update(
        read_at=datetime.now(UTC)
    )
    rows = await Notification.filter(id=notification_id, user_id=user_id).values(*FIELDS)
    if not rows:
        raise NotFound(f"No notification with id {notification_id}.")
    return _out(rows[0])


async def mark_all_read(user_id: UUID) -> dict[str, int]:
    updated = await Notification.filter(user_id=user_id, read_at=None).update(
        read_at=datetime.now(UTC)
    )
    return {"updated": updated, "unread_count": await unread_count(user_id)}


async def preferences_of(user_id: UUID, email_available: bool) -> dict[str, Any]:
    choices = await preferences.effective(user_id)
    return {
        "channels": list(CHANNELS),
        "email_available": email_available,
        "preferences": [
            {
                "event_type": event_type,
                "channel": channel,
                "enabled": enabled,
                "default": channel in KINDS[event_type].defaults,
            }
            for (event_type, channel), enabled in choices.items()
        ],
    }


async def update_preferences(
    user_id: UUID, changes: list[PreferenceChange], email_available: bool
) -> dict[str, Any]:
    try:
        await preferences.store(
            user_id, {(change.event_type, change.channel): change.enabled for change in changes}
        )
    except IntegrityError:
        raise Conflict("The preferences were changed at the same time; try again.") from None
    return await preferences_of(user_id, email_available)
