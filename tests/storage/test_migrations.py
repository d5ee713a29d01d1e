"""Migrations build the whole schema on an empty database, in both dialects, and stay in step
with the models."""

from __future__ import annotations

import pytest
from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector

from storage.db import migrate_db, tortoise_config
from storage.models import Event, Pipeline
from tests.servers import MODE, create_pg_database, drop_pg_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXPECTED_TABLES = {
    "users",
    "refresh_token_families",
    "pipelines",
    "pipeline_versions",
    "pipeline_executions",
    "execution_steps",
    "execution_logs",
    "connectors",
    "transformations",
    "events",
    "notifications",
    "websocket_connections",
    "jobs",
}


@pytest.fixture
async def empty_database_url(tmp_path):
    if MODE == "scaled":
        url = await create_pg_database()
        yield url
        await drop_pg_database(url)
    else:
        yield f"sqlite://{tmp_path / 'migrate.sqlite3'}"


async def _tables_and_indexes(url: str) -> tuple[set[str], set[str]]:
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(url))
        conn = ctx.connections.get("default")
        if url.startswith("sqlite"):
            _, rows = await conn.execute_query("SELECT name, type FROM sqlite_master")
            tables = {r["name"] for r in rows if r["type"] == "table"}
            indexes = {r["name"] for r in rows if r["type"] == "index"}
        else:
            _, rows = await conn.execute_query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            tables = {r["tablename"] for r in rows}
            _, rows = await conn.execute_query(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            )
            indexes = {r["indexname"] for r in rows}
    return tables, indexes


async def test_migrations_build_every_table_and_index_on_an_empty_database(empty_database_url):
    await migrate_db(empty_database_url)
    await migrate_db(empty_database_url)  # idempotent: a second run applies nothing
    tables, indexes = await _tables_and_indexes(empty_database_url)
    assert tables >= EXPECTED_TABLES
    # Lists sort and filter on these; losing them would make the API slow, not wrong.
    for prefix in (
        "idx_events_entity",
        "idx_pipelines_created",
        "idx_pipelines_status",
        "idx_notificatio_user_id",
        "idx_pipeline_ex_status",
    ):
        assert any(name.startswith(prefix) for name in indexes), prefix


async def test_models_and_migrations_do_not_drift_apart(tmp_path):
    config = tortoise_config(f"sqlite://{tmp_path / 'drift.sqlite3'}")
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    pending = [op for writer in writers for op in writer.operations]
    assert not pending, f"models changed without a migration: {pending}"


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_models_cover_the_documented_resources():
    assert Pipeline._meta.fields_map["visual_definition"].__class__.__name__ == "JSONField"
    assert {"topic", "seq"} <= set(Event._meta.fields_map)
