"""Reusable named node configurations for the builder's palette."""

from __future__ import annotations

from uuid import UUID

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
    return await Transformation.create(owner_id=principal.id, **body.model_dump())


async def update(transformation_id: UUID, body: TransformationUpdate) -> Transformation:
    row = await get(transformation_id)
    for name, value in body.model_dump(exclude_unset=True).items():
        setattr(row, name, value)
    await row.save()
    return row


async def delete(transformation_id: UUID) -> None:
    if not await Transformation.filter(id=transformation_id).delete():
        raise NotFound(f"No transformation with id {transformation_id}.")
