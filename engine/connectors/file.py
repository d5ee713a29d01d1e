"""Files as sources and destinations: CSV, TSV, JSON (an array of records), NDJSON, Parquet
and Excel (xlsx).

Where files live: `path` is relative to the platform's DATA_DIR (absolute paths and `..`
escapes, including through symlinks, are refused) or `file_id` names an uploaded file that
`ctx.resolve_file` maps to disk. A path may be a file or a directory; a directory holds one
stream per supported file in it. Streams are named after the file ("sales.csv"); an Excel
workbook has one stream per sheet ("book.xlsx:Sheet1").

Reading is lazy and batched: CSV/NDJSON/Parquet are scanned with Polars and collected in
batches in a worker thread, so the event loop never blocks and memory stays bounded. JSON
arrays and Excel sheets have no streaming reader and are loaded whole (in a thread). CSV in
another encoding than UTF-8 is transcoded chunk by chunk to a temporary UTF-8 file first,
because Polars' scanner reads UTF-8 only.

Writing is staged: batches go to Parquet parts in a hidden staging directory next to the
target; `commit` renders the final file into a temp file in the same directory and publishes
it with `os.replace` (atomic), `abort` deletes the staging files and leaves the target as it
was. New files are UTF-8. Appending concatenates CSV/NDJSON bytes (new rows laid out like
the existing file: delimiter, header order, encoding) and rewrites Parquet, JSON and Excel.

Also home to small helpers the other connectors in this package share (config parsing into
pydantic with JSON-pointer errors, fields with primary keys, batched reads of a LazyFrame).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Literal, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

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
from engine.schema import Field, StreamSchema
from engine.schema.polars_types import logical_from_polars

FileFormat = Literal["csv", "tsv", "json", "ndjson", "parquet", "xlsx"]

SAMPLE_BYTES = 64 * 1024
_EXTENSIONS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
}
_UTF8_NAMES = {"utf-8", "utf8", "utf_8", "ascii", "us-ascii", "utf-8-sig"}


# ---- helpers shared by the connectors of this package -----------------------------------

ConfigModel = TypeVar("ConfigModel", bound=BaseModel)


def parse_config(model: type[ConfigModel], config: dict[str, Any]) -> ConfigModel:
    """Validate a config, turning the first error into ConnectorError(invalid_config)."""
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        pointer = "/" + "/".join(str(part) for part in first["loc"]) if first["loc"] else None
        where = f" at {pointer}" if pointer else ""
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG, f"Invalid configuration{where}: {first['msg']}", pointer
        ) from exc


def fields_from_schema(
    schema: pl.Schema | dict[str, pl.DataType], primary_key: Sequence[str] = ()
) -> list[Field]:
    return [
        Field(
            name=name,
            type=logical_from_polars(dtype),
            nullable=name not in primary_key,
            native_type=str(dtype),
            primary_key=name in primary_key,
        )
        for name, dtype in schema.items()
    ]


def incremental_filter(lf: pl.LazyFrame, request: ReadRequest) -> pl.LazyFrame:
    """Keep rows past the saved cursor (incremental reads); full refreshes keep all rows."""
    if request.sync_mode != "incremental" or not request.cursor_field:
        return lf
    cursor = (request.state or {}).get("cursor")
    if cursor is None:
        return lf
    schema = lf.collect_schema()
    if request.cursor_field not in schema:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG,
            f"Cursor field {request.cursor_field!r} is not a column of {request.stream!r}.",
        )
    bound = cursor_literal(cursor, schema[request.cursor_field])
    return lf.filter(pl.col(request.cursor_field) > bound)


def cursor_literal(value: Any, dtype: pl.DataType) -> pl.Expr:
    """The saved cursor (JSON, so often an ISO string) as a literal of the column's type."""
    if isinstance(value, str) and isinstance(dtype, pl.Datetime):
        moment = datetime.fromisoformat(value)
        if dtype.time_zone and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # naive cursors are UTC, like our timestamps
        elif not dtype.time_zone and moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return pl.lit(moment, dtype=dtype)
    if isinstance(value, str) and dtype == pl.Date:
        return pl.lit(date.fromisoformat(value[:10]))
    if isinstance(value, str) and dtype == pl.Time:
        return pl.lit(dt_time.fromisoformat(value))
    return pl.lit(value).cast(dtype, strict=False)


