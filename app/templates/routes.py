"""Pipeline templates: CRUD, instantiate, save a pipeline as a template."""

from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.http import json_response, no_content, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page, given
from app.pipelines.schemas import PipelineOut
from app.templates import service
from app.templates.schemas import (
    InstantiateRequest,
    SaveAsTemplateRequest,
    TemplateCreate,
    TemplateListQuery,
    TemplateOut,
    TemplateSummary,
    TemplateUpdate,
)
from storage.models import PipelineTemplate, Role

bp = Blueprint("pipeline_templates", url_prefix="/api/v1")

LIST_SPEC = ListSpec({"created_at", "updated_at", "name"}, ("name", "description"))
SUMMARY_FIELDS = tuple(TemplateSummary.model_fields)


def _out(template: PipelineTemplate) -> dict:
    return {name: getattr(template, name) for name in TemplateOut.model_fields}


@bp.get("/pipeline-templates")
@requires(Role.VIEWER)
@doc(tag="templates", summary="List pipeline templates", query=TemplateListQuery, errors=(422,))
async def list_templates(request: Request):
    query = parse_query(request, TemplateListQuery)
    where = given(builtin=query.builtin)
    rows, total = await fetch_page(PipelineTemplate, LIST_SPEC, query, SUMMARY_FIELDS, where)
    return json_response(page(rows, total, query.limit, query.offset))


@bp.post("/pipeline-templates")
@requires(Role.EDITOR)
@doc(
    tag="templates",
    summary="Create a template (canvas with {{parameter}} placeholders + parameters schema)",
    body=TemplateCreate,
    response=TemplateOut,
    status=201,
)
async def create_template(request: Request):
    body = parse_body(request, TemplateCreate)
    template = await service.create(current_principal(request), body)
    return json_response(_out(template), status=201)


@bp.get("/pipeline-templates/<template_id>")
@requires(Role.VIEWER)
@doc(tag="templates", summary="Get a template", response=TemplateOut, errors=(404,))
async def get_template(request: Request, template_id: str):
    template = await service.get_template(parse_uuid(template_id, "template"))
    return json_response(_out(template))


@bp.patch("/pipeline-templates/<template_id>")
@requires(Role.EDITOR)
@doc(
    tag="templates",
    summary="Update a template",
    body=TemplateUpdate,
    response=TemplateOut,
    errors=(404,),
)
async def update_template(request: Request, template_id: str):
    template_uuid = parse_uuid(template_id, "template")
    template = await service.update(template_uuid, parse_body(request, TemplateUpdate))
    return json_response(_out(template))


@bp.delete("/pipeline-templates/<template_id>")
@requires(Role.EDITOR)
@doc(tag="templates", summary="Delete a template", status=204, errors=(404,))
async def delete_template(request: Request, template_id: str):
    await service.delete(parse_uuid(template_id, "template"))
    return no_content()


@bp.post("/pipeline-templates/<template_id>/instantiate")
@requires(Role.EDITOR)
@doc(
    tag="templates",
    summary="Create a pipeline from a template with these parameters",
    body=InstantiateRequest,
    response=PipelineOut,
    status=201,
    errors=(404,),
)
async def instantiate_template(request: Request, template_id: str):
    template_uuid = parse_uuid(template_id, "template")
    body = parse_body(request, InstantiateRequest)
    pipeline = await service.instantiate(
        current_principal(request), template_uuid, body.name, body.description, body.parameters
    )
    view = {name: getattr(pipeline, name) for name in PipelineOut.model_fields}
    return json_response(view, status=201, headers={"ETag": f'"{pipeline.version}"'})


@bp.post("/pipelines/<pipeline_id>/save-as-template")
@requires(Role.EDITOR)
@doc(
    tag="templates",
    summary="Save a pipeline's canvas as a template",
    body=SaveAsTemplateRequest,
    response=TemplateOut,
    status=201,
    errors=(404,),
)
async def save_as_template(request: Request, pipeline_id: str):
    pipeline_uuid = parse_uuid(pipeline_id, "pipeline")
    body = parse_body(request, SaveAsTemplateRequest)
    template = await service.save_as_template(current_principal(request), pipeline_uuid, body)
    return json_response(_out(template), status=201)
