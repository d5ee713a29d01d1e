"""Saved connectors: config validated against the type's JSON Schema, secrets sealed."""

from __future__ import annotations

from functools import cache
from typing import Any
from uuid import UUID

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from actors.bus import outbox
from actors.bus.outbox import record_event
from app.auth.principal import Principal
from app.connectors.schemas import ConnectorCreate, ConnectorUpdate
from app.connectors.secrets import SecretBox, masked_view, restore_masked
from app.core.errors import NotFound, Unprocessable
from engine.connectors.base import ConnectorSpec
from engine.connectors.registry import UnknownConnectorType, connector_type_names, get_connector
from storage.models import Connector

MAX_ERRORS = 50
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


@cache
def spec_of(type_name: str) -> ConnectorSpec:
    try:
        return get_connector(type_name).spec()
    except UnknownConnectorType:
        raise NotFound(f"No connector type {type_name!r}.") from None


def all_specs() -> list[ConnectorSpec]:
    return [spec_of(name) for name in connector_type_names()]


def config_errors(
    spec: ConnectorSpec, config: Any, prefix: str = "/config", partial: bool = False
) -> list[dict[str, str]]:
    """JSON-pointer errors of `config` against the type's schema. `partial`: missing
    required fields are fine (a template holds part of a configuration)."""
    validator = Draft202012Validator(spec.config_schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if partial:
        errors = [e for e in errors if e.validator not in ("required", "oneOf")]
    return [_as_problem_error(error, prefix) for error in errors[:MAX_ERRORS]]


def _as_problem_error(error: SchemaError, prefix: str) -> dict[str, str]:
    path = [str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path]
    if error.validator == "required":
        # Point at the missing property itself, which is what a form highlights.
        missing = error.message.split("'")[1] if "'" in error.message else ""
        path.append(missing)
    pointer = prefix + "".join(f"/{p}" for p in path)
    return {"pointer": pointer, "message": error.message}


def validate_config(spec: ConnectorSpec, config: dict[str, Any], partial: bool = False) -> None:
    errors = config_errors(spec, config, partial=partial)
    if errors:
        raise Unprocessable(f"The configuration is not valid for {spec.type}.", errors=errors)


class ConnectorService:
    def __init__(self, secrets: SecretBox):
        self.secrets = secrets

    async def get(self, connector_id: UUID) -> Connector:
        connector = await Connector.get_or_none(id=connector_id)
        if connector is None:
            raise NotFound(f"No connector with id {connector_id}.")
        return connector

    async def create(self, principal: Principal, body: ConnectorCreate) -> Connector:
        spec = known_spec(body.type)
        validate_config(spec, body.config)
        async with outbox.transaction() as conn:
            connector = await Connector.create(
                owner_id=principal.id,
                name=body.name,
                type=body.type,
                description=body.description,
                config=self.secrets.seal(body.config, spec.secret_fields),
                using_db=conn,
            )
            await _record(conn, "connector.created", connector, principal)
        return connector

    async def update(
        self, connector_id: UUID, body: ConnectorUpdate, principal: Principal | None = None
    ) -> Connector:
        connector = await self.get(connector_id)
        changes = body.model_dump(exclude_unset=True)
        if "config" in changes:
            spec = spec_of(connector.type)
            plain = restore_masked(
                changes["config"], spec.secret_fields, self.plain_config(connector)
            )
            validate_config(spec, plain)
            changes["config"] = self.secrets.seal(
                changes["config"], spec.secret_fields, previous=connector.config
            )
        for name, value in changes.items():
            setattr(connector, name, value)
        async with outbox.transaction() as conn:
            await connector.save(using_db=conn)
            await _record(conn, "connector.updated", connector, principal, sorted(changes))
        return connector

    async def delete(self, connector_id: UUID, principal: Principal | None = None) -> None:
        async with outbox.transaction() as conn:
            connector = await Connector.filter(id=connector_id).using_db(conn).first()
            if connector is None:
                raise NotFound(f"No connector with id {connector_id}.")
            await connector.delete(using_db=conn)
            await _record(conn, "connector.deleted", connector, principal)

    def plain_config(self, connector: Connector) -> dict[str, Any]:
        return self.secrets.unseal(connector.config)

    @staticmethod
    def public_view(connector: Connector | dict[str, Any]) -> dict[str, Any]:
        return masked_view(connector, PUBLIC_FIELDS)


def known_spec(type_name: str) -> ConnectorSpec:
    if type_name not in connector_type_names():
        raise Unprocessable(
            f"Unknown connector type {type_name!r}.",
            errors=[
                {"pointer": "/type", "message": f"one of: {', '.join(connector_type_names())}"}
            ],
        )
    return spec_of(type_name)


async def _record(
    conn, type_: str, connector: Connector, principal: Principal | None, changed=()
) -> None:
    # Names only: configuration values (secrets) never go into events.
    data = {"name": connector.name, "type": connector.type, "changed": list(changed)}
    user_id = principal.id if principal else None
    await record_event(conn, type_, "connector", connector.id, data, user_id)
