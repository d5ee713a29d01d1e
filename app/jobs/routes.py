from __future__ import annotations

from sanic import Blueprint, Request

from actors.jobs import JobInfo
from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.http import json_response, model_response, page, parse_body, parse_query, parse_uuid
from app.jobs import service
from app.jobs.schemas import JobCreate, JobListQuery
from storage.models import Role

bp = Blueprint("jobs", url_prefix="/api/v1/jobs")


@bp.get("")
@requires(Role.VIEWER)
@doc(tag="jobs", summary="List jobs (your own; admins: all)", query=JobListQuery, errors=(422,))
async def list_jobs(request: Request):
    query = parse_query(request, JobListQuery)
    rows, total = await service.list_visible(current_principal(request), query)
    return json_response(page(rows, total, query.limit, query.offset))


@bp.post("")
@requires(Role.VIEWER)
@doc(
    tag="jobs",
    summary="Start a job (kinds users may start directly: maintenance.purge_events, admins)",
    body=JobCreate,
    response=JobInfo,
    status=202,
)
async def start_job(request: Request):
    info = await service.start(
        request.app.ctx.services.jobs,
        current_principal(request),
        parse_body(request, JobCreate),
        request.ctx.request_id,
    )
    return model_response(info, status=202)


@bp.get("/<job_id>")
@requires(Role.VIEWER)
@doc(
    tag="jobs",
    summary="Get a job: status, progress, result or error",
    response=JobInfo,
    errors=(404,),
)
async def get_job(request: Request, job_id: str):
    info = await service.get_visible(
        request.app.ctx.services.jobs, current_principal(request), parse_uuid(job_id, "job")
    )
    return model_response(info)


@bp.post("/<job_id>/cancel")
@requires(Role.VIEWER)
@doc(tag="jobs", summary="Cancel a queued job", response=JobInfo, errors=(404, 409))
async def cancel_job(request: Request, job_id: str):
    info = await service.cancel(
        request.app.ctx.services.jobs, current_principal(request), parse_uuid(job_id, "job")
    )
    return model_response(info)
