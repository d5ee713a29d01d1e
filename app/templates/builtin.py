"""Templates shipped with the platform (seeded at start-up, once per name)."""

from __future__ import annotations

import itertools
from typing import Any

_DATASET_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"}
_CONNECTOR = {"type": "string", "minLength": 1, "title": "Connection"}
_NAME = {"type": "string", "minLength": 1}


def _node(node_id: str, node_type: str, config: dict[str, Any], x: int) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "pipelineNode",
        "position": {"x": x, "y": 100},
        "data": {"label": node_id.replace("_", " "), "node_type": node_type, "config": config},
    }


def _edge(source: str, target: str) -> dict[str, Any]:
    return {
        "id": f"{source}-{target}",
        "source": source,
        "target": target,
        "sourceHandle": "out",
        "targetHandle": "in",
    }


def _canvas(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    edges = [_edge(a["id"], b["id"]) for a, b in itertools.pairwise(nodes)]
    return {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 1}}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


FILE_TO_DATASET = {
    "name": "File to dataset",
    "description": "Load a CSV, JSON, Parquet or Excel file into a managed, versioned dataset.",
    "parameters": _schema(
        {
            "connector_id": {**_CONNECTOR, "description": "a file connection"},
            "stream": {**_NAME, "title": "File", "description": "e.g. sales.csv"},
            "dataset": {**_DATASET_NAME, "title": "Dataset name"},
            "mode": {"type": "string", "enum": ["replace", "append"], "default": "replace"},
        },
        ["connector_id", "stream", "dataset"],
    ),
    "visual_definition": _canvas(
        [
            _node(
                "file",
                "source.file",
                {"connector_id": "{{connector_id}}", "stream": "{{stream}}"},
                0,
            ),
            _node(
                "dataset",
                "destination.dataset",
                {"dataset": "{{dataset}}", "mode": "{{mode}}"},
                300,
            ),
        ]
    ),
}

TABLE_SYNC = {
    "name": "Database table sync",
    "description": "Copy new and changed rows of a table into another database (incremental "
    "by a cursor column, upsert on the primary key).",
    "parameters": _schema(
        {
            "source_type": {
                "type": "string",
                "enum": ["postgres", "mysql", "sqlite"],
                "default": "postgres",
            },
            "source_connector_id": _CONNECTOR,
            "source_table": {**_NAME, "title": "Source table"},
            "cursor_field": {**_NAME, "title": "Cursor column", "description": "e.g. updated_at"},
            "destination_type": {
                "type": "string",
                "enum": ["postgres", "mysql", "sqlite"],
                "default": "postgres",
            },
            "destination_connector_id": _CONNECTOR,
            "destination_table": {**_NAME, "title": "Destination table"},
            "primary_key": {"type": "array", "items": _NAME, "minItems": 1, "title": "Primary key"},
        },
        [
            "source_connector_id",
            "source_table",
            "cursor_field",
            "destination_connector_id",
            "destination_table",
            "primary_key",
        ],
    ),
    "visual_definition": _canvas(
        [
            _node(
                "source_table",
                "source.{{source_type}}",
                {
                    "connector_id": "{{source_connector_id}}",
                    "stream": "{{source_table}}",
                    "sync_mode": "incremental",
                    "cursor_field": "{{cursor_field}}",
                },
                0,
            ),
            _node(
                "destination_table",
                "destination.{{destination_type}}",
                {
                    "connector_id": "{{destination_connector_id}}",
                    "stream": "{{destination_table}}",
                    "mode": "upsert",
                    "primary_key": "{{primary_key}}",
                },
                300,
            ),
        ]
    ),
}

API_TO_DATABASE = {
    "name": "API to database with dedupe",
    "description": "Read a resource from an HTTP API, drop duplicate records by key and upsert "
    "them into a database table.",
    "parameters": _schema(
        {
            "api_connector_id": {**_CONNECTOR, "description": "an HTTP API connection"},
            "resource": {**_NAME, "title": "Resource / stream"},
            "key": {"type": "array", "items": _NAME, "minItems": 1, "title": "Record key"},
            "destination_type": {
                "type": "string",
                "enum": ["postgres", "mysql", "sqlite"],
                "default": "postgres",
            },
            "destination_connector_id": _CONNECTOR,
            "destination_table": {**_NAME, "title": "Destination table"},
        },
        ["api_connector_id", "resource", "key", "destination_connector_id", "destination_table"],
    ),
    "visual_definition": _canvas(
        [
            _node(
                "api",
                "source.http_api",
                {"connector_id": "{{api_connector_id}}", "stream": "{{resource}}"},
                0,
            ),
            _node("dedupe", "transform.deduplicate", {"subset": "{{key}}", "keep": "last"}, 300),
            _node(
                "table",
                "destination.{{destination_type}}",
                {
                    "connector_id": "{{destination_connector_id}}",
                    "stream": "{{destination_table}}",
                    "mode": "upsert",
                    "primary_key": "{{key}}",
                },
                600,
            ),
        ]
    ),
}

BUILTIN_TEMPLATES: list[dict[str, Any]] = [FILE_TO_DATASET, TABLE_SYNC, API_TO_DATABASE]
