from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from app.core.listing import ListQuery

MAX_PREVIEW_ROWS = 1000


class DatasetSummary(BaseModel):
    id: UUID
    name: str
    description: str
    pipeline_id: UUID | None
    current_version: int
    created_at: datetime
    updated_at: datetime


class DatasetVersionOut(BaseModel):
    version: int
    created_at: str
    rows: int
    mode: str
    parent: int | None
    current: bool


class DatasetOut(DatasetSummary):
    rows: int
    schema_: list[dict[str, Any]] = Field(alias="schema")
    versions: list[DatasetVersionOut]


class DatasetListQuery(ListQuery):
    pipeline_id: UUID | None = None


class PreviewQuery(BaseModel):
    limit: int = Field(100, ge=1, le=MAX_PREVIEW_ROWS)
    version: int | None = Field(None, ge=1)


class PreviewOut(BaseModel):
    version: int
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
