"""Incremental sources: each run reads only rows past the saved cursor, and the cursor moves
only when the run's writes were committed (a failed run's rows are read again next time)."""

from __future__ import annotations

import sqlite3

import pytest

from tests.executions.helpers import (
    canvas,
    create_connector,
    create_pipeline,
    edge,
    node,
    start_run,
    wait_for_status,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def add_events(database, ids, extra: bool = False) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT)")
        if extra:
            conn.execute("ALTER TABLE events ADD COLUMN extra TEXT")
        columns = "id, kind, extra" if extra else "id, kind"
        values = [(i, f"k{i}", "x") if extra else (i, f"k{i}") for i in ids]
        marks = ", ".join("?" * len(values[0]))
        conn.executemany(f"INSERT INTO events ({columns}) VALUES ({marks})", values)


async def run(client, who, pipeline_id) -> dict:
    return await wait_for_status(client, who, await start_run(client, who, pipeline_id))


def rows_read(execution: dict) -> int:
    return next(s["rows_out"] for s in execution["steps"] if s["node_id"] == "events")


async def test_incremental_reads_resume_after_the_last_committed_cursor(server, client, editor):
    database = server.data_dir / "incremental.db"
    add_events(database, range(1, 6))
    source = await create_connector(client, editor, "sqlite", {"path": "incremental.db"})
    definition = canvas(
        [
            node(
                "events",
                "source.sqlite",
                {
                    "connector_id": source,
                    "stream": "events",
                    "sync_mode": "incremental",
                    "cursor_field": "id",
                },
            ),
            node("ds", "destination.dataset", {"dataset": "events_ds", "mode": "append"}, 300),
        ],
        [edge("events", "ds")],
    )
    pipeline = await create_pipeline(client, editor, definition, name="incremental")

    first = await run(client, editor, pipeline["id"])
    assert first["status"] == "succeeded", first
    assert rows_read(first) == 5
    add_events(database, range(6, 9))
    second = await run(client, editor, pipeline["id"])
    assert rows_read(second) == 3

    # New rows whose shape the dataset refuses: the run fails, the cursor stays.
    add_events(database, range(9, 11), extra=True)
    failed = await run(client, editor, pipeline["id"])
    assert failed["status"] == "failed", failed
    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN extra")
    again = await run(client, editor, pipeline["id"])
    assert again["status"] == "succeeded", again
    assert rows_read(again) == 2  # the failed run's rows, read again

    listed = await client.get("/api/v1/datasets", headers=editor.headers, params={"q": "events_ds"})
    dataset_id = listed.json()["items"][0]["id"]
    preview = await client.get(
        f"/api/v1/datasets/{dataset_id}/preview", headers=editor.headers, params={"limit": 100}
    )
    assert sorted(row["id"] for row in preview.json()["rows"]) == list(range(1, 11))
