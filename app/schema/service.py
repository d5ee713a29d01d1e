"""Schema introspection over saved connectors, with evolution tracking.

Discovery results are kept as `SchemaSnapshot`s, one per distinct schema: a discovery that
finds what the latest snapshot holds (same fingerprint: stream names, field names, logical
types and nullability) stores nothing. A new snapshot carries the diff to the previous one and
is announced with a `schema.changed` event (`schema.discovered` for a connector's first),
stored in the same transaction (the outbox) and published under `connector:<id>`.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from loguru import logger

from actors.bus import outbox
from actors.bus.outbox import record_event
from app.connectors.context import connector_context
from app.connectors.service import ConnectorService
from app.connectors.testing import connector_problem
from app.core.errors import Unprocessable
from app.schema.schemas import InferBody
from app.settings import Settings
from engine.connectors.errors import ConnectorError
from engine.connectors.registry import get_connector
from engine.schema import (
    SchemaInferenceError,
    StreamSchema,
    compare,
    infer_schema,
    schema_fingerprint,
)
from storage.locks import exclusive
from storage.models import Connector, SchemaSnapshot

MAX_EVENT_CHANGES = 100  # a schema.changed event lists this many changes, then counts the rest


def streams_fingerprint(streams: list[StreamSchema]) -> str:
    per_stream = sorted((s.name, schema_fingerprint(s.fields)) for s in streams)
    return hashlib.sha256(repr(per_stream).encode()).hexdigest()


def streams_diff(old: list[StreamSchema], new: list[StreamSchema]) -> list[dict[str, Any]]:
    """Changes from `old` to `new`: whole streams added or removed, then field changes."""
    old_by_name = {s.name: s for s in old}
    new_by_name = {s.name: s for s in new}
    diff: list[dict[str, Any]] = []
    for name, stream in old_by_name.items():
        if name not in new_by_name:
            diff.append({"stream": name, "field": None, "change": "removed", "breaking": True})
            continue
        for change in compare(stream.fields, new_by_name[name].fields):
            diff.append({"stream": name, **change.model_dump(mode="json", exclude_none=True)})
    diff.extend(
        {"stream": name, "field": None, "change": "added", "breaking": False}
        for name in new_by_name
        if name not in old_by_name
    )
    return diff


def snapshot_streams(snapshot: SchemaSnapshot) -> list[StreamSchema]:
    return [StreamSchema.model_validate(s) for s in snapshot.streams]


class SchemaService:
    def __init__(self, connectors: ConnectorService, settings: Settings):
        self.connectors = connectors
        self.settings = settings

    async def discover(self, connector: Connector) -> list[StreamSchema]:
        """The connector's streams now, under CONNECTOR_DISCOVER_TIMEOUT_SECONDS."""
        config = self.connectors.plain_config(connector)
        source = get_connector(connector.type)
        timeout = self.settings.CONNECTOR_DISCOVER_TIMEOUT_SECONDS
        try:
            return await asyncio.wait_for(
                source.discover(config, connector_context(self.settings)), timeout
            )
        except TimeoutError:
            raise Unprocessable(f"Discovery took longer than {timeout:g} s.") from None
        except ConnectorError as exc:
            raise connector_problem(exc) from None
        except Exception as exc:  # a driver error the connector did not categorise
            logger.warning("discovery of connector {} failed: {!r}", connector.id, exc)
            raise Unprocessable(f"The schema could not be read: {exc}") from None

    async def latest(self, connector_id: UUID) -> SchemaSnapshot | None:
        return (
            await SchemaSnapshot.filter(connector_id=connector_id)
            .order_by("-created_at", "-id")
            .first()
        )

    async def schema(
        self, connector: Connector, refresh: bool, user_id: UUID | None
    ) -> dict[str, Any]:
        """The cached schema (latest snapshot), or a fresh discovery when asked or when there
        is no snapshot yet."""
        if not refresh:
            latest = await self.latest(connector.id)
            if latest is not None:
                return _schema_view(connector.id, latest, snapshot_streams(latest), cached=True)
        streams = await self.discover(connector)
        snapshot = await self.record(connector, streams, user_id)
        return _schema_view(connector.id, snapshot, streams, cached=False)

    async def cached_streams(
        self, connector: Connector, user_id: UUID | None
    ) -> list[StreamSchema]:
        latest = await self.latest(connector.id)
        if latest is not None:
            return snapshot_streams(latest)
        streams = await self.discover(connector)
        await self.record(connector, streams, user_id)
        return streams

    async def record(
        self, connector: Connector, streams: list[StreamSchema], user_id: UUID | None
    ) -> SchemaSnapshot:
        """Store a snapshot when the schema differs from the latest one; return the snapshot
        that now describes the connector."""
        fingerprint = streams_fingerprint(streams)
        async with outbox.transaction() as conn:
            await exclusive(conn, f"schema:{connector.id}")  # one writer per connector
            previous = (
                await SchemaSnapshot.filter(connector_id=connector.id)
                .using_db(conn)
                .order_by("-created_at", "-id")
                .first()
            )
            if previous is not None and previous.fingerprint == fingerprint:
                return previous
            diff = streams_diff(snapshot_streams(previous), streams) if previous else []
            snapshot = await SchemaSnapshot.create(
                connector_id=connector.id,
                fingerprint=fingerprint,
                streams=[s.model_dump(mode="json") for s in streams],
                diff=diff,
                using_db=conn,
            )
            event = "schema.changed" if previous is not None else "schema.discovered"
            data = {
                "connector_id": connector.id,
                "snapshot_id": str(snapshot.id),
                "changes": diff[:MAX_EVENT_CHANGES],
                "change_count": len(diff),
                "breaking": any(change["breaking"] for change in diff),
                "streams": len(streams),
            }
            await record_event(conn, event, "connector", connector.id, data, user_id)
        return snapshot

    async def history(
        self, connector_id: UUID, limit: int, offset: int, include_streams: bool
    ) -> tuple[list[dict[str, Any]], int]:
        queryset = SchemaSnapshot.filter(connector_id=connector_id)
        rows = await queryset.order_by("-created_at", "-id").offset(offset).limit(limit)
        total = await queryset.count()
        return [_snapshot_view(row, include_streams) for row in rows], total


