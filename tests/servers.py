"""Real servers for tests: `aggregator serve` in a subprocess on a free port, each with its own
fresh database (SQLite file, or a new PostgreSQL database in scaled mode)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from asyncio.subprocess import PIPE, STDOUT, Process
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

MODE = os.environ.get("TEST_MODE", "embedded")
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30.0
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def create_pg_database() -> str:
    name = f"test_agg_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class ServerProcess:
    data_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = field(default_factory=free_port)
    database_url: str | None = None
    process: Process | None = None
    owns_database: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"server-{self.port}.log"

    def environment(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))
        }
        env.update(
            ENVIRONMENT="test",
            DATA_DIR=str(self.data_dir),
            SECRET_KEY=TEST_SECRET_KEY,
            LOGIN_RATE_LIMIT="1000",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            ALLOWED_ORIGINS="http://localhost:5173",
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if MODE == "scaled":
            env["REDIS_URL"] = REDIS_URL
        env.update(self.env_overrides)
        return env

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if MODE == "scaled" and not self.database_url:
            self.database_url = await create_pg_database()
            self.owns_database = True
        env = self.environment()
        cli = [sys.executable, "-m", "app.cli"]
        migrate = await asyncio.create_subprocess_exec(
            *cli, "migrate", env=env, cwd=ROOT, stdout=PIPE, stderr=STDOUT
        )
        output, _ = await migrate.communicate()
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed: {output.decode()}")
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *cli,
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=STDOUT,
            )
        await self._wait_until_healthy()

    async def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if (await client.get(f"{self.base_url}/api/v1/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server did not become healthy: {self.log_path.read_text()[-3000:]}")

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.owns_database:
            await drop_pg_database(self.database_url)

    def server_errors(self) -> list[str]:
        """Lines where the server answered 500: bad input must never cause one."""
        if not self.log_path.exists():
            return []
        text = self.log_path.read_text(errors="replace")
        return [
            line
            for line in text.splitlines()
            if "unhandled error" in line or "server error" in line
        ]
