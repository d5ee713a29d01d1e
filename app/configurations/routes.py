"""Configuration validation and configuration templates."""

from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.configurations import service
from app.configurations.schemas import (
    ConnectorFromTemplate,
    TemplateCreate,
    TemplateListQuery,
    TemplateOut,
    TemplateUpdate,
    ValidateBody,
    ValidationOut,
)
from app.configurations.service import TemplateService
from app.connectors.schemas import ConnectorOut
from app.connectors.service import ConnectorService
from app.core.docs import doc
from app.core.http import json_response, no_content, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page, given
from storage.models import ConfigurationTemplate, Role

bp = Blueprint("configurations", url_prefix="/api/v1/configurations")

LIST_SPEC = ListSpec({"created_at", "updated_at", "name", "type"}, ("name", "description"))


def _templates(request: Request) -> TemplateService:
    return TemplateService(request.app.ctx.services.connectors.secrets)


@bp.post("/validate")
@requires(Role.VIEWER)
@doc(
    tag="configurations",
    summary="Validate a connector configuration against its type's JSON Schema",
    description="200 with valid=false and JSON-pointer errors (into config) when invalid; "
    "422 only for an unknown type or a malformed request.",
    body=ValidateBody,
    response=ValidationOut,
)
async def validate_configuration(request: Request):
    return json_response(service.validate(parse_body(request, ValidateBody)))


@bp.get("/templates")
@requires(Role.VIEWER)
@doc(
    tag="configurations",
    summary="List configuration templates (secrets masked)",
    query=TemplateListQuery,
    errors=(422,),
)
async def list_templates(request: Request):
    query = parse_query(request, TemplateListQuery)
    rows, total = await fetch_page(
        ConfigurationTemplate, LIST_SPEC, query, service.PUBLIC_FIELDS, given(type=query.type)
    )
    return json_response(page(map(service.public_view, rows), total, query.limit, query.offset))


@bp.post("/templates")
@requires(Role.EDITOR)
@doc(
    tag="configurations",
    summary="Save a reusable (partial) connector configuration",
    body=TemplateCreate,
    response=TemplateOut,
    status=201,
)
async def create_template(request: Request):
    template = await _templates(request).create(
        current_principal(request), parse_body(request, TemplateCreate)
    )
    return json_response(service.public_view(template), status=201)


@bp.get("/templates/<template_id>")
@requires(Role.VIEWER)
@doc(
    tag="configurations",
    summary="Get a configuration template",
    response=TemplateOut,
    errors=(404,),
)
async def get_template(request: Request, template_id: str):
    template = await _templates(request).get(parse_uuid(template_id, "configuration template"))
    return json_response(service.public_view(template))


@bp.patch("/templates/<template_id>")
@requires(Role.EDITOR)
@doc(
    tag="configurations",
    summary="Update a configuration template; send a masked secret back to keep it",
    body=TemplateUpdate,
    response=TemplateOut,
    errors=(404,),
)
async def update_template(request: Request, template_id: str):
    templates = _templates(request)
    template_uuid = parse_uuid(template_id, "configuration template")
    await templates.get(template_uuid)  # 404 before validating the body
    template = await templates.update(template_uuid, parse_body(request, TemplateUpdate))
    return json_response(service.public_view(template))


@bp.delete("/templates/<template_id>")
@requires(Role.EDITOR)
@doc(tag="configurations", summary="Delete a configuration template", status=204, errors=(404,))
async def delete_template(request: Request, template_id: str):
    await _templates(request).delete(parse_uuid(template_id, "configuration template"))
    return no_content()


@bp.post("/templates/<template_id>/connectors")
@requires(Role.EDITOR)
@doc(
    tag="configurations",
    summary="Create a connector from a template (its secrets included) plus the given fields",
    body=ConnectorFromTemplate,
    response=ConnectorOut,
    status=201,
    errors=(404,),
)
async def create_connector_from_template(request: Request, template_id: str):
    templates = _templates(request)
    template_uuid = parse_uuid(template_id, "configuration template")
    await templates.get(template_uuid)  # 404 before validating the body
    connector = await templates.create_connector(
        request.app.ctx.services.connectors,
        current_principal(request),
        template_uuid,
        parse_body(request, ConnectorFromTemplate),
    )
    return json_response(ConnectorService.public_view(connector), status=201)
