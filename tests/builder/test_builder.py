"""The builder's endpoints as the canvas uses them: palette, validation a canvas can
highlight, dry runs of unsaved canvases, perf tests, version diffs; bad input is a 4xx."""

from __future__ import annotations

import pytest

from tests.executions.helpers import (
    canvas,
    create_connector,
    create_pipeline,
    edge,
    node,
    sales_canvas,
    start_run,
    wait_for_status,
    write_sales_csv,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def inline_canvas(rows=None, expression="amount > 10") -> dict:
    rows = rows or [{"id": 1, "amount": 5}, {"id": 2, "amount": 50}]
    return canvas(
        [
            node("rows", "source.inline", {"rows": rows}),
            node("keep", "transform.filter", {"expression": expression}, 200),
            node("ds", "destination.dataset", {"dataset": "never_written"}, 400),
        ],
        [edge("rows", "keep"), edge("keep", "ds")],
    )


async def test_node_palette_for_viewers(client, viewer):
    response = await client.get("/api/v1/pipeline-builder/node-types", headers=viewer.headers)
    assert response.status_code == 200
    by_type = {item["type"]: item for item in response.json()}
    for expected in ("source.file", "source.inline", "transform.filter", "transform.join"):
        assert expected in by_type
    assert by_type["destination.dataset"]["category"] == "destination"
    join = by_type["transform.join"]
    assert join["inputs"] == ["left", "right"] and join["outputs"] == ["out"]
    assert join["config_schema"]["type"] == "object" and "ui:order" in join["ui_schema"]
    anonymous = await client.get("/api/v1/pipeline-builder/node-types")
    assert anonymous.status_code == 401


async def test_validation_points_at_what_the_canvas_highlights(server, client, editor):
    write_sales_csv(server.data_dir / "validate_in")
    source = await create_connector(client, editor, "file", {"path": "validate_in"})
    good = sales_canvas(source, "validate_ds")
    response = await client.post(
        "/api/v1/pipelines/validate", headers=editor.headers, json={"visual_definition": good}
    )
    assert response.json()["valid"] is True
    assert {"src", "big", "tax"} <= set(response.json()["node_schemas"])

    bad = sales_canvas(source, "validate_ds")
    bad["nodes"][1]["data"]["config"] = {"expression": "no_such_column > 1"}
    bad["nodes"][2]["data"]["config"] = {}
    bad["edges"].append(edge("tax", "ghost"))
    response = await client.post(
        "/api/v1/pipelines/validate", headers=editor.headers, json={"visual_definition": bad}
    )
    assert response.status_code == 200
    result = response.json()
    assert result["valid"] is False
    by_node = {(e.get("node_id"), e["code"]) for e in result["errors"]}
    assert any(node_id == "big" for node_id, _ in by_node), result["errors"]
    pointers = {e.get("pointer") for e in result["errors"]}
    assert "/nodes/2/data/config/columns" in pointers
    assert any(e.get("edge_id") == "e-tax-ghost" for e in result["errors"])

    cyclic = inline_canvas()
    cyclic["edges"].append(edge("keep", "keep"))
    response = await client.post(
        "/api/v1/pipelines/validate", headers=editor.headers, json={"visual_definition": cyclic}
    )
    assert response.json()["valid"] is False


async def test_a_canvas_that_does_not_compile_saves_but_does_not_run(client, editor):
    broken = inline_canvas()
    broken["edges"].append(edge("keep", "nowhere"))
    pipeline = await create_pipeline(client, editor, broken, name="unfinished")
    assert pipeline["execution_graph"] == {}
    validation = await client.post(
        f"/api/v1/pipelines/{pipeline['id']}/validate", headers=editor.headers
    )
    assert validation.status_code == 200 and validation.json()["valid"] is False
    run = await client.post(f"/api/v1/pipelines/{pipeline['id']}/run", headers=editor.headers)
    assert run.status_code == 422
    assert run.json()["errors"] and run.json()["errors"][0]["message"]


async def test_dry_run_of_an_unsaved_canvas_writes_nothing(client, editor):
    body = {
        "visual_definition": inline_canvas(),
        "test_data": {"rows": [{"id": 9, "amount": 99}, {"id": 8, "amount": 1}]},
    }
    response = await client.post("/api/v1/pipelines/dry-run", headers=editor.headers, json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "succeeded"
    assert result["nodes"]["keep"]["preview"] == [{"id": 9, "amount": 99}]
    assert result["nodes"]["keep"]["schema"][0]["name"] == "id"
    listed = await client.get(
        "/api/v1/datasets", headers=editor.headers, params={"q": "never_written"}
    )
    assert listed.json()["total"] == 0

    failing = {"visual_definition": inline_canvas(expression="missing > 1")}
    response = await client.post("/api/v1/pipelines/dry-run", headers=editor.headers, json=failing)
    assert response.status_code == 200
    assert response.json()["nodes"]["keep"]["status"] == "failed"
    assert response.json()["nodes"]["ds"]["status"] == "skipped"


async def test_perf_test_reports_rows_per_second_and_the_slowest_node(client, editor):
    pipeline = await create_pipeline(client, editor, inline_canvas(), name="perf")
    response = await client.post(
        f"/api/v1/pipelines/{pipeline['id']}/perf-test", headers=editor.headers, json={"rows": 5000}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["rows"] == 5000
    assert result["nodes"]["rows"]["rows_out"] == 5000
    assert result["nodes"]["keep"]["rows_per_s"] > 0
    assert result["slowest_node"] in result["nodes"]
    listed = await client.get(
        "/api/v1/datasets", headers=editor.headers, params={"q": "never_written"}
    )
    assert listed.json()["total"] == 0


async def test_version_diff(client, editor):
    pipeline = await create_pipeline(client, editor, inline_canvas(), name="diffed")
    changed = inline_canvas(expression="amount > 20")
    changed["nodes"].append(node("extra", "transform.limit", {"n": 5}, 300))
    changed["nodes"][0]["position"] = {"x": 999, "y": 999}
    changed["edges"] = [edge("rows", "keep"), edge("keep", "extra"), edge("extra", "ds")]
    response = await client.patch(
        f"/api/v1/pipelines/{pipeline['id']}",
        headers=editor.headers,
        json={"visual_definition": changed, "name": "diffed v2"},
    )
    assert response.status_code == 200, response.text
    diff = await client.get(
        f"/api/v1/pipelines/{pipeline['id']}/versions/2/diff", headers=editor.headers
    )
    assert diff.status_code == 200, diff.text
    result = diff.json()
    assert result["version"] == 2 and result["against"] == 1
    assert result["fields"] == ["name"]
    assert result["nodes"]["added"] == ["extra"] and result["nodes"]["removed"] == []
    changes = {c["id"]: c["fields"] for c in result["nodes"]["changed"]}
    assert changes == {"keep": ["data.config"], "rows": ["position"]}
    assert result["edges"]["added"] == ["e-extra-ds", "e-keep-extra"]
    assert result["edges"]["removed"] == ["e-keep-ds"]

    explicit = await client.get(
        f"/api/v1/pipelines/{pipeline['id']}/versions/1/diff",
        headers=editor.headers,
        params={"against": 2},
    )
    assert explicit.json()["nodes"]["removed"] == ["extra"]
    for path, params, status in (
        ("versions/1/diff", {}, 404),  # nothing before version 1
        ("versions/7/diff", {}, 404),
        ("versions/2/diff", {"against": "two"}, 422),
        ("versions/2/diff", {"against": 0}, 422),
    ):
        response = await client.get(
            f"/api/v1/pipelines/{pipeline['id']}/{path}", headers=editor.headers, params=params
        )
        assert response.status_code == status, (path, params, response.text)


async def test_runs_record_the_version_they_ran(server, client, editor):
    write_sales_csv(server.data_dir / "versions_in")
    source = await create_connector(client, editor, "file", {"path": "versions_in"})
    pipeline = await create_pipeline(client, editor, sales_canvas(source, "versions_ds"))
    first = await wait_for_status(client, editor, await start_run(client, editor, pipeline["id"]))
    response = await client.patch(
        f"/api/v1/pipelines/{pipeline['id']}", headers=editor.headers, json={"description": "v2"}
    )
    assert response.status_code == 200
    second = await wait_for_status(client, editor, await start_run(client, editor, pipeline["id"]))
    assert (first["version"], second["version"]) == (1, 2)


BAD_BUILDER_REQUESTS = [
    ("post", "/api/v1/pipelines/validate", None, 400),
    ("post", "/api/v1/pipelines/validate", {"visual_definition": []}, 422),
    ("post", "/api/v1/pipelines/validate", {"visual_definition": {}, "extra": 1}, 422),
    ("post", "/api/v1/pipelines/dry-run", {"visual_definition": {}, "sample_limit": 0}, 422),
    (
        "post",
        "/api/v1/pipelines/dry-run",
        {"visual_definition": {}, "test_data": {"x": [{}] * 5001}},
        422,
    ),
    ("post", "/api/v1/pipelines/dry-run", {"visual_definition": {}, "test_data": [1]}, 422),
    ("post", "/api/v1/pipelines/not-a-uuid/validate", None, 404),
    ("post", "/api/v1/pipelines/00000000-0000-0000-0000-000000000000/dry-run", {}, 404),
    ("post", "/api/v1/pipelines/00000000-0000-0000-0000-000000000000/perf-test", {}, 404),
    ("get", "/api/v1/pipelines/not-a-uuid/versions/1/diff", None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_BUILDER_REQUESTS)
async def test_bad_builder_input_is_a_4xx(client, editor, method, path, body, status):
    response = await client.request(method, path, headers=editor.headers, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_bad_perf_and_dry_run_bodies(client, editor):
    pipeline = await create_pipeline(client, editor, inline_canvas(), name="bounds")
    base = f"/api/v1/pipelines/{pipeline['id']}"
    for path, body in (
        ("perf-test", {"rows": 0}),
        ("perf-test", {"rows": 10**9}),
        ("perf-test", {"rows": "many"}),
        ("dry-run", {"sample_limit": 10**6}),
        ("dry-run", {"test_data": {"rows": "nope"}}),
    ):
        response = await client.post(f"{base}/{path}", headers=editor.headers, json=body)
        assert response.status_code == 422, (path, body, response.text)


async def test_viewers_cannot_use_the_builder_actions(client, viewer, editor):
    pipeline = await create_pipeline(client, editor, inline_canvas(), name="roles")
    for path in (
        "/api/v1/pipelines/validate",
        "/api/v1/pipelines/dry-run",
        f"/api/v1/pipelines/{pipeline['id']}/validate",
        f"/api/v1/pipelines/{pipeline['id']}/dry-run",
        f"/api/v1/pipelines/{pipeline['id']}/perf-test",
    ):
        response = await client.post(
            path, headers=viewer.headers, json={"visual_definition": inline_canvas()}
        )
        assert response.status_code == 403, path
    diff = await client.get(
        f"/api/v1/pipelines/{pipeline['id']}/versions/1/diff",
        headers=viewer.headers,
        params={"against": 1},
    )
    assert diff.status_code == 200
