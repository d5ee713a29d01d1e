"""HTTP API connector against a real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest
from jsonschema import Draft202012Validator

from engine.connectors.base import CheckCategory, ConnectorContext, ReadRequest
from engine.connectors.errors import ConnectorError
from engine.connectors.http_api import HttpApiConnector
from engine.connectors.network import NetworkPolicy, make_network_guard

ITEMS = [
    {
        "id": i,
        "name": f"item-{i}",
        "price": i * 1.5,
        "updated_at": f"2024-01-{i:02d}T10:00:00Z",
        "owner": {"name": f"owner-{i}", "address": {"city": "Oslo"}},
        "tags": ["a", "b"][: i % 3],
    }
    for i in range(1, 8)
]
TOKEN = "s3cret-token"


class ApiHandler(BaseHTTPRequestHandler):
    """Routes by path; `hits` counts requests per (path, key) so retry tests stay independent."""

    hits: dict[str, int] = {}
    seen_auth: dict[str, str | None] = {}

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        route = getattr(self, "route_" + url.path.strip("/").replace("-", "_"), None)
        if route is None:
            return self.reply(404, {"error": "not found"})
        route(query)

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def base(self) -> str:
        return f"http://{self.headers['Host']}"

    # pagination styles ------------------------------------------------------------------
    def route_plain(self, query):
        self.reply(200, ITEMS)

    def route_paged(self, query):
        page, size = int(query.get("page", 1)), int(query.get("per_page", 3))
        self.reply(200, {"data": {"items": ITEMS[(page - 1) * size : page * size]}})

    def route_offset(self, query):
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 3))
        self.reply(200, {"results": ITEMS[offset : offset + limit]})

    def route_cursor(self, query):
        start = int(query.get("after", 0))
        chunk = ITEMS[start : start + 3]
        next_cursor = str(start + 3) if start + 3 < len(ITEMS) else None
        self.reply(200, {"data": chunk, "meta": {"next": next_cursor}})

    def route_linked(self, query):
        page = int(query.get("page", 1))
        headers = {}
        if page * 3 < len(ITEMS):
            headers["Link"] = (
                f'</linked?page={page + 1}>; rel="next", </linked?page=1>; rel="first"'
            )
        self.reply(200, ITEMS[(page - 1) * 3 : page * 3], headers)

    # auth -------------------------------------------------------------------------------
    def route_basic(self, query):
        expected = "Basic " + base64.b64encode(b"ada:lovelace").decode()
        ok = self.headers.get("Authorization") == expected
        self.reply(200 if ok else 401, ITEMS[:2] if ok else {"error": "who are you"})

    def route_bearer(self, query):
        ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        self.reply(200 if ok else 401, ITEMS[:2] if ok else {"error": "bad token"})

    def route_keyed(self, query):
        ok = self.headers.get("X-Api-Key") == TOKEN or query.get("api_key") == TOKEN
        self.reply(200 if ok else 403, ITEMS[:2] if ok else {"error": "forbidden"})

    def route_forbidden(self, query):
        self.reply(403, {"error": "forbidden"})

    def route_echo(self, query):
        ApiHandler.seen_auth[query.get("key", "")] = self.headers.get("Authorization")
        self.reply(200, [{"host": self.headers["Host"], "auth": self.headers.get("Authorization")}])

    # retries, redirects, timeouts -------------------------------------------------------
    def route_flaky(self, query):
        key = "flaky:" + query.get("key", "")
        ApiHandler.hits[key] = ApiHandler.hits.get(key, 0) + 1
        if ApiHandler.hits[key] == 1:
            return self.reply(429, {"error": "slow down"}, {"Retry-After": "1"})
        self.reply(200, ITEMS[:1])

    def route_limited(self, query):
        self.reply(429, {"error": "come back tomorrow"}, {"Retry-After": "3600"})

    def route_to_metadata(self, query):
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_to_plain(self, query):
        self.send_response(301)
        self.send_header("Location", "/plain")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_to_other_origin(self, query):
        port = self.server.server_address[1]
        self.send_response(302)
        self.send_header("Location", f"http://localhost:{port}/echo?key={query.get('key', '')}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_loop(self, query):
        self.send_response(302)
        self.send_header("Location", "/loop")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_slow(self, query):
        time.sleep(2)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.reply(200, ITEMS)

    def route_not_json(self, query):
        data = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ApiHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def hctx(tmp_path: Path) -> ConnectorContext:
    """Embedded-mode policy: loopback allowed (the test server), the rest guarded."""
    return ConnectorContext(
        data_dir=tmp_path, network_guard=make_network_guard(NetworkPolicy(allow_loopback=True))
    )


@pytest.fixture
def connector() -> HttpApiConnector:
    return HttpApiConnector()


def config(base_url: str, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"base_url": base_url, "streams": [{"name": "items", "path": "/plain"}]}
    cfg.update(overrides)
    return cfg


def stream(path: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "items", "path": path, **extra}]


async def read_all(connector, cfg, ctx, **request: Any) -> pl.DataFrame:
    frames = [f async for f in connector.read(cfg, ReadRequest(stream="items", **request), ctx)]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


async def failed_check(connector, cfg, ctx) -> CheckCategory:
    result = await connector.check(cfg, ctx)
    assert not result.ok
    return result.error.category


def test_spec_validates_and_marks_secrets(connector, api_url) -> None:
    spec = connector.spec()
    Draft202012Validator.check_schema(spec.config_schema)
    validator = Draft202012Validator(spec.config_schema)
    full = config(
        api_url,
        auth={"type": "api_key", "name": "X-Api-Key", "value": "k", "in": "query"},
        pagination={"type": "cursor", "cursor_param": "after", "next_cursor_path": "meta.next"},
    )
    validator.validate(full)
    assert list(validator.iter_errors(config(api_url, auth={"type": "bearer"})))  # token missing
    assert list(validator.iter_errors(config(api_url, pagination={"type": "sideways"})))
    assert spec.direction == "source" and spec.category == "api"
    assert spec.secret_fields == ["/auth/password", "/auth/token", "/auth/value"]
    secrets = [
        option["properties"][name]
        for option in spec.config_schema["properties"]["auth"]["oneOf"]
        for name in ("password", "token", "value")
        if name in option["properties"]
    ]
    assert len(secrets) == 3 and all(s["writeOnly"] for s in secrets)


async def test_check_discover_read_with_nested_records(connector, api_url, hctx) -> None:
    cfg = config(api_url, streams=stream("/plain", primary_key=["id"], cursor_field="updated_at"))
    assert (await connector.check(cfg, hctx)).ok
    [schema] = await connector.discover(cfg, hctx)
    types = {f.name: f.type.value for f in schema.fields}
    assert types == {
        "id": "integer",
        "name": "string",
        "price": "number",
        "updated_at": "datetime",
        "owner.name": "string",
        "owner.address.city": "string",
        "tags": "json",
    }
    assert [f.name for f in schema.fields if f.primary_key] == ["id"]
    frame = await read_all(connector, cfg, hctx)
    assert frame.height == 7
    assert frame.get_column("owner.address.city").unique().to_list() == ["Oslo"]
    assert json.loads(frame.filter(pl.col("id") == 2).get_column("tags").item()) == ["a", "b"]


@pytest.mark.parametrize(
    ("path", "records_path", "pagination"),
    [
        ("/paged", "data.items", {"type": "page", "page_size": 3}),
        (
            "/paged",
            "data.items",
            {"type": "page", "page_size": 3, "size_param": "per_page", "start_page": 1},
        ),
        ("/offset", "results", {"type": "offset", "limit": 3}),
        (
            "/cursor",
            "data",
            {"type": "cursor", "cursor_param": "after", "next_cursor_path": "meta.next"},
        ),
        ("/linked", None, {"type": "link_header"}),
    ],
)
async def test_every_pagination_style_reads_all_pages(
    connector, api_url, hctx, path, records_path, pagination
) -> None:
    extra = {"records_path": records_path} if records_path else {}
    cfg = config(api_url, streams=stream(path, **extra), pagination=pagination)
    frames = [f async for f in connector.read(cfg, ReadRequest(stream="items"), hctx)]
    assert [f.height for f in frames] == [3, 3, 1]  # one frame per page
    assert pl.concat(frames, how="diagonal_relaxed").get_column("id").to_list() == list(range(1, 8))


async def test_without_pagination_only_the_first_page_is_read(connector, api_url, hctx) -> None:
    cfg = config(api_url, streams=stream("/paged", records_path="data.items"))
    assert (await read_all(connector, cfg, hctx)).height == 3


async def test_incremental_and_limit(connector, api_url, hctx) -> None:
    cfg = config(
        api_url,
        streams=stream("/offset", records_path="results", cursor_field="updated_at"),
        pagination={"type": "offset", "limit": 3},
    )
    newer = await read_all(
        connector, cfg, hctx, sync_mode="incremental", state={"cursor": "2024-01-05T10:00:00Z"}
    )
    assert newer.get_column("id").to_list() == [6, 7]
    by_id = await read_all(
        connector, cfg, hctx, sync_mode="incremental", cursor_field="id", state={"cursor": 5}
    )
    assert by_id.get_column("id").to_list() == [6, 7]
    limited = await read_all(connector, cfg, hctx, limit=4)
    assert limited.get_column("id").to_list() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/basic", {"type": "basic", "username": "ada", "password": "lovelace"}),
        ("/bearer", {"type": "bearer", "token": TOKEN}),
        ("/keyed", {"type": "api_key", "name": "X-Api-Key", "value": TOKEN}),
        ("/keyed", {"type": "api_key", "name": "api_key", "value": TOKEN, "in": "query"}),
    ],
)
async def test_auth_methods(connector, api_url, hctx, path, auth) -> None:
    good = config(api_url, streams=stream(path), auth=auth)
    assert (await connector.check(good, hctx)).ok
    assert (await read_all(connector, good, hctx)).height == 2
    secret_key = {"basic": "password", "bearer": "token", "api_key": "value"}[auth["type"]]
    bad = config(api_url, streams=stream(path), auth={**auth, secret_key: "wrong"})
    expected = CheckCategory.PERMISSION if path == "/keyed" else CheckCategory.AUTH
    assert await failed_check(connector, bad, hctx) == expected


async def test_check_without_streams_gets_the_base_url(connector, api_url, hctx) -> None:
    assert (await connector.check({"base_url": f"{api_url}/plain"}, hctx)).ok
    missing = await connector.check({"base_url": f"{api_url}/nothing-here"}, hctx)
    assert missing.error.category == CheckCategory.NOT_FOUND


async def test_missing_credentials_and_status_categories(connector, api_url, hctx) -> None:
    assert (
        await failed_check(connector, config(api_url, streams=stream("/bearer")), hctx)
        == CheckCategory.AUTH
    )
    assert (
        await failed_check(connector, config(api_url, streams=stream("/forbidden")), hctx)
        == CheckCategory.PERMISSION
    )
    assert (
        await failed_check(connector, config(api_url, streams=stream("/nowhere")), hctx)
        == CheckCategory.NOT_FOUND
    )
    assert (
        await failed_check(connector, config(api_url, streams=stream("/not-json")), hctx)
        == CheckCategory.INVALID_CONFIG
    )
    assert (
        await failed_check(connector, {"base_url": "ftp://x"}, hctx) == CheckCategory.INVALID_CONFIG
    )
    result = await connector.check(config(api_url, auth={"type": "oauth"}), hctx)
    assert result.error.category == CheckCategory.INVALID_CONFIG and result.error.field.startswith(
        "/auth"
    )


async def test_429_with_retry_after_is_retried(connector, api_url, hctx) -> None:
    cfg = config(api_url, streams=stream("/flaky", params={"key": "read"}))
    started = time.monotonic()
    frame = await read_all(connector, cfg, hctx)
    assert frame.height == 1
    assert time.monotonic() - started >= 0.9  # it waited for Retry-After
    assert ApiHandler.hits["flaky:read"] == 2


async def test_retry_after_beyond_the_budget_fails_fast(connector, api_url, hctx) -> None:
    cfg = config(api_url, streams=stream("/limited"), max_retry_wait_s=5)
    started = time.monotonic()
    result = await connector.check(cfg, hctx)
    assert time.monotonic() - started < 2
    assert result.error.category == CheckCategory.CONNECT
    assert "429" in result.error.message


async def test_redirect_to_link_local_is_refused(connector, api_url, hctx) -> None:
    result = await connector.check(config(api_url, streams=stream("/to-metadata")), hctx)
    assert result.error.category == CheckCategory.PERMISSION
    assert "169.254.169.254" in result.error.message


async def test_same_origin_redirect_is_followed(connector, api_url, hctx) -> None:
    assert (
        await read_all(connector, config(api_url, streams=stream("/to-plain")), hctx)
    ).height == 7


async def test_redirect_loop_stops(connector, api_url, hctx) -> None:
    assert (
        await failed_check(connector, config(api_url, streams=stream("/loop")), hctx)
        == CheckCategory.CONNECT
    )


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    connector, api_url, hctx
) -> None:
    cfg = config(
        api_url,
        streams=stream("/to-other-origin", params={"key": "leak"}),
        auth={"type": "bearer", "token": TOKEN},
    )
    frame = await read_all(connector, cfg, hctx)
    port = api_url.rsplit(":", 1)[1]
    assert frame.get_column("host").item() == f"localhost:{port}"  # Host header keeps the name
    assert ApiHandler.seen_auth["leak"] is None


async def test_host_header_is_kept_when_dialling_the_guarded_address(
    connector, api_url, hctx
) -> None:
    port = api_url.rsplit(":", 1)[1]
    cfg = config(
        f"http://localhost:{port}", streams=stream("/echo"), auth={"type": "bearer", "token": "t"}
    )
    frame = await read_all(connector, cfg, hctx)
    assert frame.row(0) == (f"localhost:{port}", "Bearer t")


async def test_slow_endpoint_times_out(connector, api_url, hctx) -> None:
    cfg = config(api_url, streams=stream("/slow"), timeout_s=0.3)
    assert await failed_check(connector, cfg, hctx) == CheckCategory.TIMEOUT
    with pytest.raises(ConnectorError) as caught:
        await read_all(connector, cfg, hctx)
    assert caught.value.category == CheckCategory.TIMEOUT


async def test_guard_refuses_loopback_in_production(connector, api_url, tmp_path) -> None:
    strict = ConnectorContext(data_dir=tmp_path, network_guard=make_network_guard(NetworkPolicy()))
    result = await connector.check(config(api_url), strict)
    assert result.error.category == CheckCategory.PERMISSION
    assert "loopback" in result.error.message


async def test_network_failure_categories(connector, api_url, hctx, tmp_path) -> None:
    assert (
        await failed_check(connector, config("http://no-such-host.invalid"), hctx)
        == CheckCategory.DNS
    )
    unguarded = ConnectorContext(data_dir=tmp_path)
    assert (
        await failed_check(connector, config("http://no-such-host.invalid"), unguarded)
        == CheckCategory.DNS
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    assert (
        await failed_check(connector, config(f"http://127.0.0.1:{closed_port}"), hctx)
        == CheckCategory.CONNECT
    )
    # TLS spoken to a plain-HTTP server fails the handshake.
    https = api_url.replace("http://", "https://")
    assert await failed_check(connector, config(https), hctx) == CheckCategory.TLS


async def test_unknown_stream(connector, api_url, hctx) -> None:
    with pytest.raises(ConnectorError) as caught:
        [f async for f in connector.read(config(api_url), ReadRequest(stream="nope"), hctx)]
    assert caught.value.category == CheckCategory.NOT_FOUND


def test_flattening_depth_and_json_columns() -> None:
    from engine.connectors.http_api import flatten_record, json_columns

    record = {"a": {"b": {"c": {"d": 1}}}, "tags": [1, 2], "empty": {}, "n": None}
    assert flatten_record(record) == {"a.b.c": '{"d":1}', "tags": "[1,2]", "empty": "{}", "n": None}
    assert json_columns([record]) == {"a.b.c", "tags", "empty"}