def _schema_view(
    connector_id: UUID, snapshot: SchemaSnapshot, streams: list[StreamSchema], cached: bool
) -> dict[str, Any]:
    return {
        "connector_id": connector_id,
        "snapshot_id": snapshot.id,
        "fingerprint": snapshot.fingerprint,
        "discovered_at": snapshot.created_at if cached else datetime.now(UTC),
        "cached": cached,
        "streams": [s.model_dump(mode="json") for s in streams],
    }


def _snapshot_view(row: SchemaSnapshot, include_streams: bool) -> dict[str, Any]:
    view = {
        "id": row.id,
        "fingerprint": row.fingerprint,
        "created_at": row.created_at,
        "stream_count": len(row.streams),
        "breaking": any(change.get("breaking") for change in row.diff),
        "diff": row.diff,
    }
    if include_streams:
        view["streams"] = row.streams
    return view


# --- inference and comparison of schemas given in the request --------------------------------


async def infer(body: InferBody, settings: Settings) -> StreamSchema:
    if body.sample is not None:
        try:
            return await asyncio.to_thread(infer_schema, body.sample, name=body.name)
        except SchemaInferenceError as exc:  # includes SampleLimitError
            errors = [{"pointer": "/sample", "message": str(exc)}]
            raise Unprocessable(str(exc), errors=errors) from None
    return await _infer_file(body, settings)


async def _infer_file(body: InferBody, settings: Settings) -> StreamSchema:
    """A file's schema through the file connector: `path` under DATA_DIR or an uploaded
    `file_id` (resolved by the file service through the connector context)."""
    config = {"format": body.format}
    config |= {"path": body.path} if body.path else {"file_id": body.file_id}
    try:
        streams = await asyncio.wait_for(
            get_connector("file").discover(config, connector_context(settings)),
            settings.CONNECTOR_DISCOVER_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        raise Unprocessable("Reading the file took too long.") from None
    except ConnectorError as exc:
        pointer = exc.field or ("/path" if body.path else "/file_id")
        errors = [{"pointer": pointer, "message": exc.message}]
        raise Unprocessable(exc.message, errors=errors) from None
    except Exception as exc:  # unreadable content: OSError, Polars' errors...
        origin = "/path" if body.path else "/file_id"
        message = f"The file could not be read: {exc}"
        raise Unprocessable(message, errors=[{"pointer": origin, "message": message}]) from None
    chosen = [s for s in streams if body.stream in (None, s.name)]
    if not chosen:
        what = f"stream {body.stream!r}" if body.stream else "readable file"
        raise Unprocessable(
            f"No {what} there.", errors=[{"pointer": "/stream", "message": f"No {what} there."}]
        )
    return chosen[0]


def compare_fields(left, right) -> dict[str, Any]:
    changes = compare(left, right)
    return {
        "changes": [c.model_dump(mode="json", exclude_none=True) for c in changes],
        "breaking": any(c.breaking for c in changes),
    }
