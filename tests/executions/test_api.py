"""Execution and dataset endpoints: lists, logs paging, queueing, roles and bad input."""

from __future__ import annotations

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
NO_SUCH = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def finished_run(server, client, editor) -> tuple[dict, dict]:
    write_sales_csv(server.data_dir / "api_in")
    source = await create_connector(client, editor, "file", {"path": "api_in"})
    pipeline = await create_pipeline(client, editor, sales_canvas(source, "api_ds"))
    run = await wait_for_status(client, editor, await start_run(client, editor, pipeline["id"]))
    assert run["status"] == "succeeded", run
    return pipeline, run


async def test_lists_and_logs_for_viewers(client, viewer, finished_run):
    pipeline, run = finished_run
    listed = await client.get(
        f"/api/v1/pipelines/{pipeline['id']}/executions", headers=viewer.headers
    )
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [run["id"]]
    only_failed = await client.get(
        f"/api/v1/pipelines/{pipeline['id']}/executions",
        headers=viewer.headers,
        params={"status": "failed"},
    )
    assert only_failed.json()["total"] == 0

    logs_url = f"/api/v1/executions/{run['id']}/logs"
    everything = (await client.get(logs_url, headers=viewer.headers)).json()
    assert len(everything["items"]) >= 2
    first = await client.get(logs_url, headers=viewer.headers, params={"limit": 1})
    page = first.json()
    assert len(page["items"]) == 1
    rest = await client.get(logs_url, headers=viewer.headers, params={"after": page["next_cursor"]})
    assert [line["id"] for line in page["items"] + rest.json()["items"]] == [
        line["id"] for line in everything["items"]
    ]
    errors_only = await client.get(logs_url, headers=viewer.headers, params={"level": "ERROR"})
    assert errors_only.json()["items"] == []
    assert errors_only.json()["next_cursor"] is None

    datasets = await client.get("/api/v1/datasets", headers=viewer.headers, params={"q": "api_ds"})
    [dataset] = datasets.json()["items"]
    assert dataset["pipeline_id"] == pipeline["id"]
    preview = await client.get(
        f"/api/v1/datasets/{dataset['id']}/preview", headers=viewer.headers, params={"limit": 2}
    )
    assert preview.status_code == 200 and len(preview.json()["rows"]) == 2


async def test_viewers_cannot_change_executions(client, viewer, finished_run):
    pipeline, run = finished_run
    for path in (
        f"/api/v1/pipelines/{pipeline['id']}/run",
        f"/api/v1/executions/{run['id']}/cancel",
        f"/api/v1/executions/{run['id']}/retry",
        f"/api/v1/executions/{run['id']}/rollback",
    ):
        response = await client.post(path, headers=viewer.headers)
        assert response.status_code == 403, path


async def test_actions_that_do_not_fit_the_status_are_conflicts(client, editor, finished_run):
    _, run = finished_run
    for action in ("cancel", "retry"):
        response = await client.post(
            f"/api/v1/executions/{run['id']}/{action}", headers=editor.headers
        )
        assert response.status_code == 409, (action, response.text)


BAD_REQUESTS = [
    ("get", "/api/v1/executions/not-a-uuid", None, 404),
    ("get", f"/api/v1/executions/{NO_SUCH}", None, 404),
    ("get", f"/api/v1/executions/{NO_SUCH}/logs", None, 404),
    ("post", f"/api/v1/executions/{NO_SUCH}/cancel", None, 404),
    ("post", f"/api/v1/executions/{NO_SUCH}/retry", None, 404),
    ("post", f"/api/v1/executions/{NO_SUCH}/rollback", None, 404),
    ("post", f"/api/v1/pipelines/{NO_SUCH}/run", None, 404),
    ("get", f"/api/v1/pipelines/{NO_SUCH}/executions", None, 404),
    ("get", "/api/v1/datasets/not-a-uuid", None, 404),
    ("get", f"/api/v1/datasets/{NO_SUCH}", None, 404),
    ("get", f"/api/v1/datasets/{NO_SUCH}/preview", None, 404),
    ("get", "/api/v1/datasets?sort=secret", None, 422),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
async def test_unknown_things_are_4xx(client, editor, method, path, body, status):
    response = await client.request(method, path, headers=editor.headers, json=body)
    assert response.status_code == status, response.text


async def test_bad_parameters_are_422(client, editor, finished_run):
    pipeline, run = finished_run
    run_url = f"/api/v1/pipelines/{pipeline['id']}/run"
    for body in (
        {"parameters": "x"},
        {"unknown": 1},
        {"parameters": {str(i): i for i in range(101)}},
    ):
        response = await client.post(run_url, headers=editor.headers, json=body)
        assert response.status_code == 422, (body, response.text)
    malformed = await client.post(
        run_url, headers={**editor.headers, "content-type": "application/json"}, content=b"{"
    )
    assert malformed.status_code == 400
    logs_url = f"/api/v1/executions/{run['id']}/logs"
    for params in ({"level": "LOUD"}, {"after": -1}, {"limit": 0}, {"after": "x"}):
        response = await client.get(logs_url, headers=editor.headers, params=params)
        assert response.status_code == 422, params
    listing = await client.get(
        f"/api/v1/pipelines/{pipeline['id']}/executions",
        headers=editor.headers,
        params={"status": "sleeping"},
    )
    assert listing.status_code == 422
    datasets = await client.get("/api/v1/datasets", headers=editor.headers, params={"q": "api_ds"})
    dataset_id = datasets.json()["items"][0]["id"]
    for params in ({"limit": 0}, {"limit": 5000}, {"version": 0}):
        response = await client.get(
            f"/api/v1/datasets/{dataset_id}/preview", headers=editor.headers, params=params
        )
        assert response.status_code == 422, params
    unknown_version = await client.get(
        f"/api/v1/datasets/{dataset_id}/preview", headers=editor.headers, params={"version": 99}
    )
    assert unknown_version.status_code == 404
