from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

MAX_EVENTS_PAGE = 500


class EventListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_type: str | None = Field(None, max_length=32)
    entity_id: str | None = Field(None, max_length=64)
    type: str | None = Field(None, max_length=64, description="exact, or a prefix with *")
    user_id: UUID | None = None
    from_: datetime | None = Field(None, alias="from")
    to: datetime | None = None
    after: str | None = Field(None, max_length=200, description="next_cursor of a page")
    limit: int = Field(50, ge=1, le=MAX_EVENTS_PAGE)
    order: Literal["asc", "desc"] = "desc"


class EventOut(BaseModel):
    id: UUID
    seq: int
    topic: str
    type: str
    entity_type: str
    entity_id: str
    data: dict[str, Any]
    user_id: UUID | None
    correlation_id: str | None
    created_at: datetime


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None
