"""Schemathesis against the served OpenAPI document: no input may produce a server error."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.asyncio(loop_scope="session")

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "6"))
# Logging out would end the fuzzer's own session; WebSocket upgrades are not HTTP operations.
EXCLUDED_PATHS = ("/api/v1/auth/logout", "/api/v1/ws")


@pytest.mark.timeout(300)
async def test_no_server_errors_for_generated_requests(server_factory, tmp_path: Path):
    server = await server_factory(LOGIN_RATE_LIMIT="100000")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.post(
            "/api/v1/auth/register", json={"email": "fuzz@example.com", "password": PASSWORD}
        )
        admin = await login(client, "fuzz@example.com")
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{server.base_url}/docs/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--header",
        f"Authorization: Bearer {admin.access_token}",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--max-time",
        "150",
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
        "--seed",
        "1",
        *[arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)],
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    # Judged by server errors only: schemathesis also exits non-zero for its own generation
    # hiccups and for warnings about the schema, which say nothing about the server.
    assert "ST101" not in report, report[-8000:]
    assert "test cases" in report.lower() or "generated" in report, report[-3000:]
    assert not server.server_errors(), "\n".join(server.server_errors())
