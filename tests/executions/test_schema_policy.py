"""The pipeline's schema policy holds destinations to the schema they already have."""

from __future__ import annotations

import polars as pl
import pytest

from tests.executions.helpers import (
    create_connector,
    create_pipeline,
    sales_canvas,
    start_run,
    wait_for_status,
    write_sales_csv,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def dataset_detail(client, who, name: str) -> dict:
    listed = await client.get("/api/v1/datasets", headers=who.headers, params={"q": name})
    [item] = listed.json()["items"]
    return (await client.get(f"/api/v1/datasets/{item['id']}", headers=who.headers)).json()


async def test_frozen_schema_refuses_new_columns_and_discard_value_drops_them(
    server, client, editor
):
    inbox = server.data_dir / "policy_in"
    write_sales_csv(inbox)
    source = await create_connector(client, editor, "file", {"path": "policy_in"})
    pipeline = await create_pipeline(
        client, editor, sales_canvas(source, "policy_ds"), schema_policy="freeze"
    )
    first = await wait_for_status(client, editor, await start_run(client, editor, pipeline["id"]))
    assert first["status"] == "succeeded", first

    csv = inbox / "sales.csv"
    pl.read_csv(csv).with_columns(note=pl.lit("late")).write_csv(csv)
    frozen = await wait_for_status(client, editor, await start_run(client, editor, pipeline["id"]))
    assert frozen["status"] == "failed"
    assert "frozen schema" in frozen["error"]["message"]
    assert frozen["error"]["node_id"] == "ds"
    dataset = await dataset_detail(client, editor, "policy_ds")
    assert dataset["current_version"] == 1 and len(dataset["versions"]) == 1

    response = await client.patch(
        f"/api/v1/pipelines/{pipeline['id']}",
        headers=editor.headers,
        json={"schema_policy": "discard_value"},
    )
    assert response.status_code == 200
    relaxed = await wait_for_status(client, editor, await start_run(client, editor, pipeline["id"]))
    assert relaxed["status"] == "succeeded", relaxed
    dataset = await dataset_detail(client, editor, "policy_ds")
    assert dataset["current_version"] == 2
    assert [f["name"] for f in dataset["schema"]] == ["id", "region", "amount", "gross"]
    logs = await client.get(
        f"/api/v1/executions/{relaxed['id']}/logs",
        headers=editor.headers,
        params={"level": "WARNING"},
    )
    assert any("note" in line["message"] for line in logs.json()["items"])
