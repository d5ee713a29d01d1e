from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.auth.schemas import PatchModel, StrictModel
from app.core.listing import ListQuery

MAX_NODES = 500
MAX_EDGES = 2000


class CanvasNode(BaseModel):
    """A React Flow node. UI-only keys (position, width, selected...) are kept, not interpreted."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=100)
    type: str | None = Field(None, max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)


class CanvasEdge(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=100)
    target: str = Field(min_length=1, max_length=100)
    sourceHandle: str | None = Field(None, max_length=100)
    targetHandle: str | None = Field(None, max_length=100)


class Viewport(BaseModel):
    model_config = ConfigDict(extra="allow")

    x: float = 0
    y: float = 0
    zoom: float = 1


class VisualDefinition(BaseModel):
    """React Flow's saved form: `{nodes, edges, viewport}`."""

    model_config = ConfigDict(extra="allow")

    nodes: list[CanvasNode] = Field(default_factory=list, max_length=MAX_NODES)
    edges: list[CanvasEdge] = Field(default_factory=list, max_length=MAX_EDGES)
    viewport: Viewport = Field(default_factory=Viewport)


class PipelineStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class SchemaPolicy(StrEnum):
    EVOLVE = "evolve"
    FREEZE = "freeze"
    DISCARD_ROW = "discard_row"
    DISCARD_VALUE = "discard_value"


def _valid_cron(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError("must be a 5-field cron expression, e.g. '0 * * * *'")
    return value


class PipelineCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    visual_definition: VisualDefinition = Field(default_factory=VisualDefinition)
    schedule: str | None = Field(None, max_length=120, description="5-field cron, UTC")
    status: PipelineStatus = PipelineStatus.ACTIVE
    schema_policy: SchemaPolicy = SchemaPolicy.EVOLVE

    _cron = field_validator("schedule")(_valid_cron)


class PipelineUpdate(PatchModel):
    NULLABLE = frozenset({"schedule"})

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    visual_definition: VisualDefinition | None = None
    schedule: str | None = Field(None, max_length=120)
    status: PipelineStatus | None = None
    schema_policy: SchemaPolicy | None = None

    _cron = field_validator("schedule")(_valid_cron)


class PipelineSummary(BaseModel):
    id: UUID
    name: str
    description: str
    schedule: str | None
    status: PipelineStatus
    schema_policy: SchemaPolicy
    version: int
    owner_id: UUID | None
    created_at: datetime
    updated_at: datetime


class PipelineOut(PipelineSummary):
    visual_definition: dict[str, Any]
    execution_graph: dict[str, Any]


class PipelineListQuery(ListQuery):
    status: PipelineStatus | None = None


class PipelineVersionSummary(BaseModel):
    version: int
    name: str
    created_at: datetime
    created_by_id: UUID | None


class PipelineVersionOut(PipelineVersionSummary):
    description: str
    schedule: str | None
    visual_definition: dict[str, Any]
    execution_graph: dict[str, Any]
