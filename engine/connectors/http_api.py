"""HTTP JSON APIs as a source: one stream per configured resource path.

Network safety: every TCP connection goes through `ctx.network_guard` (the SSRF guard). The
guard resolves the host once and returns the address to dial; the connection is made to
that address while the URL (hence the Host header and TLS SNI/certificate check) keeps the
host name. Redirects are followed by hand (at most 5), and each hop to a new origin is
dialled through the guard again, so a redirect to 169.254.169.254 is refused. Environment
proxies are ignored: a proxy would make the guard check the proxy instead of the target.
Credentials are only sent to the origin of `base_url`, never to another host that a
redirect or a pagination link points at.

Records: `records_path` is a dotted path into the JSON response ("data.items"); without it
the response itself must be the list of records (or one object, read as one record).
Nested objects are flattened to dotted column names ("address.city", up to three levels,
as engine.schema.infer does); arrays and deeper objects are kept whole as JSON text (logical
type `json`), because arrays of mixed shapes have no faithful column type. Column types come
from Polars' inference over each page; string columns whose every value is an ISO date or
timestamp become date / datetime (UTC).

Retries: 429 and 503 (and 502/504) are retried, waiting for Retry-After (seconds or an HTTP
date) when given, else with exponential backoff; attempts and total waiting are capped.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpcore
import httpx
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.connectors.base import (
    CheckCategory,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorSpec,
    ReadRequest,
)
from engine.connectors.errors import ConnectorError
from engine.connectors.file import fields_from_schema, incremental_filter, parse_config
from engine.schema import LogicalType, StreamSchema
from engine.schema.infer import DEFAULT_FLATTEN_DEPTH

MAX_REDIRECTS = 5
RETRY_STATUSES = {429, 502, 503, 504}
BACKOFF_BASE_S = 0.5
USER_AGENT = "data-aggregator/0.1"
# Same depth as engine.schema.infer, so an API stream and POST /schema/infer on the same
# sample name their columns alike.
FLATTEN_DEPTH = DEFAULT_FLATTEN_DEPTH

# ---- configuration ----------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NoAuth(_Model):
    type: Literal["none"] = "none"


class BasicAuth(_Model):
    type: Literal["basic"]
    username: str
    password: str = ""


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: str


class ApiKeyAuth(_Model):
    type: Literal["api_key"]
    name: str
    value: str
    in_: Literal["header", "query"] = Field("header", alias="in")


Auth = Annotated[NoAuth | BasicAuth | BearerAuth | ApiKeyAuth, Field(discriminator="type")]


class NoPagination(_Model):
    type: Literal["none"] = "none"


class PagePagination(_Model):
    type: Literal["page"]
    page_param: str = "page"
    size_param: str | None = "per_page"
    page_size: int = Field(100, ge=1)
    start_page: int = 1


class OffsetPagination(_Model):
    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(100, ge=1)


class CursorPagination(_Model):
    type: Literal["cursor"]
    cursor_param: str = "cursor"
    next_cursor_path: str


class LinkHeaderPagination(_Model):
    type: Literal["link_header"]


Pagination = Annotated[
    NoPagination | PagePagination | OffsetPagination | CursorPagination | LinkHeaderPagination,
    Field(discriminator="type"),
]


class StreamConfig(_Model):
    name: str = Field(min_length=1)
    path: str = ""
    records_path: str | None = None
    params: dict[str, str | int | float | bool] = {}
    primary_key: list[str] = []
    cursor_field: str | None = None

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if "://" in value or value.startswith("//"):
            raise ValueError("must be a path under base_url, not a URL")
        return value


class HttpApiConfig(_Model):
    base_url: str
    streams: list[StreamConfig] = []
    auth: Auth = NoAuth()
    pagination: Pagination = NoPagination()
    headers: dict[str, str] = {}
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    max_retry_wait_s: float = Field(60.0, ge=0)
    max_pages: int = Field(1000, ge=1)
    verify_tls: bool = True

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL")
        return value

    def stream(self, name: str) -> StreamConfig:
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise ConnectorError(CheckCategory.NOT_FOUND, f"No stream named {name!r}.", "/streams")


def _secret(title: str) -> dict[str, Any]:
    return {"type": "string", "title": title, "writeOnly": True}


def _option(title: str, const: str, properties: dict[str, Any], required: list[str]) -> dict:
    return {
        "title": title,
        "type": "object",
        "properties": {"type": {"type": "string", "const": const, "default": const}, **properties},
        "required": ["type", *required],
        "additionalProperties": False,
    }


_STRING = {"type": "string"}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "HTTP API",
    "type": "object",
    "additionalProperties": False,
    "required": ["base_url"],
    "properties": {
        "base_url": {
            "type": "string",
            "title": "Base URL",
            "format": "uri",
            "pattern": "^https?://",
        },
        "streams": {
            "type": "array",
            "title": "Resources",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "title": "Name", "minLength": 1},
                    "path": {"type": "string", "title": "Path", "default": ""},
                    "records_path": {
                        "type": "string",
                        "title": "Records path",
                        "description": "Dotted path to the list of records, e.g. data.items",
                    },
                    "params": {
                        "type": "object",
                        "title": "Query parameters",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                    "primary_key": {"type": "array", "title": "Primary key", "items": _STRING},
                    "cursor_field": {"type": "string", "title": "Cursor field"},
                },
            },
        },
        "auth": {
            "title": "Authentication",
            "default": {"type": "none"},
            "oneOf": [
                _option("None", "none", {}, []),
                _option(
                    "Basic",
                    "basic",
                    {
                        "username": {"type": "string", "title": "Username"},
                        "password": _secret("Password"),
                    },
                    ["username", "password"],
                ),
                _option("Bearer token", "bearer", {"token": _secret("Token")}, ["token"]),
                _option(
                    "API key",
                    "api_key",
                    {
                        "name": {"type": "string", "title": "Header or parameter name"},
                        "value": _secret("Key"),
                        "in": {"type": "string", "enum": ["header", "query"], "default": "header"},
                    },
                    ["name", "value"],
                ),
            ],
        },
        "pagination": {
            "title": "Pagination",
            "default": {"type": "none"},
            "oneOf": [
                _option("None", "none", {}, []),
                _option(
                    "Page number",
                    "page",
                    {
                        "page_param": {"type": "string", "default": "page"},
                        "size_param": {"type": "string", "default": "per_page"},
                        "page_size": {"type": "integer", "minimum": 1, "default": 100},
                        "start_page": {"type": "integer", "default": 1},
                    },
                    [],
                ),
                _option(
                    "Offset",
                    "offset",
                    {
                        "offset_param": {"type": "string", "default": "offset"},
                        "limit_param": {"type": "string", "default": "limit"},
                        "limit": {"type": "integer", "minimum": 1, "default": 100},
                    },
                    [],
                ),
                _option(
                    "Cursor",
                    "cursor",
                    {
                        "cursor_param": {"type": "string", "default": "cursor"},
                        "next_cursor_path": {
                            "type": "string",
                            "description": "Dotted path to the next cursor in the response",
                        },
                    },
                    ["next_cursor_path"],
                ),
                _option("Link header (rel=next)", "link_header", {}, []),
            ],
        },
        "headers": {
            "type": "object",
            "title": "Extra headers",
            "additionalProperties": _STRING,
        },
        "timeout_s": {
            "type": "number",
            "title": "Request timeout (s)",
            "exclusiveMinimum": 0,
            "default": 30,
        },
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
        "max_retry_wait_s": {"type": "number", "minimum": 0, "default": 60},
        "max_pages": {"type": "integer", "minimum": 1, "default": 1000},
        "verify_tls": {"type": "boolean", "default": True},
    },
}

UI_SCHEMA: dict[str, Any] = {
    "ui:order": [
        "base_url",
        "auth",
        "streams",
        "pagination",
        "headers",
        "timeout_s",
        "max_retries",
        "max_retry_wait_s",
        "max_pages",
        "verify_tls",
    ],
    "auth": {
        "password": {"ui:widget": "password"},
        "token": {"ui:widget": "password"},
        "value": {"ui:widget": "password"},
    },
    "timeout_s": {"ui:group": "advanced"},
    "max_retries": {"ui:group": "advanced"},
    "max_retry_wait_s": {"ui:group": "advanced"},
    "max_pages": {"ui:group": "advanced"},
    "verify_tls": {"ui:group": "advanced"},
}

SECRET_FIELDS = ["/auth/password", "/auth/token", "/auth/value"]

# ---- transport: every connection dialled through the SSRF guard -------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Dials the address the guard returns; TLS still uses the URL's host name (SNI)."""

    def __init__(self, ctx: ConnectorContext):
        self._ctx = ctx
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(  # the signature is httpcore's
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self._ctx.resolve(host, port)
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise ConnectorError(CheckCategory.PERMISSION, "Unix sockets are not allowed.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, ctx: ConnectorContext, verify: bool = True):
        super().__init__(verify=verify, trust_env=False)
        # httpx offers no public hook for the network backend; swap the pool it built for
        # an identical one that dials through the guard (exception mapping stays httpx's).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=GuardedBackend(ctx),
        )


class OriginBoundAuth(httpx.Auth):
    """Adds the configured credentials, but only to requests for the base URL's origin."""

    def __init__(self, auth: NoAuth | BasicAuth | BearerAuth | ApiKeyAuth, base_url: str):
        self._auth = auth
        self._origin = _origin(httpx.URL(base_url))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) == self._origin:
            _apply_auth(self._auth, request)
        yield request


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _apply_auth(auth: NoAuth | BasicAuth | BearerAuth | ApiKeyAuth, request: httpx.Request) -> None:
    if isinstance(auth, BasicAuth):
        pair = f"{auth.username}:{auth.password}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif isinstance(auth, BearerAuth):
        request.headers["Authorization"] = f"Bearer {auth.token}"
    elif isinstance(auth, ApiKeyAuth) and auth.in_ == "header":
        request.headers[auth.name] = auth.value
    elif isinstance(auth, ApiKeyAuth):
        request.url = request.url.copy_set_param(auth.name, auth.value)


