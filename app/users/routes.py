from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.auth.schemas import UserOut
from app.core.docs import doc
from app.core.http import json_response, no_content, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page, given
from app.users import service
from app.users.schemas import UserCreate, UserListQuery, UserUpdate
from storage.models import Role, User

bp = Blueprint("users", url_prefix="/api/v1/users")

LIST_SPEC = ListSpec(
    {"created_at", "email", "full_name", "role", "last_login_at"}, ("email", "full_name")
)
USER_FIELDS = tuple(UserOut.model_fields)


def _out(user: User) -> dict:
    return UserOut.model_validate(user).model_dump(mode="json")


@bp.get("")
@requires(Role.ADMIN)
@doc(tag="users", summary="List users", query=UserListQuery, errors=(422,))
async def list_users(request: Request):
    query = parse_query(request, UserListQuery)
    where = given(role=query.role, is_active=query.is_active)
    rows, total = await fetch_page(User, LIST_SPEC, query, USER_FIELDS, where)
    return json_response(page(rows, total, query.limit, query.offset))


@bp.post("")
@requires(Role.ADMIN)
@doc(
    tag="users",
    summary="Create a user",
    body=UserCreate,
    response=UserOut,
    status=201,
    errors=(409,),
)
async def create_user(request: Request):
    user = await service.create(parse_body(request, UserCreate), current_principal(request))
    return json_response(_out(user), status=201)


@bp.get("/<user_id>")
@requires(Role.VIEWER)
@doc(
    tag="users",
    summary="Get a user (admins: anyone; others: themselves)",
    response=UserOut,
    errors=(404,),
)
async def get_user(request: Request, user_id: str):
    user = await service.get_visible_user(current_principal(request), parse_uuid(user_id, "user"))
    return json_response(_out(user))


@bp.patch("/<user_id>")
@requires(Role.VIEWER)
@doc(tag="users", summary="Update a user", body=UserUpdate, response=UserOut, errors=(404, 409))
async def update_user(request: Request, user_id: str):
    body = parse_body(request, UserUpdate)
    user = await service.update(
        request.app.ctx.services.auth, current_principal(request), parse_uuid(user_id, "user"), body
    )
    return json_response(_out(user))


@bp.delete("/<user_id>")
@requires(Role.ADMIN)
@doc(tag="users", summary="Delete a user", status=204, errors=(404, 409))
async def delete_user(request: Request, user_id: str):
    await service.delete(
        request.app.ctx.services.auth, current_principal(request), parse_uuid(user_id, "user")
    )
    return no_content()
