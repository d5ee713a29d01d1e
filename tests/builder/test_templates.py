"""Pipeline templates: built-ins seeded once, CRUD, instantiate with validated parameters,
save a pipeline as a template."""

from __future__ import annotations

import pytest

from tests.executions.helpers import (
    canvas,
    create_connector,
    create_pipeline,
    node,
    start_run,
    wait_for_status,
    write_sales_csv,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
BUILTINS = {"File to dataset", "Database table sync", "API to database with dedupe"}


async def builtin_templates(client, who) -> dict[str, dict]:
    response = await client.get(
        "/api/v1/pipeline-templates", headers=who.headers, params={"builtin": "true", "limit": 100}
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    names = [item["name"] for item in items]
    assert len(names) == len(set(names)), "built-ins are seeded once"
    return {item["name"]: item for item in items}


async def test_builtin_templates_are_there_once(client, viewer):
    assert set(await builtin_templates(client, viewer)) == BUILTINS
    for template in (await builtin_templates(client, viewer)).values():
        detail = await client.get(
            f"/api/v1/pipeline-templates/{template['id']}", headers=viewer.headers
        )
        assert detail.status_code == 200
        assert detail.json()["parameters"]["type"] == "object"
        assert detail.json()["visual_definition"]["nodes"]


async def test_instantiate_file_to_dataset_and_run_it(server, client, editor):
    write_sales_csv(server.data_dir / "template_in")
    source = await create_connector(client, editor, "file", {"path": "template_in"})
    template = (await builtin_templates(client, editor))["File to dataset"]
    url = f"/api/v1/pipeline-templates/{template['id']}/instantiate"

    missing = await client.post(
        url, headers=editor.headers, json={"name": "from template", "parameters": {}}
    )
    assert missing.status_code == 422
    assert "/parameters/connector_id" in {e["pointer"] for e in missing.json()["errors"]}
    wrong = await client.post(
        url,
        headers=editor.headers,
        json={
            "name": "from template",
            "parameters": {"connector_id": source, "stream": "sales.csv", "dataset": "../up"},
        },
    )
    assert wrong.status_code == 422

    response = await client.post(
        url,
        headers=editor.headers,
        json={
            "name": "from template",
            "parameters": {"connector_id": source, "stream": "sales.csv", "dataset": "tpl_ds"},
        },
    )
    assert response.status_code == 201, response.text
    pipeline = response.json()
    assert pipeline["execution_graph"]["nodes"]
    config = pipeline["visual_definition"]["nodes"][1]["data"]["config"]
    assert config == {"dataset": "tpl_ds", "mode": "replace"}  # the default filled in
    done = await wait_for_status(client, editor, await start_run(client, editor, pipeline["id"]))
    assert done["status"] == "succeeded", done


async def test_template_crud_and_save_as(client, editor, viewer):
    definition = canvas(
        [
            node("rows", "source.inline", {"rows": [{"n": 1}]}),
            node("cut", "transform.limit", {"n": "{{how_many}}"}, 200),
            node("ds", "destination.dataset", {"dataset": "{{name}}_out"}, 400),
        ],
        [],
    )
    parameters = {
        "type": "object",
        "properties": {
            "how_many": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
        },
        "required": ["how_many", "name"],
    }
    response = await client.post(
        "/api/v1/pipeline-templates",
        headers=editor.headers,
        json={"name": "limit", "parameters": parameters, "visual_definition": definition},
    )
    assert response.status_code == 201, response.text
    template = response.json()
    assert template["builtin"] is False

    instance = await client.post(
        f"/api/v1/pipeline-templates/{template['id']}/instantiate",
        headers=editor.headers,
        json={"name": "limited", "parameters": {"how_many": 3, "name": "abc"}},
    )
    assert instance.status_code == 201, instance.text
    nodes = instance.json()["visual_definition"]["nodes"]
    assert nodes[1]["data"]["config"] == {"n": 3}  # a whole placeholder keeps its type
    assert nodes[2]["data"]["config"] == {"dataset": "abc_out"}

    patched = await client.patch(
        f"/api/v1/pipeline-templates/{template['id']}",
        headers=editor.headers,
        json={"description": "cut rows"},
    )
    assert patched.status_code == 200 and patched.json()["description"] == "cut rows"

    pipeline = await create_pipeline(client, editor, definition, name="to save")
    saved = await client.post(
        f"/api/v1/pipelines/{pipeline['id']}/save-as-template",
        headers=editor.headers,
        json={"name": "saved", "parameters": parameters},
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["visual_definition"]["nodes"] == pipeline["visual_definition"]["nodes"]

    assert (
        await client.get(f"/api/v1/pipeline-templates/{template['id']}", headers=viewer.headers)
    ).status_code == 200
    for method, path in (
        ("post", "/api/v1/pipeline-templates"),
        ("patch", f"/api/v1/pipeline-templates/{template['id']}"),
        ("delete", f"/api/v1/pipeline-templates/{template['id']}"),
        ("post", f"/api/v1/pipeline-templates/{template['id']}/instantiate"),
        ("post", f"/api/v1/pipelines/{pipeline['id']}/save-as-template"),
    ):
        response = await client.request(method, path, headers=viewer.headers, json={})
        assert response.status_code == 403, (method, path)

    deleted = await client.delete(
        f"/api/v1/pipeline-templates/{template['id']}", headers=editor.headers
    )
    assert deleted.status_code == 204
    gone = await client.get(f"/api/v1/pipeline-templates/{template['id']}", headers=editor.headers)
    assert gone.status_code == 404


BAD_TEMPLATES = [
    # A placeholder the parameters schema does not declare.
    {
        "name": "t",
        "parameters": {"type": "object", "properties": {}},
        "visual_definition": canvas([node("a", "source.inline", {"rows": "{{rows}}"})], []),
    },
    # Not a JSON Schema.
    {
        "name": "t",
        "parameters": {"type": "object", "properties": {"x": {"type": "nonsense"}}},
        "visual_definition": canvas([], []),
    },
    {"name": "t", "parameters": {"type": "array"}, "visual_definition": canvas([], [])},
    {"name": "", "visual_definition": canvas([], [])},
    {"name": "t"},
    {"name": "t", "visual_definition": canvas([], []), "owner": "me"},
]


@pytest.mark.parametrize("body", BAD_TEMPLATES)
async def test_bad_templates_are_refused(client, editor, body):
    response = await client.post("/api/v1/pipeline-templates", headers=editor.headers, json=body)
    assert response.status_code == 422, response.text


async def test_unknown_templates_are_404(client, editor):
    for path in (
        "/api/v1/pipeline-templates/not-a-uuid",
        "/api/v1/pipeline-templates/00000000-0000-0000-0000-000000000000",
    ):
        assert (await client.get(path, headers=editor.headers)).status_code == 404
        response = await client.post(
            f"{path}/instantiate", headers=editor.headers, json={"name": "x"}
        )
        assert response.status_code == 404
    response = await client.post(
        "/api/v1/pipelines/00000000-0000-0000-0000-000000000000/save-as-template",
        headers=editor.headers,
        json={"name": "x"},
    )
    assert response.status_code == 404
