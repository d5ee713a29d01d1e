"""Request and response models of the schema API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator, model_validator

from app.auth.schemas import StrictModel
from app.core.listing import ListQuery
from engine.schema import Field as SchemaField
from engine.schema import StreamSchema

MAX_FIELDS = 5_000
MAX_SAMPLE_RECORDS = 5_000


def unwrap_stream(value: Any) -> Any:
    """Schemas may be sent as a field list or as a whole stream (`{name, fields, ...}`)."""
    if isinstance(value, dict) and "fields" in value:
        return value["fields"]
    return value


class SchemaQuery(BaseModel):
    refresh: bool = False


class SchemaOut(BaseModel):
    connector_id: UUID
    snapshot_id: UUID | None
    fingerprint: str
    discovered_at: datetime | None
    cached: bool = Field(description="true: read from the latest snapshot, not discovered now")
    streams: list[StreamSchema]


class SchemaChangeOut(BaseModel):
    stream: str
    field: str | None = Field(description="null when a whole stream was added or removed")
    change: Literal["added", "removed", "type_changed", "nullability_changed"]
    breaking: bool
    from_type: str | None = None
    to_type: str | None = None
    from_nullable: bool | None = None
    to_nullable: bool | None = None


class HistoryQuery(ListQuery):
    include_streams: bool = False


class SnapshotOut(BaseModel):
    id: UUID
    fingerprint: str
    created_at: datetime
    stream_count: int
    breaking: bool
    diff: list[SchemaChangeOut]
    streams: list[StreamSchema] | None = None


class InferBody(StrictModel):
    """Exactly one of `sample` (records), `path` (a file under DATA_DIR) or `file_id` (an
    uploaded file, once the file service exists)."""

    sample: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=MAX_SAMPLE_RECORDS)
    path: str | None = Field(None, min_length=1, max_length=1000)
    file_id: str | None = Field(None, min_length=1, max_length=200)
    name: str = Field("sample", min_length=1, max_length=200, description="stream name")
    stream: str | None = Field(
        None, max_length=500, description="path/file_id: which stream (e.g. an Excel sheet)"
    )
    format: Literal["auto", "csv", "tsv", "json", "ndjson", "parquet", "xlsx"] = "auto"

    @model_validator(mode="after")
    def _one_origin(self) -> InferBody:
        given = [n for n in ("sample", "path", "file_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'sample', 'path' and 'file_id'")
        return self


class CompareBody(StrictModel):
    left: list[SchemaField] = Field(max_length=MAX_FIELDS)
    right: list[SchemaField] = Field(max_length=MAX_FIELDS)

    @field_validator("left", "right", mode="before")
    @classmethod
    def _fields_of_stream(cls, value: Any) -> Any:
        return unwrap_stream(value)


class CompareOut(BaseModel):
    changes: list[dict[str, Any]]
    breaking: bool


class StreamRecommendation(BaseModel):
    stream: str
    primary_key: list[str]
    primary_key_source: Literal["declared", "inferred", "none"]
    cursor_field: str | None
    sync_mode: Literal["full_refresh", "incremental"]
    batch_size: int
    row_estimate: int | None
    estimated_row_bytes: int
    notes: list[str]


class RecommendationsOut(BaseModel):
    connector_id: UUID
    streams: list[StreamRecommendation]
