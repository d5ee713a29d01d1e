"""Bad input gets a clear 4xx problem+json and changes nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _pipeline_count(client, account) -> int:
    return (await client.get("/api/v1/pipelines", headers=account.headers)).json()["total"]


async def test_malformed_json_is_400(client, editor):
    before = await _pipeline_count(client, editor)
    response = await client.post(
        "/api/v1/pipelines",
        headers={**editor.headers, "content-type": "application/json"},
        content=b'{"name": ',
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 400
    assert await _pipeline_count(client, editor) == before


async def test_non_json_media_type_is_415(client, editor):
    response = await client.post(
        "/api/v1/pipelines",
        headers={**editor.headers, "content-type": "text/plain"},
        content=b"name=x",
    )
    assert response.status_code == 415


async def test_json_that_is_not_an_object_is_422(client, editor):
    for body in ([], "text", 3, None):
        response = await client.post("/api/v1/pipelines", headers=editor.headers, json=body)
        assert response.status_code in (400, 422)


async def test_oversize_body_is_413(client, editor):
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/v1/pipelines",
        headers={**editor.headers, "content-type": "application/json"},
        content=huge,
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"sort": "password_hash"}, "/query/sort"),
        ({"limit": "0"}, "/query/limit"),
        ({"limit": "100000"}, "/query/limit"),
        ({"offset": "-1"}, "/query/offset"),
        ({"limit": "ten"}, "/query/limit"),
    ],
)
async def test_bad_list_parameters_are_422(client, admin, params, pointer):
    response = await client.get("/api/v1/users", headers=admin.headers, params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == pointer


async def test_unknown_route_and_method_are_problems(client, editor):
    missing = await client.get("/api/v1/nothing-here", headers=editor.headers)
    wrong_method = await client.put("/api/v1/pipelines", headers=editor.headers, json={})
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_nul_characters_are_refused_before_reaching_the_database(client, editor):
    body = b'{"name": "bad\\u0000name"}'
    response = await client.post(
        "/api/v1/pipelines",
        headers={**editor.headers, "content-type": "application/json"},
        content=body,
    )
    query = await client.get("/api/v1/pipelines", headers=editor.headers, params={"q": "a\x00b"})
    login = await client.post(
        "/api/v1/auth/login", json={"email": "x\x00@example.com", "password": "p"}
    )
    assert response.status_code == query.status_code == login.status_code == 400


async def test_a_version_beyond_any_stored_one_is_404(client, editor):
    created = await client.post("/api/v1/pipelines", headers=editor.headers, json={"name": "v"})
    url = f"/api/v1/pipelines/{created.json()['id']}/versions/2147483648"
    assert (await client.get(url, headers=editor.headers)).status_code == 404
    assert (await client.post(f"{url}/restore", headers=editor.headers)).status_code == 404
