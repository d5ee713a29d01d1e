"""Executions: commands go to the pipeline's actor (through the directory), reads come from
storage. Nothing here changes execution state itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from actors.directory import ActorDirectory
from actors.pipeline_actor import (
    Cancel,
    ConflictError,
    DryRun,
    InvalidPipeline,
    NotFoundError,
    Retry,
    Rollback,
    Run,
    prune_work_dirs,
    work_root,
)
from actors.runtime import ActorError, ActorStopped, MailboxFull
from actors.scheduler import Scheduler
from app.auth.principal import Principal
from app.core.errors import (
    Conflict,
    NotFound,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
)
from app.executions.schemas import LEVEL_ORDER, ExecutionOut, LogQuery, StepOut
from app.logging import correlation_id
from engine.pipeline import Issue
from storage.models import ExecutionLog, ExecutionStep, PipelineExecution
from storage.rows import Select, select_rows

ASK_TIMEOUT_SECONDS = 30.0
WORK_DIR_MAX_AGE_SECONDS = 7 * 86400  # how long a failed run can be retried from its cache
DRY_RUN_TIMEOUT_SECONDS = 120.0
EXECUTION_FIELDS = tuple(name for name in ExecutionOut.model_fields if name != "steps")
STEP_FIELDS = tuple(StepOut.model_fields)


def issues_as_errors(issues: list[Issue]) -> list[dict[str, Any]]:
    """Validation issues in problem+json form (pointer + message, plus where on the canvas)."""
    return [
        {
            "pointer": issue.pointer or "",
            "message": issue.message,
            "code": issue.code,
            "node_id": issue.node_id,
            "edge_id": issue.edge_id,
        }
        for issue in issues
    ]


def as_problem(exc: Exception) -> Problem:
    if isinstance(exc, InvalidPipeline):
        return Unprocessable(str(exc), errors=issues_as_errors(exc.issues))
    if isinstance(exc, NotFoundError):
        return NotFound(str(exc))
    if isinstance(exc, ConflictError):
        return Conflict(str(exc))
    if isinstance(exc, MailboxFull):
        return TooManyRequests(str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, ActorStopped | TimeoutError):
        return ServiceUnavailable("The pipeline's actor is not available; try again shortly.")
    if isinstance(exc, ActorError):
        return Conflict(str(exc))
    raise exc


class ExecutionService:
    def __init__(self, directory: ActorDirectory, schedule_interval: float, data_dir: Path):
        self.directory = directory
        self.work_root = work_root(data_dir)
        self.scheduler = Scheduler(directory, schedule_interval)

    async def start(self) -> None:
        await self.directory.start()
        await self.scheduler.start()
        await asyncio.to_thread(prune_work_dirs, self.work_root, WORK_DIR_MAX_AGE_SECONDS)

    async def close(self) -> None:
        await self.scheduler.close()
        await self.directory.close()

    async def ask(
        self, pipeline_id: UUID, message: BaseModel, within: float = ASK_TIMEOUT_SECONDS
    ) -> Any:
        try:
            return await self.directory.ask(pipeline_id, message, within=within)
        except (ActorError, TimeoutError) as exc:
            raise as_problem(exc) from None

    # --- commands ------------------------------------------------------------------------

    async def run(
        self,
        principal: Principal | None,
        pipeline_id: UUID,
        parameters: dict[str, Any],
        trigger: str = "manual",
    ) -> UUID:
        message = Run(
            parameters=parameters,
            trigger=trigger,
            user_id=principal.id if principal else None,
            correlation_id=correlation_id.get(),
        )
        return UUID(await self.ask(pipeline_id, message))

    async def cancel(self, principal: Principal, execution_id: UUID) -> str:
        execution = await get_execution(execution_id)
        message = Cancel(
            execution_id=execution_id, user_id=principal.id, correlation_id=correlation_id.get()
        )
        return await self.ask(execution.pipeline_id, message)

    async def retry(self, principal: Principal, execution_id: UUID) -> UUID:
        execution = await get_execution(execution_id)
        message = Retry(
            execution_id=execution_id, user_id=principal.id, correlation_id=correlation_id.get()
        )
        return UUID(await self.ask(execution.pipeline_id, message))

    async def rollback(self, principal: Principal, execution_id: UUID) -> dict[str, Any]:
        execution = await get_execution(execution_id)
        message = Rollback(
            execution_id=execution_id, user_id=principal.id, correlation_id=correlation_id.get()
        )
        return await self.ask(execution.pipeline_id, message)

    async def dry_run(
        self,
        pipeline_id: UUID,
        test_data: dict[str, list[dict[str, Any]]] | None,
        sample_limit: int,
    ) -> dict[str, Any]:
        message = DryRun(test_data=test_data, sample_limit=sample_limit)
        return await self.ask(pipeline_id, message, within=DRY_RUN_TIMEOUT_SECONDS)


# --- reads -------------------------------------------------------------------------------


async def get_execution(execution_id: UUID) -> PipelineExecution:
    execution = await PipelineExecution.get_or_none(id=execution_id)
    if execution is None:
        raise NotFound(f"No execution with id {execution_id}.")
    return execution


async def execution_view(execution_id: UUID) -> dict[str, Any]:
    """The status a client polls while a run goes: two reads, side by side."""
    executions, steps = await asyncio.gather(
        select_rows(Select(PipelineExecution, EXECUTION_FIELDS, {"id": execution_id}, limit=1)),
        select_rows(
            Select(ExecutionStep, STEP_FIELDS, {"execution_id": execution_id}, order=("position",))
        ),
    )
    if not executions:
        raise NotFound(f"No execution with id {execution_id}.")
    return {**executions[0], "steps": steps}


async def logs_page(execution_id: UUID, query: LogQuery) -> dict[str, Any]:
    await get_execution(execution_id)
    queryset = ExecutionLog.filter(execution_id=execution_id)
    if query.after is not None:
        queryset = queryset.filter(id__gt=query.after)
    if query.level is not None:
        allowed = LEVEL_ORDER[LEVEL_ORDER.index(query.level) :]
        queryset = queryset.filter(level__in=[level.value for level in allowed])
    if query.node_id is not None:
        queryset = queryset.filter(node_id=query.node_id)
    rows = (
        await queryset.order_by("id")
        .limit(query.limit)
        .values("id", "ts", "level", "message", "node_id", "data")
    )
    next_cursor = rows[-1]["id"] if rows else query.after
    return {"items": rows, "next_cursor": next_cursor}
