from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from app.auth.schemas import StrictModel
from app.core.listing import ListQuery

MAX_PARAMETERS = 100
MAX_LOG_PAGE = 1000


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    CRASHED = "crashed"
    ROLLED_BACK = "rolled_back"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


LEVEL_ORDER = [LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR]


class RunRequest(StrictModel):
    parameters: dict[str, Any] = Field(default_factory=dict, max_length=MAX_PARAMETERS)


class RunAccepted(BaseModel):
    execution_id: UUID
    status: ExecutionStatus


class ActionResult(BaseModel):
    execution_id: UUID
    status: str


class StepOut(BaseModel):
    node_id: str
    node_type: str
    position: int
    status: str
    rows_in: int
    rows_out: int
    started_at: datetime | None
    completed_at: datetime | None
    error: dict[str, Any] | None


class ExecutionSummary(BaseModel):
    id: UUID
    pipeline_id: UUID
    version: int
    status: ExecutionStatus
    trigger: str
    progress: float = Field(ge=0, le=1)
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error: dict[str, Any] | None
    retry_of_id: UUID | None
    created_by_id: UUID | None


class ExecutionOut(ExecutionSummary):
    parameters: dict[str, Any]
    result: dict[str, Any] | None
    steps: list[StepOut]


class ExecutionListQuery(ListQuery):
    status: ExecutionStatus | None = None


class LogQuery(BaseModel):
    level: LogLevel | None = Field(None, description="minimum level")
    after: int | None = Field(None, ge=0, description="cursor: the last log id already seen")
    limit: int = Field(200, ge=1, le=MAX_LOG_PAGE)
    node_id: str | None = Field(None, max_length=100)


class LogLine(BaseModel):
    id: int
    ts: datetime
    level: str
    message: str
    node_id: str | None
    data: dict[str, Any] | None


class LogPage(BaseModel):
    items: list[LogLine]
    next_cursor: int | None
