"""What the execution tests share: connectors, React Flow canvases, polling and events."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from tests.conftest import Account

TERMINAL = {"succeeded", "failed", "cancelled", "crashed", "rolled_back"}


def write_sales_csv(directory: Path, rows: int = 10, name: str = "sales.csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(
        {
            "id": list(range(1, rows + 1)),
            "region": [("north", "south", "east")[i % 3] for i in range(rows)],
            "amount": [float(i * 10) for i in range(rows)],
        }
    )
    path = directory / name
    frame.write_csv(path)
    return path


async def create_connector(
    client: httpx.AsyncClient, who: Account, type_: str, config: dict[str, Any], name: str = "c"
) -> str:
    response = await client.post(
        "/api/v1/connectors",
        headers=who.headers,
        json={"name": name, "type": type_, "config": config},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def node(node_id: str, node_type: str, config: dict[str, Any], x: float = 0) -> dict[str, Any]:
    """A node as React Flow saves it: UI keys around, the catalog type and config in data."""
    return {
        "id": node_id,
        "type": "pipelineNode",
        "position": {"x": x, "y": 0},
        "data": {"label": node_id, "node_type": node_type, "config": config},
        "width": 180,
        "height": 60,
    }


def edge(source: str, target: str, source_handle: str = "out", target_handle: str = "in"):
    return {
        "id": f"e-{source}-{target}",
        "source": source,
        "target": target,
        "sourceHandle": source_handle,
        "targetHandle": target_handle,
    }


def canvas(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 1}}


def sales_canvas(
    file_connector: str, dataset: str, out_connector: str | None = None, stream="sales.csv"
) -> dict[str, Any]:
    """CSV → filter → derive → dataset (and a CSV file destination when given)."""
    nodes = [
        node("src", "source.file", {"connector_id": file_connector, "stream": stream}),
        node("big", "transform.filter", {"expression": "amount >= 20"}, 200),
        node(
            "tax",
            "transform.derive",
            {"columns": [{"name": "gross", "expression": "amount * 1.2"}]},
            400,
        ),
        node("ds", "destination.dataset", {"dataset": dataset, "mode": "replace"}, 600),
    ]
    edges = [edge("src", "big"), edge("big", "tax"), edge("tax", "ds")]
    if out_connector:
        nodes.append(
            node(
                "file_out",
                "destination.file",
                {"connector_id": out_connector, "stream": "report.csv", "mode": "replace"},
                600,
            )
        )
        edges.append(edge("tax", "file_out"))
    return canvas(nodes, edges)


async def create_pipeline(
    client: httpx.AsyncClient, who: Account, definition: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/pipelines",
        headers=who.headers,
        json={"name": extra.pop("name", "sales"), "visual_definition": definition, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def start_run(client: httpx.AsyncClient, who: Account, pipeline_id: str) -> str:
    response = await client.post(f"/api/v1/pipelines/{pipeline_id}/run", headers=who.headers)
    assert response.status_code == 202, response.text
    return response.json()["execution_id"]


async def wait_for_status(
    client: httpx.AsyncClient,
    who: Account,
    execution_id: str,
    statuses: set[str] = TERMINAL,
    seconds: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(f"/api/v1/executions/{execution_id}", headers=who.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"execution stuck in {body['status']}: {body}"
        await asyncio.sleep(0.05)


async def register_admin(client: httpx.AsyncClient) -> Account:
    """The first user of a dedicated server (hence its admin, who may also edit)."""
    from tests.conftest import PASSWORD, login, unique_email

    email = unique_email("owner")
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Ed"}
    )
    assert response.status_code == 201, response.text
    return await login(client, email)


def table_rows(database: Path, table: str) -> list[tuple]:
    """What a user of the destination database sees (read directly, not through the API)."""
    import sqlite3

    with sqlite3.connect(database) as conn:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()


def warehouse_canvas(file_connector: str, sqlite_connector: str, dataset: str) -> dict[str, Any]:
    """CSV → filter → derive → (managed dataset, SQLite table `sales`)."""
    definition = sales_canvas(file_connector, dataset)
    definition["nodes"].append(
        node(
            "table",
            "destination.sqlite",
            {"connector_id": sqlite_connector, "stream": "sales", "mode": "replace"},
            600,
        )
    )
    definition["edges"].append(edge("tax", "table"))
    return definition


async def wait_until_mid_run(
    client: httpx.AsyncClient, who: Account, execution_id: str, seconds: float = 60
) -> dict[str, Any]:
    """Until the run is going and rows are flowing through the source (it is mid-way)."""
    deadline = time.monotonic() + seconds
    while True:
        body = await wait_for_status(client, who, execution_id, {"running"} | TERMINAL)
        assert body["status"] == "running", f"the run ended before it could be interrupted: {body}"
        steps = {step["node_id"]: step for step in body["steps"]}
        if steps.get("src", {}).get("status") == "running":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