def lazy_request(lf: pl.LazyFrame, request: ReadRequest) -> pl.LazyFrame:
    """`lf` with the request's incremental filter and limit."""
    lf = incremental_filter(lf, request)
    if request.limit is not None:
        lf = lf.head(request.limit)
    return lf


async def iterate_lazy(lf: pl.LazyFrame, request: ReadRequest) -> AsyncIterator[pl.DataFrame]:
    """Run a LazyFrame in batches of `request.batch_size` in a worker thread."""
    lf = lazy_request(lf, request)
    batches = lf.collect_batches(chunk_size=request.batch_size, lazy=True)
    iterator = iter(batches)
    while True:
        frame = await asyncio.to_thread(next, iterator, None)
        if frame is None:
            return
        if frame.height:
            yield frame


async def iterate_frame(frame: pl.DataFrame, request: ReadRequest) -> AsyncIterator[pl.DataFrame]:
    """Batches of an in-memory frame, with the same filtering as `iterate_lazy`."""
    async for batch in iterate_lazy(frame.lazy(), request):
        yield batch


# ---- configuration ----------------------------------------------------------------------


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    file_id: str | None = None
    format: Literal["auto", "csv", "tsv", "json", "ndjson", "parquet", "xlsx"] = "auto"
    delimiter: str | None = None
    encoding: str = "auto"
    has_header: bool | None = None
    sheet: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> FileConfig:
        if bool(self.path) == bool(self.file_id):
            raise ValueError("set exactly one of 'path' and 'file_id'")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError("'delimiter' must be a single character")
        if self.encoding != "auto":
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"unknown encoding {self.encoding!r}") from None
        return self


CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "File",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "path": {
            "type": "string",
            "title": "Path",
            "description": "File or directory, relative to the data directory.",
            "minLength": 1,
        },
        "file_id": {"type": "string", "title": "Uploaded file", "minLength": 1},
        "format": {
            "type": "string",
            "title": "Format",
            "enum": ["auto", "csv", "tsv", "json", "ndjson", "parquet", "xlsx"],
            "default": "auto",
        },
        "delimiter": {
            "type": "string",
            "title": "Delimiter",
            "description": "CSV separator; detected when empty.",
            "minLength": 1,
            "maxLength": 1,
        },
        "encoding": {
            "type": "string",
            "title": "Encoding",
            "description": "'auto' tries UTF-8, then detects the legacy encoding.",
            "default": "auto",
        },
        "has_header": {
            "type": "boolean",
            "title": "First row is a header",
            "description": "Detected when not set.",
        },
        "sheet": {"type": "string", "title": "Sheet", "description": "Excel: only this sheet."},
    },
    "oneOf": [{"required": ["path"]}, {"required": ["file_id"]}],
}

UI_SCHEMA: dict[str, Any] = {
    "ui:order": ["path", "file_id", "format", "delimiter", "encoding", "has_header", "sheet"],
    "file_id": {"ui:widget": "hidden"},
    "delimiter": {"ui:placeholder": "auto"},
}


# ---- locating files ---------------------------------------------------------------------


@dataclass(frozen=True)
class FileStream:
    name: str
    path: Path
    format: FileFormat
    sheet: str | None = None


def resolve_location(cfg: FileConfig, ctx: ConnectorContext) -> Path:
    """The file or directory the config points at, never outside DATA_DIR."""
    if cfg.file_id:
        if ctx.resolve_file is None:
            raise ConnectorError(
                CheckCategory.INVALID_CONFIG, "Uploaded files are not available here.", "/file_id"
            )
        return Path(ctx.resolve_file(cfg.file_id))
    raw = Path(cfg.path or "")
    if raw.is_absolute():
        raise ConnectorError(
            CheckCategory.PERMISSION, "Use a path relative to the data directory.", "/path"
        )
    root = Path(ctx.data_dir).resolve()
    resolved = (root / raw).resolve()  # follows symlinks, so a link out of root is caught too
    if not resolved.is_relative_to(root):
        raise ConnectorError(
            CheckCategory.PERMISSION, "The path leads outside the data directory.", "/path"
        )
    return resolved


