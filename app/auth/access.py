"""Route access rules. Every route declares who may call it; the guard enforces it.

    @requires(Role.EDITOR)      authenticated, editor or admin
    @public                     anyone (health, login, docs)

A route with no declaration fails app start-up, so nothing is ever open by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sanic import Request, Sanic

from app.auth.principal import Principal
from app.auth.tokens import AccessClaims, InvalidToken
from app.core.errors import Forbidden, Unauthorized
from storage.models import Role

F = TypeVar("F", bound=Callable[..., Any])
ACCESS_ATTR = "__access__"


@dataclass(frozen=True)
class Access:
    role: Role | None  # None: public
    # Authenticates inside the handler (WebSocket upgrade: token in the subprotocol).
    self_authenticating: bool = False


def requires(role: Role) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        setattr(handler, ACCESS_ATTR, Access(role))
        return handler

    return mark


def public(handler: F) -> F:
    setattr(handler, ACCESS_ATTR, Access(None))
    return handler


def authenticates_itself(handler: F) -> F:
    setattr(handler, ACCESS_ATTR, Access(None, self_authenticating=True))
    return handler


def access_of(handler: Callable[..., Any]) -> Access | None:
    access = getattr(handler, ACCESS_ATTR, None)
    if access is None and getattr(handler, "is_websocket", False):
        # Sanic wraps WebSocket handlers in partial(_websocket_handler, handler, ...).
        return getattr(handler.args[0], ACCESS_ATTR, None)
    return access


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def principal_from_token(app: Sanic, token: str | None) -> Principal:
    principal, _ = await authenticate(app, token)
    return principal


async def authenticate(app: Sanic, token: str | None) -> tuple[Principal, AccessClaims]:
    """Who the token speaks for, and its claims (when it expires); 401 otherwise."""
    if not token:
        raise Unauthorized("Missing bearer token.", headers={"WWW-Authenticate": "Bearer"})
    services = app.ctx.services
    try:
        claims = services.tokens.decode_access(token)
    except InvalidToken as exc:
        raise Unauthorized(
            f"Invalid token: {exc}.", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    principal = await services.principals.get(claims.user_id, claims.session_id)
    if principal is None:
        raise Unauthorized(
            "The session has ended; log in again.", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal, claims


async def enforce_access(request: Request) -> None:
    """on_request middleware: authenticate and authorise by the route's declaration."""
    route = request.route
    if route is None:
        return
    access = access_of(route.handler)
    if access is None or access.role is None:
        return
    principal = await principal_from_token(request.app, bearer_token(request))
    if not principal.role.includes(access.role):
        raise Forbidden(f"This action needs the {access.role.value} role.")
    request.ctx.principal = principal


def undeclared_routes(app: Sanic) -> list[str]:
    return [
        f"{'/'.join(route.methods)} {route.path}"
        for route in app.router.routes
        if access_of(route.handler) is None and not route.path.startswith(("docs", "metrics"))
    ]


def current_principal(request: Request) -> Principal:
    return request.ctx.principal
