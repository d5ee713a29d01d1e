"""Work survives restarts: jobs queued while nothing runs them, and jobs a dead process left
`running`, are run (or given up) when a worker comes up — the server itself in embedded
mode, `aggregator worker` in scaled mode."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from storage.models import Event, Job
from tests.jobs.conftest import register_admin
from tests.jobs.helpers import (
    database,
    isolated_queue,
    job_workers,
    store_event,
    wait_for,
    wait_for_job,
)
from tests.servers import MODE, ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

PURGE = "maintenance.purge_events"


async def _crashed_job(created_by: str, attempts: int) -> str:
    """A row as a process that died mid-job leaves it."""
    row = await Job.create(
        kind=PURGE,
        status="running",
        attempts=attempts,
        started_at=datetime.now(UTC),
        created_by_id=uuid.UUID(created_by),
    )
    return str(row.id)


async def test_queued_and_interrupted_jobs_survive_a_restart(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("restart")
    queue = isolated_queue()
    # Embedded: a server that does not run jobs, so they stay queued in its database.
    first = ServerProcess(data_dir, env_overrides={**queue, "JOB_WORKER_ENABLED": "false"})
    second: ServerProcess | None = None
    await first.start()
    try:
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
            admin = await register_admin(client)
            waiting = await client.post("/api/v1/jobs", headers=admin.headers, json={"kind": PURGE})
            assert waiting.json()["status"] == "queued"
            dropped = await client.post("/api/v1/jobs", headers=admin.headers, json={"kind": PURGE})
            cancel = await client.post(
                f"/api/v1/jobs/{dropped.json()['id']}/cancel", headers=admin.headers
            )
            assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
            again = await client.post(
                f"/api/v1/jobs/{dropped.json()['id']}/cancel", headers=admin.headers
            )
            assert again.status_code == 409
        async with database(first):
            interrupted = await _crashed_job(admin.id, attempts=1)
            exhausted = await _crashed_job(admin.id, attempts=3)  # JOB_MAX_ATTEMPTS

        if MODE == "scaled":
            second = first  # the worker process is what starts
        else:
            await first.stop()
            second = ServerProcess(data_dir, env_overrides=queue)
            await second.start()
        async with (
            job_workers(second),
            httpx.AsyncClient(base_url=second.base_url, timeout=30) as client,
        ):
            done = await wait_for_job(client, admin.headers, waiting.json()["id"])
            assert done["status"] == "succeeded", done
            resumed = await wait_for_job(client, admin.headers, interrupted)
            assert resumed["status"] == "succeeded" and resumed["attempts"] == 2, resumed
            given_up = await wait_for_job(client, admin.headers, exhausted)
            assert given_up["status"] == "failed", given_up
            assert given_up["error"]["type"] == "interrupted"
            still = await client.get(f"/api/v1/jobs/{dropped.json()['id']}", headers=admin.headers)
            assert still.json()["status"] == "cancelled" and still.json()["started_at"] is None
    finally:
        for server in {id(s): s for s in (first, second) if s is not None}.values():
            await server.stop()
    assert not first.server_errors() and not (second and second.server_errors())


async def test_a_stored_job_that_never_reached_a_worker_still_runs(job_stack):
    """As after a crash between storing the row and enqueueing it, or Redis losing it."""
    async with database(job_stack.server):
        row = await Job.create(kind=PURGE, created_by_id=uuid.UUID(job_stack.admin.id))
    done = await wait_for_job(job_stack.client, job_stack.admin.headers, str(row.id))
    assert done["status"] == "succeeded", done


async def test_expired_events_are_purged_on_schedule(server_factory):
    server = await server_factory(MAINTENANCE_INTERVAL_SECONDS="1", **isolated_queue())
    async with (
        job_workers(server),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
    ):
        admin = await register_admin(client)
        async with database(server):
            old = await store_event(f"pipeline:{uuid.uuid4()}", 400, published=True)

            async def purged() -> bool:
                return not await Event.exists(id=old)

            await wait_for(purged, bool)
        listed = await client.get("/api/v1/jobs", headers=admin.headers, params={"kind": PURGE})
    runs = listed.json()["items"]
    assert runs and all(run["created_by"] is None for run in runs)  # nobody started them
    assert any(run["result"] and run["result"]["deleted"] == 1 for run in runs)
    assert not server.server_errors()
