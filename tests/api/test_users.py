from __future__ import annotations

import uuid

import pytest

from tests.conftest import PASSWORD, login, unique_email

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_admin_creates_users_with_roles_and_lists_them(client, admin):
    email = unique_email("new")
    created = await client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": email, "password": PASSWORD, "role": "editor", "full_name": "Grace"},
    )
    assert created.status_code == 201
    assert created.json()["role"] == "editor"
    listed = await client.get(
        "/api/v1/users", headers=admin.headers, params={"q": email, "sort": "email"}
    )
    assert listed.json()["total"] == 1
    assert listed.json()["items"][0]["full_name"] == "Grace"


async def test_duplicate_email_is_a_conflict_whatever_the_case(client, admin):
    email = unique_email("dup")
    first = await client.post(
        "/api/v1/users", headers=admin.headers, json={"email": email, "password": PASSWORD}
    )
    again = await client.post(
        "/api/v1/users", headers=admin.headers, json={"email": email.upper(), "password": PASSWORD}
    )
    assert first.status_code == 201
    assert again.status_code == 409


async def test_users_read_and_edit_themselves_but_not_others(client, make_user):
    alice, bob = await make_user("viewer"), await make_user("viewer")
    assert (await client.get(f"/api/v1/users/{alice.id}", headers=alice.headers)).status_code == 200
    assert (await client.get(f"/api/v1/users/{bob.id}", headers=alice.headers)).status_code == 404
    renamed = await client.patch(
        f"/api/v1/users/{alice.id}", headers=alice.headers, json={"full_name": "Alice A."}
    )
    assert renamed.json()["full_name"] == "Alice A."
    promote = await client.patch(
        f"/api/v1/users/{alice.id}", headers=alice.headers, json={"role": "admin"}
    )
    assert promote.status_code == 403
    assert (await client.get(f"/api/v1/users/{alice.id}", headers=alice.headers)).json()[
        "role"
    ] == "viewer"


async def test_changing_own_password_needs_the_current_one(client, make_user):
    user = await make_user("viewer")
    refused = await client.patch(
        f"/api/v1/users/{user.id}",
        headers=user.headers,
        json={"password": "a-new-password", "current_password": "wrong"},
    )
    assert refused.status_code == 422
    changed = await client.patch(
        f"/api/v1/users/{user.id}",
        headers=user.headers,
        json={"password": "a-new-password", "current_password": PASSWORD},
    )
    assert changed.status_code == 200
    assert (await login(client, user.email, "a-new-password")).email == user.email


async def test_demoting_a_user_ends_their_other_sessions(client, admin, make_user):
    user = await make_user("editor")
    demoted = await client.patch(
        f"/api/v1/users/{user.id}", headers=admin.headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 401


async def test_deleted_user_cannot_use_their_token(client, admin, make_user):
    user = await make_user("viewer")
    assert (
        await client.delete(f"/api/v1/users/{user.id}", headers=admin.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 401
    assert (await client.get(f"/api/v1/users/{user.id}", headers=admin.headers)).status_code == 404


async def test_the_last_admin_cannot_be_demoted_or_deleted(server_factory):
    import httpx

    server = await server_factory()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.post(
            "/api/v1/auth/register", json={"email": "root@example.com", "password": PASSWORD}
        )
        root = await login(client, "root@example.com")
        demote = await client.patch(
            f"/api/v1/users/{root.id}", headers=root.headers, json={"role": "viewer"}
        )
        delete = await client.delete(f"/api/v1/users/{root.id}", headers=root.headers)
        me = await client.get("/api/v1/auth/me", headers=root.headers)
    assert demote.status_code == delete.status_code == 409
    assert me.json()["role"] == "admin"


async def test_unknown_and_malformed_user_ids_are_404(client, admin):
    for user_id in (uuid.uuid4(), "not-a-uuid"):
        response = await client.get(f"/api/v1/users/{user_id}", headers=admin.headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_clients_cannot_set_server_owned_fields(client, admin):
    response = await client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={
            "email": unique_email(),
            "password": PASSWORD,
            "id": str(uuid.uuid4()),
            "created_at": "2020-01-01T00:00:00Z",
        },
    )
    assert response.status_code == 422
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert pointers == {"/id", "/created_at"}
