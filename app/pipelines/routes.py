from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.errors import BadRequest
from app.core.http import json_response, no_content, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListQuery, ListSpec, fetch_page, given
from app.pipelines import service
from app.pipelines.schemas import (
    PipelineCreate,
    PipelineListQuery,
    PipelineOut,
    PipelineSummary,
    PipelineUpdate,
    PipelineVersionOut,
    PipelineVersionSummary,
)
from storage.models import Pipeline, PipelineVersion, Role

bp = Blueprint("pipelines", url_prefix="/api/v1/pipelines")

LIST_SPEC = ListSpec(
    {"created_at", "updated_at", "name", "status", "version"}, ("name", "description")
)
VERSION_LIST_SPEC = ListSpec({"version", "created_at"}, ("name",))
SUMMARY_FIELDS = tuple(PipelineSummary.model_fields)
VERSION_SUMMARY_FIELDS = tuple(PipelineVersionSummary.model_fields)


def _out(pipeline: Pipeline) -> dict:
    return {name: getattr(pipeline, name) for name in PipelineOut.model_fields}


def _expected_version(request: Request) -> int | None:
    """Optimistic concurrency: `If-Match: "<version>"` refuses to overwrite a newer save."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    try:
        return int(header.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise BadRequest('If-Match must be the pipeline version, e.g. "3".') from None


@bp.get("")
@requires(Role.VIEWER)
@doc(
    tag="pipelines",
    summary="List pipelines (summaries, without the canvas)",
    query=PipelineListQuery,
    errors=(422,),
)
async def list_pipelines(request: Request):
    query = parse_query(request, PipelineListQuery)
    where = given(status=query.status.value if query.status else None)
    rows, total = await fetch_page(Pipeline, LIST_SPEC, query, SUMMARY_FIELDS, where)
    return json_response(page(rows, total, query.limit, query.offset))


@bp.post("")
@requires(Role.EDITOR)
@doc(
    tag="pipelines",
    summary="Create a pipeline",
    body=PipelineCreate,
    response=PipelineOut,
    status=201,
)
async def create_pipeline(request: Request):
    pipeline = await service.create(current_principal(request), parse_body(request, PipelineCreate))
    return json_response(_out(pipeline), status=201, headers={"ETag": f'"{pipeline.version}"'})


@bp.get("/<pipeline_id>")
@requires(Role.VIEWER)
@doc(tag="pipelines", summary="Get a pipeline", response=PipelineOut, errors=(404,))
async def get_pipeline(request: Request, pipeline_id: str):
    pipeline = await service.get_pipeline(parse_uuid(pipeline_id, "pipeline"))
    return json_response(_out(pipeline), headers={"ETag": f'"{pipeline.version}"'})


@bp.patch("/<pipeline_id>")
@requires(Role.EDITOR)
@doc(
    tag="pipelines",
    summary="Update a pipeline (creates a new version)",
    body=PipelineUpdate,
    response=PipelineOut,
    errors=(404, 409),
)
async def update_pipeline(request: Request, pipeline_id: str):
    pipeline_uuid = parse_uuid(pipeline_id, "pipeline")
    body = parse_body(request, PipelineUpdate)
    pipeline = await service.update(
        current_principal(request), pipeline_uuid, body, _expected_version(request)
    )
    return json_response(_out(pipeline), headers={"ETag": f'"{pipeline.version}"'})


@bp.delete("/<pipeline_id>")
@requires(Role.EDITOR)
@doc(tag="pipelines", summary="Delete a pipeline", status=204, errors=(404,))
async def delete_pipeline(request: Request, pipeline_id: str):
    await service.delete(parse_uuid(pipeline_id, "pipeline"), current_principal(request))
    return no_content()


@bp.get("/<pipeline_id>/versions")
@requires(Role.VIEWER)
@doc(tag="pipelines", summary="List a pipeline's versions", query=ListQuery, errors=(404, 422))
async def list_versions(request: Request, pipeline_id: str):
    pipeline = await service.get_pipeline(parse_uuid(pipeline_id, "pipeline"))
    query = parse_query(request, ListQuery)
    if "sort" not in request.args:
        query.sort = "-version"
    rows, total = await fetch_page(
        PipelineVersion,
        VERSION_LIST_SPEC,
        query,
        VERSION_SUMMARY_FIELDS,
        {"pipeline_id": pipeline.id},
    )
    return json_response(page(rows, total, query.limit, query.offset))


@bp.get("/<pipeline_id>/versions/<version:int>")
@requires(Role.VIEWER)
@doc(
    tag="pipelines",
    summary="Get one version of a pipeline",
    response=PipelineVersionOut,
    errors=(404,),
)
async def get_version(request: Request, pipeline_id: str, version: int):
    row = await service.get_version(parse_uuid(pipeline_id, "pipeline"), version)
    return json_response({name: getattr(row, name) for name in PipelineVersionOut.model_fields})


@bp.post("/<pipeline_id>/versions/<version:int>/restore")
@requires(Role.EDITOR)
@doc(
    tag="pipelines",
    summary="Restore an old version (saved as a new version)",
    response=PipelineOut,
    errors=(404,),
)
async def restore_version(request: Request, pipeline_id: str, version: int):
    pipeline = await service.restore_version(
        current_principal(request), parse_uuid(pipeline_id, "pipeline"), version
    )
    return json_response(_out(pipeline), headers={"ETag": f'"{pipeline.version}"'})
