"""Connection tests and previews: a connector run on behalf of a request, under a deadline.

A request must never hang a worker: every call into a connector runs under `asyncio.wait_for`
(CONNECTOR_TEST_TIMEOUT_SECONDS for tests, CONNECTOR_DISCOVER_TIMEOUT_SECONDS for previews),
and a connection test never fails the request: a bad configuration, an unreachable host or a
refused address is an answer (`ok: false` with a category), not a 4xx or a 500.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any

import polars as pl
from loguru import logger
from pydantic import BaseModel, Field

from app.auth.schemas import StrictModel
from app.connectors.context import connector_context
from app.connectors.schemas import MAX_CONFIG_KEYS
from app.connectors.service import ConnectorService, config_errors, known_spec, spec_of
from app.core.errors import NotFound, Problem, Unprocessable
from app.settings import Settings
from engine.connectors.base import CheckCategory, CheckError, CheckResult, ReadRequest
from engine.connectors.errors import ConnectorError
from engine.connectors.registry import get_connector
from engine.pipeline.dry_run import preview_records
from engine.schema import fields_from_polars
from storage.models import Connector

MAX_PREVIEW_ROWS = 500
MAX_TEST_TIMEOUT_SECONDS = 60.0


class ConnectionTestBody(StrictModel):
    type: str = Field(min_length=1, max_length=64)
    config: dict[str, Any] = Field(default_factory=dict, max_length=MAX_CONFIG_KEYS)
    timeout_s: float | None = Field(
        None, gt=0, le=MAX_TEST_TIMEOUT_SECONDS, description="default CONNECTOR_TEST_TIMEOUT"
    )


class SavedConnectionTestBody(StrictModel):
    timeout_s: float | None = Field(None, gt=0, le=MAX_TEST_TIMEOUT_SECONDS)


class ConnectionTestOut(BaseModel):
    ok: bool
    latency_ms: float
    error: CheckError | None = None


class PreviewBody(StrictModel):
    stream: str = Field(min_length=1, max_length=500)
    limit: int = Field(50, ge=1, le=MAX_PREVIEW_ROWS)


class PreviewOut(BaseModel):
    stream: str
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]


class ConnectorProbe:
    """Runs connection tests and previews for the API."""

    def __init__(self, connectors: ConnectorService, settings: Settings):
        self.connectors = connectors
        self.settings = settings

    async def test_unsaved(self, body: ConnectionTestBody) -> CheckResult:
        spec = known_spec(body.type)
        return await self._test(spec.type, body.config, body.timeout_s)

    async def test_saved(self, connector: Connector, body: SavedConnectionTestBody) -> CheckResult:
        return await self._test(
            connector.type, self.connectors.plain_config(connector), body.timeout_s
        )

    async def _test(
        self, type_name: str, config: dict[str, Any], timeout_s: float | None
    ) -> CheckResult:
        errors = config_errors(spec_of(type_name), config, prefix="")
        if errors:
            first = errors[0]
            # Refused before any connection: nothing was timed.
            pointer = first["pointer"] or None
            return _failed(None, CheckCategory.INVALID_CONFIG, first["message"], pointer)
        deadline = timeout_s or self.settings.CONNECTOR_TEST_TIMEOUT_SECONDS
        started = time.perf_counter()
        connector = get_connector(type_name)
        try:
            return await asyncio.wait_for(
                connector.check(config, connector_context(self.settings)), deadline
            )
        except TimeoutError:
            message = f"No answer within {deadline:g} s; check host, port and firewalls."
            return _failed(started, CheckCategory.TIMEOUT, message)
        except ConnectorError as exc:
            return _failed(started, exc.category, exc.message, exc.field)
        except Exception as exc:  # a driver error the connector did not categorise
            logger.warning("connection test of a {} connector failed: {!r}", type_name, exc)
            return _failed(started, CheckCategory.CONNECT, f"The connection failed: {exc}")

    async def preview(self, connector: Connector, body: PreviewBody) -> dict[str, Any]:
        """The first `limit` rows of a stream: columns with types, rows as JSON-safe objects."""
        config = self.connectors.plain_config(connector)
        request = ReadRequest(stream=body.stream, limit=body.limit, batch_size=body.limit)
        ctx = connector_context(self.settings)
        source = get_connector(connector.type)
        try:
            frame = await asyncio.wait_for(
                _first_rows(source.read(config, request, ctx), body.limit),
                self.settings.CONNECTOR_DISCOVER_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            raise Unprocessable("The source did not answer in time.") from None
        except ConnectorError as exc:
            raise connector_problem(exc) from None
        except Exception as exc:  # a driver error the connector did not categorise
            logger.warning("preview of connector {} failed: {!r}", connector.id, exc)
            raise Unprocessable(f"The source could not be read: {exc}") from None
        if frame is None:  # an empty stream
            return {"stream": body.stream, "columns": [], "rows": []}
        columns = [f.model_dump(mode="json") for f in fields_from_polars(frame.schema)]
        rows = preview_records(frame, body.limit)
        return {"stream": body.stream, "columns": columns, "rows": rows}


async def _first_rows(batches, limit: int) -> pl.DataFrame | None:
    """Up to `limit` rows; the reader is closed as soon as they are in (no full scans)."""
    frames: list[pl.DataFrame] = []
    rows = 0
    async with aclosing(batches) as stream:
        async for frame in stream:
            frames.append(frame)
            rows += frame.height
            if rows >= limit:
                break
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed").head(limit)


def connector_problem(exc: ConnectorError) -> Problem:
    """A connector failure during a request that needs its data (preview, discovery): 404 for
    a stream or file that is not there, else 422 with the category and the config field."""
    if exc.category == CheckCategory.NOT_FOUND:
        return NotFound(exc.message)
    pointer = f"/config{exc.field}" if exc.field else "/config"
    return Unprocessable(
        f"{exc.category.value}: {exc.message}",
        errors=[{"pointer": pointer, "message": exc.message, "category": exc.category.value}],
    )


def _failed(
    started: float | None, category: CheckCategory, message: str, field: str | None = None
) -> CheckResult:
    latency = 0.0 if started is None else round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(
        ok=False,
        latency_ms=latency,
        error=CheckError(category=category, message=message, field=field),
    )
