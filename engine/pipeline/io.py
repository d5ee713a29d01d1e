"""Where pipeline data comes from and goes to: the reader/writer seams and their connector-based
default. The executor only sees `SourceReader` and `DestinationOpener`; the app wires saved
connections, secrets and incremental state into `ConnectorIO` (or its own implementation).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import polars as pl

from engine.connectors.base import ConnectorContext, ReadRequest, Writer, WriteRequest
from engine.connectors.registry import get_connector
from engine.pipeline.catalog import connector_type_of
from engine.pipeline.graph import GraphNode
from engine.schema import Field


class PipelineIOError(RuntimeError):
    """A source or destination cannot be opened (unknown connection, wrong type...)."""


class SourceReader(Protocol):
    def read(self, node: GraphNode, *, limit: int | None = None) -> AsyncIterator[pl.DataFrame]:
        """Frames for a source node, in batches; `limit` caps the rows (dry runs, samples)."""
        ...


class DestinationOpener(Protocol):
    async def open_writer(self, node: GraphNode) -> Writer:
        """A staged writer for a destination node; nothing is visible before `commit`."""
        ...


def inline_frame(config: dict[str, Any], limit: int | None = None) -> pl.DataFrame:
    rows = config.get("rows") or []
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.head(limit) if limit is not None else frame


def _effective_limit(configured: int | None, requested: int | None) -> int | None:
    limits = [value for value in (configured, requested) if value is not None]
    return min(limits) if limits else None


class ConnectorIO:
    """SourceReader + DestinationOpener over the connector registry.

    `connections` maps a connector_id (as saved in node configs) to `(type, config)` with
    secrets already decrypted; `state` maps a source node id to its incremental state;
    """

    def __init__(
        self,
        connections: Mapping[str, tuple[str, dict[str, Any]]],
        ctx: ConnectorContext,
        *,
        state: Mapping[str, dict[str, Any]] | None = None,
        batch_size: int = 50_000,
    ):
        self.connections = connections
        self.ctx = ctx
        self.state = state or {}
        self.batch_size = batch_size

    def _connection(self, node: GraphNode) -> tuple[str, dict[str, Any]]:
        connector_id = node.config.get("connector_id")
        if connector_id not in self.connections:
            raise PipelineIOError(f"node {node.id!r}: unknown connection {connector_id!r}")
        type_name, config = self.connections[connector_id]
        expected = connector_type_of(node.type)
        if expected and expected != type_name:
            raise PipelineIOError(
                f"node {node.id!r} expects a {expected} connection, {connector_id!r} is {type_name}"
            )
        return type_name, config

    def read_request(self, node: GraphNode, limit: int | None = None) -> ReadRequest:
        config = node.config
        return ReadRequest(
            stream=config["stream"],
            sync_mode=config.get("sync_mode") or "full_refresh",
            cursor_field=config.get("cursor_field"),
            state=self.state.get(node.id),
            limit=_effective_limit(config.get("limit"), limit),
            batch_size=self.batch_size,
        )

    async def read(
        self, node: GraphNode, *, limit: int | None = None
    ) -> AsyncIterator[pl.DataFrame]:
        if node.type == "source.inline":
            yield inline_frame(node.config, limit)
            return
        type_name, config = self._connection(node)
        connector = get_connector(type_name)
        async for frame in connector.read(config, self.read_request(node, limit), self.ctx):
            yield frame

    @contextlib.asynccontextmanager
    async def scan(self, node: GraphNode) -> AsyncIterator[pl.LazyFrame | None]:
        """The whole source as one LazyFrame, when its connector can scan it lazily (then the
        executor can run source → transforms → aggregate as one plan); None otherwise."""
        if node.type == "source.inline":
            yield None
            return
        type_name, config = self._connection(node)
        scan = getattr(get_connector(type_name), "scan", None)
        if scan is None:
            yield None
            return
        async with scan(config, self.read_request(node), self.ctx) as frame:
            yield frame

    async def open_writer(self, node: GraphNode) -> Writer:
        config = node.config
        if node.type == "destination.dataset":
            # The dataset connector is bound to one dataset by its config: no saved connection.
            request = WriteRequest(stream=config["dataset"], mode=config.get("mode") or "replace")
            return await get_connector("dataset").open_writer(
                {"dataset": config["dataset"]}, request, self.ctx
            )
        type_name, connection_config = self._connection(node)
        request = WriteRequest(
            stream=config["stream"],
            mode=config.get("mode") or "append",
            primary_key=config.get("primary_key") or [],
        )
        return await get_connector(type_name).open_writer(connection_config, request, self.ctx)

    async def source_schema(self, node: GraphNode) -> list[Field] | None:
        """A `resolve_source_schema` for validate(): discovers the node's stream."""
        if node.type == "source.inline":
            return None
        type_name, config = self._connection(node)
        streams = await get_connector(type_name).discover(config, self.ctx)
        for stream in streams:
            if stream.name == node.config.get("stream"):
                return stream.fields
        return None