def _allowed(path: Path, cfg: FileConfig, ctx: ConnectorContext) -> bool:
    """Files found under a configured path must stay inside DATA_DIR once links resolve."""
    return bool(cfg.file_id) or path.resolve().is_relative_to(Path(ctx.data_dir).resolve())


def detect_format(path: Path, configured: str = "auto") -> FileFormat:
    if configured != "auto":
        return configured  # type: ignore[return-value]
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension:
        return by_extension
    with path.open("rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "ndjson"
    return "csv"


def list_streams(cfg: FileConfig, ctx: ConnectorContext) -> list[FileStream]:
    location = resolve_location(cfg, ctx)
    if location.is_dir():
        files = sorted(
            p for p in location.iterdir() if p.is_file() and p.suffix.lower() in _EXTENSIONS
        )
        # Hidden files are staging leftovers; links out of DATA_DIR are not ours to read.
        files = [p for p in files if not p.name.startswith(".") and _allowed(p, cfg, ctx)]
    elif location.is_file():
        files = [location]
    else:
        field = "/file_id" if cfg.file_id else "/path"
        raise ConnectorError(
            CheckCategory.NOT_FOUND, f"No file at {cfg.path or cfg.file_id}.", field
        )
    streams: list[FileStream] = []
    for path in files:
        fmt = detect_format(path, cfg.format)
        if fmt != "xlsx":
            streams.append(FileStream(path.name, path, fmt))
            continue
        for sheet in excel_sheets(path):
            if cfg.sheet is None or cfg.sheet == sheet:
                streams.append(FileStream(f"{path.name}:{sheet}", path, fmt, sheet))
    return streams


def find_stream(cfg: FileConfig, ctx: ConnectorContext, name: str) -> FileStream:
    streams = list_streams(cfg, ctx)
    for stream in streams:
        if stream.name == name:
            return stream
    if len(streams) == 1 and name in ("", streams[0].path.name):
        return streams[0]  # a single-file config answers to its file name too
    raise ConnectorError(CheckCategory.NOT_FOUND, f"No stream named {name!r}.")


def excel_sheets(path: Path) -> list[str]:
    import fastexcel  # optional engine of pl.read_excel; imported where needed

    return list(fastexcel.read_excel(str(path)).sheet_names)


# ---- sniffing CSV -----------------------------------------------------------------------


@dataclass(frozen=True)
class CsvDialect:
    encoding: str
    delimiter: str
    has_header: bool


def detect_encoding(sample: bytes) -> str:
    """UTF-8 when the sample decodes as UTF-8, else the legacy encoding that fits.

    Statistical detection (charset-normalizer) cannot tell the 8-bit code pages apart on the
    short samples typical of CSV exports: "1;Café" comes out as Urdu. So Western text is
    recognised first: decoded as cp1252 (a superset of latin-1's printable characters), it
    is mostly ASCII letters with a few accented ones. Text in other scripts is nearly all
    non-ASCII letters and goes to charset-normalizer.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if _looks_western(sample):
        return "cp1252"
    try:
        import charset_normalizer
    except ImportError:  # optional dependency: without it, latin-1 decodes anything
        return "latin-1"
    best = charset_normalizer.from_bytes(sample).best()
    return best.encoding if best else "latin-1"


def _looks_western(sample: bytes) -> bool:
    text = sample.decode("cp1252", errors="replace")
    if "\ufffd" in text:  # bytes cp1252 leaves undefined
        return False
    letters = [c for c in text if c.isalpha()]
    accented = sum(1 for c in letters if not c.isascii())
    return bool(letters) and accented / len(letters) < 0.3


def sniff_csv(path: Path, cfg: FileConfig, fmt: FileFormat) -> CsvDialect:
    """Encoding, delimiter and header of a CSV file, from its first 64 KiB (config wins)."""
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    encoding = detect_encoding(sample) if cfg.encoding == "auto" else cfg.encoding
    lines = sample.decode(encoding, errors="ignore").splitlines()
    if len(sample) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of a full sample is most likely cut short
    snippet = "\n".join(lines)
    delimiter = cfg.delimiter or ("\t" if fmt == "tsv" else None)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(snippet, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    has_header = cfg.has_header
    if has_header is None:
        has_header = looks_like_header(snippet, delimiter)
    return CsvDialect(encoding, delimiter, has_header)


def looks_like_header(snippet: str, delimiter: str) -> bool:
    """A header is a first row that does not fit the types of the rows below it.

    csv.Sniffer's own guess votes on cell lengths and misses short text columns; comparing
    value kinds per column is steadier. With no typed column at all we cannot tell, and
    assume a header: files without one are the exception.
    """
    try:
        rows = pl.read_csv(
            snippet.encode(),
            has_header=False,
            separator=delimiter,
            infer_schema=False,
            truncate_ragged_lines=True,
            n_rows=500,
        )
    except pl.exceptions.PolarsError:
        return True
    if rows.height < 2:
        return True
    typed_columns = 0
    for name in rows.columns:
        below = _value_kind(rows.get_column(name).slice(1))
        if below in ("text", "empty"):
            continue
        typed_columns += 1
        first = _value_kind(rows.get_column(name).head(1))
        if first not in (below, "empty"):
            return True
    return typed_columns == 0


def _value_kind(values: pl.Series) -> str:
    """ "number", "date", "boolean", "text" or "empty" for a column of raw CSV strings."""
    values = values.drop_nulls()
    if values.is_empty():
        return "empty"
    if values.cast(pl.Float64, strict=False).null_count() == 0:
        return "number"
    if values.str.to_lowercase().is_in(["true", "false"]).all():
        return "boolean"
    if values.str.to_date(strict=False).null_count() == 0:
        return "date"
    return "text"


@contextlib.contextmanager
def utf8_copy(path: Path, encoding: str) -> Iterator[Path]:
    """`path` itself when it is UTF-8, else a temporary UTF-8 transcoding of it."""
    if encoding.lower() in _UTF8_NAMES:
        yield path
        return
    fd, tmp_name = tempfile.mkstemp(suffix=".csv", prefix="transcode-")
    try:
        with (
            open(path, encoding=encoding, newline="") as source,
            os.fdopen(fd, "w", encoding="utf-8", newline="") as target,
        ):
            shutil.copyfileobj(source, target, 1024 * 1024)
        yield Path(tmp_name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def scan_csv(path: Path, dialect: CsvDialect) -> pl.LazyFrame:
    return pl.scan_csv(
        path,
        separator=dialect.delimiter,
        has_header=dialect.has_header,
        infer_schema_length=1000,
        try_parse_dates=True,
        truncate_ragged_lines=True,
    )


# ---- reading ----------------------------------------------------------------------------


def read_whole(stream: FileStream) -> pl.DataFrame:
    """Formats without a streaming reader (blocking; call in a thread)."""
    if stream.format == "json":
        return pl.read_json(stream.path, infer_schema_length=None)
    if stream.format == "xlsx":
        return pl.read_excel(stream.path, sheet_name=stream.sheet, infer_schema_length=1000)
    raise ValueError(f"{stream.format} is read lazily")


def scan_lazy(stream: FileStream) -> pl.LazyFrame:
    if stream.format == "parquet":
        return pl.scan_parquet(stream.path)
    if stream.format == "ndjson":
        return pl.scan_ndjson(stream.path, infer_schema_length=1000)
    raise ValueError(f"{stream.format} has no lazy reader here")


def describe_stream(stream: FileStream, cfg: FileConfig) -> StreamSchema:
    """Schema and row estimate of one stream (blocking; call in a thread)."""
    kind = "sheet" if stream.sheet else "file"
    if stream.format in ("csv", "tsv"):
        dialect = sniff_csv(stream.path, cfg, stream.format)
        with utf8_copy(stream.path, dialect.encoding) as source:
            schema = scan_csv(source, dialect).collect_schema()
        estimate = max(estimate_lines(stream.path) - int(dialect.has_header), 0)
        return StreamSchema(
            name=stream.name, fields=fields_from_schema(schema), row_estimate=estimate, kind=kind
        )
    if stream.format == "parquet":
        lf = pl.scan_parquet(stream.path)
        rows = lf.select(pl.len()).collect().item()  # from the footer metadata, no data read
        return StreamSchema(
            name=stream.name,
            fields=fields_from_schema(lf.collect_schema()),
            row_estimate=rows,
            kind=kind,
        )
    if stream.format == "ndjson":
        schema = scan_lazy(stream).collect_schema()
        estimate = estimate_lines(stream.path)
        return StreamSchema(
            name=stream.name, fields=fields_from_schema(schema), row_estimate=estimate, kind=kind
        )
    frame = read_whole(stream)
    return StreamSchema(
        name=stream.name,
        fields=fields_from_schema(frame.schema),
        row_estimate=frame.height,
        kind=kind,
    )


def estimate_lines(path: Path) -> int:
    """Lines in a text file: exact for small files, extrapolated from 64 KiB for large ones."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if not sample:
        return 0
    newlines = sample.count(b"\n")
    if size <= SAMPLE_BYTES:
        return newlines + (0 if sample.endswith(b"\n") else 1)
    return int(size * newlines / len(sample))


# ---- writing ----------------------------------------------------------------------------


class FileWriter(Writer):
    """Stages batches as Parquet parts; `commit` renders the target and swaps it in."""

    def __init__(self, target: Path, fmt: FileFormat, mode: str, cfg: FileConfig, sheet: str):
        self.target = target
        self.format = fmt
        self.mode = mode
        self.cfg = cfg
        self.delimiter = cfg.delimiter or ("\t" if fmt == "tsv" else ",")
        self.sheet = sheet
        self.staging = target.parent / f".{target.name}.staging-{uuid.uuid4().hex}"
        self.staging.mkdir(parents=True)
        self.rows = 0
        self._parts: list[Path] = []
        self._schema: pl.Schema | None = None

    async def write_batch(self, frame: pl.DataFrame) -> None:
        if self._schema is None:
            self._schema = frame.schema
        elif frame.schema != self._schema:
            frame = frame.select(list(self._schema)).cast(dict(self._schema), strict=False)
        part = self.staging / f"part-{len(self._parts):05d}.parquet"
        await asyncio.to_thread(frame.write_parquet, part)
        self._parts.append(part)
        self.rows += frame.height

    async def commit(self) -> WriteResult:
        try:
            await asyncio.to_thread(self._publish)
        finally:
            await self.abort()
        return WriteResult(rows_written=self.rows, stream=self.target.name)

    async def abort(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self.staging, True)

    def _staged(self) -> pl.LazyFrame:
        if not self._parts:
            return pl.LazyFrame(schema=self._schema or {})
        return pl.scan_parquet(self._parts)

    def _publish(self) -> None:
        tmp = self.staging / f"out{self.target.suffix}"
        appending = self.mode == "append" and self.target.exists()
        if appending and self.format in ("csv", "tsv", "ndjson"):
            self._append_text(tmp)
        else:
            frame = self._staged()
            if appending:
                frame = pl.concat([self._existing(), frame], how="diagonal_relaxed")
            self._render(frame, tmp)
        os.replace(tmp, self.target)  # the one atomic step that publishes the file

    def _existing(self) -> pl.LazyFrame:
        stream = FileStream(self.target.name, self.target, self.format, self.sheet)
        if self.format == "parquet":
            return scan_lazy(stream)
        if self.format == "xlsx" and self.sheet not in excel_sheets(self.target):
            return pl.LazyFrame()
        return read_whole(stream).lazy()

    def _render(self, frame: pl.LazyFrame, out: Path) -> None:
        if self.format in ("csv", "tsv"):
            frame.sink_csv(
                out, separator=self.delimiter, include_header=self.cfg.has_header is not False
            )
        elif self.format == "ndjson":
            frame.sink_ndjson(out)
        elif self.format == "parquet":
            frame.sink_parquet(out)
        elif self.format == "json":
            frame.collect().write_json(out)
        else:
            self._render_excel(frame.collect(), out)

    def _render_excel(self, frame: pl.DataFrame, out: Path) -> None:
        """Rewrite the workbook: other sheets are copied over, ours is replaced."""
        import xlsxwriter

        others = []
        if self.target.exists():
            others = [s for s in excel_sheets(self.target) if s != self.sheet]
        with xlsxwriter.Workbook(out) as workbook:
            for sheet in others:
                pl.read_excel(self.target, sheet_name=sheet).write_excel(workbook, worksheet=sheet)
            frame.write_excel(workbook, worksheet=self.sheet)

    def _append_text(self, out: Path) -> None:
        """CSV/NDJSON append: the original bytes, then the new rows, batch by batch, laid out
        like the existing file (its delimiter, column order and encoding; no second header)."""
        shutil.copyfile(self.target, out)
        dialect = sniff_csv(self.target, self.cfg, self.format) if self.format != "ndjson" else None
        columns = self._existing_columns(dialect) if dialect else None
        with out.open("ab") as handle:
            if out.stat().st_size and not _ends_with_newline(out):
                handle.write(b"\n")
            for part in self._parts:
                batch = pl.read_parquet(part)
                if dialect is None:
                    batch.write_ndjson(handle)
                    continue
                if columns is not None:
                    batch = batch.select(
                        [
                            pl.col(c) if c in batch.columns else pl.lit(None).alias(c)
                            for c in columns
                        ]
                    )
                text = batch.write_csv(separator=dialect.delimiter, include_header=False)
                handle.write(_encode(text, dialect.encoding))

    def _existing_columns(self, dialect: CsvDialect) -> list[str] | None:
        """The header of the existing file, or None when it has none (columns go by position)."""
        if not dialect.has_header:
            return None
        with utf8_copy(self.target, dialect.encoding) as source:
            return pl.read_csv(source, separator=dialect.delimiter, n_rows=0).columns


def _encode(text: str, encoding: str) -> bytes:
    try:
        return text.encode("utf-8" if encoding == "utf-8-sig" else encoding)
    except UnicodeEncodeError as exc:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG,
            f"The new rows hold characters the file's encoding ({encoding}) cannot store.",
            "/encoding",
        ) from exc


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


