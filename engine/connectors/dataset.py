"""Managed datasets (versioned Parquet in DATA_DIR/datasets) as a source and a destination.

The connector is bound to one dataset: `config.dataset` names it and it is the only stream.
Writing to a dataset that does not exist yet creates it. Every committed write creates a new
version (reported as `WriteResult.version`), which can be rolled back from the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator

from engine.connectors.base import (
    CheckCategory,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorSpec,
    ReadRequest,
    Writer,
    WriteRequest,
    WriteResult,
)
from engine.connectors.errors import ConnectorError
from engine.connectors.file import fields_from_schema, iterate_lazy, parse_config
from engine.datasets import (
    DatasetError,
    DatasetNotFound,
    DatasetSchemaError,
    DatasetStore,
    StagedVersion,
    validate_name,
)
from engine.schema import StreamSchema

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Managed dataset",
    "type": "object",
    "additionalProperties": False,
    "required": ["dataset"],
    "properties": {
        "dataset": {
            "type": "string",
            "title": "Dataset",
            "description": "Letters, digits, '_', '-' and '.'; created on first write.",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        }
    },
}


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str

    @field_validator("dataset")
    @classmethod
    def _safe(cls, value: str) -> str:
        return validate_name(value)


_STORES: dict[str, DatasetStore] = {}


def store_for(ctx: ConnectorContext) -> DatasetStore:
    """One store per data directory, so its per-dataset locks are shared by all callers."""
    root = (ctx.data_dir / "datasets").resolve()
    return _STORES.setdefault(str(root), DatasetStore(root))


class DatasetWriter(Writer):
    def __init__(self, staged: StagedVersion):
        self.staged = staged

    async def write_batch(self, frame: pl.DataFrame) -> None:
        try:
            await self.staged.write(frame)
        except DatasetSchemaError as exc:
            raise ConnectorError(CheckCategory.INVALID_CONFIG, str(exc)) from exc

    async def commit(self) -> WriteResult:
        info = await self.staged.commit()
        return WriteResult(
            rows_written=self.staged.rows, stream=self.staged.name, version=info.version
        )

    async def abort(self) -> None:
        await self.staged.abort()


class DatasetConnector(Connector):
    type = "dataset"

    def spec(self) -> ConnectorSpec:
        return ConnectorSpec(
            type=self.type,
            title="Managed dataset",
            category="file",
            direction="both",
            config_schema=CONFIG_SCHEMA,
            ui_schema={"ui:order": ["dataset"]},
            docs=__doc__ or "",
        )

    async def check(self, config: dict[str, Any], ctx: ConnectorContext) -> CheckResult:
        # A valid name is enough: a destination dataset is created by its first write.
        started = time.perf_counter()
        try:
            cfg = parse_config(DatasetConfig, config)
            store = store_for(ctx)
            await asyncio.to_thread(store.root.mkdir, parents=True, exist_ok=True)
            if store.exists(cfg.dataset):
                await asyncio.to_thread(store.schema, cfg.dataset)
        except ConnectorError as exc:
            return _result(started, exc)
        except (OSError, DatasetError) as exc:
            return _result(started, ConnectorError(CheckCategory.PERMISSION, str(exc)))
        return _result(started, None)

    async def discover(self, config: dict[str, Any], ctx: ConnectorContext) -> list[StreamSchema]:
        cfg = parse_config(DatasetConfig, config)
        store = store_for(ctx)
        if not store.exists(cfg.dataset) or store.current_version(cfg.dataset) is None:
            return []
        info = store.version_info(cfg.dataset)
        schema = await asyncio.to_thread(store.schema, cfg.dataset)
        return [
            StreamSchema(
                name=cfg.dataset,
                fields=fields_from_schema(schema),
                row_estimate=info.rows,
                kind="dataset",
            )
        ]

    async def read(
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.DataFrame]:
        cfg = parse_config(DatasetConfig, config)
        _same_stream(cfg, request.stream)
        try:
            lf = store_for(ctx).read(cfg.dataset)
        except DatasetNotFound as exc:
            raise ConnectorError(CheckCategory.NOT_FOUND, str(exc), "/dataset") from exc
        async for batch in iterate_lazy(lf, request):
            yield batch

    async def open_writer(
        self, config: dict[str, Any], request: WriteRequest, ctx: ConnectorContext
    ) -> Writer:
        cfg = parse_config(DatasetConfig, config)
        _same_stream(cfg, request.stream)
        if request.mode == "upsert":
            raise ConnectorError(
                CheckCategory.INVALID_CONFIG, "Datasets support append and replace, not upsert."
            )
        store = store_for(ctx)
        staged = await asyncio.to_thread(store.begin_version, cfg.dataset, request.mode)
        return DatasetWriter(staged)


def _same_stream(cfg: DatasetConfig, stream: str) -> None:
    if stream and stream != cfg.dataset:
        raise ConnectorError(
            CheckCategory.NOT_FOUND,
            f"This connector serves dataset {cfg.dataset!r}, not {stream!r}.",
        )


def _result(started: float, error: ConnectorError | None) -> CheckResult:
    return CheckResult(
        ok=error is None,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        error=error.to_check_error() if error else None,
    )
