from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from app.auth.schemas import StrictModel
from app.pipelines.schemas import VisualDefinition

MAX_TEST_NODES = 50
MAX_TEST_ROWS = 5_000  # per source node
MAX_SAMPLE_LIMIT = 10_000
MAX_PERF_ROWS = 1_000_000

TestRecords = list[dict[str, Any]]


class ValidateRequest(StrictModel):
    visual_definition: VisualDefinition


class DryRunRequest(StrictModel):
    test_data: dict[str, list[dict[str, Any]]] | None = Field(
        None,
        max_length=MAX_TEST_NODES,
        description=f"Rows per source node id (at most {MAX_TEST_ROWS} each), like pinned data",
    )
    sample_limit: int = Field(100, ge=1, le=MAX_SAMPLE_LIMIT)

    @field_validator("test_data")
    @classmethod
    def _bounded_rows(cls, value: dict[str, TestRecords] | None) -> dict[str, TestRecords] | None:
        for node_id, rows in (value or {}).items():
            if len(rows) > MAX_TEST_ROWS:
                raise ValueError(f"{node_id}: at most {MAX_TEST_ROWS} rows per source")
        return value


class DefinitionDryRunRequest(DryRunRequest):
    visual_definition: VisualDefinition


class PerfTestRequest(StrictModel):
    rows: int = Field(100_000, ge=1, le=MAX_PERF_ROWS)


class IssueOut(BaseModel):
    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    pointer: str | None = None


class ValidationOut(BaseModel):
    valid: bool
    errors: list[IssueOut]
    warnings: list[IssueOut]
    node_schemas: dict[str, list[dict[str, Any]]]


class DryRunOut(BaseModel):
    status: str
    nodes: dict[str, dict[str, Any]]
    errors: list[IssueOut] = []


class NodeTypeOut(BaseModel):
    type: str
    category: str
    title: str
    description: str
    inputs: list[str]
    outputs: list[str]
    config_schema: dict[str, Any]
    ui_schema: dict[str, Any]
    multi_inputs: list[str]
    optional_inputs: list[str]


class DiffQuery(BaseModel):
    against: int | None = Field(
        None, ge=1, description="the version to compare with (default: the one before)"
    )


class ItemChange(BaseModel):
    id: str
    fields: list[str]


class DiffPart(BaseModel):
    added: list[str]
    removed: list[str]
    changed: list[ItemChange]


class VersionDiffOut(BaseModel):
    version: int
    against: int
    fields: list[str]  # pipeline fields that differ (name, description, schedule)
    nodes: DiffPart
    edges: DiffPart
