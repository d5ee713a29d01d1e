from __future__ import annotations

from typing import Any

from pydantic import Field

from actors.jobs import JobStatus
from app.auth.schemas import StrictModel
from app.core.listing import ListQuery


class JobListQuery(ListQuery):
    status: JobStatus | None = None
    kind: str | None = Field(None, max_length=64)


class JobCreate(StrictModel):
    """Start a job a user may start directly (today: maintenance, for admins)."""

    kind: str = Field(min_length=1, max_length=64, examples=["maintenance.purge_events"])
    payload: dict[str, Any] = Field(default_factory=dict, max_length=50)
