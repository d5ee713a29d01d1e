"""Issue 5, "Done when" #1: the frontend's whole journey on the real server — connectors, a
React Flow canvas, validate, dry-run with injected rows, run, follow the run live on the
WebSocket, read the dataset, roll back, see the previous version."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.executions.helpers import (
    create_connector,
    create_pipeline,
    sales_canvas,
    start_run,
    wait_for_status,
    write_sales_csv,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Socket:
    """The frontend's view of /api/v1/ws: subscribe, then read events as they come."""

    def __init__(self, connection):
        self.connection = connection

    async def subscribe(self, *topics: str, since: int | None = None) -> None:
        message = {"type": "subscribe", "topics": list(topics)}
        if since is not None:
            message["since"] = since
        await self.connection.send(json.dumps(message))
        while True:
            reply = json.loads(await asyncio.wait_for(self.connection.recv(), 10))
            assert reply["type"] != "error", reply
            if reply["type"] == "subscribed":
                return

    async def events_until(self, final: set[str], seconds: float = 60) -> list[dict]:
        seen = []
        async with asyncio.timeout(seconds):
            while True:
                message = json.loads(await self.connection.recv())
                if message["type"] != "event":
                    continue
                seen.append(message)
                if message["event"] in final:
                    return seen


async def run_watched(server, client, editor, viewer, pipeline_id: str) -> tuple[str, list]:
    """`editor` starts a run that `viewer` follows on the WebSocket until it ends: the run's
    id and the events seen (the execution's own topic replayed from its start)."""
    async with websockets.connect(
        ws_url(server), subprotocols=["bearer", viewer.access_token]
    ) as connection:
        socket = Socket(connection)
        await socket.subscribe(f"pipeline:{pipeline_id}")
        execution_id = await start_run(client, editor, pipeline_id)
        await socket.subscribe(f"execution:{execution_id}", since=0)
        events = await socket.events_until({"execution.succeeded", "execution.failed"})
    return execution_id, events


def ws_url(server) -> str:
    return server.base_url.replace("http://", "ws://") + "/api/v1/ws"


async def dataset_named(client, who, name: str) -> dict:
    response = await client.get("/api/v1/datasets", headers=who.headers, params={"q": name})
    assert response.status_code == 200, response.text
    [summary] = [item for item in response.json()["items"] if item["name"] == name]
    detail = await client.get(f"/api/v1/datasets/{summary['id']}", headers=who.headers)
    assert detail.status_code == 200, detail.text
    return detail.json()


async def preview(client, who, dataset_id: str) -> list[dict]:
    response = await client.get(
        f"/api/v1/datasets/{dataset_id}/preview", headers=who.headers, params={"limit": 100}
    )
    assert response.status_code == 200, response.text
    return response.json()["rows"]


async def test_every_step_transition_is_published_and_stored(server, client, editor, viewer):
    """Step updates, progress and log lines are written behind a run, in batches: once it has
    finished, every one of them was published, in order, and the API shows their final
    state."""
    write_sales_csv(server.data_dir / "journal_in", rows=10)
    source = await create_connector(client, editor, "file", {"path": "journal_in"}, "journal")
    definition = sales_canvas(source, "journal_sales")
    pipeline = await create_pipeline(client, editor, definition, name="journal")
    execution_id, events = await run_watched(server, client, editor, viewer, pipeline["id"])
    own = [e for e in events if e["topic"] == f"execution:{execution_id}"]
    # One sequence per topic, with no gap: no event went missing.
    assert [e["seq"] for e in own] == list(range(1, len(own) + 1))
    assert own[-1]["event"] == "execution.succeeded", own[-1]["data"]
    nodes = ["src", "big", "tax", "ds"]
    for node_id in nodes:
        step_events = [e["event"] for e in own if e["data"].get("node_id") == node_id]
        assert step_events == ["step.started", "step.completed"], (node_id, step_events)
    progress = [e["data"]["progress"] for e in own if e["event"] == "execution.progress"]
    assert len(progress) == len(nodes) and progress == sorted(progress) and progress[-1] == 1

    execution = await wait_for_status(client, viewer, execution_id)
    assert execution["progress"] == 1
    steps = {step["node_id"]: step for step in execution["steps"]}
    assert all(
        step["status"] == "succeeded" and step["started_at"] <= step["completed_at"]
        for step in steps.values()
    )
    assert steps["src"]["rows_out"] == 10
    assert (steps["big"]["rows_in"], steps["big"]["rows_out"]) == (10, 8)
    response = await client.get(f"/api/v1/executions/{execution_id}/logs", headers=viewer.headers)
    messages = [line["message"] for line in response.json()["items"]]
    assert messages[0].startswith("run started")
    assert {message.split(":")[0] for message in messages[1:]} == set(nodes)


