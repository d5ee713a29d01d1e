"""Who may see, list, start and cancel which jobs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError

from actors.jobs import JobInfo, JobNotCancellable, JobQueue
from actors.jobs.base import JobNotFound
from actors.jobs.registry import spec_for
from app.auth.principal import Principal
from app.core.errors import Conflict, Forbidden, NotFound, Unprocessable, pydantic_errors
from app.core.listing import ListSpec, fetch_page, given
from app.jobs.schemas import JobCreate, JobListQuery
from storage.models import Job, Role

# Kinds a user may start through POST /jobs, and the role it takes. Other kinds are started
# by the features that own them (file conversion, exports, notifications).
STARTABLE_KINDS: dict[str, Role] = {
    "maintenance.purge_events": Role.ADMIN,
    "maintenance.purge_jobs": Role.ADMIN,
    "maintenance.purge_notifications": Role.ADMIN,
}

LIST_SPEC = ListSpec({"created_at", "completed_at", "kind", "status"}, ("kind",))
LIST_FIELDS = (
    "id",
    "kind",
    "status",
    "progress",
    "result",
    "error",
    "attempts",
    "created_by_id",
    "correlation_id",
    "created_at",
    "started_at",
    "completed_at",
)


def _not_found(job_id: UUID) -> NotFound:
    return NotFound(f"No job with id {job_id}.")


async def get_visible(jobs: JobQueue, principal: Principal, job_id: UUID) -> JobInfo:
    """The creator and admins see a job; to anyone else it does not exist."""
    info = await jobs.get(job_id)
    if info is None or not (principal.is_admin or info.created_by == principal.id):
        raise _not_found(job_id)
    return info


async def list_visible(principal: Principal, query: JobListQuery) -> tuple[list[dict], int]:
    where = given(
        created_by_id=None if principal.is_admin else principal.id,
        status=query.status.value if query.status else None,
        kind=query.kind,
    )
    rows, total = await fetch_page(Job, LIST_SPEC, query, LIST_FIELDS, where)
    for row in rows:
        row["created_by"] = row.pop("created_by_id")
    return rows, total


async def start(
    jobs: JobQueue, principal: Principal, body: JobCreate, correlation_id: str | None
) -> JobInfo:
    role = STARTABLE_KINDS.get(body.kind)
    spec = spec_for(body.kind)
    if role is None or spec is None:
        raise Unprocessable(
            f"Jobs of kind {body.kind!r} cannot be started directly.",
            errors=[{"pointer": "/kind", "message": f"allowed: {', '.join(STARTABLE_KINDS)}"}],
        )
    if not principal.role.includes(role):
        raise Forbidden(f"Starting {body.kind} needs the {role.value} role.")
    try:
        payload: dict[str, Any] = spec.validate_payload(body.payload)
    except ValidationError as exc:
        raise Unprocessable(
            "The job payload is not valid.", errors=pydantic_errors(exc, "/payload")
        ) from None
    job_id = await jobs.enqueue(body.kind, payload, principal.id, correlation_id)
    return await jobs.get(job_id)


async def cancel(jobs: JobQueue, principal: Principal, job_id: UUID) -> JobInfo:
    await get_visible(jobs, principal, job_id)
    try:
        return await jobs.cancel(job_id)
    except JobNotFound:
        raise _not_found(job_id) from None
    except JobNotCancellable as exc:
        raise Conflict(f"The job cannot be cancelled: {exc}.") from None
