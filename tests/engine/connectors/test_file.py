"""File connector: every format read, discovered and written, with detection of delimiter,
encoding and header, refusal of paths outside DATA_DIR, and writes that publish atomically."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from jsonschema import Draft202012Validator

from engine.connectors.base import CheckCategory, ConnectorContext, ReadRequest, WriteRequest
from engine.connectors.errors import ConnectorError
from engine.connectors.file import FileConnector, detect_encoding

SAMPLE = pl.DataFrame(
    {
        "id": [1, 2, 3],
        "name": ["Ada", "Grace", "Linus"],
        "score": [9.5, 8.25, 7.0],
        "active": [True, False, True],
    }
)


@pytest.fixture
def fctx(tmp_path: Path) -> ConnectorContext:
    data = tmp_path / "data"
    data.mkdir()
    return ConnectorContext(data_dir=data)


@pytest.fixture
def connector() -> FileConnector:
    return FileConnector()


async def read_all(connector, config, ctx, stream="", **request) -> pl.DataFrame:
    req = ReadRequest(stream=stream, **request)
    frames = [frame async for frame in connector.read(config, req, ctx)]
    return pl.concat(frames) if frames else pl.DataFrame()


def write_sample(ctx: ConnectorContext, name: str) -> Path:
    path = ctx.data_dir / name
    fmt = name.rsplit(".", 1)[1]
    if fmt == "csv":
        SAMPLE.write_csv(path)
    elif fmt == "tsv":
        SAMPLE.write_csv(path, separator="\t")
    elif fmt == "json":
        SAMPLE.write_json(path)
    elif fmt == "ndjson":
        SAMPLE.write_ndjson(path)
    elif fmt == "parquet":
        SAMPLE.write_parquet(path)
    elif fmt == "xlsx":
        SAMPLE.write_excel(path, worksheet="People")
    return path


def test_spec_is_valid_json_schema(connector: FileConnector) -> None:
    spec = connector.spec()
    Draft202012Validator.check_schema(spec.config_schema)
    validator = Draft202012Validator(spec.config_schema)
    validator.validate({"path": "in/sales.csv", "delimiter": ";"})
    assert list(validator.iter_errors({"path": "a.csv", "file_id": "f1"}))  # not both
    assert list(validator.iter_errors({}))
    assert spec.category == "file" and spec.direction == "both"


@pytest.mark.parametrize(
    "name",
    ["people.csv", "people.tsv", "people.json", "people.ndjson", "people.parquet", "people.xlsx"],
)
async def test_every_format_check_discover_read(connector, fctx, name: str) -> None:
    write_sample(fctx, name)
    config = {"path": name}
    check = await connector.check(config, fctx)
    assert check.ok, check.error
    [stream] = await connector.discover(config, fctx)
    types = {f.name: f.type.value for f in stream.fields}
    assert types == {"id": "integer", "name": "string", "score": "number", "active": "boolean"}
    assert stream.row_estimate == 3
    frame = await read_all(connector, config, fctx, stream=stream.name)
    assert frame.sort("id").equals(SAMPLE)


@pytest.mark.parametrize(
    "name", ["out.csv", "out.tsv", "out.json", "out.ndjson", "out.parquet", "out.xlsx"]
)
async def test_every_format_write_replace_then_append(connector, fctx, name: str) -> None:
    config = {"path": name}
    writer = await connector.open_writer(config, WriteRequest(stream=name, mode="replace"), fctx)
    await writer.write_batch(SAMPLE.head(2))
    await writer.write_batch(SAMPLE.tail(1))
    result = await writer.commit()
    assert result.rows_written == 3
    assert (await read_all(connector, config, fctx)).sort("id").equals(SAMPLE)

    writer = await connector.open_writer(config, WriteRequest(stream=name, mode="append"), fctx)
    await writer.write_batch(SAMPLE.with_columns(pl.col("id") + 10))
    await writer.commit()
    frame = await read_all(connector, config, fctx)
    assert frame.get_column("id").to_list() == [1, 2, 3, 11, 12, 13]
    leftovers = [p.name for p in fctx.data_dir.iterdir() if p.name != name]
    assert leftovers == []  # no staging or temp files left behind


async def test_abort_leaves_the_original_file(connector, fctx) -> None:
    path = write_sample(fctx, "keep.csv")
    before = path.read_bytes()
    writer = await connector.open_writer(
        {"path": "keep.csv"}, WriteRequest(stream="keep.csv", mode="replace"), fctx
    )
    await writer.write_batch(pl.DataFrame({"id": [42]}))
    await writer.abort()
    assert path.read_bytes() == before
    assert [p.name for p in fctx.data_dir.iterdir()] == ["keep.csv"]


async def test_csv_append_keeps_the_existing_column_order(connector, fctx) -> None:
    write_sample(fctx, "ordered.csv")
    writer = await connector.open_writer({"path": "ordered.csv"}, WriteRequest(stream="x"), fctx)
    await writer.write_batch(
        pl.DataFrame({"active": [False], "score": [1.0], "name": ["Z"], "id": [4]})
    )
    await writer.commit()
    lines = (fctx.data_dir / "ordered.csv").read_text().splitlines()
    assert lines[0] == "id,name,score,active"
    assert lines[-1] == "4,Z,1.0,false"


async def test_semicolon_latin1_file_is_detected(connector, fctx) -> None:
    text = "id;name;city\n1;Café;Zürich\n2;Crème brûlée;Besançon\n3;Müller;Köln\n"
    (fctx.data_dir / "legacy.csv").write_bytes(text.encode("latin-1"))
    config = {"path": "legacy.csv"}
    [stream] = await connector.discover(config, fctx)
    assert [f.name for f in stream.fields] == ["id", "name", "city"]
    frame = await read_all(connector, config, fctx)
    assert frame.get_column("name").to_list() == ["Café", "Crème brûlée", "Müller"]
    assert frame.get_column("city").to_list() == ["Zürich", "Besançon", "Köln"]
    # An explicit encoding is honoured too.
    explicit = await read_all(connector, {**config, "encoding": "latin-1", "delimiter": ";"}, fctx)
    assert explicit.equals(frame)


def test_encoding_detection() -> None:
    assert detect_encoding("héllo".encode()) == "utf-8"
    assert detect_encoding(b"\xef\xbb\xbfid") == "utf-8-sig"
    assert detect_encoding("naïve café".encode("latin-1")) in ("cp1252", "latin_1")


async def test_headerless_file_is_detected(connector, fctx) -> None:
    (fctx.data_dir / "raw.csv").write_text("1,2.5,2024-01-02\n2,3.5,2024-01-03\n3,4.5,2024-01-04\n")
    [stream] = await connector.discover({"path": "raw.csv"}, fctx)
    assert [f.type.value for f in stream.fields] == ["integer", "number", "date"]
    frame = await read_all(connector, {"path": "raw.csv"}, fctx)
    assert frame.height == 3  # the first line is data, not a header
    assert frame.row(0) == (1, 2.5, date(2024, 1, 2))
    with_header = await read_all(connector, {"path": "raw.csv", "has_header": True}, fctx)
    assert with_header.height == 2


async def test_pipe_delimiter_and_utf8_bom(connector, fctx) -> None:
    (fctx.data_dir / "pipes.txt").write_bytes("\ufeffa|b\n1|x\n2|y\n".encode())
    frame = await read_all(connector, {"path": "pipes.txt"}, fctx)
    assert frame.columns == ["a", "b"]
    assert frame.rows() == [(1, "x"), (2, "y")]


async def test_format_detected_from_content(connector, fctx) -> None:
    SAMPLE.write_parquet(fctx.data_dir / "blob")
    [stream] = await connector.discover({"path": "blob"}, fctx)
    assert stream.row_estimate == 3
    (fctx.data_dir / "lines").write_text('{"a": 1}\n{"a": 2}\n')
    assert (await read_all(connector, {"path": "lines"}, fctx)).get_column("a").to_list() == [1, 2]


async def test_parquet_metadata_gives_exact_rows(connector, fctx) -> None:
    big = pl.DataFrame({"id": range(123_456), "d": [date(2024, 1, 1)] * 123_456})
    big.write_parquet(fctx.data_dir / "big.parquet", row_group_size=10_000)
    [stream] = await connector.discover({"path": "big.parquet"}, fctx)
    assert stream.row_estimate == 123_456
    assert [(f.name, f.type.value, f.native_type) for f in stream.fields] == [
        ("id", "integer", "Int64"),
        ("d", "date", "Date"),
    ]
    frames = [
        f
        async for f in connector.read(
            {"path": "big.parquet"}, ReadRequest(stream="big.parquet", batch_size=50_000), fctx
        )
    ]
    assert [f.height for f in frames] == [50_000, 50_000, 23_456]


async def test_xlsx_has_one_stream_per_sheet(connector, fctx) -> None:
    import xlsxwriter

    with xlsxwriter.Workbook(fctx.data_dir / "book.xlsx") as workbook:
        SAMPLE.write_excel(workbook, worksheet="People")
        pl.DataFrame({"sku": ["a", "b"], "qty": [5, 6]}).write_excel(workbook, worksheet="Stock")
    streams = await connector.discover({"path": "book.xlsx"}, fctx)
    assert [(s.name, s.kind, s.row_estimate) for s in streams] == [
        ("book.xlsx:People", "sheet", 3),
        ("book.xlsx:Stock", "sheet", 2),
    ]
    stock = await read_all(connector, {"path": "book.xlsx"}, fctx, stream="book.xlsx:Stock")
    assert stock.rows() == [("a", 5), ("b", 6)]
    only = await connector.discover({"path": "book.xlsx", "sheet": "Stock"}, fctx)
    assert [s.name for s in only] == ["book.xlsx:Stock"]

    # Writing one sheet keeps the others.
    config = {"path": "book.xlsx", "sheet": "Stock"}
    writer = await connector.open_writer(
        config, WriteRequest(stream="book.xlsx", mode="append"), fctx
    )
    await writer.write_batch(pl.DataFrame({"sku": ["c"], "qty": [7]}))
    await writer.commit()
    stock = await read_all(connector, {"path": "book.xlsx"}, fctx, stream="book.xlsx:Stock")
    assert stock.get_column("sku").to_list() == ["a", "b", "c"]
    people = await read_all(connector, {"path": "book.xlsx"}, fctx, stream="book.xlsx:People")
    assert people.height == 3


async def test_directory_has_one_stream_per_file(connector, fctx) -> None:
    folder = fctx.data_dir / "inbox"
    folder.mkdir()
    SAMPLE.write_csv(folder / "a.csv")
    SAMPLE.write_ndjson(folder / "b.ndjson")
    (folder / "notes.md").write_text("ignored")
    streams = await connector.discover({"path": "inbox"}, fctx)
    assert [s.name for s in streams] == ["a.csv", "b.ndjson"]
    b = await read_all(connector, {"path": "inbox"}, fctx, stream="b.ndjson")
    assert b.height == 3
    with pytest.raises(ConnectorError) as caught:
        await read_all(connector, {"path": "inbox"}, fctx, stream="c.csv")
    assert caught.value.category == CheckCategory.NOT_FOUND
    # A writer into a directory writes the stream's file there, and nothing outside it.
    writer = await connector.open_writer(
        {"path": "inbox"}, WriteRequest(stream="new.parquet"), fctx
    )
    await writer.write_batch(SAMPLE)
    await writer.commit()
    assert pl.read_parquet(folder / "new.parquet").equals(SAMPLE)
    with pytest.raises(ConnectorError):
        await connector.open_writer({"path": "inbox"}, WriteRequest(stream="../escape.csv"), fctx)


async def test_incremental_and_limit(connector, fctx) -> None:
    pl.DataFrame(
        {"id": range(10), "updated": [f"2024-01-{d:02d}" for d in range(1, 11)]}
    ).write_csv(fctx.data_dir / "inc.csv")
    config = {"path": "inc.csv"}
    frame = await read_all(
        connector,
        config,
        fctx,
        sync_mode="incremental",
        cursor_field="updated",
        state={"cursor": "2024-01-07"},
    )
    assert frame.get_column("id").to_list() == [7, 8, 9]
    assert (await read_all(connector, config, fctx, limit=4)).height == 4


@pytest.mark.parametrize(
    "path", ["../outside.csv", "a/../../outside.csv", "/etc/passwd", "link/outside.csv"]
)
async def test_paths_outside_data_dir_are_refused(connector, fctx, path: str) -> None:
    outside = fctx.data_dir.parent / "outside.csv"
    SAMPLE.write_csv(outside)
    (fctx.data_dir / "link").symlink_to(fctx.data_dir.parent)
    result = await connector.check({"path": path}, fctx)
    assert not result.ok
    assert result.error.category == CheckCategory.PERMISSION
    assert result.error.field == "/path"
    with pytest.raises(ConnectorError):
        await connector.discover({"path": path}, fctx)
    with pytest.raises(ConnectorError):
        await connector.open_writer({"path": path}, WriteRequest(stream="x"), fctx)


async def test_check_categories(connector, fctx) -> None:
    missing = await connector.check({"path": "nope.csv"}, fctx)
    assert missing.error.category == CheckCategory.NOT_FOUND
    invalid = await connector.check({"path": "a.csv", "delimiter": ";;"}, fctx)
    assert invalid.error.category == CheckCategory.INVALID_CONFIG
    (fctx.data_dir / "broken.parquet").write_bytes(b"not parquet at all")
    broken = await connector.check({"path": "broken.parquet"}, fctx)
    assert broken.error.category == CheckCategory.INVALID_CONFIG
    no_files = await connector.check({"file_id": "f-1"}, fctx)
    assert no_files.error.category == CheckCategory.INVALID_CONFIG


async def test_uploaded_file_by_id(connector, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "f-1").write_text(json.dumps([{"a": 1, "tags": ["x", "y"]}, {"a": 2, "tags": []}]))
    ctx = ConnectorContext(data_dir=tmp_path, resolve_file=lambda file_id: uploads / file_id)
    config = {"file_id": "f-1", "format": "json"}
    assert (await connector.check(config, ctx)).ok
    [stream] = await connector.discover(config, ctx)
    assert {f.name: f.type.value for f in stream.fields} == {"a": "integer", "tags": "json"}
    assert (await read_all(connector, config, ctx)).get_column("a").to_list() == [1, 2]


async def test_append_keeps_the_existing_files_dialect(connector, fctx) -> None:
    legacy = fctx.data_dir / "legacy.csv"
    legacy.write_bytes("id;name\n1;Café\n".encode("latin-1"))
    writer = await connector.open_writer({"path": "legacy.csv"}, WriteRequest(stream="x"), fctx)
    await writer.write_batch(pl.DataFrame({"name": ["Crème"], "id": [2]}))
    await writer.commit()
    assert legacy.read_bytes().decode("latin-1") == "id;name\n1;Café\n2;Crème\n"

    writer = await connector.open_writer({"path": "legacy.csv"}, WriteRequest(stream="x"), fctx)
    await writer.write_batch(pl.DataFrame({"id": [3], "name": ["日本"]}))
    with pytest.raises(ConnectorError) as caught:
        await writer.commit()
    assert caught.value.category == CheckCategory.INVALID_CONFIG
    assert legacy.read_bytes().decode("latin-1") == "id;name\n1;Café\n2;Crème\n"  # untouched
    assert [p.name for p in fctx.data_dir.iterdir()] == ["legacy.csv"]


async def test_headerless_output_when_configured(connector, fctx) -> None:
    config = {"path": "bare.csv", "has_header": False}
    writer = await connector.open_writer(
        config, WriteRequest(stream="bare.csv", mode="replace"), fctx
    )
    await writer.write_batch(pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    await writer.commit()
    assert (fctx.data_dir / "bare.csv").read_text() == "1,x\n2,y\n"


def test_non_western_legacy_text_is_left_to_statistical_detection() -> None:
    text = "id,город\n" + "\n".join(f"{i},Привет мир, Москва город {i}" for i in range(200))
    assert detect_encoding(text.encode("cp1251")) == "cp1251"


async def test_links_out_of_the_data_dir_are_not_streams(connector, fctx) -> None:
    folder = fctx.data_dir / "box"
    folder.mkdir()
    secret = fctx.data_dir.parent / "secret.csv"
    secret.write_text("password\nhunter2\n")
    (folder / "secret.csv").symlink_to(secret)
    SAMPLE.write_csv(folder / "ok.csv")
    assert [s.name for s in await connector.discover({"path": "box"}, fctx)] == ["ok.csv"]
    with pytest.raises(ConnectorError) as caught:
        await connector.open_writer({"path": "box"}, WriteRequest(stream="secret.csv"), fctx)
    assert caught.value.category == CheckCategory.PERMISSION
