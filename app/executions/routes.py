"""Runs and executions: run, list, read (with steps), cancel, retry, rollback, logs."""

from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.http import json_response, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page, given
from app.executions.schemas import (
    ActionResult,
    ExecutionListQuery,
    ExecutionOut,
    ExecutionSummary,
    LogPage,
    LogQuery,
    RunAccepted,
    RunRequest,
)
from app.executions.service import ExecutionService, execution_view, logs_page
from app.pipelines.service import get_pipeline
from storage.models import PipelineExecution, Role

bp = Blueprint("executions", url_prefix="/api/v1")

LIST_SPEC = ListSpec({"created_at", "started_at", "completed_at", "status"}, ("status",))
SUMMARY_FIELDS = tuple(ExecutionSummary.model_fields)


def _service(request: Request) -> ExecutionService:
    return request.app.ctx.services.executions


def _optional_body(request: Request, model):
    return parse_body(request, model) if request.body else model()


@bp.post("/pipelines/<pipeline_id>/run")
@requires(Role.EDITOR)
@doc(
    tag="executions",
    summary="Run a pipeline (queued behind a running one)",
    body=RunRequest,
    response=RunAccepted,
    status=202,
    errors=(404, 409, 422, 429),
)
async def run_pipeline(request: Request, pipeline_id: str):
    pipeline = await get_pipeline(parse_uuid(pipeline_id, "pipeline"))
    body = _optional_body(request, RunRequest)
    execution_id = await _service(request).run(
        current_principal(request), pipeline.id, body.parameters
    )
    execution = await PipelineExecution.get(id=execution_id).only("id", "status")
    return json_response(
        {"execution_id": execution_id, "status": execution.status},
        status=202,
        headers={"Location": f"/api/v1/executions/{execution_id}"},
    )


@bp.get("/pipelines/<pipeline_id>/executions")
@requires(Role.VIEWER)
@doc(
    tag="executions",
    summary="A pipeline's executions, newest first",
    query=ExecutionListQuery,
    errors=(404, 422),
)
async def list_executions(request: Request, pipeline_id: str):
    pipeline = await get_pipeline(parse_uuid(pipeline_id, "pipeline"))
    query = parse_query(request, ExecutionListQuery)
    where = given(pipeline_id=pipeline.id, status=query.status.value if query.status else None)
    rows, total = await fetch_page(PipelineExecution, LIST_SPEC, query, SUMMARY_FIELDS, where)
    return json_response(page(rows, total, query.limit, query.offset))


@bp.get("/executions/<execution_id>")
@requires(Role.VIEWER)
@doc(tag="executions", summary="An execution with its steps", response=ExecutionOut, errors=(404,))
async def get_execution(request: Request, execution_id: str):
    return json_response(await execution_view(parse_uuid(execution_id, "execution")))


@bp.post("/executions/<execution_id>/cancel")
@requires(Role.EDITOR)
@doc(
    tag="executions",
    summary="Cancel a queued or running execution (takes effect within a second)",
    response=ActionResult,
    status=202,
    errors=(404, 409),
)
async def cancel_execution(request: Request, execution_id: str):
    execution_uuid = parse_uuid(execution_id, "execution")
    status = await _service(request).cancel(current_principal(request), execution_uuid)
    return json_response({"execution_id": execution_uuid, "status": status}, status=202)


@bp.post("/executions/<execution_id>/retry")
@requires(Role.EDITOR)
@doc(
    tag="executions",
    summary="Retry a failed, cancelled or crashed execution from its failed step",
    response=RunAccepted,
    status=202,
    errors=(404, 409, 422),
)
async def retry_execution(request: Request, execution_id: str):
    execution_uuid = parse_uuid(execution_id, "execution")
    new_id = await _service(request).retry(current_principal(request), execution_uuid)
    execution = await PipelineExecution.get(id=new_id).only("id", "status")
    return json_response(
        {"execution_id": new_id, "status": execution.status, "retry_of": execution_uuid},
        status=202,
    )


@bp.post("/executions/<execution_id>/rollback")
@requires(Role.EDITOR)
@doc(
    tag="executions",
    summary="Roll the managed datasets a succeeded run wrote back to their previous version",
    response=ActionResult,
    errors=(404, 409),
)
async def rollback_execution(request: Request, execution_id: str):
    execution_uuid = parse_uuid(execution_id, "execution")
    result = await _service(request).rollback(current_principal(request), execution_uuid)
    return json_response({"execution_id": execution_uuid, **result})


@bp.get("/executions/<execution_id>/logs")
@requires(Role.VIEWER)
@doc(
    tag="executions",
    summary="An execution's log lines (level = minimum level; after = cursor)",
    query=LogQuery,
    response=LogPage,
    errors=(404, 422),
)
async def execution_logs(request: Request, execution_id: str):
    query = parse_query(request, LogQuery)
    return json_response(await logs_page(parse_uuid(execution_id, "execution"), query))
