"""Admin settings applied at run time: the connector network policy (SSRF guard)."""

from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.connectors.context import (
    NetworkSettings,
    load_network_settings,
    policy_source,
    save_network_settings,
)
from app.core.docs import doc
from app.core.http import json_response, parse_body
from app.settings_api.schemas import NetworkSettingsBody, NetworkSettingsOut
from storage.models import PlatformSetting, Role

bp = Blueprint("settings", url_prefix="/api/v1/settings")


def _view(request: Request, value: NetworkSettings, row: PlatformSetting | None) -> dict:
    policy = policy_source(request.app.ctx.services.settings).set(value)
    return {
        **value.model_dump(mode="json"),
        "effective": {
            "allow_loopback": policy.allow_loopback,
            "allowed_networks": policy.allowed_networks,
            "denied_networks": policy.denied_networks,
        },
        "updated_at": row.updated_at if row else None,
        "updated_by": row.updated_by if row else None,
    }


@bp.get("/network")
@requires(Role.ADMIN)
@doc(
    tag="settings",
    summary="Networks connectors may (not) reach, on top of the deployment's settings",
    response=NetworkSettingsOut,
)
async def get_network_settings(request: Request):
    value, row = await load_network_settings()
    return json_response(_view(request, value, row))


@bp.put("/network")
@requires(Role.ADMIN)
@doc(
    tag="settings",
    summary="Replace the connector network settings (applies to every process within seconds)",
    body=NetworkSettingsBody,
    response=NetworkSettingsOut,
)
async def put_network_settings(request: Request):
    body = parse_body(request, NetworkSettingsBody)
    value = NetworkSettings.model_validate(body.model_dump())
    row = await save_network_settings(value, current_principal(request).id)
    return json_response(_view(request, value, row))