# ---- the connector ----------------------------------------------------------------------


class FileConnector(Connector):
    type = "file"

    def spec(self) -> ConnectorSpec:
        return ConnectorSpec(
            type=self.type,
            title="File",
            category="file",
            direction="both",
            config_schema=CONFIG_SCHEMA,
            ui_schema=UI_SCHEMA,
            docs=__doc__ or "",
        )

    async def check(self, config: dict[str, Any], ctx: ConnectorContext) -> CheckResult:
        started = time.perf_counter()
        try:
            cfg = parse_config(FileConfig, config)
            streams = await asyncio.to_thread(list_streams, cfg, ctx)
            if not streams:
                raise ConnectorError(CheckCategory.NOT_FOUND, "No supported file there.", "/path")
            await asyncio.to_thread(_probe, streams[0], cfg)
        except ConnectorError as exc:
            return _failed(started, exc)
        except PermissionError as exc:
            return _failed(started, ConnectorError(CheckCategory.PERMISSION, str(exc), "/path"))
        except (OSError, pl.exceptions.PolarsError, ValueError) as exc:
            return _failed(
                started,
                ConnectorError(CheckCategory.INVALID_CONFIG, f"Cannot read the file: {exc}"),
            )
        return CheckResult(ok=True, latency_ms=_elapsed_ms(started))

    async def discover(self, config: dict[str, Any], ctx: ConnectorContext) -> list[StreamSchema]:
        cfg = parse_config(FileConfig, config)
        streams = await asyncio.to_thread(list_streams, cfg, ctx)
        return [await asyncio.to_thread(describe_stream, s, cfg) for s in streams]

    async def read(
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.DataFrame]:
        cfg = parse_config(FileConfig, config)
        stream = await asyncio.to_thread(find_stream, cfg, ctx, request.stream)
        if stream.format in ("json", "xlsx"):
            frame = await asyncio.to_thread(read_whole, stream)
            async for batch in iterate_frame(frame, request):
                yield batch
        elif stream.format in ("csv", "tsv"):
            dialect = await asyncio.to_thread(sniff_csv, stream.path, cfg, stream.format)
            copy = utf8_copy(stream.path, dialect.encoding)
            source = await asyncio.to_thread(copy.__enter__)  # transcoding can take a while
            try:
                async for batch in iterate_lazy(scan_csv(source, dialect), request):
                    yield batch
            finally:
                await asyncio.to_thread(copy.__exit__, None, None, None)
        else:
            async for batch in iterate_lazy(scan_lazy(stream), request):
                yield batch

    @contextlib.asynccontextmanager
    async def scan(
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.LazyFrame | None]:
        """The stream as one LazyFrame (same filtering as `read`), valid inside the block;
        None for formats read whole or an empty file."""
        cfg = parse_config(FileConfig, config)
        stream = await asyncio.to_thread(find_stream, cfg, ctx, request.stream)
        if stream.format in ("json", "xlsx") or stream.path.stat().st_size == 0:
            yield None
        elif stream.format in ("csv", "tsv"):
            dialect = await asyncio.to_thread(sniff_csv, stream.path, cfg, stream.format)
            copy = utf8_copy(stream.path, dialect.encoding)
            source = await asyncio.to_thread(copy.__enter__)
            try:
                yield lazy_request(scan_csv(source, dialect), request)
            finally:
                await asyncio.to_thread(copy.__exit__, None, None, None)
        else:
            yield lazy_request(scan_lazy(stream), request)

    async def open_writer(
        self, config: dict[str, Any], request: WriteRequest, ctx: ConnectorContext
    ) -> Writer:
        cfg = parse_config(FileConfig, config)
        if request.mode == "upsert":
            raise ConnectorError(
                CheckCategory.INVALID_CONFIG, "Files support append and replace, not upsert."
            )
        return await asyncio.to_thread(_open_file_writer, cfg, request, ctx)


