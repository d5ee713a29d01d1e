"""Saved field mappings: validated on save (engine.schema.mapping), suggested by name and type,
and turned into a `mapping` transformation the pipeline engine runs."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from jsonschema import Draft202012Validator

from app.auth.principal import Principal
from app.core.errors import NotFound, Unprocessable
from app.mappings.schemas import MappingCreate, MappingUpdate, SuggestBody, TransformationBody
from app.transformations import service as transformations
from app.transformations.schemas import TransformationCreate
from engine.pipeline.catalog import get_node_type
from engine.schema import (
    LogicalType,
    MappingTooLargeError,
    mapping_from_suggestions,
    suggest_mapping,
    validate_mapping,
)
from engine.schema import Mapping as MappingSpec
from storage.models import Mapping, Transformation

PUBLIC_FIELDS = (
    "id",
    "name",
    "description",
    "source_schema",
    "target_schema",
    "rules",
    "owner_id",
    "created_at",
    "updated_at",
)
MAPPING_NODE_TYPE = "mapping"  # the catalog's transform.mapping


def public_view(row: Mapping | dict[str, Any], warnings: list[dict] | None = None) -> dict:
    field = row.get if isinstance(row, dict) else row.__getattribute__
    view = {name: field(name) for name in PUBLIC_FIELDS}
    if warnings is not None:
        view["warnings"] = warnings
    return view


def check(spec: MappingSpec) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(errors, warnings) with JSON pointers into the mapping."""
    errors, warnings = [], []
    for issue in validate_mapping(spec):
        entry = {"pointer": issue.pointer, "message": issue.message}
        (errors if issue.severity == "error" else warnings).append(entry)
    return errors, warnings


def spec_of(row: Mapping) -> MappingSpec:
    return MappingSpec(
        source_schema=row.source_schema, target_schema=row.target_schema, rules=row.rules
    )


def _dump(spec: MappingSpec) -> dict[str, Any]:
    return {
        "source_schema": [f.model_dump(mode="json") for f in spec.source_schema],
        "target_schema": [f.model_dump(mode="json") for f in spec.target_schema],
        "rules": [r.model_dump(mode="json", exclude_none=True) for r in spec.rules],
    }


async def _valid(spec: MappingSpec) -> list[dict[str, str]]:
    """The warnings; errors refuse the save with 422 and their pointers."""
    errors, warnings = await asyncio.to_thread(check, spec)
    if errors:
        raise Unprocessable("The mapping is not valid.", errors=errors)
    return warnings


async def get(mapping_id: UUID) -> Mapping:
    row = await Mapping.get_or_none(id=mapping_id)
    if row is None:
        raise NotFound(f"No mapping with id {mapping_id}.")
    return row


async def create(principal: Principal, body: MappingCreate) -> tuple[Mapping, list[dict]]:
    spec = MappingSpec(
        source_schema=body.source_schema, target_schema=body.target_schema, rules=body.rules
    )
    warnings = await _valid(spec)
    row = await Mapping.create(
        owner_id=principal.id, name=body.name, description=body.description, **_dump(spec)
    )
    return row, warnings


async def update(mapping_id: UUID, body: MappingUpdate) -> tuple[Mapping, list[dict]]:
    row = await get(mapping_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    current = spec_of(row)
    spec = MappingSpec(
        source_schema=body.source_schema or current.source_schema,
        target_schema=body.target_schema or current.target_schema,
        rules=body.rules if body.rules is not None else current.rules,
    )
    warnings = await _valid(spec)
    for name in ("name", "description"):
        if name in changes:
            setattr(row, name, changes[name])
    for name, value in _dump(spec).items():
        setattr(row, name, value)
    await row.save()
    return row, warnings


async def delete(mapping_id: UUID) -> None:
    if not await Mapping.filter(id=mapping_id).delete():
        raise NotFound(f"No mapping with id {mapping_id}.")


async def validate_saved(mapping_id: UUID) -> dict[str, Any]:
    errors, warnings = await asyncio.to_thread(check, spec_of(await get(mapping_id)))
    return {"valid": not errors, "errors": errors, "warnings": warnings}


def suggest(body: SuggestBody) -> dict[str, Any]:
    try:
        suggestions = suggest_mapping(
            body.source_schema, body.target_schema, threshold=body.threshold
        )
    except MappingTooLargeError as exc:
        errors = [{"pointer": "/source_schema", "message": str(exc)}]
        raise Unprocessable(str(exc), errors=errors) from None
    spec = mapping_from_suggestions(body.source_schema, body.target_schema, suggestions)
    errors, warnings = check(spec)
    mapped = {s.target for s in suggestions}
    return {
        "suggestions": [s.model_dump(mode="json", exclude_none=True) for s in suggestions],
        "rules": _dump(spec)["rules"],
        "unmapped_targets": [f.name for f in body.target_schema if f.name not in mapped],
        "errors": errors,
        "warnings": warnings,
    }


# --- generation of a pipeline transformation -------------------------------------------------


def transformation_config(spec: MappingSpec) -> dict[str, Any]:
    """The `transform.mapping` node config: the rules plus the target schema, so the node
    outputs exactly the target fields with their types. A rule with only a default becomes
    the expression NULL with that default (the node wants a source or an expression)."""
    rules = []
    for rule in spec.rules:
        entry = rule.model_dump(mode="json", exclude_none=True)
        if rule.source is None and rule.expression is None:
            entry["expression"] = "NULL"
        rules.append(entry)
    targets = [
        {"name": f.name, "type": f.type.value, "nullable": f.nullable} for f in spec.target_schema
    ]
    return {"rules": rules, "target_schema": targets}


def _node_config_errors(config: dict[str, Any]) -> list[dict[str, str]]:
    node_type = get_node_type(MAPPING_NODE_TYPE)
    assert node_type is not None, "the engine has no mapping node"
    validator = Draft202012Validator(node_type.config_schema)
    return [
        {
            "pointer": "/" + "/".join(str(p) for p in error.absolute_path),
            "message": error.message,
        }
        for error in validator.iter_errors(config)
    ][:50]


async def generate_transformation(
    principal: Principal, mapping_id: UUID, body: TransformationBody
) -> Transformation:
    row = await get(mapping_id)
    spec = spec_of(row)
    errors, _ = await asyncio.to_thread(check, spec)
    if errors:
        raise Unprocessable("Fix the mapping before generating a transformation.", errors=errors)
    if not spec.rules:
        raise Unprocessable(
            "The mapping has no rules.", errors=[{"pointer": "/rules", "message": "no rules"}]
        )
    unknown = [
        {"pointer": f"/target_schema/{i}/type", "message": "give the target field a type"}
        for i, f in enumerate(spec.target_schema)
        if f.type == LogicalType.UNKNOWN
    ]
    config = transformation_config(spec)
    problems = unknown or _node_config_errors(config)
    if problems:
        raise Unprocessable("The mapping cannot run as a pipeline node.", errors=problems)
    create = TransformationCreate(
        name=body.name or f"{row.name} (mapping)",
        description=body.description or f"Generated from mapping {row.id}.",
        node_type=MAPPING_NODE_TYPE,
        config=config,
    )
    return await transformations.create(principal, create)