@asynccontextmanager
async def open_client(
    cfg: HttpApiConfig, ctx: ConnectorContext
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=GuardedTransport(ctx, verify=cfg.verify_tls),
        timeout=httpx.Timeout(cfg.timeout_s),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **cfg.headers},
        auth=OriginBoundAuth(cfg.auth, cfg.base_url),
        follow_redirects=False,
        trust_env=False,
    ) as client:
        yield client


# ---- requests: redirects, retries, errors -----------------------------------------------


class Fetcher:
    """GETs JSON with manual redirects and rate-limit aware retries."""

    def __init__(self, client: httpx.AsyncClient, cfg: HttpApiConfig):
        self.client = client
        self.cfg = cfg

    async def get(
        self, url: str | httpx.URL, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        deadline = time.monotonic() + self.cfg.max_retry_wait_s
        attempt = 0
        while True:
            response = await self._get_following_redirects(httpx.URL(url), params)
            delay = self._retry_delay(response, attempt, deadline)
            if delay is None:
                _raise_for_status(response)
                return response
            await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    def _retry_delay(self, response: httpx.Response, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before retrying, or None to stop (success, or out of budget)."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.cfg.max_retries:
            return None
        delay = _retry_after(response) if response.status_code in (429, 503) else None
        if delay is None:
            delay = BACKOFF_BASE_S * 2**attempt
        if time.monotonic() + delay > deadline:
            return None  # the server asks for longer than we may wait: report the 429/503
        return delay

    async def _get_following_redirects(
        self, url: httpx.URL, params: dict[str, Any] | None
    ) -> httpx.Response:
        request = self.client.build_request("GET", url, params=params)
        for _ in range(MAX_REDIRECTS + 1):
            response = await _send(self.client, request)
            if not response.has_redirect_location:
                return response
            await response.aclose()
            target = request.url.join(response.headers["Location"])
            if target.scheme not in ("http", "https"):
                raise ConnectorError(
                    CheckCategory.PERMISSION,
                    f"Refused redirect to {target.scheme}: URL.",
                    "/base_url",
                )
            # The next hop opens a connection to its own origin, through the guard again.
            request = self.client.build_request("GET", target)
        raise ConnectorError(
            CheckCategory.CONNECT, f"More than {MAX_REDIRECTS} redirects.", "/base_url"
        )


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        return await client.send(request)
    except httpx.TimeoutException as exc:
        raise ConnectorError(
            CheckCategory.TIMEOUT, f"Request to {request.url.host} timed out."
        ) from exc
    except httpx.TransportError as exc:
        raise _transport_error(exc, request.url) from exc


def _transport_error(exc: httpx.TransportError, url: httpx.URL) -> ConnectorError:
    """Tell TLS and DNS failures apart from plain connection failures."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return ConnectorError(
                CheckCategory.TLS, f"TLS failed with {url.host}: {cause}", "/base_url"
            )
        if isinstance(cause, socket.gaierror):
            return ConnectorError(CheckCategory.DNS, f"Could not resolve {url.host}.", "/base_url")
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "SSL" in text or "TLS" in text or "certificate" in text:
        return ConnectorError(CheckCategory.TLS, f"TLS failed with {url.host}: {text}", "/base_url")
    return ConnectorError(
        CheckCategory.CONNECT,
        f"Could not connect to {url.host}:{url.port or ''}: {text}",
        "/base_url",
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    where = f"{response.request.method} {response.request.url.copy_with(query=None)}"
    categories = {
        401: (CheckCategory.AUTH, "/auth", "the credentials were refused"),
        403: (CheckCategory.PERMISSION, "/auth", "access is forbidden"),
        404: (CheckCategory.NOT_FOUND, "/streams", "not found"),
        429: (CheckCategory.CONNECT, None, "rate limited, retries exhausted"),
    }
    default = (
        (CheckCategory.CONNECT, None, "server error")
        if status >= 500
        else (CheckCategory.INVALID_CONFIG, None, "request rejected")
    )
    category, field, text = categories.get(status, default)
    raise ConnectorError(category, f"{where} answered {status}: {text}.", field)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG, f"{response.request.url} did not return JSON."
        ) from exc


# ---- pages and records ------------------------------------------------------------------


def dig(document: Any, dotted_path: str | None) -> Any:
    """Follow "a.b.0.c" into nested objects and lists; None when a step is missing."""
    if not dotted_path:
        return document
    for step in dotted_path.split("."):
        if isinstance(document, dict):
            document = document.get(step)
        elif isinstance(document, list) and step.isdigit() and int(step) < len(document):
            document = document[int(step)]
        else:
            return None
    return document


def extract_records(document: Any, stream: StreamConfig) -> list[dict[str, Any]]:
    found = dig(document, stream.records_path)
    if found is None:
        return []
    if isinstance(found, dict):
        return [found]
    if isinstance(found, list):
        return [r if isinstance(r, dict) else {"value": r} for r in found]
    raise ConnectorError(
        CheckCategory.INVALID_CONFIG,
        f"records_path {stream.records_path!r} of stream {stream.name!r} is not a list.",
        "/streams",
    )


Records = AsyncIterator[list[dict[str, Any]]]


def stream_url(cfg: HttpApiConfig, stream: StreamConfig) -> str:
    if not stream.path:
        return cfg.base_url
    return cfg.base_url.rstrip("/") + "/" + stream.path.lstrip("/")


async def iterate_pages(
    fetcher: Fetcher, cfg: HttpApiConfig, stream: StreamConfig, max_pages: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """The records of each page, following the configured pagination."""
    pages = _PAGINATORS[cfg.pagination.type](
        fetcher, cfg.pagination, stream_url(cfg, stream), stream
    )
    limit = min(max_pages or cfg.max_pages, cfg.max_pages)
    async with aclosing(pages):
        count = 0
        async for records in pages:
            yield records
            count += 1
            if count >= limit:
                return


async def first_page(fetcher: Fetcher, cfg: HttpApiConfig, stream: StreamConfig) -> list[dict]:
    """The records of the first non-empty page (a sample for check and discover)."""
    async with aclosing(iterate_pages(fetcher, cfg, stream, max_pages=1)) as pages:
        async for records in pages:
            return records
    return []


async def _no_pages(
    fetcher: Fetcher, pagination: NoPagination, url: str, stream: StreamConfig
) -> Records:
    yield extract_records(_json(await fetcher.get(url, dict(stream.params))), stream)


async def _page_numbers(
    fetcher: Fetcher, pagination: PagePagination, url: str, stream: StreamConfig
) -> Records:
    page = pagination.start_page
    while True:
        params = {**stream.params, pagination.page_param: page}
        if pagination.size_param:
            params[pagination.size_param] = pagination.page_size
        records = extract_records(_json(await fetcher.get(url, params)), stream)
        if records:
            yield records
        # Without a size parameter we cannot know the page size: stop at the first empty page.
        if not records or (pagination.size_param and len(records) < pagination.page_size):
            return
        page += 1


async def _offsets(
    fetcher: Fetcher, pagination: OffsetPagination, url: str, stream: StreamConfig
) -> Records:
    offset = 0
    while True:
        params = {
            **stream.params,
            pagination.offset_param: offset,
            pagination.limit_param: pagination.limit,
        }
        records = extract_records(_json(await fetcher.get(url, params)), stream)
        if records:
            yield records
        if len(records) < pagination.limit:
            return
        offset += len(records)


async def _cursors(
    fetcher: Fetcher, pagination: CursorPagination, url: str, stream: StreamConfig
) -> Records:
    cursor: Any = None
    seen: set[str] = set()
    while True:
        params = dict(stream.params)
        if cursor is not None:
            params[pagination.cursor_param] = cursor
        document = _json(await fetcher.get(url, params))
        records = extract_records(document, stream)
        if records:
            yield records
        cursor = dig(document, pagination.next_cursor_path)
        if cursor in (None, "") or str(cursor) in seen:  # a repeated cursor would loop forever
            return
        seen.add(str(cursor))


async def _link_header(
    fetcher: Fetcher, pagination: LinkHeaderPagination, url: str, stream: StreamConfig
) -> Records:
    params: dict[str, Any] | None = dict(stream.params)
    next_url: httpx.URL | None = httpx.URL(url)
    while next_url is not None:
        response = await fetcher.get(next_url, params)
        records = extract_records(_json(response), stream)
        if records:
            yield records
        link = response.links.get("next", {}).get("url")
        next_url = response.url.join(link) if link else None
        params = None  # the next link carries its own query string


_PAGINATORS: dict[str, Callable[..., Records]] = {
    "none": _no_pages,
    "page": _page_numbers,
    "offset": _offsets,
    "cursor": _cursors,
    "link_header": _link_header,
}


def _leaves(
    record: dict[str, Any], depth: int = FLATTEN_DEPTH, prefix: str = ""
) -> Iterator[tuple[str, Any, bool]]:
    """(dotted name, value, kept as JSON?) for each column a record yields."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth > 1:
            yield from _leaves(value, depth - 1, f"{name}.")
        elif isinstance(value, (list, dict)):
            yield name, json.dumps(value, separators=(",", ":"), ensure_ascii=False), True
        else:
            yield name, value, False


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """Nested objects become dotted keys; arrays (and objects nested too deep) JSON text."""
    return {name: value for name, value, _ in _leaves(record)}


def json_columns(records: list[dict[str, Any]]) -> set[str]:
    """Dotted names of the columns `flatten_record` fills with JSON text."""
    return {name for record in records for name, _, is_json in _leaves(record) if is_json}


_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
_ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"


def records_to_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    """A page of JSON records as a frame (CPU work; small pages, so done inline)."""
    frame = pl.DataFrame(
        [flatten_record(r) for r in records], infer_schema_length=None, strict=False
    )
    return _parse_temporal(frame)


def _parse_temporal(frame: pl.DataFrame) -> pl.DataFrame:
    """Turn string columns whose every value is an ISO date/timestamp into date/datetime."""
    for name, dtype in frame.schema.items():
        if dtype != pl.String:
            continue
        column = frame.get_column(name).drop_nulls()
        if column.is_empty():
            continue
        if column.str.contains(_ISO_DATE).all():
            frame = frame.with_columns(pl.col(name).str.to_date("%Y-%m-%d", strict=False))
        elif column.str.contains(_ISO_DATETIME).all():
            parsed = frame.get_column(name).str.to_datetime(strict=False, time_zone="UTC")
            if parsed.null_count() == frame.get_column(name).null_count():
                frame = frame.with_columns(parsed)
    return frame


def stream_schema(stream: StreamConfig, records: list[dict[str, Any]]) -> StreamSchema:
    frame = records_to_frame(records) if records else pl.DataFrame()
    fields = fields_from_schema(frame.schema, stream.primary_key)
    arrays = json_columns(records)
    for field in fields:
        if field.name in arrays:
            field.type = LogicalType.JSON
            field.native_type = "json"
    return StreamSchema(name=stream.name, fields=fields, kind="resource")


# ---- the connector ----------------------------------------------------------------------


class HttpApiConnector(Connector):
    type = "http_api"

    def spec(self) -> ConnectorSpec:
        return ConnectorSpec(
            type=self.type,
            title="HTTP API",
            category="api",
            direction="source",
            config_schema=CONFIG_SCHEMA,
            ui_schema=UI_SCHEMA,
            docs=__doc__ or "",
            secret_fields=SECRET_FIELDS,
        )

    async def check(self, config: dict[str, Any], ctx: ConnectorContext) -> CheckResult:
        started = time.perf_counter()
        try:
            cfg = parse_config(HttpApiConfig, config)
            async with open_client(cfg, ctx) as client:
                fetcher = Fetcher(client, cfg)
                if cfg.streams:
                    await first_page(fetcher, cfg, cfg.streams[0])
                else:
                    await fetcher.get(cfg.base_url)
        except ConnectorError as exc:
            return _check_result(started, exc)
        return _check_result(started, None)

    async def discover(self, config: dict[str, Any], ctx: ConnectorContext) -> list[StreamSchema]:
        cfg = parse_config(HttpApiConfig, config)
        schemas = []
        async with open_client(cfg, ctx) as client:
            fetcher = Fetcher(client, cfg)
            for stream in cfg.streams:
                schemas.append(stream_schema(stream, await first_page(fetcher, cfg, stream)))
        return schemas

    async def read(
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.DataFrame]:
        cfg = parse_config(HttpApiConfig, config)
        stream = cfg.stream(request.stream)
        request = _with_stream_cursor(request, stream)
        remaining = request.limit
        async with open_client(cfg, ctx) as client:
            async for records in iterate_pages(Fetcher(client, cfg), cfg, stream):
                frame = incremental_filter(records_to_frame(records).lazy(), request).collect()
                if remaining is not None:
                    frame = frame.head(remaining)
                    remaining -= frame.height
                if frame.height:
                    yield frame
                if remaining is not None and remaining <= 0:
                    return


def _with_stream_cursor(request: ReadRequest, stream: StreamConfig) -> ReadRequest:
    """Incremental reads default to the stream's configured cursor field."""
    if request.sync_mode == "incremental" and not request.cursor_field and stream.cursor_field:
        return request.model_copy(update={"cursor_field": stream.cursor_field})
    return request


def _check_result(started: float, error: ConnectorError | None) -> CheckResult:
    return CheckResult(
        ok=error is None,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        error=error.to_check_error() if error else None,
    )
