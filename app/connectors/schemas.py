from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from app.auth.schemas import PatchModel, StrictModel
from app.core.listing import ListQuery

MAX_CONFIG_KEYS = 200


class ConnectorCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=5000)
    config: dict[str, Any] = Field(default_factory=dict, max_length=MAX_CONFIG_KEYS)


class ConnectorUpdate(PatchModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    config: dict[str, Any] | None = Field(None, max_length=MAX_CONFIG_KEYS)


class ConnectorOut(BaseModel):
    id: UUID
    name: str
    type: str
    description: str
    config: dict[str, Any] = Field(description="Secrets are masked as ********")
    owner_id: UUID | None
    created_at: datetime
    updated_at: datetime


class ConnectorListQuery(ListQuery):
    type: str | None = Field(None, max_length=64)


class ConnectorTypeOut(BaseModel):
    type: str
    title: str
    category: Literal["database", "api", "file"]
    direction: Literal["source", "destination", "both"]
    config_schema: dict[str, Any]
    ui_schema: dict[str, Any]
    docs: str
