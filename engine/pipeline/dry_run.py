"""Dry run: the pipeline on test rows or a small sample, in memory, writing nothing.

Every node reports its status, rows, schema and a JSON-safe preview; destinations report what
they would write. A failing node does not stop independent branches: only its downstream
nodes are skipped, so one dry run shows every problem it can.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict
from pydantic import Field as ModelField

from engine.pipeline.expressions import error_summary
from engine.pipeline.graph import ExecutionGraph, GraphError, GraphNode, Issue, compile_graph
from engine.pipeline.io import SourceReader, inline_frame
from engine.pipeline.schema_bridge import logical_to_polars, schema_to_fields
from engine.pipeline.transforms import TRANSFORMS, cast_expr, transform_name
from engine.pipeline.validate import SchemaResolver
from engine.schema import Field

PREVIEW_ROWS = 20
DEFAULT_SAMPLE_LIMIT = 100


def json_safe(value: Any) -> Any:
    """A value the API can put in JSON as-is (dates as ISO text, bytes as base64...)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return str(value)


def preview_records(frame: pl.DataFrame, rows: int = PREVIEW_ROWS) -> list[dict[str, Any]]:
    return [json_safe(record) for record in frame.head(rows).to_dicts()]


@dataclass
class NodeRun:
    status: Literal["succeeded", "failed", "skipped"]
    outputs: dict[str, pl.DataFrame] = field(default_factory=dict)
    rows_in: int | None = None
    error: str | None = None
    duration_ms: float = 0.0


SourceFrames = Mapping[str, pl.DataFrame]


async def evaluate_in_memory(
    graph: ExecutionGraph, source_frames: SourceFrames
) -> dict[str, NodeRun]:
    """Run every node eagerly on small frames (sources given), with the executor's transforms.

    Destinations pass their input through as their "out": what they would write.
    """
    runs: dict[str, NodeRun] = {}
    for node_id in graph.order:
        node = graph.node(node_id)
        edges = graph.in_edges(node_id)
        if any(runs[edge.source].status != "succeeded" for edge in edges):
            runs[node_id] = NodeRun(status="skipped", error="an upstream node did not succeed")
            continue
        inputs = {edge.input_key: runs[edge.source].outputs[edge.source_port] for edge in edges}
        started = time.perf_counter()
        try:
            outputs = await asyncio.to_thread(_run_node, node, inputs, source_frames)
        except Exception as exc:
            runs[node_id] = NodeRun(status="failed", error=error_summary(exc))
        else:
            runs[node_id] = NodeRun(status="succeeded", outputs=outputs)
        runs[node_id].rows_in = sum(frame.height for frame in inputs.values()) if edges else None
        runs[node_id].duration_ms = (time.perf_counter() - started) * 1000
    return runs


def _run_node(
    node: GraphNode, inputs: dict[str, pl.DataFrame], source_frames: SourceFrames
) -> dict[str, pl.DataFrame]:
    if node.type.startswith("source."):
        return {"out": source_frames[node.id]}
    if node.type.startswith("destination."):
        return {"out": inputs["in"]}
    lazy_inputs = {key: frame.lazy() for key, frame in inputs.items()}
    outputs = TRANSFORMS[transform_name(node.type)].fn(lazy_inputs, node.config)
    return {port: frame.collect() for port, frame in outputs.items()}


class NodeReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    status: Literal["succeeded", "failed", "skipped"]
    rows_in: int | None = None
    rows_out: int | None = None
    # Serialised as "schema" (the API name); `schema` itself is taken on BaseModel.
    fields: list[Field] | None = ModelField(default=None, serialization_alias="schema")
    preview: list[dict[str, Any]] = []
    error: str | None = None
    duration_ms: float = 0.0
    outputs: dict[str, dict[str, Any]] = {}  # per port, for nodes with several outputs
    would_write: dict[str, Any] | None = None  # destinations: what a run would write


class DryRunResult(BaseModel):
    status: Literal["succeeded", "failed", "invalid"]
    nodes: dict[str, NodeReport]
    errors: list[Issue] = []  # structural issues when the document does not compile

    def to_api(self) -> dict[str, Any]:
        """The API shape: `{status, nodes: {id: {status, rows_out, schema, preview, ...}}}`."""
        return self.model_dump(mode="json", by_alias=True)


