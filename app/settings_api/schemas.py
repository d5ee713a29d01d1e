"""Admin-managed runtime settings."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from app.auth.schemas import StrictModel
from app.connectors.context import MAX_NETWORKS, normalised_networks


class NetworkSettingsBody(StrictModel):
    """Replaces the admin network settings (all fields required: nothing is reset by accident)."""

    allowed_networks: list[str] = Field(max_length=MAX_NETWORKS, examples=[["10.0.0.0/8"]])
    denied_networks: list[str] = Field(max_length=MAX_NETWORKS, examples=[["10.9.0.0/16"]])
    allow_loopback: bool | None = Field(description="null: the deployment default")

    @field_validator("allowed_networks", "denied_networks")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        return normalised_networks(values)


class EffectivePolicy(BaseModel):
    allow_loopback: bool
    allowed_networks: list[str]
    denied_networks: list[str]


class NetworkSettingsOut(BaseModel):
    allowed_networks: list[str]
    denied_networks: list[str]
    allow_loopback: bool | None
    effective: EffectivePolicy = Field(
        description="What connectors get: environment (CONNECTOR_*_NETWORKS) plus these "
        "settings; the platform's own database and Redis are always refused as well"
    )
    updated_at: datetime | None
    updated_by: UUID | None
