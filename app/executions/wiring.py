"""How pipelines reach the outside world: the connector context (DATA_DIR, SSRF guard) and
source-schema discovery for validation and perf tests over saved connectors."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from loguru import logger

# The connector context (DATA_DIR, SSRF policy) has one builder, shared with the connector APIs.
from app.connectors.context import connector_context as connector_context
from app.connectors.service import ConnectorService
from engine.connectors.base import ConnectorContext
from engine.pipeline import ConnectorIO, GraphNode
from engine.schema import Field
from storage.models import Connector

DISCOVER_TIMEOUT_SECONDS = 10.0


async def connections_for(
    connectors: ConnectorService, nodes: list[GraphNode]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """`connector_id` (as written in node configs) → (type, plain config)."""
    ids = set()
    for node in nodes:
        value = node.config.get("connector_id")
        try:
            ids.add(UUID(str(value)))
        except ValueError:
            continue
    rows = await Connector.filter(id__in=list(ids)) if ids else []
    return {str(row.id): (row.type, connectors.plain_config(row)) for row in rows}


class SchemaDiscovery:
    """A `resolve_source_schema` for validate/perf: discovers the node's stream, or None when
    the source cannot be reached (validation then reports the schema as unknown)."""

    def __init__(self, io: ConnectorIO):
        self.io = io

    async def __call__(self, node: GraphNode) -> list[Field] | None:
        try:
            return await asyncio.wait_for(self.io.source_schema(node), DISCOVER_TIMEOUT_SECONDS)
        except Exception as exc:
            logger.info("schema of source {} unknown: {}", node.id, exc)
            return None


async def connector_io(
    connectors: ConnectorService, ctx: ConnectorContext, nodes: list[GraphNode]
) -> ConnectorIO:
    return ConnectorIO(await connections_for(connectors, nodes), ctx)
