"""Schema discovery speed: our PostgresConnector.discover against SQLAlchemy 2's inspector.

Creates a throw-away PostgreSQL database with 1,000 tables x 20 columns (primary keys and a
foreign key from each table to the previous one), times both on the same database in the same
run, prints JSON, and drops the database.

    .venv/bin/python bench/introspect.py [--tables 1000] [--repeat 5] [--dsn-host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.connectors.base import ConnectorContext
from engine.connectors.postgres import PostgresConnector

COLUMN_TYPES = [
    "text",
    "varchar(100)",
    "integer",
    "numeric(12,2)",
    "timestamptz",
    "boolean",
    "date",
    "jsonb",
    "double precision",
    "uuid",
]
COLUMNS_PER_TABLE = 20  # id + parent_id + 18 data columns


def schema_script(tables: int) -> str:
    """All DDL in one script: one round trip instead of thousands."""
    statements = []
    for i in range(tables):
        columns = ["id bigint PRIMARY KEY"]
        columns.append(
            f"parent_id bigint REFERENCES t{i - 1:04d} (id)" if i else "parent_id bigint"
        )
        columns += [
            f"c{j:02d} {COLUMN_TYPES[j % len(COLUMN_TYPES)]}" + (" NOT NULL" if j % 3 == 0 else "")
            for j in range(COLUMNS_PER_TABLE - 2)
        ]
        statements.append(f"CREATE TABLE t{i:04d} ({', '.join(columns)});")
    return "\n".join(statements)


async def admin_execute(host: str, port: int, sql: str) -> None:
    conn = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(host: str, port: int, name: str, tables: int) -> None:
    await admin_execute(host, port, f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(host=host, port=port, user="postgres", database=name)
    try:
        await conn.execute(schema_script(tables))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def time_ours(config: dict[str, Any], repeat: int) -> tuple[list[float], int, int]:
    connector = PostgresConnector()
    ctx = ConnectorContext(data_dir=Path(tempfile.gettempdir()))
    timings = []
    tables = columns = 0
    for _ in range(repeat):
        started = time.perf_counter()
        streams = await connector.discover(config, ctx)
        timings.append((time.perf_counter() - started) * 1000)
        tables, columns = len(streams), sum(len(s.fields) for s in streams)
        del streams  # freeing a result is not part of the next measurement
    return timings, tables, columns


def time_sqlalchemy(url: str, repeat: int) -> tuple[list[float], int]:
    engine = sqlalchemy.create_engine(url)
    timings = []
    try:
        with engine.connect():  # open the pooled connection outside the timed part
            pass
        for _ in range(repeat):
            started = time.perf_counter()
            inspector = sqlalchemy.inspect(engine)  # fresh: inspectors cache their answers
            columns = inspector.get_multi_columns(schema="public")
            primary_keys = inspector.get_multi_pk_constraint(schema="public")
            foreign_keys = inspector.get_multi_foreign_keys(schema="public")
            timings.append((time.perf_counter() - started) * 1000)
            column_count = sum(len(c) for c in columns.values())
            del inspector, columns, primary_keys, foreign_keys  # as for ours
    finally:
        engine.dispose()
    return timings, column_count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    args = parser.parse_args()

    name = f"bench_introspect_{uuid.uuid4().hex[:12]}"
    config = {
        "host": args.host,
        "port": args.port,
        "database": name,
        "user": "postgres",
        "sslmode": "disable",
    }
    started = time.perf_counter()
    await create_database(args.host, args.port, name, args.tables)
    setup_s = time.perf_counter() - started
    try:
        ours, tables, columns = await time_ours(config, args.repeat)
        url = f"postgresql+psycopg2://postgres@{args.host}:{args.port}/{name}"
        theirs, their_columns = await asyncio.to_thread(time_sqlalchemy, url, args.repeat)
    finally:
        await admin_execute(args.host, args.port, f'DROP DATABASE "{name}" WITH (FORCE)')

    ours_ms, theirs_ms = statistics.median(ours), statistics.median(theirs)
    print(
        json.dumps(
            {
                "ours_ms": round(ours_ms, 1),
                "sqlalchemy_ms": round(theirs_ms, 1),
                "ratio": round(theirs_ms / ours_ms, 1),
                "tables": tables,
                "columns": columns,
                "sqlalchemy_columns": their_columns,
                "repeat": args.repeat,
                "ours_all_ms": [round(t, 1) for t in ours],
                "sqlalchemy_all_ms": [round(t, 1) for t in theirs],
                "statistic": "median; ours includes opening its connection, SQLAlchemy reuses a "
                "pooled one",
                "setup_s": round(setup_s, 1),
                "sqlalchemy_version": sqlalchemy.__version__,
                "asyncpg_version": asyncpg.__version__,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
