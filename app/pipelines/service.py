"""Pipelines: every save bumps the version and stores a pipeline_versions row atomically."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from actors.bus import outbox
from actors.bus.outbox import record_event
from app.auth.principal import Principal
from app.core.errors import Conflict, NotFound
from app.pipelines.schemas import PipelineCreate, PipelineUpdate
from engine.pipeline import GraphError, compile_graph
from storage.models import Pipeline, PipelineVersion

MAX_VERSION = 2**31 - 1  # the column is a 32-bit integer
VERSIONED_FIELDS = ("name", "description", "visual_definition", "execution_graph", "schedule")


def compile_definition(visual_definition: dict[str, Any]) -> dict[str, Any]:
    """The execution graph for a canvas; an unfinished canvas saves with an empty graph
    (validate reports why; running it is refused with the same errors)."""
    try:
        return compile_graph(visual_definition).model_dump(mode="json")
    except GraphError:
        return {}


async def get_pipeline(pipeline_id: UUID) -> Pipeline:
    pipeline = await Pipeline.get_or_none(id=pipeline_id)
    if pipeline is None:
        raise NotFound(f"No pipeline with id {pipeline_id}.")
    return pipeline


async def create(principal: Principal, body: PipelineCreate) -> Pipeline:
    definition = body.visual_definition.model_dump(mode="json")
    async with outbox.transaction() as conn:
        pipeline = await Pipeline.create(
            owner_id=principal.id,
            name=body.name,
            description=body.description,
            visual_definition=definition,
            execution_graph=compile_definition(definition),
            schedule=body.schedule,
            status=body.status.value,
            schema_policy=body.schema_policy.value,
            version=1,
            using_db=conn,
        )
        await _snapshot(pipeline, principal, conn)
        await _record(conn, "pipeline.created", pipeline, principal)
    return pipeline


async def update(
    principal: Principal,
    pipeline_id: UUID,
    body: PipelineUpdate,
    expected_version: int | None,
    restored_from: int | None = None,
) -> Pipeline:
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "visual_definition" in changes:
        changes["execution_graph"] = compile_definition(changes["visual_definition"])
    async with outbox.transaction() as conn:
        pipeline = await Pipeline.filter(id=pipeline_id).using_db(conn).select_for_update().first()
        if pipeline is None:
            raise NotFound(f"No pipeline with id {pipeline_id}.")
        if expected_version is not None and expected_version != pipeline.version:
            raise Conflict(
                f"The pipeline is at version {pipeline.version}, not {expected_version}; "
                "reload it and apply your change again."
            )
        for name, value in changes.items():
            setattr(pipeline, name, value)
        pipeline.version += 1
        await pipeline.save(using_db=conn)
        await _snapshot(pipeline, principal, conn)
        if restored_from is None:
            await _record(conn, "pipeline.updated", pipeline, principal, changed=sorted(changes))
        else:
            await _record(
                conn, "pipeline.version_restored", pipeline, principal, restored_from=restored_from
            )
    return pipeline


async def restore_version(principal: Principal, pipeline_id: UUID, version: int) -> Pipeline:
    old = await get_version(pipeline_id, version)
    body = PipelineUpdate(
        name=old.name,
        description=old.description,
        visual_definition=old.visual_definition,
        schedule=old.schedule,
    )
    return await update(principal, pipeline_id, body, expected_version=None, restored_from=version)


async def delete(pipeline_id: UUID, principal: Principal | None = None) -> None:
    async with outbox.transaction() as conn:
        pipeline = await Pipeline.filter(id=pipeline_id).using_db(conn).first()
        if pipeline is None:
            raise NotFound(f"No pipeline with id {pipeline_id}.")
        await pipeline.delete(using_db=conn)
        await _record(conn, "pipeline.deleted", pipeline, principal)


async def get_version(pipeline_id: UUID, version: int) -> PipelineVersion:
    await get_pipeline(pipeline_id)
    if not 1 <= version <= MAX_VERSION:
        raise NotFound(f"Pipeline {pipeline_id} has no version {version}.")
    row = await PipelineVersion.get_or_none(pipeline_id=pipeline_id, version=version)
    if row is None:
        raise NotFound(f"Pipeline {pipeline_id} has no version {version}.")
    return row


async def _snapshot(pipeline: Pipeline, principal: Principal, conn) -> None:
    await PipelineVersion.create(
        pipeline_id=pipeline.id,
        version=pipeline.version,
        created_by_id=principal.id,
        using_db=conn,
        **{name: getattr(pipeline, name) for name in VERSIONED_FIELDS},
    )


async def _record(
    conn, type_: str, pipeline: Pipeline, principal: Principal | None, **extra: Any
) -> None:
    data = {"name": pipeline.name, "version": pipeline.version, "status": pipeline.status}
    user_id = principal.id if principal else None
    await record_event(conn, type_, "pipeline", pipeline.id, {**data, **extra}, user_id)
