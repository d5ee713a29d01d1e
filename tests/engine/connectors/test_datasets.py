"""Managed datasets: versions, append, rollback, and writes that fail leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from jsonschema import Draft202012Validator

from engine.connectors.base import CheckCategory, ConnectorContext, ReadRequest, WriteRequest
from engine.connectors.dataset import DatasetConnector
from engine.connectors.errors import ConnectorError
from engine.datasets import (
    DatasetError,
    DatasetNotFound,
    DatasetSchemaError,
    DatasetStore,
    InvalidDatasetName,
)


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


async def write_version(
    store: DatasetStore, name: str, *frames: pl.DataFrame, mode="replace"
) -> int:
    staged = store.begin_version(name, mode)
    for frame in frames:
        await staged.write(frame)
    return (await staged.commit()).version


def ids(frame: pl.LazyFrame | pl.DataFrame) -> list[int]:
    frame = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return frame.get_column("id").to_list()


async def test_versions_are_kept_and_readable(store: DatasetStore, tmp_path: Path) -> None:
    v1 = await write_version(store, "sales", pl.DataFrame({"id": [1, 2], "amount": [1.5, 2.5]}))
    v2 = await write_version(store, "sales", pl.DataFrame({"id": [3], "amount": [9.0]}))
    assert (v1, v2) == (1, 2)
    assert ids(store.read("sales")) == [3]
    assert ids(store.read("sales", version=1)) == [1, 2]
    infos = store.versions("sales")
    assert [(i.version, i.rows, i.parent, i.mode) for i in infos] == [
        (1, 2, None, "replace"),
        (2, 1, 1, "replace"),
    ]
    assert infos[0].schema == {"id": "Int64", "amount": "Float64"}
    assert infos[0].created_at.endswith("+00:00")
    assert sorted(p.name for p in (tmp_path / "datasets" / "sales").iterdir()) == [
        "manifest.json",
        "v1",
        "v2",
    ]
    assert store.list() == ["sales"]
    assert store.schema("sales") == pl.Schema({"id": pl.Int64, "amount": pl.Float64})


async def test_several_batches_make_one_version(store: DatasetStore) -> None:
    await write_version(store, "events", pl.DataFrame({"id": [1]}), pl.DataFrame({"id": [2, 3]}))
    assert ids(store.read("events")) == [1, 2, 3]
    assert store.versions("events")[0].rows == 3
    assert len(store.versions("events")[0].parts) == 2


async def test_append_builds_on_the_current_version(store: DatasetStore) -> None:
    await write_version(store, "log", pl.DataFrame({"id": [1, 2]}))
    v2 = await write_version(store, "log", pl.DataFrame({"id": [3]}), mode="append")
    assert ids(store.read("log")) == [1, 2, 3]
    assert ids(store.read("log", version=1)) == [1, 2]  # the parent is untouched
    info = store.versions("log")[-1]
    assert (info.version, info.parent, info.rows, info.mode) == (v2, 1, 3, "append")


async def test_append_casts_compatible_batches_and_refuses_others(store: DatasetStore) -> None:
    await write_version(store, "typed", pl.DataFrame({"id": [1], "x": [1.0]}))
    await write_version(store, "typed", pl.DataFrame({"x": [2], "id": [2]}), mode="append")
    assert store.read("typed").collect().rows() == [(1, 1.0), (2, 2.0)]
    staged = store.begin_version("typed", "append")
    with pytest.raises(DatasetSchemaError):
        await staged.write(pl.DataFrame({"id": [3], "other": ["no"]}))
    await staged.abort()


async def test_abort_leaves_current_unchanged(store: DatasetStore) -> None:
    await write_version(store, "orders", pl.DataFrame({"id": [1]}))
    staged = store.begin_version("orders", "replace")
    await staged.write(pl.DataFrame({"id": [99]}))
    await staged.abort()
    assert ids(store.read("orders")) == [1]
    assert [v.version for v in store.versions("orders")] == [1]
    assert not list(store._dir("orders").glob(".staging-*"))
    with pytest.raises(DatasetError):
        await staged.commit()


async def test_uncommitted_write_is_invisible(store: DatasetStore) -> None:
    await write_version(store, "live", pl.DataFrame({"id": [1]}))
    staged = store.begin_version("live", "replace")
    await staged.write(pl.DataFrame({"id": [2]}))
    assert ids(store.read("live")) == [1]
    await staged.commit()
    assert ids(store.read("live")) == [2]


async def test_rollback_keeps_history_and_new_versions_follow(store: DatasetStore) -> None:
    for n in (1, 2, 3):
        await write_version(store, "kpi", pl.DataFrame({"id": [n]}))
    assert await store.rollback("kpi") == 2
    assert ids(store.read("kpi")) == [2]
    assert await store.rollback("kpi") == 1
    assert [v.version for v in store.versions("kpi")] == [1, 2, 3]
    assert await store.rollback("kpi", to_version=3) == 3
    with pytest.raises(DatasetNotFound):
        await store.rollback("kpi", to_version=7)
    await store.rollback("kpi", to_version=1)
    v4 = await write_version(store, "kpi", pl.DataFrame({"id": [4]}), mode="append")
    assert v4 == 4
    assert ids(store.read("kpi")) == [1, 4]
    assert store.versions("kpi")[-1].parent == 1


async def test_rollback_without_earlier_version_fails(store: DatasetStore) -> None:
    await write_version(store, "single", pl.DataFrame({"id": [1]}))
    with pytest.raises(DatasetError):
        await store.rollback("single")


async def test_preview_and_empty_write(store: DatasetStore) -> None:
    await write_version(store, "big", pl.DataFrame({"id": list(range(500))}))
    preview = await store.preview("big", limit=10)
    assert preview.height == 10
    v2 = await write_version(store, "big")  # a run that produced no rows
    assert store.version_info("big", v2).rows == 0
    assert store.read("big").collect().height == 0


async def test_purge_removes_only_stale_staging(store: DatasetStore) -> None:
    await write_version(store, "tidy", pl.DataFrame({"id": [1]}))
    crashed = store.begin_version("tidy")
    live = store.begin_version("tidy")
    os.utime(crashed.path, (0, 0))  # as if left behind long ago
    assert store.purge_staging(older_than_s=3600) == 1
    assert not crashed.path.exists() and live.path.exists()
    await live.write(pl.DataFrame({"id": [2]}))
    await live.commit()
    assert ids(store.read("tidy")) == [2]


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "x" * 200, "a..b", "white space"])
def test_unsafe_names_are_refused(store: DatasetStore, name: str) -> None:
    with pytest.raises(InvalidDatasetName):
        store.begin_version(name)


def test_unknown_dataset(store: DatasetStore) -> None:
    with pytest.raises(DatasetNotFound):
        store.read("missing")
    assert store.list() == []


# ---- the connector ----------------------------------------------------------------------


@pytest.fixture
def dctx(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(data_dir=tmp_path)


async def read_all(connector, config, request, ctx) -> pl.DataFrame:
    frames = [frame async for frame in connector.read(config, request, ctx)]
    return pl.concat(frames) if frames else pl.DataFrame()


async def test_connector_spec_check_discover_read_write(dctx: ConnectorContext) -> None:
    connector = DatasetConnector()
    spec = connector.spec()
    Draft202012Validator.check_schema(spec.config_schema)
    assert spec.direction == "both"
    config = {"dataset": "customers"}
    Draft202012Validator(spec.config_schema).validate(config)

    assert (await connector.check(config, dctx)).ok
    assert await connector.discover(config, dctx) == []  # nothing written yet

    writer = await connector.open_writer(
        config, WriteRequest(stream="customers", mode="replace"), dctx
    )
    await writer.write_batch(pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]}))
    result = await writer.commit()
    assert (result.rows_written, result.version, result.stream) == (3, 1, "customers")

    writer = await connector.open_writer(config, WriteRequest(stream="customers"), dctx)  # append
    await writer.write_batch(pl.DataFrame({"id": [4], "name": ["d"]}))
    assert (await writer.commit()).version == 2

    [stream] = await connector.discover(config, dctx)
    assert stream.name == "customers" and stream.kind == "dataset" and stream.row_estimate == 4
    assert [(f.name, f.type.value) for f in stream.fields] == [
        ("id", "integer"),
        ("name", "string"),
    ]

    frame = await read_all(connector, config, ReadRequest(stream="customers", batch_size=2), dctx)
    assert ids(frame) == [1, 2, 3, 4]
    incremental = ReadRequest(
        stream="customers", sync_mode="incremental", cursor_field="id", state={"cursor": 2}
    )
    assert ids(await read_all(connector, config, incremental, dctx)) == [3, 4]
    limited = ReadRequest(stream="customers", limit=1)
    assert ids(await read_all(connector, config, limited, dctx)) == [1]
    assert (dctx.data_dir / "datasets" / "customers" / "v2").is_dir()


async def test_connector_abort_and_errors(dctx: ConnectorContext) -> None:
    connector = DatasetConnector()
    config = {"dataset": "stable"}
    writer = await connector.open_writer(config, WriteRequest(stream="stable"), dctx)
    await writer.write_batch(pl.DataFrame({"id": [1]}))
    await writer.commit()
    writer = await connector.open_writer(
        config, WriteRequest(stream="stable", mode="replace"), dctx
    )
    await writer.write_batch(pl.DataFrame({"id": [2]}))
    await writer.abort()
    assert ids(await read_all(connector, config, ReadRequest(stream="stable"), dctx)) == [1]

    bad = await connector.check({"dataset": "../x"}, dctx)
    assert not bad.ok and bad.error.category == CheckCategory.INVALID_CONFIG
    assert bad.error.field == "/dataset"
    with pytest.raises(ConnectorError) as caught:
        await read_all(connector, {"dataset": "nothing"}, ReadRequest(stream="nothing"), dctx)
    assert caught.value.category == CheckCategory.NOT_FOUND
    with pytest.raises(ConnectorError):
        await read_all(connector, config, ReadRequest(stream="other"), dctx)
