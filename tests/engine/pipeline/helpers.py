"""Builders for React Flow documents and small in-test sources and destinations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import polars as pl

from engine.connectors.base import Writer, WriteResult
from engine.pipeline import GraphNode


def node(node_id: str, node_type: str, config: dict[str, Any] | None = None, **data: Any) -> dict:
    """A node as the builder saves it: UI component type on the node, ours in data.node_type."""
    return {
        "id": node_id,
        "type": "pipelineNode",
        "position": {"x": 0, "y": 0},
        "data": {"node_type": node_type, "config": config or {}, "label": node_id, **data},
    }


def edge(
    source: str,
    target: str,
    source_handle: str | None = None,
    target_handle: str | None = None,
    edge_id: str | None = None,
) -> dict:
    return {
        "id": edge_id or f"{source}->{target}",
        "source": source,
        "target": target,
        "sourceHandle": source_handle,
        "targetHandle": target_handle,
        "animated": True,
    }


def document(nodes: list[dict], edges: list[dict]) -> dict:
    return {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 1}}


def inline(node_id: str, rows: list[dict]) -> dict:
    return node(node_id, "source.inline", {"rows": rows})


def dataset_out(node_id: str, name: str = "out", mode: str = "replace") -> dict:
    return node(node_id, "destination.dataset", {"dataset": name, "mode": mode})


class RecordingWriter(Writer):
    """Keeps staged batches; `published` only changes on commit (like a staging table)."""

    def __init__(
        self,
        name: str,
        fail_on_write: bool = False,
        fail_on_commit: bool = False,
        staged_event: asyncio.Event | None = None,
    ):
        self.name = name
        self.staged_event = staged_event
        self.staged: list[pl.DataFrame] = []
        self.published: pl.DataFrame | None = None
        self.events: list[str] = []
        self.fail_on_write = fail_on_write
        self.fail_on_commit = fail_on_commit

    async def write_batch(self, frame: pl.DataFrame) -> None:
        if self.fail_on_write:
            raise RuntimeError("disk full")
        self.staged.append(frame)
        self.events.append("write")
        if self.staged_event is not None:
            self.staged_event.set()
        if self.staged_event is not None:
            self.staged_event.set()

    async def commit(self) -> WriteResult:
        if self.fail_on_commit:
            raise RuntimeError("commit refused")
        self.published = pl.concat(self.staged) if self.staged else pl.DataFrame()
        self.events.append("commit")
        return WriteResult(rows_written=self.published.height, stream=self.name)

    async def abort(self) -> None:
        self.staged.clear()
        self.events.append("abort")


class RecordingDestinations:
    """A DestinationOpener handing out RecordingWriters, one per destination node."""

    def __init__(self, **writer_options: Any):
        self.writers: dict[str, RecordingWriter] = {}
        self.options = writer_options  # node id → kwargs for its writer
        self.staged = asyncio.Event()  # set once any writer has staged a batch

    async def open_writer(self, graph_node: GraphNode) -> Writer:
        options = {"staged_event": self.staged, **self.options.get(graph_node.id, {})}
        writer = RecordingWriter(graph_node.id, **options)
        self.writers[graph_node.id] = writer
        return writer


class GeneratedReader:
    """A SourceReader that generates `batches` batches of `batch_rows` rows per source node."""

    def __init__(self, batches: int, batch_rows: int = 10_000, delay: float = 0.0):
        self.batches = batches
        self.batch_rows = batch_rows
        self.delay = delay
        self.batches_read = 0

    async def read(
        self, graph_node: GraphNode, *, limit: int | None = None
    ) -> AsyncIterator[pl.DataFrame]:
        produced = 0
        for number in range(self.batches):
            if self.delay:
                await asyncio.sleep(self.delay)
            start = number * self.batch_rows
            frame = pl.DataFrame(
                {
                    "id": pl.int_range(start, start + self.batch_rows, eager=True),
                    "group": pl.int_range(start, start + self.batch_rows, eager=True) % 7,
                }
            )
            if limit is not None:
                frame = frame.head(limit - produced)
            self.batches_read += 1
            produced += frame.height
            yield frame
            if limit is not None and produced >= limit:
                return
