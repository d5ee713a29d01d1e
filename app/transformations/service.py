"""Reusable named node configurations for the builder's palette."""

from __future__ import annotations

from uuid import UUID

from actors.bus import outbox
from actors.bus.outbox import record_event
from app.auth.principal import Principal
from app.core.errors import NotFound
from app.transformations.schemas import TransformationCreate, TransformationUpdate
from storage.models import Transformation


async def get(transformation_id: UUID) -> Transformation:
    row = await Transformation.get_or_none(id=transformation_id)
    if row is None:
        raise NotFound(f"No transformation with id {transformation_id}.")
    return row


async def create(principal: Principal, body: TransformationCreate) -> Transformation:
    async with outbox.transaction() as conn:
        row = await Transformation.create(owner_id=principal.id, **body.model_dump(), using_db=conn)
        await _record(conn, "transformation.created", row, principal)
    return row


async def update(
    transformation_id: UUID, body: TransformationUpdate, principal: Principal | None = None
) -> Transformation:
    row = await get(transformation_id)
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(row, name, value)
    async with outbox.transaction() as conn:
        await row.save(using_db=conn)
        await _record(conn, "transformation.updated", row, principal, sorted(changes))
    return row


async def delete(transformation_id: UUID, principal: Principal | None = None) -> None:
    async with outbox.transaction() as conn:
        row = await Transformation.filter(id=transformation_id).using_db(conn).first()
        if row is None:
            raise NotFound(f"No transformation with id {transformation_id}.")
        await row.delete(using_db=conn)
        await _record(conn, "transformation.deleted", row, principal)


async def _record(
    conn, type_: str, row: Transformation, principal: Principal | None, changed=()
) -> None:
    data = {"name": row.name, "node_type": row.node_type, "changed": list(changed)}
    user_id = principal.id if principal else None
    await record_event(conn, type_, "transformation", row.id, data, user_id)
