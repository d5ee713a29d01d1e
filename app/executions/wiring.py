"""How pipelines reach the outside world: the connector context (DATA_DIR, SSRF guard) and
source-schema discovery for validation and perf tests over saved connectors."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from loguru import logger

from app.connectors.service import ConnectorService
from app.settings import Settings
from engine.connectors.base import ConnectorContext
from engine.connectors.network import (
    NetworkPolicy,
    forbidden_endpoints_from_urls,
    make_network_guard,
)
from engine.pipeline import ConnectorIO, GraphNode
from engine.schema import Field
from storage.models import Connector

DISCOVER_TIMEOUT_SECONDS = 10.0


def connector_context(settings: Settings) -> ConnectorContext:
    """Loopback is reachable only in embedded mode (one machine, one user base); the
    platform's own database and Redis never are."""
    policy = NetworkPolicy(
        allow_loopback=not settings.scaled,
        forbidden_endpoints=forbidden_endpoints_from_urls(
            settings.DATABASE_URL, settings.REDIS_URL
        ),
    )
    return ConnectorContext(data_dir=settings.DATA_DIR, network_guard=make_network_guard(policy))


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
