"""Schema introspection, evolution history, inference, comparison and read recommendations."""

from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.errors import Forbidden
from app.core.http import json_response, page, parse_body, parse_query, parse_uuid
from app.schema import service
from app.schema.recommend import recommend
from app.schema.schemas import (
    CompareBody,
    CompareOut,
    HistoryQuery,
    InferBody,
    RecommendationsOut,
    SchemaOut,
    SchemaQuery,
)
from app.schema.service import SchemaService
from storage.models import Role

bp = Blueprint("schema", url_prefix="/api/v1")


def _service(request: Request) -> SchemaService:
    services = request.app.ctx.services
    return SchemaService(services.connectors, services.settings)


@bp.get("/connectors/<connector_id>/schema")
@requires(Role.VIEWER)
@doc(
    tag="schema",
    summary="A connector's streams and fields (cached; refresh=true discovers again)",
    description="Read from the latest snapshot unless refresh=true (editors) or none exists. "
    "A discovery that finds a different schema stores a snapshot and emits schema.changed.",
    query=SchemaQuery,
    response=SchemaOut,
    errors=(404, 422),
)
async def get_schema(request: Request, connector_id: str):
    query = parse_query(request, SchemaQuery)
    principal = current_principal(request)
    if query.refresh and not principal.role.includes(Role.EDITOR):
        raise Forbidden("Refreshing a schema connects to the source: editors only.")
    schemas = _service(request)
    connector = await schemas.connectors.get(parse_uuid(connector_id, "connector"))
    return json_response(await schemas.schema(connector, query.refresh, principal.id))


@bp.get("/connectors/<connector_id>/schema/history")
@requires(Role.VIEWER)
@doc(
    tag="schema",
    summary="Schema snapshots, newest first, each with its diff to the previous one",
    query=HistoryQuery,
    errors=(404, 422),
)
async def schema_history(request: Request, connector_id: str):
    query = parse_query(request, HistoryQuery)
    schemas = _service(request)
    connector = await schemas.connectors.get(parse_uuid(connector_id, "connector"))
    items, total = await schemas.history(
        connector.id, query.limit, query.offset, query.include_streams
    )
    return json_response(page(items, total, query.limit, query.offset))


@bp.get("/connectors/<connector_id>/recommendations")
@requires(Role.VIEWER)
@doc(
    tag="connectors",
    summary="Suggested read settings per stream: primary key, cursor field, batch size",
    response=RecommendationsOut,
    errors=(404, 422),
)
async def recommendations(request: Request, connector_id: str):
    schemas = _service(request)
    connector = await schemas.connectors.get(parse_uuid(connector_id, "connector"))
    streams = await schemas.cached_streams(connector, current_principal(request).id)
    return json_response(
        {"connector_id": connector.id, "streams": [recommend(stream) for stream in streams]}
    )


@bp.post("/schema/infer")
@requires(Role.EDITOR)
@doc(
    tag="schema",
    summary="Infer one stream's schema from sample records or a file",
    description="Give `sample` (records), `path` (a file relative to DATA_DIR, read by the "
    "file connector) or `file_id` (an uploaded file, once the file service exists).",
    body=InferBody,
)
async def infer_schema(request: Request):
    body = parse_body(request, InferBody)
    stream = await service.infer(body, request.app.ctx.services.settings)
    return json_response(stream.model_dump(mode="json"))


@bp.post("/schema/compare")
@requires(Role.VIEWER)
@doc(
    tag="schema",
    summary="Changes from `left` (old) to `right` (new), each marked breaking or not",
    body=CompareBody,
    response=CompareOut,
)
async def compare_schemas(request: Request):
    body = parse_body(request, CompareBody)
    return json_response(service.compare_fields(body.left, body.right))
