"""Performance test: synthetic rows shaped like each source, the whole graph, no writes.

Reports rows/s per node and the slowest node, so a user sees where a pipeline spends its time
before pointing it at real data.
"""

from __future__ import annotations

import asyncio
from typing import Any

import polars as pl
from pydantic import BaseModel

from engine.pipeline.dry_run import evaluate_in_memory, prepare_sources, resolve_fields
from engine.pipeline.graph import ExecutionGraph, GraphNode, compile_graph
from engine.pipeline.io import inline_frame
from engine.pipeline.schema_bridge import logical_to_polars, schema_to_fields
from engine.pipeline.validate import SchemaResolver
from engine.schema import Field, LogicalType

DEFAULT_ROWS = 100_000
# Strings repeat with this many distinct values, so group-bys and joins see realistic keys.
_CARDINALITY = 1_000


class NodePerf(BaseModel):
    status: str
    rows_in: int | None = None
    rows_out: int | None = None
    duration_ms: float
    rows_per_s: float | None = None
    error: str | None = None


class PerfResult(BaseModel):
    rows: int
    nodes: dict[str, NodePerf]
    slowest_node: str | None
    total_ms: float


def _synthetic_column(field: Field, rows: int) -> pl.Expr:
    index = pl.int_range(0, rows, eager=False)
    logical = field.type
    if logical == LogicalType.INTEGER:
        expr = index
    elif logical in (LogicalType.NUMBER, LogicalType.DECIMAL):
        expr = (index * 1.5).cast(logical_to_polars(logical))
    elif logical == LogicalType.BOOLEAN:
        expr = index % 2 == 0
    elif logical == LogicalType.DATE:
        expr = pl.date(2024, 1, 1) + pl.duration(days=index % 3650)
    elif logical == LogicalType.DATETIME:
        expr = pl.datetime(2024, 1, 1) + pl.duration(seconds=index)
    elif logical == LogicalType.TIME:
        expr = (pl.datetime(2024, 1, 1) + pl.duration(seconds=index % 86_400)).dt.time()
    elif logical == LogicalType.BINARY:
        expr = (pl.lit(f"{field.name}_") + (index % _CARDINALITY).cast(pl.String)).cast(pl.Binary)
    elif logical == LogicalType.JSON:
        expr = pl.lit('{"n": ') + index.cast(pl.String) + pl.lit("}")
    else:
        expr = pl.lit(f"{field.name}_") + (index % _CARDINALITY).cast(pl.String)
    return expr.alias(field.name)


def synthetic_frame(fields: list[Field], rows: int) -> pl.DataFrame:
    """`rows` generated rows with these fields, built by Polars (no Python loop)."""
    if not fields:
        return pl.DataFrame()
    return pl.select([_synthetic_column(field, rows) for field in fields])


async def _source_fields(node: GraphNode, resolver: SchemaResolver | None) -> list[Field]:
    if node.type == "source.inline":
        return schema_to_fields(inline_frame(node.config).schema)
    fields = await resolve_fields(node, resolver)
    if fields is None:
        raise ValueError(f"source {node.id!r}: schema unknown")
    return fields


async def perf_test(
    pipeline: ExecutionGraph | dict[str, Any],
    *,
    rows: int = DEFAULT_ROWS,
    resolve_source_schema: SchemaResolver | None = None,
) -> PerfResult:
    """Time every node on `rows` synthetic rows per source; destinations write nothing.

    A source whose schema is unknown fails (and skips what depends on it); raises GraphError
    only for a document that does not compile.
    """
    graph = pipeline if isinstance(pipeline, ExecutionGraph) else compile_graph(pipeline)

    async def load(node: GraphNode) -> pl.DataFrame:
        fields = await _source_fields(node, resolve_source_schema)
        return await asyncio.to_thread(synthetic_frame, fields, rows)

    frames = await prepare_sources(graph, load)
    loop = asyncio.get_running_loop()
    started = loop.time()
    runs = await evaluate_in_memory(graph, frames)
    total_ms = (loop.time() - started) * 1000
    nodes = {}
    for node_id, run in runs.items():
        rows_out = sum(frame.height for frame in run.outputs.values()) if run.outputs else None
        processed = run.rows_in if run.rows_in is not None else rows_out
        seconds = run.duration_ms / 1000
        nodes[node_id] = NodePerf(
            status=run.status,
            rows_in=run.rows_in,
            rows_out=rows_out,
            duration_ms=round(run.duration_ms, 3),
            rows_per_s=round(processed / seconds, 1) if processed and seconds > 0 else None,
            error=run.error,
        )
    timed = [
        (perf.duration_ms, node_id) for node_id, perf in nodes.items() if perf.status == "succeeded"
    ]
    return PerfResult(
        rows=rows,
        nodes=nodes,
        slowest_node=max(timed)[1] if timed else None,
        total_ms=round(total_ms, 3),
    )


__all__ = ["NodePerf", "PerfResult", "perf_test", "synthetic_frame"]