def _report(node: GraphNode, run: NodeRun) -> NodeReport:
    report = NodeReport(
        status=run.status,
        rows_in=run.rows_in,
        error=run.error,
        duration_ms=round(run.duration_ms, 3),
    )
    if run.status != "succeeded":
        return report
    ports = list(run.outputs)
    main = run.outputs[ports[0]]
    report.rows_out = main.height
    report.fields = schema_to_fields(main.schema)
    report.preview = preview_records(main)
    if len(ports) > 1:
        report.rows_out = sum(frame.height for frame in run.outputs.values())
        report.outputs = {
            port: {
                "rows_out": frame.height,
                "schema": [f.model_dump() for f in schema_to_fields(frame.schema)],
                "preview": preview_records(frame),
            }
            for port, frame in run.outputs.items()
        }
    if node.type.startswith("destination."):
        report.would_write = {
            "rows": main.height,
            "stream": node.config.get("stream") or node.config.get("dataset"),
            "mode": node.config.get("mode") or "append",
            "schema": [f.model_dump() for f in report.fields],
        }
    return report


async def _sample_source(node: GraphNode, reader: SourceReader | None, limit: int) -> pl.DataFrame:
    if node.type == "source.inline":
        return inline_frame(node.config, limit)
    if reader is None:
        raise ValueError("no test data for this source and no reader to sample it")
    frames: list[pl.DataFrame] = []
    rows = 0
    async with contextlib.aclosing(reader.read(node, limit=limit)) as batches:
        async for frame in batches:
            frames.append(frame)
            rows += frame.height
            if rows >= limit:
                break
    return pl.concat(frames, how="diagonal_relaxed").head(limit) if frames else pl.DataFrame()


def conform(frame: pl.DataFrame, fields: list[Field]) -> pl.DataFrame:
    """Test rows typed as the real source: "2024-01-02" becomes a date where the source has a
    date column, and columns the test rows leave out are null."""
    exprs = []
    for wanted in fields:
        target = logical_to_polars(wanted.type)
        if wanted.name not in frame.columns:
            exprs.append(pl.lit(None, target).alias(wanted.name))
            continue
        current = frame.schema[wanted.name]
        exprs.append(
            pl.col(wanted.name)
            if current == target
            else cast_expr(wanted.name, wanted.type, current, strict=False)
        )
    names = {wanted.name for wanted in fields}
    extra = [name for name in frame.columns if name not in names]
    try:
        return frame.select(*exprs, *extra)
    except pl.exceptions.PolarsError:
        return frame  # rows that cannot take the source's types are used as typed


async def resolve_fields(node: GraphNode, resolver: SchemaResolver | None) -> list[Field] | None:
    if resolver is None:
        return None
    fields = resolver(node)
    if inspect.isawaitable(fields):
        fields = await fields
    return fields


async def prepare_sources(
    graph: ExecutionGraph, load: Callable[[GraphNode], Awaitable[pl.DataFrame]]
) -> SourceFrames:
    """Each source's frame; a source that cannot be loaded fails its node when used."""
    frames: dict[str, pl.DataFrame] = {}
    errors: dict[str, str] = {}
    for node in graph.nodes:
        if node.type.startswith("source."):
            try:
                frames[node.id] = await load(node)
            except Exception as exc:
                errors[node.id] = error_summary(exc)
    return _FailingSources(frames, errors)


async def dry_run(
    pipeline: ExecutionGraph | dict[str, Any],
    *,
    test_data: Mapping[str, list[dict[str, Any]]] | None = None,
    sample_limit: int = DEFAULT_SAMPLE_LIMIT,
    reader: SourceReader | None = None,
    resolve_source_schema: SchemaResolver | None = None,
) -> DryRunResult:
    """Run on `test_data` (node id → records) or samples of real sources; never writes.

    With `resolve_source_schema`, test rows take the source's column types.
    """
    try:
        graph = pipeline if isinstance(pipeline, ExecutionGraph) else compile_graph(pipeline)
    except GraphError as exc:
        return DryRunResult(status="invalid", nodes={}, errors=exc.issues)
    test_data = test_data or {}

    async def load(node: GraphNode) -> pl.DataFrame:
        if node.id not in test_data:
            return await _sample_source(node, reader, sample_limit)
        frame = pl.DataFrame(test_data[node.id], infer_schema_length=None)
        fields = await resolve_fields(node, resolve_source_schema)
        return await asyncio.to_thread(conform, frame, fields) if fields else frame

    runs = await evaluate_in_memory(graph, await prepare_sources(graph, load))
    reports = {node.id: _report(node, runs[node.id]) for node in graph.nodes if node.id in runs}
    failed = any(report.status != "succeeded" for report in reports.values())
    return DryRunResult(status="failed" if failed else "succeeded", nodes=reports)


class _FailingSources(dict):
    """Source frames where a source that could not be loaded raises its error when used."""

    def __init__(self, frames: dict[str, pl.DataFrame], errors: dict[str, str]):
        super().__init__(frames)
        self.errors = errors

    def __missing__(self, key: str) -> pl.DataFrame:
        raise RuntimeError(self.errors.get(key, "source not available"))
