from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, public, requires
from app.auth.schemas import LoginRequest, RefreshRequest, RegisterRequest, TokenPair, UserOut
from app.core.docs import doc
from app.core.http import json_response, model_response, no_content, parse_body
from storage.models import Role, User

bp = Blueprint("auth", url_prefix="/api/v1/auth")


@bp.post("/register")
@public
@doc(
    tag="auth",
    summary="Register (first user becomes admin)",
    body=RegisterRequest,
    response=UserOut,
    status=201,
    errors=(403, 409),
    secured=False,
)
async def register(request: Request):
    user = await request.app.ctx.services.auth.register(parse_body(request, RegisterRequest))
    return model_response(UserOut.model_validate(user), status=201)


@bp.post("/login")
@public
@doc(
    tag="auth",
    summary="Log in with email and password",
    body=LoginRequest,
    response=TokenPair,
    errors=(401, 429),
    secured=False,
)
async def login(request: Request):
    body = parse_body(request, LoginRequest)
    pair = await request.app.ctx.services.auth.login(body, request.client_ip or "unknown")
    return model_response(pair)


@bp.post("/refresh")
@public
@doc(
    tag="auth",
    summary="Rotate a refresh token",
    body=RefreshRequest,
    response=TokenPair,
    errors=(401,),
    secured=False,
)
async def refresh(request: Request):
    body = parse_body(request, RefreshRequest)
    return model_response(await request.app.ctx.services.auth.refresh(body.refresh_token))


@bp.post("/logout")
@requires(Role.VIEWER)
@doc(tag="auth", summary="Log out: revokes this session's tokens", status=204)
async def logout(request: Request):
    await request.app.ctx.services.auth.logout(current_principal(request))
    return no_content()


@bp.get("/me")
@requires(Role.VIEWER)
@doc(tag="auth", summary="The current user", response=UserOut)
async def me(request: Request):
    user = await User.get(id=current_principal(request).id)
    return json_response(UserOut.model_validate(user).model_dump(mode="json"))
