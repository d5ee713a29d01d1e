"""Typed settings from environment variables and config/*.toml.

Precedence (highest first): environment variables, config/<ENVIRONMENT>.toml,
config/default.toml, the defaults below.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789"
CONFIG_DIR = Path(os.environ.get("CONFIG_DIR", Path(__file__).resolve().parent.parent / "config"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    ENVIRONMENT: Literal["development", "test", "production"] = "development"
    HOST: str = "127.0.0.1"
    PORT: int = Field(8000, ge=1, le=65535)
    DATA_DIR: Path = Path("./data")
    DATABASE_URL: str | None = None  # default: SQLite under DATA_DIR
    REDIS_URL: str | None = None  # set → scaled mode (Redis bus, ARQ jobs)
    SECRET_KEY: str = DEFAULT_SECRET_KEY
    ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = []
    WORKERS: int = Field(1, ge=1, le=64)
    LOG_LEVEL: str = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"
    SMTP_URL: str | None = None
    SMTP_FROM: str = "aggregator@localhost"
    CLAMD_URL: str | None = None

    ACCESS_TOKEN_TTL_SECONDS: int = Field(900, ge=30, le=86400)
    REFRESH_TOKEN_TTL_SECONDS: int = Field(14 * 86400, ge=60)
    JWT_ISSUER: str = "data-aggregator"
    JWT_AUDIENCE: str = "data-aggregator-api"
    ALLOW_SELF_REGISTRATION: bool = False
    LOGIN_RATE_LIMIT: int = Field(10, ge=1)
    LOGIN_RATE_WINDOW_SECONDS: int = Field(60, ge=1)
    MAX_BODY_BYTES: int = Field(1024 * 1024, ge=1024)
    ACCESS_LOG: bool = True
    # Pipelines: rows per batch through the executor; idle actors stop after this long.
    PIPELINE_BATCH_SIZE: int = Field(50_000, ge=100, le=5_000_000)
    # Keep node outputs so a retry resumes from the failed step (extra disk I/O per run).
    PIPELINE_RETRY_CACHE: bool = True
    ACTOR_IDLE_SECONDS: float = Field(300.0, ge=1.0)
    SCHEDULER_INTERVAL_SECONDS: float = Field(5.0, ge=0.5, le=300.0)

    # Background jobs (app/jobs): in-process worker (embedded) or ARQ workers (scaled).
    JOB_QUEUE_NAME: str = Field("arq:queue", min_length=1, max_length=100)
    JOB_CONCURRENCY: int = Field(4, ge=1, le=64)  # jobs run at once per worker process
    JOB_MAX_ATTEMPTS: int = Field(3, ge=1, le=20)
    JOB_TIMEOUT_SECONDS: int = Field(600, ge=1, le=86400)
    JOB_RETRY_BACKOFF_SECONDS: float = Field(5.0, ge=0, le=3600)  # doubled per attempt
    JOB_POLL_SECONDS: float = Field(1.0, gt=0, le=60)  # embedded worker: table poll interval
    # Scaled: how often an ARQ worker re-sends queued rows Redis lost (flush, failover).
    JOB_SWEEP_SECONDS: float = Field(30.0, ge=0.5, le=3600)
    # Embedded mode: false → this process only enqueues; jobs wait in the table for a
    # process that runs them (they are not lost).
    JOB_WORKER_ENABLED: bool = True
    EVENT_RETENTION_DAYS: int = Field(90, ge=1, le=3650)  # maintenance.purge_events default
    # How often the maintenance jobs (purge_events, purge_jobs, purge_notifications) run.
    MAINTENANCE_INTERVAL_SECONDS: int = Field(86400, ge=1, le=30 * 86400)
    JOB_RETENTION_DAYS: int = Field(30, ge=1, le=3650)  # maintenance.purge_jobs default
    # maintenance.purge_notifications default
    NOTIFICATION_RETENTION_DAYS: int = Field(90, ge=1, le=3650)
    # Email notifications: SMTP_URL like smtp://user:pass@host:587?starttls=1 or
    # smtps://host:465; unset → the email channel is off.
    SMTP_TIMEOUT_SECONDS: float = Field(30.0, gt=0, le=300)

    # Real-time (WebSocket hub, outbox relay, live metrics)
    WS_SEND_QUEUE: int = Field(512, ge=1, le=100_000)  # messages queued per socket, then 4008
    WS_MAX_MESSAGE_BYTES: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    WS_RATE_LIMIT: float = Field(20.0, gt=0)  # client messages per second per socket
    WS_RATE_BURST: int = Field(40, ge=1)
    WS_MAX_TOPICS: int = Field(200, ge=1, le=10_000)
    WS_PING_INTERVAL_SECONDS: float = Field(20.0, gt=0)
    WS_PING_TIMEOUT_SECONDS: float = Field(20.0, gt=0)
    WS_RECORD_FLUSH_SECONDS: float = Field(1.0, gt=0)  # websocket_connections batched writes
    WS_LAST_PING_SECONDS: float = Field(30.0, gt=0)  # last_ping refresh; 3x = stale row
    OUTBOX_RELAY_INTERVAL_SECONDS: float = Field(10.0, gt=0)
    OUTBOX_RELAY_GRACE_SECONDS: float = Field(5.0, ge=0)  # younger rows may be mid-publish
    METRICS_INTERVAL_MS: int = Field(2000, ge=250)  # default interval of metrics:* topics
    # Connectors: the SSRF policy (app/connectors/context.py) and connection-test limits.
    # Networks are comma-separated CIDRs; admins add more through /api/v1/settings/network.
    CONNECTOR_ALLOWED_NETWORKS: Annotated[list[str], NoDecode] = []
    CONNECTOR_DENIED_NETWORKS: Annotated[list[str], NoDecode] = []
    # Unset: loopback is reachable in embedded mode and outside production.
    CONNECTOR_ALLOW_LOOPBACK: bool | None = None
    CONNECTOR_TEST_TIMEOUT_SECONDS: float = Field(10.0, gt=0, le=120)
    CONNECTOR_DISCOVER_TIMEOUT_SECONDS: float = Field(30.0, gt=0, le=600)
    BENCH_HOOKS: bool = False  # POST /api/v1/bench/publish for bench/ws.py; never in production

    @field_validator("ALLOWED_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("CONNECTOR_ALLOWED_NETWORKS", "CONNECTOR_DENIED_NETWORKS", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [n.strip() for n in value.split(",") if n.strip()]
        for network in value or []:
            ipaddress.ip_network(network, strict=False)  # a bad CIDR stops start-up
        return value

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.ENVIRONMENT == "production" and (
            self.SECRET_KEY == DEFAULT_SECRET_KEY or len(self.SECRET_KEY) < 32
        ):
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least 32 characters in production"
            )
        return self

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite://{self.DATA_DIR / 'aggregator.sqlite3'}"

    @property
    def is_production(self) -> bool:
        return self.ENVIRONMENT == "production"

    @property
    def scaled(self) -> bool:
        return self.REDIS_URL is not None


def _toml_values(environment: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    names = ["default.toml"] + ([f"{environment}.toml"] if environment else [])
    for name in names:
        path = CONFIG_DIR / name
        if path.is_file():
            values.update(tomllib.loads(path.read_text()))
    return values


def load_settings(**overrides: Any) -> Settings:
    """Build settings; environment variables win over TOML files, overrides over both."""
    file_values = _toml_values(os.environ.get("ENVIRONMENT", overrides.get("ENVIRONMENT")))
    env_names = set(Settings.model_fields) & set(os.environ)
    base = {k: v for k, v in file_values.items() if k not in env_names}
    return Settings(**{**base, **overrides})


@cache
def get_settings() -> Settings:
    return load_settings()
