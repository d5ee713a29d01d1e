from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.http import json_response, no_content, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page, given
from app.transformations import service
from app.transformations.schemas import (
    TransformationCreate,
    TransformationListQuery,
    TransformationOut,
    TransformationUpdate,
)
from storage.models import Role, Transformation

bp = Blueprint("transformations", url_prefix="/api/v1/transformations")

LIST_SPEC = ListSpec({"created_at", "updated_at", "name", "node_type"}, ("name", "description"))
FIELDS = tuple(TransformationOut.model_fields)


def _out(row: Transformation) -> dict:
    return {name: getattr(row, name) for name in FIELDS}


@bp.get("")
@requires(Role.VIEWER)
@doc(
    tag="transformations",
    summary="List transformations",
    query=TransformationListQuery,
    errors=(422,),
)
async def list_transformations(request: Request):
    query = parse_query(request, TransformationListQuery)
    where = given(node_type=query.node_type)
    rows, total = await fetch_page(Transformation, LIST_SPEC, query, FIELDS, where)
    return json_response(page(rows, total, query.limit, query.offset))


@bp.post("")
@requires(Role.EDITOR)
@doc(
    tag="transformations",
    summary="Create a transformation",
    body=TransformationCreate,
    response=TransformationOut,
    status=201,
)
async def create_transformation(request: Request):
    row = await service.create(
        current_principal(request), parse_body(request, TransformationCreate)
    )
    return json_response(_out(row), status=201)


@bp.get("/<transformation_id>")
@requires(Role.VIEWER)
@doc(
    tag="transformations", summary="Get a transformation", response=TransformationOut, errors=(404,)
)
async def get_transformation(request: Request, transformation_id: str):
    return json_response(_out(await service.get(parse_uuid(transformation_id, "transformation"))))


@bp.patch("/<transformation_id>")
@requires(Role.EDITOR)
@doc(
    tag="transformations",
    summary="Update a transformation",
    body=TransformationUpdate,
    response=TransformationOut,
    errors=(404,),
)
async def update_transformation(request: Request, transformation_id: str):
    transformation_uuid = parse_uuid(transformation_id, "transformation")
    row = await service.update(
        transformation_uuid, parse_body(request, TransformationUpdate), current_principal(request)
    )
    return json_response(_out(row))


@bp.delete("/<transformation_id>")
@requires(Role.EDITOR)
@doc(tag="transformations", summary="Delete a transformation", status=204, errors=(404,))
async def delete_transformation(request: Request, transformation_id: str):
    await service.delete(
        parse_uuid(transformation_id, "transformation"), current_principal(request)
    )
    return no_content()