async def test_build_validate_dry_run_run_watch_read_roll_back(server, client, editor, viewer):
    write_sales_csv(server.data_dir / "e2e_in", rows=10)
    (server.data_dir / "e2e_out").mkdir()
    source = await create_connector(client, editor, "file", {"path": "e2e_in"}, "sales files")
    out = await create_connector(client, editor, "file", {"path": "e2e_out"}, "reports")
    definition = sales_canvas(source, "e2e_sales", out_connector=out)

    # Validate the canvas before saving: valid, with column schemas for the pickers.
    response = await client.post(
        "/api/v1/pipelines/validate", headers=editor.headers, json={"visual_definition": definition}
    )
    assert response.status_code == 200, response.text
    validation = response.json()
    assert validation["valid"] is True, validation["errors"]
    assert [f["name"] for f in validation["node_schemas"]["tax"]] == [
        "id",
        "region",
        "amount",
        "gross",
    ]

    pipeline = await create_pipeline(client, editor, definition, name="e2e sales")

    # Dry run on injected rows: per-node results, nothing written anywhere.
    response = await client.post(
        f"/api/v1/pipelines/{pipeline['id']}/dry-run",
        headers=editor.headers,
        json={
            "test_data": {
                "src": [
                    {"id": 1, "region": "north", "amount": 5.0},
                    {"id": 2, "region": "south", "amount": 50.0},
                ]
            }
        },
    )
    assert response.status_code == 200, response.text
    dry = response.json()
    assert dry["status"] == "succeeded", dry
    assert dry["nodes"]["big"]["rows_out"] == 1
    assert dry["nodes"]["tax"]["preview"] == [
        {"id": 2, "region": "south", "amount": 50.0, "gross": 60.0}
    ]
    assert dry["nodes"]["ds"]["would_write"]["rows"] == 1
    listed = await client.get("/api/v1/datasets", headers=editor.headers, params={"q": "e2e_sales"})
    assert listed.json()["total"] == 0
    assert not (server.data_dir / "e2e_out" / "report.csv").exists()

    # Run, following it live on the WebSocket like the frontend does.
    execution_id, events = await run_watched(server, client, editor, viewer, pipeline["id"])
    types = [e["event"] for e in events if e["topic"] == f"execution:{execution_id}"]
    assert types[0] == "execution.queued"
    assert "execution.started" in types
    assert types[-1] == "execution.succeeded", events[-1]["data"]
    completed = {e["data"]["node_id"] for e in events if e["event"] == "step.completed"}
    assert completed == {"src", "big", "tax", "ds", "file_out"}
    seqs = [e["seq"] for e in events if e["topic"] == f"execution:{execution_id}"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    first = await wait_for_status(client, viewer, execution_id)
    assert first["status"] == "succeeded"
    assert first["version"] == pipeline["version"]
    steps = {step["node_id"]: step for step in first["steps"]}
    assert steps["src"]["rows_out"] == 10 and steps["big"]["rows_out"] == 8
    assert all(step["status"] == "succeeded" for step in steps.values())
    logs = await client.get(f"/api/v1/executions/{execution_id}/logs", headers=viewer.headers)
    assert logs.status_code == 200 and logs.json()["items"], logs.text

    dataset = await dataset_named(client, viewer, "e2e_sales")
    assert dataset["current_version"] == 1
    assert [f["name"] for f in dataset["schema"]] == ["id", "region", "amount", "gross"]
    v1_rows = await preview(client, viewer, dataset["id"])
    assert sorted(row["id"] for row in v1_rows) == list(range(3, 11))
    assert (server.data_dir / "e2e_out" / "report.csv").read_text().count("\n") == 9

    # New data, second run: version 2. Rolling it back brings version 1 back.
    write_sales_csv(server.data_dir / "e2e_in", rows=20)
    second_id = await start_run(client, editor, pipeline["id"])
    second = await wait_for_status(client, editor, second_id)
    assert second["status"] == "succeeded", second
    dataset = await dataset_named(client, viewer, "e2e_sales")
    assert dataset["current_version"] == 2
    assert len(await preview(client, viewer, dataset["id"])) == 18

    response = await client.post(f"/api/v1/executions/{second_id}/rollback", headers=editor.headers)
    assert response.status_code == 200, response.text
    assert (await wait_for_status(client, viewer, second_id))["status"] == "rolled_back"
    dataset = await dataset_named(client, viewer, "e2e_sales")
    assert dataset["current_version"] == 1
    assert [v["version"] for v in dataset["versions"]] == [2, 1]
    assert await preview(client, viewer, dataset["id"]) == v1_rows

    # A rolled-back run cannot be rolled back twice; viewers cannot roll back at all.
    again = await client.post(f"/api/v1/executions/{second_id}/rollback", headers=editor.headers)
    assert again.status_code == 409
    forbidden = await client.post(
        f"/api/v1/executions/{execution_id}/rollback", headers=viewer.headers
    )
    assert forbidden.status_code == 403
