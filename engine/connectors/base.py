"""The connector contract, shaped like Airbyte's protocol: spec, check, discover, read, write.

Connectors know nothing of HTTP, Sanic, actors or storage. Everything a connector needs
from the platform (where DATA_DIR is, the SSRF policy, how to resolve uploaded files) comes
in through a `ConnectorContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel

from engine.schema import StreamSchema


class CheckCategory(StrEnum):
    DNS = "dns"
    CONNECT = "connect"
    TIMEOUT = "timeout"
    TLS = "tls"
    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    INVALID_CONFIG = "invalid_config"


class CheckError(BaseModel):
    category: CheckCategory
    message: str
    field: str | None = None  # JSON pointer into the config, when known


class CheckResult(BaseModel):
    ok: bool
    latency_ms: float
    error: CheckError | None = None


class ConnectorSpec(BaseModel):
    type: str
    title: str
    category: Literal["database", "api", "file"]
    direction: Literal["source", "destination", "both"]
    config_schema: dict[str, Any]
    ui_schema: dict[str, Any]
    docs: str
    secret_fields: list[str] = []  # JSON pointers of writeOnly secrets in config_schema


class ReadRequest(BaseModel):
    stream: str
    sync_mode: Literal["full_refresh", "incremental"] = "full_refresh"
    cursor_field: str | None = None
    state: dict[str, Any] | None = None  # e.g. {"cursor": <last value>}
    limit: int | None = None
    batch_size: int = 50_000


class WriteRequest(BaseModel):
    stream: str  # destination table / file name / dataset name
    mode: Literal["append", "replace", "upsert"] = "append"
    primary_key: list[str] = []


class WriteResult(BaseModel):
    rows_written: int
    stream: str
    version: int | None = None  # managed datasets: the version created


@dataclass
class ConnectorContext:
    data_dir: Path
    # Resolves a host once and returns the address to connect to; raises
    # engine.connectors.errors.ConnectorError (dns / permission) for a refused address.
    network_guard: Callable[[str, int], Awaitable[str]] | None = None
    # Maps an uploaded file id to a path on disk (the file service, once it exists).
    resolve_file: Callable[[str], Path] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def resolve(self, host: str, port: int) -> str:
        """The address a connector must connect to (SSRF-checked when a guard is set)."""
        if self.network_guard is None:
            return host
        return await self.network_guard(host, port)


class Writer(ABC):
    """Staged write: batches go to staging, `commit` publishes atomically, `abort` discards.

    A failed or cancelled run calls `abort`, which must leave the destination exactly as it was.
    """

    @abstractmethod
    async def write_batch(self, frame: pl.DataFrame) -> None: ...

    @abstractmethod
    async def commit(self) -> WriteResult: ...

    @abstractmethod
    async def abort(self) -> None: ...


class Connector(ABC):
    type: str

    @abstractmethod
    def spec(self) -> ConnectorSpec: ...

    @abstractmethod
    async def check(self, config: dict[str, Any], ctx: ConnectorContext) -> CheckResult: ...

    @abstractmethod
    async def discover(
        self, config: dict[str, Any], ctx: ConnectorContext
    ) -> list[StreamSchema]: ...

    @abstractmethod
    def read(
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.DataFrame]:
        """Yield Polars frames; incremental reads yield only rows past `state["cursor"]`."""

    async def open_writer(
        self, config: dict[str, Any], request: WriteRequest, ctx: ConnectorContext
    ) -> Writer:
        raise NotImplementedError(f"{self.type} is not a destination")
