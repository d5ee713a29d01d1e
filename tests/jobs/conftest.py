from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from tests.conftest import PASSWORD, Account, login, unique_email
from tests.jobs.helpers import WorkerProcess, isolated_queue, job_workers, wait_for
from tests.servers import ServerProcess


async def register_admin(client: httpx.AsyncClient) -> Account:
    email = unique_email("admin")
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return await login(client, email)


async def create_user(client: httpx.AsyncClient, admin: Account, role: str) -> Account:
    email = unique_email(role)
    response = await client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": email, "password": PASSWORD, "role": role},
    )
    assert response.status_code == 201, response.text
    return await login(client, email)


async def scheduled_maintenance_done(client: httpx.AsyncClient, admin: Account) -> None:
    """The maintenance jobs a fresh server schedules at once, finished: tests that arrange
    old rows then do not race them."""

    async def scheduled() -> list[dict]:
        response = await client.get(
            "/api/v1/jobs", headers=admin.headers, params={"q": "maintenance"}
        )
        return [job for job in response.json()["items"] if job["created_by"] is None]

    await wait_for(
        scheduled, lambda jobs: len(jobs) == 3 and all(j["status"] == "succeeded" for j in jobs)
    )


@dataclass
class JobStack:
    """A server of its own whose jobs run (in it, or in an ARQ worker), with its admin."""

    server: ServerProcess
    worker: WorkerProcess | None
    client: httpx.AsyncClient
    admin: Account


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def job_stack(server_factory) -> AsyncIterator[JobStack]:
    server = await server_factory(**isolated_queue())
    async with (
        job_workers(server) as worker,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
    ):
        admin = await register_admin(client)
        await scheduled_maintenance_done(client, admin)
        yield JobStack(server, worker, client, admin)
    assert not server.server_errors(), "\n".join(server.server_errors())
