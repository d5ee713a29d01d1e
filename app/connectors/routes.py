from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.connectors.schemas import (
    ConnectorCreate,
    ConnectorListQuery,
    ConnectorOut,
    ConnectorTypeOut,
    ConnectorUpdate,
)
from app.connectors.service import PUBLIC_FIELDS, ConnectorService, all_specs, spec_of
from app.connectors.testing import (
    ConnectionTestBody,
    ConnectionTestOut,
    ConnectorProbe,
    PreviewBody,
    PreviewOut,
    SavedConnectionTestBody,
)
from app.core.docs import doc
from app.core.http import json_response, no_content, page, parse_body, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page, given
from storage.models import Connector, Role

bp = Blueprint("connectors", url_prefix="/api/v1/connectors")

LIST_SPEC = ListSpec({"created_at", "updated_at", "name", "type"}, ("name", "description"))


def _service(request: Request) -> ConnectorService:
    return request.app.ctx.services.connectors


def _type_out(spec) -> dict:
    return ConnectorTypeOut.model_validate(spec, from_attributes=True).model_dump(mode="json")


@bp.get("/types")
@requires(Role.VIEWER)
@doc(
    tag="connectors",
    summary="Connector types with their config JSON Schema and UI schema",
    response={"type": "array", "items": {"$ref": "#/components/schemas/ConnectorTypeOut"}},
)
async def list_types(request: Request):
    return json_response([_type_out(spec) for spec in all_specs()])


@bp.get("/types/<type_name>")
@requires(Role.VIEWER)
@doc(tag="connectors", summary="One connector type", response=ConnectorTypeOut, errors=(404,))
async def get_type(request: Request, type_name: str):
    return json_response(_type_out(spec_of(type_name)))


@bp.get("")
@requires(Role.VIEWER)
@doc(tag="connectors", summary="List connectors", query=ConnectorListQuery, errors=(422,))
async def list_connectors(request: Request):
    query = parse_query(request, ConnectorListQuery)
    rows, total = await fetch_page(
        Connector, LIST_SPEC, query, PUBLIC_FIELDS, given(type=query.type)
    )
    return json_response(
        page(map(ConnectorService.public_view, rows), total, query.limit, query.offset)
    )


@bp.post("")
@requires(Role.EDITOR)
@doc(
    tag="connectors",
    summary="Create a connector",
    body=ConnectorCreate,
    response=ConnectorOut,
    status=201,
)
async def create_connector(request: Request):
    connector = await _service(request).create(
        current_principal(request), parse_body(request, ConnectorCreate)
    )
    return json_response(ConnectorService.public_view(connector), status=201)


@bp.get("/<connector_id>")
@requires(Role.VIEWER)
@doc(
    tag="connectors",
    summary="Get a connector (secrets masked)",
    response=ConnectorOut,
    errors=(404,),
)
async def get_connector(request: Request, connector_id: str):
    connector = await _service(request).get(parse_uuid(connector_id, "connector"))
    return json_response(ConnectorService.public_view(connector))


@bp.patch("/<connector_id>")
@requires(Role.EDITOR)
@doc(
    tag="connectors",
    summary="Update a connector; send a masked secret back to keep it",
    body=ConnectorUpdate,
    response=ConnectorOut,
    errors=(404,),
)
async def update_connector(request: Request, connector_id: str):
    connector_uuid = parse_uuid(connector_id, "connector")
    connector = await _service(request).update(
        connector_uuid, parse_body(request, ConnectorUpdate), current_principal(request)
    )
    return json_response(ConnectorService.public_view(connector))


@bp.delete("/<connector_id>")
@requires(Role.EDITOR)
@doc(tag="connectors", summary="Delete a connector", status=204, errors=(404,))
async def delete_connector(request: Request, connector_id: str):
    await _service(request).delete(
        parse_uuid(connector_id, "connector"), current_principal(request)
    )
    return no_content()


# --- connection tests and previews (app/connectors/testing.py) --------------------------------


def _probe(request: Request) -> ConnectorProbe:
    return ConnectorProbe(_service(request), request.app.ctx.services.settings)


@bp.post("/test")
@requires(Role.EDITOR)
@doc(
    tag="connectors",
    summary="Test an unsaved configuration",
    description="Always 200 for a known type: ok=false with a category (dns, connect, timeout, "
    "tls, auth, permission, not_found, invalid_config) and the config field it concerns.",
    body=ConnectionTestBody,
    response=ConnectionTestOut,
)
async def test_unsaved_connector(request: Request):
    result = await _probe(request).test_unsaved(parse_body(request, ConnectionTestBody))
    return json_response(result)


@bp.post("/<connector_id>/test")
@requires(Role.EDITOR)
@doc(
    tag="connectors",
    summary="Test a saved connector",
    body=SavedConnectionTestBody,
    response=ConnectionTestOut,
    errors=(404,),
)
async def test_saved_connector(request: Request, connector_id: str):
    connector = await _service(request).get(parse_uuid(connector_id, "connector"))
    body = parse_body(request, SavedConnectionTestBody) if request.body else None
    result = await _probe(request).test_saved(connector, body or SavedConnectionTestBody())
    return json_response(result)


@bp.post("/<connector_id>/preview")
@requires(Role.EDITOR)
@doc(
    tag="connectors",
    summary="The first rows of a stream",
    body=PreviewBody,
    response=PreviewOut,
    errors=(404,),
)
async def preview_connector(request: Request, connector_id: str):
    connector = await _service(request).get(parse_uuid(connector_id, "connector"))
    result = await _probe(request).preview(connector, parse_body(request, PreviewBody))
    return json_response(result)
