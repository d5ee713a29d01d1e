"""Builder endpoints: node palette, validate, dry-run, perf test, version diff."""

from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import requires
from app.builder.schemas import (
    DefinitionDryRunRequest,
    DiffQuery,
    DryRunOut,
    DryRunRequest,
    NodeTypeOut,
    PerfTestRequest,
    ValidateRequest,
    ValidationOut,
    VersionDiffOut,
)
from app.builder.service import BuilderService, diff_versions, palette
from app.core.docs import doc
from app.core.errors import NotFound
from app.core.http import json_response, parse_body, parse_query, parse_uuid
from app.executions.wiring import connector_context
from app.pipelines.service import get_pipeline, get_version
from storage.models import PipelineVersion, Role

bp = Blueprint("builder", url_prefix="/api/v1")


def _builder(request: Request) -> BuilderService:
    services = request.app.ctx.services
    return BuilderService(services.connectors, connector_context(services.settings))


@bp.get("/pipeline-builder/node-types")
@requires(Role.VIEWER)
@doc(
    tag="builder",
    summary="The node palette: ports, config JSON Schema and UI schema per node type",
    response={"type": "array", "items": NodeTypeOut.model_json_schema()},
)
async def node_types(request: Request):
    return json_response(palette())


@bp.post("/pipelines/validate")
@requires(Role.EDITOR)
@doc(
    tag="builder",
    summary="Validate a canvas: structure, configs, expressions, column schemas",
    body=ValidateRequest,
    response=ValidationOut,
)
async def validate_canvas(request: Request):
    body = parse_body(request, ValidateRequest)
    definition = body.visual_definition.model_dump(mode="json")
    return json_response(await _builder(request).validate(definition))


@bp.post("/pipelines/<pipeline_id>/validate")
@requires(Role.EDITOR)
@doc(tag="builder", summary="Validate a saved pipeline", response=ValidationOut, errors=(404,))
async def validate_pipeline(request: Request, pipeline_id: str):
    pipeline = await get_pipeline(parse_uuid(pipeline_id, "pipeline"))
    return json_response(await _builder(request).validate(pipeline.visual_definition))


@bp.post("/pipelines/dry-run")
@requires(Role.EDITOR)
@doc(
    tag="builder",
    summary="Dry-run an unsaved canvas on test rows or source samples (writes nothing)",
    body=DefinitionDryRunRequest,
    response=DryRunOut,
)
async def dry_run_canvas(request: Request):
    body = parse_body(request, DefinitionDryRunRequest)
    result = await _builder(request).dry_run(
        body.visual_definition.model_dump(mode="json"), body.test_data, body.sample_limit
    )
    return json_response(result)


@bp.post("/pipelines/<pipeline_id>/dry-run")
@requires(Role.EDITOR)
@doc(
    tag="builder",
    summary="Dry-run a saved pipeline on test rows or source samples (writes nothing)",
    body=DryRunRequest,
    response=DryRunOut,
    errors=(404, 422),
)
async def dry_run_pipeline(request: Request, pipeline_id: str):
    pipeline = await get_pipeline(parse_uuid(pipeline_id, "pipeline"))
    body = parse_body(request, DryRunRequest) if request.body else DryRunRequest()
    result = await request.app.ctx.services.executions.dry_run(
        pipeline.id, body.test_data, body.sample_limit
    )
    return json_response(result)


@bp.post("/pipelines/<pipeline_id>/perf-test")
@requires(Role.EDITOR)
@doc(
    tag="builder",
    summary="Time every node on N synthetic rows shaped like the sources (writes nothing)",
    body=PerfTestRequest,
    errors=(404, 422),
)
async def perf_test(request: Request, pipeline_id: str):
    pipeline = await get_pipeline(parse_uuid(pipeline_id, "pipeline"))
    body = parse_body(request, PerfTestRequest) if request.body else PerfTestRequest()
    return json_response(await _builder(request).perf_test(pipeline.visual_definition, body.rows))


@bp.get("/pipelines/<pipeline_id>/versions/<version:int>/diff")
@requires(Role.VIEWER)
@doc(
    tag="pipelines",
    summary="What changed between two versions (nodes and edges added/removed/changed)",
    query=DiffQuery,
    response=VersionDiffOut,
    errors=(404, 422),
)
async def version_diff(request: Request, pipeline_id: str, version: int):
    pipeline_uuid = parse_uuid(pipeline_id, "pipeline")
    query = parse_query(request, DiffQuery)
    new = await get_version(pipeline_uuid, version)
    against = query.against if query.against is not None else version - 1
    old = await PipelineVersion.get_or_none(pipeline_id=pipeline_uuid, version=against)
    if old is None:
        raise NotFound(f"Pipeline {pipeline_uuid} has no version {against} to compare with.")
    return json_response(diff_versions(new, old))
