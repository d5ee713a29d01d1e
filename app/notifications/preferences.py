"""Effective preferences: the catalog's defaults, overridden by what the user stored."""

from __future__ import annotations

from uuid import UUID

from app.notifications.catalog import CHANNELS, KINDS
from storage.db import transaction
from storage.models import NotificationPreference


async def effective(user_id: UUID) -> dict[tuple[str, str], bool]:
    choices = {
        (event_type, channel): channel in kind.defaults
        for event_type, kind in KINDS.items()
        for channel in CHANNELS
    }
    stored = await NotificationPreference.filter(user_id=user_id).values_list(
        "event_type", "channel", "enabled"
    )
    for event_type, channel, enabled in stored:
        if (event_type, channel) in choices:
            choices[(event_type, channel)] = enabled
    return choices


async def channels_for(user_id: UUID, event_type: str) -> set[str]:
    choices = await effective(user_id)
    return {channel for channel in CHANNELS if choices[(event_type, channel)]}


async def store(user_id: UUID, changes: dict[tuple[str, str], bool]) -> None:
    async with transaction() as conn:
        for (event_type, channel), enabled in changes.items():
            updated = (
                await NotificationPreference.filter(
                    user_id=user_id, event_type=event_type, channel=channel
                )
                .using_db(conn)
                .update(enabled=enabled)
            )
            if not updated:
                await NotificationPreference.create(
                    user_id=user_id,
                    event_type=event_type,
                    channel=channel,
                    enabled=enabled,
                    using_db=conn,
                )
