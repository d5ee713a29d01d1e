"""Every route and every role: the route's declared access rule is what the server enforces.

Routes are read from the application itself, so a route added later is covered automatically.
"""

from __future__ import annotations

import re
import uuid

import pytest
from sanic import Sanic

from app.auth.access import access_of
from app.main import create_app
from storage.models import Role

ROLES = [None, Role.VIEWER, Role.EDITOR, Role.ADMIN]
# Public routes that may refuse for reasons other than authentication.
PUBLIC_REFUSALS = {"api/v1/auth/register": {403}}


def _routes() -> list[tuple[str, str, Role | None]]:
    Sanic.test_mode = True
    app = create_app()
    found = []
    for route in app.router.routes:
        access = access_of(route.handler)
        if access is None or access.self_authenticating:
            continue
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            found.append((method, route.path, access.role))
    # Logging out ends the caller's session, so it goes last.
    return sorted(found, key=lambda r: (r[1].endswith("logout"), r[1], r[0]))


ROUTES = _routes()


def _concrete(path: str) -> str:
    path = re.sub(r"<[^>]*:int>", "1", path)
    return "/" + re.sub(r"<[^>]+>", lambda _: str(uuid.uuid4()), path)


def test_every_route_declares_who_may_call_it():
    assert ROUTES, "no routes found"


@pytest.mark.asyncio(loop_scope="session")
async def test_role_matrix(client, make_user):
    accounts = {role: await make_user(role.value) for role in ROLES if role is not None}
    failures = []
    for method, path, required in ROUTES:
        for role in ROLES:
            headers = accounts[role].headers if role else {}
            body = {} if method in {"POST", "PATCH", "PUT"} else None
            response = await client.request(method, _concrete(path), headers=headers, json=body)
            expected = _expectation(required, role, path)
            if not expected(response.status_code):
                failures.append(
                    f"{method} /{path} as {role or 'anonymous'}: {response.status_code}"
                )
    assert not failures, "\n".join(failures)


def _expectation(required: Role | None, role: Role | None, path: str):
    if required is None:
        refusals = PUBLIC_REFUSALS.get(path, set())
        return lambda status: status != 401 and (status != 403 or 403 in refusals)
    if role is None:
        return lambda status: status == 401
    if not role.includes(required):
        return lambda status: status == 403
    return lambda status: status not in (401, 403) and status < 500
