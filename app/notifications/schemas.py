from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, StrictBool, field_validator

from app.auth.schemas import StrictModel
from app.core.listing import ListQuery
from app.notifications.catalog import CHANNELS, KINDS


class NotificationListQuery(ListQuery):
    unread: bool | None = Field(None, description="true: unread only; false: read only")
    type: str | None = Field(None, max_length=64, description="the event type, e.g. job.failed")


class NotificationOut(BaseModel):
    id: UUID
    type: str  # the event type it was made from
    title: str
    body: str
    data: dict[str, Any]  # channels, entity_type, entity_id and related ids
    event_id: UUID | None
    read: bool
    read_at: datetime | None
    created_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    total: int
    limit: int
    offset: int
    unread_count: int


class ReadAllOut(BaseModel):
    updated: int
    unread_count: int


class PreferenceChange(StrictModel):
    event_type: str = Field(max_length=64, examples=["execution.failed"])
    channel: str = Field(max_length=16, examples=["email"])
    enabled: StrictBool

    @field_validator("event_type")
    @classmethod
    def _known_event_type(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown event type; known: {', '.join(KINDS)}")
        return value

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        if value not in CHANNELS:
            raise ValueError(f"unknown channel; known: {', '.join(CHANNELS)}")
        return value


class PreferencesUpdate(StrictModel):
    preferences: list[PreferenceChange] = Field(min_length=1, max_length=len(KINDS) * 2)


class PreferenceOut(BaseModel):
    event_type: str
    channel: str
    enabled: bool
    default: bool


class PreferencesOut(BaseModel):
    channels: list[str]
    email_available: bool  # false when SMTP_URL is not set: email is never sent
    preferences: list[PreferenceOut]
