"""Pipeline templates: a canvas with `{{parameter}}` placeholders and the JSON Schema of its
parameters. Instantiating validates the parameters, substitutes them and saves a pipeline."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from app.auth.principal import Principal
from app.connectors.service import config_errors
from app.core.errors import NotFound, Unprocessable
from app.core.http import validate_as
from app.pipelines import service as pipelines
from app.pipelines.schemas import PipelineCreate
from app.templates.builtin import BUILTIN_TEMPLATES
from app.templates.schemas import SaveAsTemplateRequest, TemplateCreate, TemplateUpdate
from storage.db import transaction
from storage.locks import exclusive
from storage.models import Pipeline, PipelineTemplate

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


def substitute(value: Any, parameters: dict[str, Any]) -> Any:
    """A string that is one placeholder becomes the value itself (numbers, lists stay typed);
    placeholders inside longer text are replaced by the value's text."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return parameters.get(whole.group(1))
        return PLACEHOLDER.sub(lambda m: str(parameters.get(m.group(1), "")), value)
    if isinstance(value, dict):
        return {key: substitute(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, parameters) for item in value]
    return value


def check_template(parameters: dict[str, Any], definition: dict[str, Any]) -> None:
    """The parameters must be a valid object schema declaring every placeholder used."""
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        raise Unprocessable(
            "parameters is not a valid JSON Schema.",
            errors=[{"pointer": "/parameters", "message": exc.message}],
        ) from None
    try:  # e.g. a $ref nothing can resolve: refuse it now, not when instantiating
        list(Draft202012Validator(parameters).iter_errors({}))
    except Exception as exc:
        raise Unprocessable(
            "parameters cannot be evaluated.",
            errors=[{"pointer": "/parameters", "message": str(exc)[:300]}],
        ) from None
    if parameters.get("type") != "object":
        raise Unprocessable(
            "parameters must describe an object.",
            errors=[{"pointer": "/parameters/type", "message": "must be 'object'"}],
        )
    declared = set((parameters.get("properties") or {}).keys())
    undeclared = placeholders(definition) - declared
    if undeclared:
        raise Unprocessable(
            "The canvas uses parameters the schema does not declare.",
            errors=[
                {"pointer": "/visual_definition", "message": f"undeclared parameter {name!r}"}
                for name in sorted(undeclared)
            ],
        )


def resolve_parameters(schema: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, then validated; errors point at /parameters/<name>."""
    values = {
        name: prop["default"]
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, dict) and "default" in prop
    }
    values.update(given)
    # The connectors' JSON Schema error formatting only reads `.config_schema`.
    errors = config_errors(SimpleNamespace(config_schema=schema), values, prefix="/parameters")
    if errors:
        raise Unprocessable("The parameters do not fit the template.", errors=errors)
    return values


async def get_template(template_id: UUID) -> PipelineTemplate:
    template = await PipelineTemplate.get_or_none(id=template_id)
    if template is None:
        raise NotFound(f"No pipeline template with id {template_id}.")
    return template


async def create(principal: Principal, body: TemplateCreate) -> PipelineTemplate:
    definition = body.visual_definition.model_dump(mode="json")
    check_template(body.parameters, definition)
    return await PipelineTemplate.create(
        owner_id=principal.id,
        name=body.name,
        description=body.description,
        parameters=body.parameters,
        visual_definition=definition,
    )


async def update(template_id: UUID, body: TemplateUpdate) -> PipelineTemplate:
    template = await get_template(template_id)
    changes = body.model_dump(exclude_unset=True, mode="json")
    for name, value in changes.items():
        if value is None:
            raise Unprocessable(
                f"{name} cannot be null.", errors=[{"pointer": f"/{name}", "message": "required"}]
            )
        setattr(template, name, value)
    check_template(template.parameters, template.visual_definition)
    await template.save()
    return template


async def delete(template_id: UUID) -> None:
    if not await PipelineTemplate.filter(id=template_id).delete():
        raise NotFound(f"No pipeline template with id {template_id}.")


async def instantiate(
    principal: Principal, template_id: UUID, name: str, description: str, given: dict[str, Any]
) -> Pipeline:
    template = await get_template(template_id)
    values = resolve_parameters(template.parameters, given)
    definition = substitute(template.visual_definition, values)
    body = validate_as(
        PipelineCreate,
        {"name": name, "description": description, "visual_definition": definition},
    )
    return await pipelines.create(principal, body)


async def save_as_template(
    principal: Principal, pipeline_id: UUID, body: SaveAsTemplateRequest
) -> PipelineTemplate:
    pipeline = await pipelines.get_pipeline(pipeline_id)
    check_template(body.parameters, pipeline.visual_definition)
    return await PipelineTemplate.create(
        owner_id=principal.id,
        name=body.name,
        description=body.description,
        parameters=body.parameters,
        visual_definition=pipeline.visual_definition,
    )


async def seed_builtin_templates() -> int:
    """Add the built-in templates that are missing (by name); safe to run on every start."""
    added = 0
    async with transaction() as conn:
        await exclusive(conn, "pipeline-templates:builtin")
        existing = set(
            await PipelineTemplate.filter(builtin=True)
            .using_db(conn)
            .values_list("name", flat=True)
        )
        for template in BUILTIN_TEMPLATES:
            if template["name"] in existing:
                continue
            await PipelineTemplate.create(builtin=True, using_db=conn, **template)
            added += 1
    return added
