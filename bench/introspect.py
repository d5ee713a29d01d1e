"""Schema discovery speed: our PostgresConnector.discover against SQLAlchemy 2's inspector.

Creates a throw-away PostgreSQL database with 1,000 tables x 20 columns (primary keys and a
foreign key from each table to the previous one), times both on the same database in the same
run, prints JSON, and drops the database.

    .venv/bin/python bench/introspect.py [--tables 1000] [--repeat 5] [--dsn-host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
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


@dataclass
class Counts:
    tables: int
    columns: int
    primary_keys: int
    foreign_keys: int


@dataclass
class Timing:
    wall_ms: float
    # CPU time of the calling thread: the client-side work, much less sensitive than wall
    # time to other processes competing for the machine.
    cpu_ms: float


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.wall, self.cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.timing = Timing(
            (time.perf_counter() - self.wall) * 1000, (time.thread_time() - self.cpu) * 1000
        )


async def discover_ours(config: dict[str, Any]) -> tuple[Timing, Counts]:
    connector = PostgresConnector()
    ctx = ConnectorContext(data_dir=Path(tempfile.gettempdir()))
    with Stopwatch() as watch:
        streams = await connector.discover(config, ctx)
    counts = Counts(
        tables=len(streams),
        columns=sum(len(s.fields) for s in streams),
        primary_keys=sum(any(f.primary_key for f in s.fields) for s in streams),
        foreign_keys=sum(len(s.foreign_keys) for s in streams),
    )
    del streams  # freeing a result is not part of any measurement
    return watch.timing, counts


def inspect_with_sqlalchemy(engine: sqlalchemy.Engine) -> tuple[Timing, Counts]:
    with Stopwatch() as watch:
        inspector = sqlalchemy.inspect(engine)  # fresh: inspectors cache their answers
        columns = inspector.get_multi_columns(schema="public")
        primary_keys = inspector.get_multi_pk_constraint(schema="public")
        foreign_keys = inspector.get_multi_foreign_keys(schema="public")
    counts = Counts(
        tables=len(columns),
        columns=sum(len(c) for c in columns.values()),
        primary_keys=sum(bool(pk["constrained_columns"]) for pk in primary_keys.values()),
        foreign_keys=sum(len(fks) for fks in foreign_keys.values()),
    )
    del inspector, columns, primary_keys, foreign_keys  # as for ours
    return watch.timing, counts


def inspect_with_new_engine(url: str) -> Timing:
    """SQLAlchemy paying for its connection too, as our discover does."""
    with Stopwatch() as watch:
        engine = sqlalchemy.create_engine(url)
        try:
            inspect_with_sqlalchemy(engine)
        finally:
            engine.dispose()
    return watch.timing


def median_ms(timings: list[Timing], attribute: str) -> float:
    return statistics.median(getattr(t, attribute) for t in timings)


async def run(config: dict[str, Any], url: str, repeat: int) -> dict[str, Any]:
    """Alternate the contenders so that load from other processes hits both alike; one
    warm-up round first (SQLAlchemy compiles and caches its catalog queries)."""
    engine = sqlalchemy.create_engine(url)
    ours: list[Timing] = []
    theirs: list[Timing] = []
    theirs_cold: list[Timing] = []
    try:
        for round_number in range(repeat + 1):
            # Each contender starts from a collected heap, not from the other's garbage.
            gc.collect()
            our_timing, our_counts = await discover_ours(config)
            gc.collect()
            their_timing, their_counts = await asyncio.to_thread(inspect_with_sqlalchemy, engine)
            gc.collect()
            cold_timing = await asyncio.to_thread(inspect_with_new_engine, url)
            if round_number:
                ours.append(our_timing)
                theirs.append(their_timing)
                theirs_cold.append(cold_timing)
    finally:
        engine.dispose()
    ours_ms, theirs_ms = median_ms(ours, "wall_ms"), median_ms(theirs, "wall_ms")
    cold_ms = median_ms(theirs_cold, "wall_ms")
    ours_cpu, theirs_cpu = median_ms(ours, "cpu_ms"), median_ms(theirs, "cpu_ms")
    return {
        "ours_ms": round(ours_ms, 1),
        "sqlalchemy_ms": round(theirs_ms, 1),
        "ratio": round(theirs_ms / ours_ms, 1),
        "sqlalchemy_new_engine_ms": round(cold_ms, 1),
        "ratio_new_engine": round(cold_ms / ours_ms, 1),
        "ours_client_cpu_ms": round(ours_cpu, 1),
        "sqlalchemy_client_cpu_ms": round(theirs_cpu, 1),
        "client_cpu_ratio": round(theirs_cpu / ours_cpu, 1),
        "tables": our_counts.tables,
        "columns": our_counts.columns,
        "ours_counts": asdict(our_counts),
        "sqlalchemy_counts": asdict(their_counts),
        "repeat": repeat,
        "ours_all_ms": [round(t.wall_ms, 1) for t in ours],
        "sqlalchemy_all_ms": [round(t.wall_ms, 1) for t in theirs],
        "statistic": "median of alternating rounds after one warm-up; ours opens and closes "
        "its own connection, sqlalchemy_ms reuses a pooled psycopg2 connection, "
        "sqlalchemy_new_engine_ms creates engine and connection each time; *_client_cpu_ms "
        "is the calling thread's CPU time (excludes the server's work)",
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
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
    url = f"postgresql+psycopg2://postgres@{args.host}:{args.port}/{name}"
    started = time.perf_counter()
    await create_database(args.host, args.port, name, args.tables)
    setup_s = time.perf_counter() - started
    try:
        figures = await run(config, url, args.repeat)
    finally:
        await admin_execute(args.host, args.port, f'DROP DATABASE "{name}" WITH (FORCE)')
    figures |= {
        "setup_s": round(setup_s, 1),
        "sqlalchemy_version": sqlalchemy.__version__,
        "asyncpg_version": asyncpg.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
