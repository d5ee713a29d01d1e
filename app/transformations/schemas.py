from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from app.auth.schemas import PatchModel, StrictModel
from app.core.listing import ListQuery

NODE_TYPE = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")


class TransformationCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    node_type: str = NODE_TYPE
    config: dict[str, Any] = Field(default_factory=dict, max_length=200)


class TransformationUpdate(PatchModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    node_type: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")
    config: dict[str, Any] | None = Field(None, max_length=200)


class TransformationOut(BaseModel):
    id: UUID
    name: str
    description: str
    node_type: str
    config: dict[str, Any]
    owner_id: UUID | None
    created_at: datetime
    updated_at: datetime


class TransformationListQuery(ListQuery):
    node_type: str | None = Field(None, max_length=64)
