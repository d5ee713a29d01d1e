"""Managed datasets: the `datasets` table is the catalog, the engine's store holds the
versioned Parquet (DATA_DIR/datasets)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from app.core.errors import NotFound
from app.datasets.schemas import DatasetSummary
from engine.datasets import DatasetError, DatasetStore
from engine.pipeline.dry_run import preview_records
from engine.pipeline.schema_bridge import schema_to_fields
from storage.models import Dataset


async def get_dataset(dataset_id: UUID) -> Dataset:
    dataset = await Dataset.get_or_none(id=dataset_id)
    if dataset is None:
        raise NotFound(f"No dataset with id {dataset_id}.")
    return dataset


def _summary(dataset: Dataset) -> dict[str, Any]:
    return {name: getattr(dataset, name) for name in DatasetSummary.model_fields}


def _fields(schema: Any) -> list[dict[str, Any]]:
    return [field.model_dump(mode="json") for field in schema_to_fields(schema)]


async def dataset_view(store: DatasetStore, dataset_id: UUID) -> dict[str, Any]:
    dataset = await get_dataset(dataset_id)
    try:
        versions = await asyncio.to_thread(store.versions, dataset.name)
        current = await asyncio.to_thread(store.current_version, dataset.name)
        schema = await asyncio.to_thread(store.schema, dataset.name)
    except DatasetError:
        raise NotFound(f"Dataset {dataset.name!r} has no stored data.") from None
    current_info = next((v for v in versions if v.version == current), None)
    return {
        **_summary(dataset),
        "current_version": current,
        "rows": current_info.rows if current_info else 0,
        "schema": _fields(schema),
        "versions": [
            {
                "version": v.version,
                "created_at": v.created_at,
                "rows": v.rows,
                "mode": v.mode,
                "parent": v.parent,
                "current": v.version == current,
            }
            for v in sorted(versions, key=lambda v: v.version, reverse=True)
        ],
    }


async def preview(
    store: DatasetStore, dataset_id: UUID, limit: int, version: int | None
) -> dict[str, Any]:
    dataset = await get_dataset(dataset_id)
    try:
        info = await asyncio.to_thread(store.version_info, dataset.name, version)
        frame = await store.preview(dataset.name, limit=limit, version=info.version)
    except DatasetError as exc:
        raise NotFound(str(exc)) from None
    return {
        "version": info.version,
        "columns": _fields(frame.schema),
        "rows": preview_records(frame, limit),
    }
