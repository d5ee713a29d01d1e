"""Issue 5, "Done when" #2: a run stopped mid-way — cancelled, or its server killed — leaves
the destination table and the dataset exactly as they were; a crash is reported as `crashed`
after a restart; a failed run retries from the failed step, reusing earlier outputs."""

from __future__ import annotations

import shutil
import time
from datetime import datetime

import httpx
import pytest
import pytest_asyncio

from tests.executions.helpers import (
    TERMINAL,
    create_connector,
    create_pipeline,
    register_admin,
    start_run,
    table_rows,
    wait_for_status,
    wait_until_mid_run,
    warehouse_canvas,
    write_sales_csv,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Small batches make a 100k-row run take long enough to be interrupted mid-way.
SLOW_RUNS = {"PIPELINE_BATCH_SIZE": "200"}
BIG_FILE_ROWS = 100_000


class Warehouse:
    """A pipeline writing a CSV's rows into a managed dataset and a SQLite table."""

    def __init__(self, server, client: httpx.AsyncClient, who, name: str):
        self.server, self.client, self.who, self.name = server, client, who, name
        self.inbox = server.data_dir / f"{name}_in"

    async def set_up(self) -> None:
        write_sales_csv(self.inbox, rows=10)
        source = await create_connector(self.client, self.who, "file", {"path": self.inbox.name})
        sqlite = await create_connector(
            self.client, self.who, "sqlite", {"path": f"{self.name}.db"}
        )
        definition = warehouse_canvas(source, sqlite, f"{self.name}_ds")
        self.pipeline = await create_pipeline(self.client, self.who, definition, name=self.name)

    async def run(self) -> str:
        return await start_run(self.client, self.who, self.pipeline["id"])

    async def dataset(self) -> dict:
        listed = await self.client.get(
            "/api/v1/datasets", headers=self.who.headers, params={"q": f"{self.name}_ds"}
        )
        [item] = listed.json()["items"]
        detail = await self.client.get(f"/api/v1/datasets/{item['id']}", headers=self.who.headers)
        preview = await self.client.get(
            f"/api/v1/datasets/{item['id']}/preview", headers=self.who.headers
        )
        return {**detail.json(), "preview": preview.json()["rows"]}

    def table(self) -> list[tuple]:
        return table_rows(self.server.data_dir / f"{self.name}.db", "sales")

    async def snapshot(self) -> tuple[dict, list[tuple]]:
        return await self.dataset(), self.table()


@pytest_asyncio.fixture(loop_scope="session")
async def slow_server(server_factory):
    return await server_factory(**SLOW_RUNS)


async def test_cancel_mid_run_leaves_destinations_unchanged(slow_server):
    async with httpx.AsyncClient(base_url=slow_server.base_url, timeout=30) as client:
        owner = await register_admin(client)
        warehouse = Warehouse(slow_server, client, owner, "cancelled")
        await warehouse.set_up()
        first = await wait_for_status(client, owner, await warehouse.run())
        assert first["status"] == "succeeded", first
        before = await warehouse.snapshot()
        assert len(before[1]) == 8

        write_sales_csv(warehouse.inbox, rows=BIG_FILE_ROWS)
        execution_id = await warehouse.run()
        await wait_until_mid_run(client, owner, execution_id)

        # One run at a time per pipeline: the next one waits, and can be cancelled waiting.
        queued_id = await warehouse.run()
        queued = await wait_for_status(client, owner, queued_id, {"queued"} | TERMINAL)
        assert queued["status"] == "queued"
        response = await client.post(
            f"/api/v1/executions/{queued_id}/cancel", headers=owner.headers
        )
        assert response.json()["status"] == "cancelled"

        asked_at = time.time()
        response = await client.post(
            f"/api/v1/executions/{execution_id}/cancel", headers=owner.headers
        )
        assert response.status_code == 202, response.text
        stopped = await wait_for_status(client, owner, execution_id, seconds=10)
        assert stopped["status"] == "cancelled", stopped
        completed = datetime.fromisoformat(stopped["completed_at"]).timestamp()
        assert completed - asked_at < 1.0, "cancel must take effect within 1 s"
        assert all(step["status"] != "running" for step in stopped["steps"])

        assert await warehouse.snapshot() == before
        # Cancelling again is a conflict, not a second cancel.
        cancel_url = f"/api/v1/executions/{execution_id}/cancel"
        again = await client.post(cancel_url, headers=owner.headers)
        assert again.status_code == 409
    assert not slow_server.server_errors()


async def test_killed_server_leaves_destinations_unchanged_and_run_crashed(server_factory):
    server = await server_factory(**SLOW_RUNS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        owner = await register_admin(client)
        warehouse = Warehouse(server, client, owner, "crashed")
        await warehouse.set_up()
        first = await wait_for_status(client, owner, await warehouse.run())
        assert first["status"] == "succeeded", first
        before = await warehouse.snapshot()

        write_sales_csv(warehouse.inbox, rows=BIG_FILE_ROWS)
        execution_id = await warehouse.run()
        await wait_until_mid_run(client, owner, execution_id)
        server.process.kill()  # SIGKILL: no clean-up code runs
        await server.process.wait()

        await server.start()  # same DATA_DIR, same database
        owner.access_token = (await _login_again(client, owner)).access_token
        crashed = await wait_for_status(client, owner, execution_id, seconds=30)
        assert crashed["status"] == "crashed", crashed
        assert crashed["error"]["message"]
        assert all(step["status"] not in ("running", "pending") for step in crashed["steps"])
        assert await warehouse.snapshot() == before

        # A crashed run can be retried; this time it finishes and publishes version 2.
        write_sales_csv(warehouse.inbox, rows=30)
        response = await client.post(
            f"/api/v1/executions/{execution_id}/retry", headers=owner.headers
        )
        assert response.status_code == 202, response.text
        retried = await wait_for_status(client, owner, response.json()["execution_id"])
        assert retried["status"] == "succeeded", (retried["error"], retried["steps"])
        assert retried["retry_of_id"] == execution_id
        dataset, table = await warehouse.snapshot()
        assert dataset["current_version"] == 2 and len(table) == 28
    assert not server.server_errors()


async def _login_again(client, account):
    from tests.conftest import login

    return await login(client, account.email)


async def test_retry_resumes_from_the_failed_step(slow_server):
    async with httpx.AsyncClient(base_url=slow_server.base_url, timeout=30) as client:
        owner = await register_admin(client)
        warehouse = Warehouse(slow_server, client, owner, "retried")
        # The SQLite file's place is taken by a directory: the table destination fails.
        (slow_server.data_dir / "retried.db").mkdir()
        await warehouse.set_up()
        failed = await wait_for_status(client, owner, await warehouse.run())
        assert failed["status"] == "failed", failed
        assert failed["error"]["node_id"] == "table"
        steps = {step["node_id"]: step["status"] for step in failed["steps"]}
        assert steps["table"] == "failed", failed["steps"]
        listed = await client.get(
            "/api/v1/datasets", headers=owner.headers, params={"q": "retried_ds"}
        )
        assert listed.json()["total"] == 0, "a failed run publishes no dataset version"

        shutil.rmtree(slow_server.data_dir / "retried.db")
        response = await client.post(
            f"/api/v1/executions/{failed['id']}/retry", headers=owner.headers
        )
        assert response.status_code == 202, response.text
        retried = await wait_for_status(client, owner, response.json()["execution_id"])
        assert retried["status"] == "succeeded", (retried["error"], retried["steps"])
        assert set(retried["result"]["reused"]) == {"src", "big", "tax"}
        assert len(warehouse.table()) == 8

        # Only failed, cancelled or crashed runs can be retried.
        again = await client.post(
            f"/api/v1/executions/{retried['id']}/retry", headers=owner.headers
        )
        assert again.status_code == 409
