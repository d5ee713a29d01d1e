"""Registration, login, token rotation and revocation, as a client experiences them."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest

from tests.conftest import PASSWORD, forge_token, login, unique_email

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_first_user_is_admin_and_self_registration_is_closed_afterwards(server_factory):
    server = await server_factory()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        first = await client.post(
            "/api/v1/auth/register", json={"email": "Boss@Example.com", "password": PASSWORD}
        )
        second = await client.post(
            "/api/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
        )
    assert first.status_code == 201
    assert first.json()["role"] == "admin"
    assert first.json()["email"] == "boss@example.com"
    assert "password_hash" not in first.json()
    assert second.status_code == 403
    assert second.headers["content-type"] == "application/problem+json"


async def test_self_registration_when_enabled_gives_viewers(server_factory):
    server = await server_factory(ALLOW_SELF_REGISTRATION="true")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.post(
            "/api/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
        )
        later = await client.post(
            "/api/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
        )
    assert later.status_code == 201
    assert later.json()["role"] == "viewer"


async def test_login_returns_bearer_tokens_and_me_works(client, admin):
    response = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": PASSWORD}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["email"] == admin.email


async def test_wrong_password_and_unknown_email_look_the_same(client, admin):
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": "nope-nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": unique_email(), "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_login_is_rate_limited(server_factory):
    server = await server_factory(LOGIN_RATE_LIMIT="3")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        statuses = [
            (
                await client.post(
                    "/api/v1/auth/login", json={"email": "x@example.com", "password": "wrong-pass"}
                )
            ).status_code
            for _ in range(5)
        ]
        limited = await client.post(
            "/api/v1/auth/login", json={"email": "x@example.com", "password": "wrong-pass"}
        )
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
    assert int(limited.headers["retry-after"]) >= 1


async def test_refresh_rotates_and_a_replayed_token_revokes_the_family(client, make_user):
    account = await make_user("viewer")
    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert rotated.status_code == 200
    new_pair = rotated.json()
    assert new_pair["refresh_token"] != account.refresh_token

    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert replay.status_code == 401
    # The thief's replay ends the whole session: the legitimate new tokens die too.
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": new_pair["refresh_token"]}
    )
    assert after.status_code == 401
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {new_pair['access_token']}"}
    )
    assert me.status_code == 401


async def test_logout_revokes_access_and_refresh_tokens(client, make_user):
    account = await make_user("editor")
    other_session = await login(client, account.email)
    assert (await client.post("/api/v1/auth/logout", headers=account.headers)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=account.headers)).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refresh.status_code == 401
    # Logging out one session leaves the user's other sessions alone.
    assert (await client.get("/api/v1/auth/me", headers=other_session.headers)).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"exp": int(time.time()) - 10},
        {"aud": "someone-else"},
        {"iss": "someone-else"},
        {"typ": "refresh"},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "refresh-as-access"],
)
async def test_tokens_with_bad_claims_are_refused(client, admin, change):
    claims = jwt.decode(admin.access_token, options={"verify_signature": False})
    token = forge_token({**claims, **change})
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_tokens_signed_otherwise_are_refused(client, admin):
    claims = jwt.decode(admin.access_token, options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    wrong_key = forge_token(claims, key="x" * 40)
    for token in (unsigned, wrong_key, "not-a-jwt"):
        response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_refresh_token_cannot_be_used_as_access_token(client, admin):
    response = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {admin.refresh_token}"}
    )
    assert response.status_code == 401


async def test_a_token_accepted_before_is_refused_once_it_expires(client, admin):
    # The server remembers verified access tokens; that must never outlive their expiry.
    claims = jwt.decode(admin.access_token, options={"verify_signature": False})
    expires = int(time.time()) + 2
    token = forge_token({**claims, "exp": expires})
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401
