"""Database set-up for both dialects: the Tortoise config, init/close and migrations."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tortoise import Tortoise
from tortoise.migrations.api import migrate as run_migrations

MODELS_MODULE = "storage.models"
MIGRATIONS_MODULE = "migrations"
# Tortoise opens SQLite in WAL mode. With WAL, synchronous=NORMAL is the setting SQLite
# recommends: commits stop waiting for an fsync each (the WAL is synced at checkpoints), and
# the database stays consistent after a crash; only a power loss or OS crash can lose the
# last commits. A pragma given in DATABASE_URL (e.g. ?synchronous=FULL) wins.
SQLITE_PRAGMAS = {"synchronous": "NORMAL"}


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": _normalise_url(database_url)},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _normalise_url(url: str) -> str:
    # Accept the spellings operators use; Tortoise knows "postgres://" and "sqlite://".
    parts = urlsplit(url)
    if parts.scheme in {"postgresql", "postgresql+asyncpg"}:
        return "postgres" + url[len(parts.scheme) :]
    if parts.scheme == "sqlite":
        return _with_sqlite_pragmas(url, parse_qs(parts.query))
    return url


def _with_sqlite_pragmas(url: str, given: dict[str, list[str]]) -> str:
    # Tortoise turns the query parameters of a sqlite:// URL into PRAGMAs at connect time.
    missing = [f"{name}={value}" for name, value in SQLITE_PRAGMAS.items() if name not in given]
    if not missing:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(missing)


def dialect(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


async def init_db(database_url: str) -> None:
    # Global fallback: request handlers run in tasks that do not inherit the start-up
    # listener's context, so the ORM context must be process-wide.
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def migrate_db(database_url: str) -> None:
    """Apply every pending migration (idempotent), then release the connections it opened."""
    try:
        await run_migrations(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


async def close_db() -> None:
    await Tortoise.close_connections()
