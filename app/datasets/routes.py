"""Managed datasets: list, detail (schema, versions), preview."""

from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import requires
from app.core.docs import doc
from app.core.http import json_response, page, parse_query, parse_uuid
from app.core.listing import ListSpec, fetch_page, given
from app.datasets import service
from app.datasets.schemas import (
    DatasetListQuery,
    DatasetOut,
    DatasetSummary,
    PreviewOut,
    PreviewQuery,
)
from app.executions.wiring import connector_context
from engine.connectors.dataset import store_for
from engine.datasets import DatasetStore
from storage.models import Dataset, Role

bp = Blueprint("datasets", url_prefix="/api/v1/datasets")

LIST_SPEC = ListSpec({"created_at", "updated_at", "name"}, ("name", "description"))
SUMMARY_FIELDS = tuple(DatasetSummary.model_fields)


def _store(request: Request) -> DatasetStore:
    return store_for(connector_context(request.app.ctx.services.settings))


@bp.get("")
@requires(Role.VIEWER)
@doc(tag="datasets", summary="List managed datasets", query=DatasetListQuery, errors=(422,))
async def list_datasets(request: Request):
    query = parse_query(request, DatasetListQuery)
    where = given(pipeline_id=query.pipeline_id)
    rows, total = await fetch_page(Dataset, LIST_SPEC, query, SUMMARY_FIELDS, where)
    return json_response(page(rows, total, query.limit, query.offset))


@bp.get("/<dataset_id>")
@requires(Role.VIEWER)
@doc(
    tag="datasets",
    summary="A dataset with its schema and versions",
    response=DatasetOut,
    errors=(404,),
)
async def get_dataset(request: Request, dataset_id: str):
    view = await service.dataset_view(_store(request), parse_uuid(dataset_id, "dataset"))
    return json_response(view)


@bp.get("/<dataset_id>/preview")
@requires(Role.VIEWER)
@doc(
    tag="datasets",
    summary="The first rows of the current (or a given) version",
    query=PreviewQuery,
    response=PreviewOut,
    errors=(404, 422),
)
async def preview_dataset(request: Request, dataset_id: str):
    dataset_uuid = parse_uuid(dataset_id, "dataset")
    query = parse_query(request, PreviewQuery)
    result = await service.preview(_store(request), dataset_uuid, query.limit, query.version)
    return json_response(result)
