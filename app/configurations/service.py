"""Configuration validation and saved configuration templates.

Templates are partial connector configurations teams reuse ("our warehouse": host, port,
user). Their secrets are sealed and masked exactly like a connector's (SecretBox): sending the
mask back on update keeps the stored secret.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.auth.principal import Principal
from app.configurations.schemas import (
    ConnectorFromTemplate,
    TemplateCreate,
    TemplateUpdate,
    ValidateBody,
)
from app.connectors.schemas import ConnectorCreate
from app.connectors.secrets import SecretBox, masked_view, restore_masked
from app.connectors.service import (
    ConnectorService,
    config_errors,
    known_spec,
    spec_of,
    validate_config,
)
from app.core.errors import NotFound
from app.core.http import validate_as
from storage.models import ConfigurationTemplate, Connector

PUBLIC_FIELDS = (
    "id",
    "name",
    "type",
    "description",
    "config",
    "owner_id",
    "created_at",
    "updated_at",
)


def validate(body: ValidateBody) -> dict[str, Any]:
    errors = config_errors(known_spec(body.type), body.config)
    return {"valid": not errors, "errors": errors}


def public_view(template: ConfigurationTemplate | dict[str, Any]) -> dict[str, Any]:
    return masked_view(template, PUBLIC_FIELDS)


class TemplateService:
    def __init__(self, secrets: SecretBox):
        self.secrets = secrets

    async def get(self, template_id: UUID) -> ConfigurationTemplate:
        template = await ConfigurationTemplate.get_or_none(id=template_id)
        if template is None:
            raise NotFound(f"No configuration template with id {template_id}.")
        return template

    async def create(self, principal: Principal, body: TemplateCreate) -> ConfigurationTemplate:
        spec = known_spec(body.type)
        validate_config(spec, body.config, partial=True)
        return await ConfigurationTemplate.create(
            owner_id=principal.id,
            name=body.name,
            type=body.type,
            description=body.description,
            config=self.secrets.seal(body.config, spec.secret_fields),
        )

    async def update(self, template_id: UUID, body: TemplateUpdate) -> ConfigurationTemplate:
        template = await self.get(template_id)
        changes = body.model_dump(exclude_unset=True)
        if changes.get("config") is not None:
            spec = spec_of(template.type)
            plain = restore_masked(
                changes["config"], spec.secret_fields, self.secrets.unseal(template.config)
            )
            validate_config(spec_of(template.type), plain, partial=True)
            changes["config"] = self.secrets.seal(
                changes["config"], spec.secret_fields, previous=template.config
            )
        for name, value in changes.items():
            if value is not None:
                setattr(template, name, value)
        await template.save()
        return template

    async def create_connector(
        self,
        connectors: ConnectorService,
        principal: Principal,
        template_id: UUID,
        body: ConnectorFromTemplate,
    ) -> Connector:
        """A connector from the template's configuration (secrets included) completed by
        `body.config`; validated and sealed like any new connector."""
        template = await self.get(template_id)
        plain = self.secrets.unseal(template.config)
        config = restore_masked(
            {**plain, **body.config}, spec_of(template.type).secret_fields, plain
        )
        fields = {"name": body.name, "description": body.description, "config": config}
        create = validate_as(ConnectorCreate, {**fields, "type": template.type})
        return await connectors.create(principal, create)

    async def delete(self, template_id: UUID) -> None:
        deleted = await ConfigurationTemplate.filter(id=template_id).delete()
        if not deleted:
            raise NotFound(f"No configuration template with id {template_id}.")
