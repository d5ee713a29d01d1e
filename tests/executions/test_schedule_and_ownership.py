"""Cron schedules fire once per tick, even with two server processes (scaled mode), and a
pipeline has one owner across processes: runs never overlap whichever process is asked."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime

import httpx
import pytest

from tests.executions.helpers import (
    create_connector,
    create_pipeline,
    register_admin,
    sales_canvas,
    wait_for_status,
    write_sales_csv,
)
from tests.servers import MODE

pytestmark = pytest.mark.asyncio(loop_scope="session")
PROCESSES = 2 if MODE == "scaled" else 1  # embedded mode is one process by design


async def executions_of(client, who, pipeline_id: str) -> list[dict]:
    response = await client.get(
        f"/api/v1/pipelines/{pipeline_id}/executions",
        headers=who.headers,
        params={"limit": 100, "sort": "created_at"},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.mark.timeout(240)
async def test_a_cron_tick_runs_once_and_runs_never_overlap(server_factory):
    server = await server_factory(workers=PROCESSES, SCHEDULER_INTERVAL_SECONDS="1")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        owner = await register_admin(client)
        write_sales_csv(server.data_dir / "tick_in")
        source = await create_connector(client, owner, "file", {"path": "tick_in"})
        scheduled = await create_pipeline(
            client,
            owner,
            sales_canvas(source, "tick_ds"),
            name="every minute",
            schedule="* * * * *",
        )
        paused = await create_pipeline(
            client,
            owner,
            sales_canvas(source, "paused_ds"),
            name="paused",
            schedule="* * * * *",
            status="paused",
        )

        # Several runs asked at once, spread over the processes: one at a time, in turn.
        manual = await create_pipeline(client, owner, sales_canvas(source, "manual_ds"))
        responses = await asyncio.gather(
            *(
                client.post(f"/api/v1/pipelines/{manual['id']}/run", headers=owner.headers)
                for _ in range(6)
            )
        )
        assert [r.status_code for r in responses] == [202] * 6
        finished = [
            await wait_for_status(client, owner, r.json()["execution_id"]) for r in responses
        ]
        assert {run["status"] for run in finished} == {"succeeded"}
        spans = sorted(
            (datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["completed_at"]))
            for r in finished
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, "two runs of one pipeline overlapped"

        # The next minute's tick: exactly one scheduled run, none for the paused pipeline.
        deadline = time.monotonic() + 90
        while not (runs := await executions_of(client, owner, scheduled["id"])):
            assert time.monotonic() < deadline, "the schedule never fired"
            await asyncio.sleep(0.5)
        await asyncio.sleep(4)  # several scheduler rounds in every process
        runs = await executions_of(client, owner, scheduled["id"])
        assert len(runs) == 1, runs
        assert runs[0]["trigger"] == "schedule"
        assert (await wait_for_status(client, owner, runs[0]["id"]))["status"] == "succeeded"
        assert await executions_of(client, owner, paused["id"]) == []
    assert not server.server_errors()
