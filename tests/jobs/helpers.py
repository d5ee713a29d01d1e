"""Job test helpers: the ARQ worker process of scaled mode, direct database access for
arranging state no API can create (old events, a crashed process's rows), polling."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from asyncio.subprocess import STDOUT, Process
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tortoise import Tortoise

from storage.db import tortoise_config
from storage.models import Event
from tests.servers import MODE, ROOT, ServerProcess

TERMINAL = {"succeeded", "failed", "cancelled"}


def isolated_queue() -> dict[str, str]:
    """Server settings with an ARQ queue of its own, so that workers of other test sessions
    sharing this Redis database never take (and lose) this server's jobs; and a short sweep,
    as other sessions flush that database when they start."""
    return {"JOB_QUEUE_NAME": f"arq:test:{uuid.uuid4().hex[:12]}", "JOB_SWEEP_SECONDS": "1"}


class WorkerProcess:
    """`aggregator worker` against a server's database and Redis (scaled mode only)."""

    def __init__(self, server: ServerProcess):
        self.server = server
        self.process: Process | None = None
        self.log_path = server.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log"

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "app.cli",
                "worker",
                env=self.server.environment(),
                cwd=ROOT,
                stdout=log,
                stderr=STDOUT,
            )

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@asynccontextmanager
async def job_workers(server: ServerProcess) -> AsyncIterator[WorkerProcess | None]:
    """Whatever runs the server's jobs besides the server: an ARQ worker in scaled mode,
    nothing in embedded mode (the server runs them itself)."""
    if MODE != "scaled":
        yield None
        return
    worker = WorkerProcess(server)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def database_url(server: ServerProcess) -> str:
    return server.database_url or f"sqlite://{server.data_dir / 'aggregator.sqlite3'}"


@asynccontextmanager
async def database(server: ServerProcess) -> AsyncIterator[None]:
    await Tortoise.init(config=tortoise_config(database_url(server)))
    try:
        yield
    finally:
        await Tortoise.close_connections()


async def wait_for(
    probe: Callable[[], Any], until: Callable[[Any], bool], within: float = 30.0
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value: {value!r}")
        await asyncio.sleep(0.1)


async def wait_for_job(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, within: float = 30.0
) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        response = await client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    return await wait_for(fetch, lambda job: job["status"] in TERMINAL, within)


async def store_event(topic: str, age_days: int, published: bool) -> uuid.UUID:
    """An audit event `age_days` old (no API can write the past)."""
    created = datetime.now(UTC) - timedelta(days=age_days)
    event = await Event.create(
        topic=topic, seq=1, type="pipeline.updated", entity_type="pipeline", entity_id="x"
    )
    # created_at is set on insert; backdate it as if the event were that old.
    await Event.filter(id=event.id).update(
        created_at=created, published_at=created if published else None
    )
    return event.id
