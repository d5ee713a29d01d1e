"""Mappings through the API: saved with validation pointers, suggested, validated, turned into
a transformation the pipeline engine runs, templates; roles and bad input."""

from __future__ import annotations

import uuid

import pytest

from tests.executions.helpers import canvas, edge, node

pytestmark = pytest.mark.asyncio(loop_scope="session")

SOURCE = [
    {"name": "CustomerID", "type": "integer", "nullable": False},
    {"name": "e_mail", "type": "string"},
    {"name": "Surname", "type": "string"},
    {"name": "signup_ts", "type": "datetime"},
]
TARGET = [
    {"name": "customer_id", "type": "string", "nullable": False},
    {"name": "email", "type": "string"},
    {"name": "last_name", "type": "string"},
    {"name": "country", "type": "string", "nullable": False},
]
RULES = [
    {"target": "customer_id", "source": "CustomerID"},
    {"target": "email", "expression": "lower(e_mail)"},
    {"target": "last_name", "source": "Surname"},
    {"target": "country", "default": "FR"},
]


async def create_mapping(client, account, **overrides) -> dict:
    body = {
        "name": f"map-{uuid.uuid4().hex[:6]}",
        "source_schema": SOURCE,
        "target_schema": TARGET,
        "rules": RULES,
        **overrides,
    }
    response = await client.post("/api/v1/mappings", headers=account.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_suggestions_by_name_and_type(client, viewer):
    response = await client.post(
        "/api/v1/mappings/suggest",
        headers=viewer.headers,
        json={"source_schema": {"name": "crm", "fields": SOURCE}, "target_schema": TARGET},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    pairs = {s["target"]: s["source"] for s in body["suggestions"]}
    assert pairs == {"customer_id": "CustomerID", "email": "e_mail", "last_name": "Surname"}
    assert body["unmapped_targets"] == ["country"]
    cast = {s["target"]: s.get("cast") for s in body["suggestions"]}
    assert cast["customer_id"] == "string"  # integer source, string target
    # country is required and unmapped: the suggestion is not a valid mapping yet.
    assert body["errors"] == [
        {"pointer": "/target_schema/3", "message": "required target 'country' has no rule"}
    ]


async def test_save_read_update_validate_delete(client, editor, viewer):
    mapping = await create_mapping(client, editor)
    url = f"/api/v1/mappings/{mapping['id']}"
    assert mapping["rules"] == RULES and mapping["warnings"] == []
    fetched = await client.get(url, headers=viewer.headers)
    assert fetched.status_code == 200 and fetched.json()["name"] == mapping["name"]
    listed = await client.get(
        "/api/v1/mappings", headers=viewer.headers, params={"q": mapping["name"]}
    )
    assert listed.json()["total"] == 1

    valid = await client.post(f"{url}/validate", headers=viewer.headers)
    assert valid.json() == {"valid": True, "errors": [], "warnings": []}

    renamed = await client.patch(url, headers=editor.headers, json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["rules"] == RULES
    broken = await client.patch(
        url, headers=editor.headers, json={"rules": [{"target": "email", "source": "nope"}]}
    )
    assert broken.status_code == 422
    pointers = {e["pointer"] for e in broken.json()["errors"]}
    assert pointers == {"/rules/0/source", "/target_schema/0", "/target_schema/3"}
    assert (await client.get(url, headers=viewer.headers)).json()["name"] == "renamed"

    assert (await client.delete(url, headers=viewer.headers)).status_code == 403
    assert (await client.delete(url, headers=editor.headers)).status_code == 204
    assert (await client.get(url, headers=viewer.headers)).status_code == 404


@pytest.mark.parametrize(
    ("rules", "pointer"),
    [
        ([{"target": "ghost", "source": "Surname"}], "/rules/0/target"),
        ([{"target": "email", "expression": "lower("}], "/rules/0/expression"),
        ([{"target": "email", "source": "e_mail", "expression": "1"}], "/rules/0"),
        ([{"target": "email"}], "/rules/0"),
        ([{"target": "email", "source": "e_mail", "cast": "colour"}], "/rules/0/cast"),
    ],
)
async def test_invalid_mappings_are_422_with_pointers(client, editor, rules, pointer):
    body = {"name": "bad", "source_schema": SOURCE, "target_schema": TARGET[1:3], "rules": rules}
    response = await client.post("/api/v1/mappings", headers=editor.headers, json=body)
    assert response.status_code == 422
    assert pointer in {e["pointer"] for e in response.json()["errors"]}, response.json()


async def test_lossy_conversions_are_saved_with_warnings(client, editor):
    target = [{"name": "signup", "type": "date"}]
    rules = [{"target": "signup", "source": "signup_ts"}]
    mapping = await create_mapping(client, editor, target_schema=target, rules=rules)
    assert mapping["warnings"][0]["pointer"] == "/rules/0/source"


async def test_generated_transformation_runs_in_the_pipeline_engine(client, editor):
    mapping = await create_mapping(client, editor)
    response = await client.post(
        f"/api/v1/mappings/{mapping['id']}/transformation",
        headers=editor.headers,
        json={"name": "crm to contacts"},
    )
    assert response.status_code == 201, response.text
    transformation = response.json()
    assert transformation["node_type"] == "mapping"
    fetched = await client.get(
        f"/api/v1/transformations/{transformation['id']}", headers=editor.headers
    )
    assert fetched.json()["config"] == transformation["config"]

    rows = [
        {"CustomerID": 7, "e_mail": "Ann@Example.COM", "Surname": "Lee", "signup_ts": None},
        {"CustomerID": 8, "e_mail": None, "Surname": "Kim", "signup_ts": None},
    ]
    graph = canvas(
        [
            node("rows", "source.inline", {"rows": rows}),
            node("map", f"transform.{transformation['node_type']}", transformation["config"]),
            node("ds", "destination.dataset", {"dataset": "never_written_mapping"}),
        ],
        [edge("rows", "map"), edge("map", "ds")],
    )
    run = await client.post(
        "/api/v1/pipelines/dry-run", headers=editor.headers, json={"visual_definition": graph}
    )
    assert run.status_code == 200, run.text
    result = run.json()["nodes"]["map"]
    assert result["status"] == "succeeded", result
    assert result["preview"] == [
        {"customer_id": "7", "email": "ann@example.com", "last_name": "Lee", "country": "FR"},
        {"customer_id": "8", "email": None, "last_name": "Kim", "country": "FR"},
    ]


async def test_generation_refuses_an_invalid_or_unknown_mapping(client, editor, viewer):
    missing = await client.post(
        f"/api/v1/mappings/{uuid.uuid4()}/transformation", headers=editor.headers, json={}
    )
    assert missing.status_code == 404
    mapping = await create_mapping(client, editor)
    as_viewer = await client.post(
        f"/api/v1/mappings/{mapping['id']}/transformation", headers=viewer.headers, json={}
    )
    assert as_viewer.status_code == 403
    bad_body = await client.post(
        f"/api/v1/mappings/{mapping['id']}/transformation",
        headers=editor.headers,
        json={"name": ""},
    )
    assert bad_body.status_code == 422


async def test_templates_give_target_schemas(client, viewer, editor):
    response = await client.get("/api/v1/mappings/templates", headers=viewer.headers)
    assert response.status_code == 200
    templates = {t["id"]: t for t in response.json()}
    assert "customer_contact" in templates
    target = templates["customer_contact"]["target_schema"]
    suggested = await client.post(
        "/api/v1/mappings/suggest",
        headers=viewer.headers,
        json={"source_schema": SOURCE, "target_schema": target},
    )
    pairs = {s["target"]: s["source"] for s in suggested.json()["suggestions"]}
    assert pairs["customer_id"] == "CustomerID" and pairs["email"] == "e_mail"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/api/v1/mappings", {"name": "x"}, 422),
        ("post", "/api/v1/mappings", {"name": "x", "source_schema": [], "target_schema": []}, 422),
        ("post", "/api/v1/mappings/suggest", {"source_schema": "x", "target_schema": []}, 422),
        (
            "post",
            "/api/v1/mappings/suggest",
            {"source_schema": [], "target_schema": [], "threshold": 5},
            422,
        ),
        ("get", "/api/v1/mappings/not-a-uuid", None, 404),
        ("post", "/api/v1/mappings/not-a-uuid/validate", None, 404),
        ("patch", f"/api/v1/mappings/{uuid.uuid4()}", {"name": "x"}, 404),
        ("get", "/api/v1/mappings?sort=secret", None, 422),
    ],
)
async def test_bad_mapping_input_is_4xx(client, editor, method, path, body, status):
    response = await client.request(method, path, headers=editor.headers, json=body)
    assert response.status_code == status, response.text


async def test_viewers_read_but_cannot_write_mappings(client, viewer):
    body = {"name": "x", "source_schema": SOURCE, "target_schema": TARGET, "rules": RULES}
    assert (
        await client.post("/api/v1/mappings", headers=viewer.headers, json=body)
    ).status_code == 403
    assert (await client.get("/api/v1/mappings", headers=viewer.headers)).status_code == 200