def _open_file_writer(cfg: FileConfig, request: WriteRequest, ctx: ConnectorContext) -> FileWriter:
    """Pick the target file and its format (blocking file-system calls; run in a thread)."""
    location = resolve_location(cfg, ctx)
    target = location
    if location.is_dir():
        target = location / _plain_file_name(request.stream)
        if not _allowed(target, cfg, ctx):
            raise ConnectorError(
                CheckCategory.PERMISSION, "The target links outside the data directory.", "/path"
            )
    fmt = detect_format(target, cfg.format) if target.exists() else _format_for_new(target, cfg)
    return FileWriter(target, fmt, request.mode, cfg, cfg.sheet or "Sheet1")


def _plain_file_name(name: str) -> str:
    """A stream written into a directory must name a file in it, nothing more."""
    if not name or Path(name).name != name or name.startswith("."):
        raise ConnectorError(CheckCategory.PERMISSION, f"{name!r} is not a plain file name.")
    return name


def _format_for_new(target: Path, cfg: FileConfig) -> FileFormat:
    if cfg.format != "auto":
        return cfg.format  # type: ignore[return-value]
    fmt = _EXTENSIONS.get(target.suffix.lower())
    if fmt is None:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG,
            "Set 'format' or give the file a known extension.",
            "/format",
        )
    return fmt


def _probe(stream: FileStream, cfg: FileConfig) -> None:
    """Read a few rows to prove the file is readable in the configured format."""
    if stream.format in ("csv", "tsv"):
        dialect = sniff_csv(stream.path, cfg, stream.format)
        with utf8_copy(stream.path, dialect.encoding) as source:
            scan_csv(source, dialect).head(5).collect()
    elif stream.format in ("parquet", "ndjson"):
        scan_lazy(stream).head(5).collect()
    else:
        read_whole(stream)


def _failed(started: float, exc: ConnectorError) -> CheckResult:
    return CheckResult(ok=False, latency_ms=_elapsed_ms(started), error=exc.to_check_error())


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
