"""Shared fixtures. The suite runs once per mode (TEST_MODE=embedded|scaled), each against
real servers started by tests/servers.py."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import jwt
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests.servers import MODE, PG_ADMIN_URL, REDIS_URL, TEST_SECRET_KEY, ServerProcess

logging.getLogger("httpcore").setLevel(logging.WARNING)
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("websockets").setLevel(logging.INFO)

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
PASSWORD = "correct-horse-battery"


async def _scaled_services_reachable() -> str | None:
    try:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        await conn.close()
        client = aioredis.from_url(REDIS_URL)
        await client.ping()
        await client.flushdb()
        await client.aclose()
    except Exception as exc:  # unreachable services are reported, then skipped or failed
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def scaled_services() -> None:
    if MODE != "scaled":
        return
    problem = await _scaled_services_reachable()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(f"scaled mode needs PostgreSQL and Redis: {problem}", pytrace=False)
        pytest.skip(f"PostgreSQL/Redis unreachable: {problem}")


ServerFactory = Callable[..., Awaitable[ServerProcess]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def server_factory(tmp_path_factory) -> AsyncIterator[ServerFactory]:
    started: list[ServerProcess] = []

    async def start(workers: int = 1, **env: str) -> ServerProcess:
        server = ServerProcess(
            tmp_path_factory.mktemp("server"), env_overrides=env, workers=workers
        )
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def server(server_factory: ServerFactory) -> AsyncIterator[ServerProcess]:
    """The shared server. Tests on it make their own objects and never assume an empty DB."""
    server = await server_factory()
    yield server
    assert not server.server_errors(), "the server answered 500:\n" + "\n".join(
        server.server_errors()
    )


@dataclass
class Account:
    id: str
    email: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def forge_token(claims: dict, key: str = TEST_SECRET_KEY, algorithm: str = "HS256") -> str:
    """An access token signed like the test servers' own, with `claims` over the defaults."""
    now = int(time.time())
    base = {
        "iss": "data-aggregator",
        "aud": "data-aggregator-api",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "typ": "access",
    }
    return jwt.encode({**base, **claims}, key, algorithm=algorithm)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(
        body["user"]["id"], email, body["user"]["role"], body["access_token"], body["refresh_token"]
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def admin(server: ServerProcess) -> Account:
    """The shared server's first registered user, hence its admin."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        email = unique_email("admin")
        response = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Ada"}
        )
        assert response.status_code == 201, response.text
        return await login(client, email)


@pytest_asyncio.fixture(loop_scope="session")
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


UserFactory = Callable[[str], Awaitable[Account]]


@pytest_asyncio.fixture(loop_scope="session")
async def make_user(client: httpx.AsyncClient, admin: Account) -> UserFactory:
    async def create(role: str) -> Account:
        email = unique_email(role)
        response = await client.post(
            "/api/v1/users",
            headers=admin.headers,
            json={"email": email, "password": PASSWORD, "role": role},
        )
        assert response.status_code == 201, response.text
        return await login(client, email)

    return create


@pytest_asyncio.fixture(loop_scope="session")
async def editor(make_user: UserFactory) -> Account:
    return await make_user("editor")


@pytest_asyncio.fixture(loop_scope="session")
async def viewer(make_user: UserFactory) -> Account:
    return await make_user("viewer")
