"""Field mappings: CRUD, suggestions, validation, templates and generated transformations."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.http import json_response, no_content, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page
from app.mappings import service
from app.mappings.schemas import (
    MappingCreate,
    MappingListQuery,
    MappingOut,
    MappingUpdate,
    SuggestBody,
    TransformationBody,
    ValidationOut,
)
from app.transformations.schemas import TransformationOut
from engine.schema import MAPPING_TEMPLATES
from storage.models import Mapping, Role

bp = Blueprint("mappings", url_prefix="/api/v1/mappings")

LIST_SPEC = ListSpec({"created_at", "updated_at", "name"}, ("name", "description"))


def _mapping_id(value: str):
    return parse_uuid(value, "mapping")


@bp.get("")
@requires(Role.VIEWER)
@doc(tag="mappings", summary="List mappings", query=MappingListQuery, errors=(422,))
async def list_mappings(request: Request):
    query = parse_query(request, MappingListQuery)
    rows, total = await fetch_page(Mapping, LIST_SPEC, query, service.PUBLIC_FIELDS)
    return json_response(page(map(service.public_view, rows), total, query.limit, query.offset))


@bp.post("")
@requires(Role.EDITOR)
@doc(
    tag="mappings",
    summary="Save a mapping (validated: errors are 422 with pointers, warnings returned)",
    body=MappingCreate,
    response=MappingOut,
    status=201,
)
async def create_mapping(request: Request):
    row, warnings = await service.create(
        current_principal(request), parse_body(request, MappingCreate)
    )
    return json_response(service.public_view(row, warnings), status=201)


@bp.get("/templates")
@requires(Role.VIEWER)
@doc(tag="mappings", summary="Target schemas to start a mapping from")
async def mapping_templates(request: Request):
    return json_response([t.model_dump(mode="json") for t in MAPPING_TEMPLATES])


@bp.post("/suggest")
@requires(Role.VIEWER)
@doc(
    tag="mappings",
    summary="Suggest rules by normalised-name similarity and type compatibility",
    body=SuggestBody,
)
async def suggest_mapping(request: Request):
    body = parse_body(request, SuggestBody)
    return json_response(await asyncio.to_thread(service.suggest, body))


@bp.get("/<mapping_id>")
@requires(Role.VIEWER)
@doc(tag="mappings", summary="Get a mapping", response=MappingOut, errors=(404,))
async def get_mapping(request: Request, mapping_id: str):
    return json_response(service.public_view(await service.get(_mapping_id(mapping_id))))


@bp.patch("/<mapping_id>")
@requires(Role.EDITOR)
@doc(
    tag="mappings",
    summary="Update a mapping (validated like a new one)",
    body=MappingUpdate,
    response=MappingOut,
    errors=(404,),
)
async def update_mapping(request: Request, mapping_id: str):
    mapping_uuid = _mapping_id(mapping_id)
    await service.get(mapping_uuid)  # 404 before validating the body
    row, warnings = await service.update(mapping_uuid, parse_body(request, MappingUpdate))
    return json_response(service.public_view(row, warnings))


@bp.delete("/<mapping_id>")
@requires(Role.EDITOR)
@doc(tag="mappings", summary="Delete a mapping", status=204, errors=(404,))
async def delete_mapping(request: Request, mapping_id: str):
    await service.delete(_mapping_id(mapping_id))
    return no_content()


@bp.post("/<mapping_id>/validate")
@requires(Role.VIEWER)
@doc(tag="mappings", summary="Check a saved mapping", response=ValidationOut, errors=(404,))
async def validate_mapping(request: Request, mapping_id: str):
    return json_response(await service.validate_saved(_mapping_id(mapping_id)))


@bp.post("/<mapping_id>/transformation")
@requires(Role.EDITOR)
@doc(
    tag="mappings",
    summary="Generate a saved `mapping` transformation the pipeline builder can use",
    body=TransformationBody,
    response=TransformationOut,
    status=201,
    errors=(404,),
)
async def generate_transformation(request: Request, mapping_id: str):
    mapping_uuid = _mapping_id(mapping_id)
    await service.get(mapping_uuid)
    body = parse_body(request, TransformationBody) if request.body else TransformationBody()
    row = await service.generate_transformation(current_principal(request), mapping_uuid, body)
    return json_response(
        {name: getattr(row, name) for name in TransformationOut.model_fields}, status=201
    )
