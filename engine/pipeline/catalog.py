"""The node types the visual builder offers: ports, config JSON Schema (draft 2020-12), UI schema.

Type names: `source.<connector_type>`, `source.inline`, `transform.<name>`,
`destination.<connector_type>`, `destination.dataset`. Schemas are plain dicts usable as-is by
react-jsonschema-form; `ui:order` fixes the field order.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel

from engine.connectors import registry
from engine.schema import LogicalType

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Used only when a connector module cannot be imported (e.g. its optional driver is missing),
# so the catalog still lists the type instead of failing as a whole.
_FALLBACK_DIRECTIONS: dict[str, str] = {
    "postgres": "both",
    "mysql": "both",
    "sqlite": "both",
    "http_api": "source",
    "file": "both",
    "dataset": "both",
}


class NodeType(BaseModel):
    type: str
    category: Literal["source", "transform", "destination"]
    title: str
    description: str
    inputs: list[str]
    outputs: list[str]
    config_schema: dict[str, Any]
    ui_schema: dict[str, Any]
    # Ports that take several edges (union's "in") and ports that may stay unconnected.
    multi_inputs: list[str] = []
    optional_inputs: list[str] = []


def _object(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_DIALECT,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        **extra,
    }


def _ui(order: list[str], **fields: Any) -> dict[str, Any]:
    return {"ui:order": [*order, "*"], **fields}


_COLUMN = {"type": "string", "minLength": 1}
_COLUMNS = {"type": "array", "items": _COLUMN, "minItems": 1, "uniqueItems": True}
_EXPRESSION = {"type": "string", "minLength": 1, "description": "SQL expression"}
_LOGICAL_TYPES = [t.value for t in LogicalType if t is not LogicalType.UNKNOWN]
_SCALAR = {"type": ["string", "number", "integer", "boolean"]}
_EXPRESSION_UI = {"ui:widget": "expression"}
_COLUMN_UI = {"ui:widget": "column-select"}


# --- sources and destinations -----------------------------------------------------------------


def _connector_direction(type_name: str) -> tuple[str, str]:
    """(direction, title) from the connector's spec, falling back to a static table."""
    try:
        spec = registry.get_connector(type_name).spec()
        return spec.direction, spec.title
    except Exception:
        return _FALLBACK_DIRECTIONS.get(type_name, "source"), type_name.replace("_", " ").title()


def _source_type(type_name: str, title: str) -> NodeType:
    schema = _object(
        {
            "connector_id": {"type": "string", "minLength": 1, "title": "Connection"},
            "stream": {"type": "string", "minLength": 1, "title": "Table / stream"},
            "sync_mode": {
                "type": "string",
                "enum": ["full_refresh", "incremental"],
                "default": "full_refresh",
                "title": "Sync mode",
            },
            "cursor_field": {"type": ["string", "null"], "title": "Cursor field"},
            "limit": {"type": ["integer", "null"], "minimum": 1, "title": "Row limit"},
        },
        ["connector_id", "stream"],
        allOf=[
            {
                "if": {
                    "properties": {"sync_mode": {"const": "incremental"}},
                    "required": ["sync_mode"],
                },
                "then": {"required": ["cursor_field"], "properties": {"cursor_field": _COLUMN}},
            }
        ],
    )
    ui = _ui(
        ["connector_id", "stream", "sync_mode", "cursor_field", "limit"],
        connector_id={"ui:widget": "connector-select", "ui:options": {"connector_type": type_name}},
        stream={"ui:widget": "stream-select"},
        cursor_field=_COLUMN_UI,
    )
    return NodeType(
        type=f"source.{type_name}",
        category="source",
        title=f"{title} source",
        description=f"Read a stream from a saved {title} connection.",
        inputs=[],
        outputs=["out"],
        config_schema=schema,
        ui_schema=ui,
    )


_WRITE_MODE = {
    "type": "string",
    "enum": ["append", "replace", "upsert"],
    "default": "append",
    "title": "Write mode",
}
_PRIMARY_KEY = {"type": "array", "items": _COLUMN, "uniqueItems": True, "title": "Primary key"}
_UPSERT_NEEDS_KEY = {
    "if": {"properties": {"mode": {"const": "upsert"}}, "required": ["mode"]},
    "then": {"required": ["primary_key"], "properties": {"primary_key": {"minItems": 1}}},
}


def _destination_type(type_name: str, title: str) -> NodeType:
    schema = _object(
        {
            "connector_id": {"type": "string", "minLength": 1, "title": "Connection"},
            "stream": {"type": "string", "minLength": 1, "title": "Table / stream"},
            "mode": _WRITE_MODE,
            "primary_key": _PRIMARY_KEY,
        },
        ["connector_id", "stream"],
        allOf=[_UPSERT_NEEDS_KEY],
    )
    ui = _ui(
        ["connector_id", "stream", "mode", "primary_key"],
        connector_id={"ui:widget": "connector-select", "ui:options": {"connector_type": type_name}},
        primary_key={"items": _COLUMN_UI},
    )
    return NodeType(
        type=f"destination.{type_name}",
        category="destination",
        title=f"{title} destination",
        description=f"Write rows to a saved {title} connection (staged, published at the end).",
        inputs=["in"],
        outputs=[],
        config_schema=schema,
        ui_schema=ui,
    )


def _dataset_destination() -> NodeType:
    # Managed datasets version every write; they take append or replace, not upsert.
    schema = _object(
        {
            "dataset": {
                "type": "string",
                "title": "Dataset name",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
            },
            "mode": {**_WRITE_MODE, "enum": ["append", "replace"], "default": "replace"},
        },
        ["dataset"],
    )
    return NodeType(
        type="destination.dataset",
        category="destination",
        title="Managed dataset",
        description="Write to a managed, versioned dataset; every run creates a version.",
        inputs=["in"],
        outputs=[],
        config_schema=schema,
        ui_schema=_ui(["dataset", "mode"]),
    )


def _inline_source() -> NodeType:
    return NodeType(
        type="source.inline",
        category="source",
        title="Inline rows",
        description="Rows typed into the pipeline itself (small lookup tables, tests).",
        inputs=[],
        outputs=["out"],
        config_schema=_object(
            {"rows": {"type": "array", "items": {"type": "object"}, "title": "Rows"}}, ["rows"]
        ),
        ui_schema=_ui(["rows"], rows={"ui:widget": "json-rows"}),
    )


# --- transforms -------------------------------------------------------------------------------


def _transform(
    name: str,
    title: str,
    description: str,
    properties: dict[str, Any],
    required: list[str],
    ui: dict[str, Any] | None = None,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    **extra: Any,
) -> NodeType:
    schema_extra = extra.pop("schema_extra", {})
    return NodeType(
        type=f"transform.{name}",
        category="transform",
        title=title,
        description=description,
        inputs=inputs or ["in"],
        outputs=outputs or ["out"],
        config_schema=_object(properties, required, **schema_extra),
        ui_schema=_ui(list(properties), **(ui or {})),
        **extra,
    )


_AGG_OPS = [
    "sum",
    "mean",
    "min",
    "max",
    "count",
    "count_distinct",
    "first",
    "last",
    "median",
    "std",
]
_FILL_STRATEGIES = ["forward", "backward", "min", "max", "mean", "zero", "one"]
_CHECKS = ["not_null", "unique", "range", "regex", "in_set", "expression"]


def _validate_rule_schema() -> dict[str, Any]:
    def needs(check: str, *fields: str) -> dict[str, Any]:
        return {
            "if": {"properties": {"check": {"const": check}}},
            "then": {"required": list(fields)},
        }

    return {
        "type": "object",
        "properties": {
            "column": _COLUMN,
            "check": {"type": "string", "enum": _CHECKS},
            "min": {"type": ["number", "string", "null"]},
            "max": {"type": ["number", "string", "null"]},
            "pattern": {"type": "string", "minLength": 1},
            "values": {"type": "array", "items": _SCALAR},
            "expression": _EXPRESSION,
            "message": {"type": "string"},
        },
        "required": ["check"],
        "additionalProperties": False,
        "allOf": [
            *(
                needs(check, "column")
                for check in ["not_null", "unique", "range", "regex", "in_set"]
            ),
            needs("regex", "pattern"),
            needs("in_set", "values"),
            needs("expression", "expression"),
            {
                "if": {"properties": {"check": {"const": "range"}}},
                "then": {"anyOf": [{"required": ["min"]}, {"required": ["max"]}]},
            },
        ],
    }


def _transforms() -> list[NodeType]:
    return [
        _transform(
            "select",
            "Select columns",
            "Keep these columns, in this order.",
            {"columns": {**_COLUMNS, "title": "Columns"}},
            ["columns"],
            {"columns": {"items": _COLUMN_UI}},
        ),
        _transform(
            "rename",
            "Rename columns",
            "Rename columns (old name → new name).",
            {"mapping": {"type": "object", "additionalProperties": _COLUMN, "minProperties": 1}},
            ["mapping"],
        ),
        _transform(
            "drop",
            "Drop columns",
            "Remove these columns.",
            {"columns": {**_COLUMNS, "title": "Columns"}},
            ["columns"],
            {"columns": {"items": _COLUMN_UI}},
        ),
        _transform(
            "cast",
            "Change types",
            "Convert columns to another type; failures become null unless strict.",
            {
                "columns": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "enum": _LOGICAL_TYPES},
                    "minProperties": 1,
                },
                "strict": {"type": "boolean", "default": False},
            },
            ["columns"],
        ),
        _transform(
            "filter",
            "Filter rows",
            "Keep rows where a SQL condition holds, e.g. `amount > 0 AND status = 'paid'`.",
            {"expression": {**_EXPRESSION, "title": "Condition"}},
            ["expression"],
            {"expression": _EXPRESSION_UI},
        ),
        _transform(
            "derive",
            "Derived columns",
            "Add or replace columns computed with SQL expressions; "
            "later columns may use earlier ones.",
            {
                "columns": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {"name": _COLUMN, "expression": _EXPRESSION},
                        "required": ["name", "expression"],
                        "additionalProperties": False,
                    },
                }
            },
            ["columns"],
            {"columns": {"items": {"expression": _EXPRESSION_UI}}},
        ),
        _transform(
            "aggregate",
            "Aggregate",
            "Group rows and compute sums, counts, averages...",
            {
                "group_by": {"type": "array", "items": _COLUMN, "uniqueItems": True, "default": []},
                "aggregations": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "column": _COLUMN,
                            "op": {"type": "string", "enum": _AGG_OPS},
                            "as": _COLUMN,
                        },
                        "required": ["op"],
                        "additionalProperties": False,
                        "if": {"properties": {"op": {"not": {"const": "count"}}}},
                        "then": {"required": ["column"]},
                    },
                },
            },
            ["aggregations"],
            {"group_by": {"items": _COLUMN_UI}},
        ),
        _transform(
            "join",
            "Join",
            "Combine two inputs on key columns.",
            {
                "how": {
                    "type": "string",
                    "enum": ["inner", "left", "right", "full", "semi", "anti"],
                    "default": "inner",
                },
                "on": {**_COLUMNS, "title": "Key columns (same name on both sides)"},
                "left_on": _COLUMNS,
                "right_on": _COLUMNS,
                "suffix": {"type": "string", "minLength": 1, "default": "_right"},
            },
            ["how"],
            inputs=["left", "right"],
            schema_extra={
                "oneOf": [
                    {
                        "required": ["on"],
                        "not": {"anyOf": [{"required": ["left_on"]}, {"required": ["right_on"]}]},
                    },
                    {"required": ["left_on", "right_on"], "not": {"required": ["on"]}},
                ]
            },
        ),
        _transform(
            "union",
            "Union",
            "Stack all connected inputs by column name; a column missing "
            "from one input is null there.",
            {},
            [],
            multi_inputs=["in"],
        ),
        _transform(
            "deduplicate",
            "Remove duplicates",
            "Keep one row per key (all columns if no subset).",
            {
                "subset": {"type": "array", "items": _COLUMN, "uniqueItems": True},
                "keep": {
                    "type": "string",
                    "enum": ["first", "last", "any", "none"],
                    "default": "first",
                },
            },
            [],
        ),
        _transform(
            "sort",
            "Sort",
            "Order rows by columns.",
            {
                "by": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "column": _COLUMN,
                            "descending": {"type": "boolean", "default": False},
                        },
                        "required": ["column"],
                        "additionalProperties": False,
                    },
                },
                "nulls_last": {"type": "boolean", "default": False},
            },
            ["by"],
        ),
        _transform(
            "limit",
            "Limit",
            "Keep the first N rows (after an optional offset).",
            {
                "n": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0, "default": 0},
            },
            ["n"],
        ),
        _transform(
            "fill_null",
            "Fill missing values",
            "Replace nulls with a value or a strategy.",
            {
                "columns": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "column": _COLUMN,
                            "value": _SCALAR,
                            "strategy": {"type": "string", "enum": _FILL_STRATEGIES},
                        },
                        "required": ["column"],
                        "additionalProperties": False,
                        "oneOf": [{"required": ["value"]}, {"required": ["strategy"]}],
                    },
                }
            },
            ["columns"],
        ),
        _transform(
            "mapping",
            "Map to schema",
            "Build target columns from source columns or expressions, with casts and defaults.",
            {
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "target": _COLUMN,
                            "source": _COLUMN,
                            "expression": _EXPRESSION,
                            "cast": {"type": "string", "enum": _LOGICAL_TYPES},
                            "default": _SCALAR,
                        },
                        "required": ["target"],
                        "additionalProperties": False,
                        "oneOf": [{"required": ["source"]}, {"required": ["expression"]}],
                    },
                },
                "keep_unmapped": {"type": "boolean", "default": False},
                "target_schema": {
                    "type": "array",
                    "title": "Target schema (optional: output exactly these typed fields)",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": _COLUMN,
                            "type": {"type": "string", "enum": _LOGICAL_TYPES},
                            "nullable": {"type": "boolean", "default": True},
                        },
                        "required": ["name", "type"],
                    },
                },
            },
            ["rules"],
        ),
        _transform(
            "sql",
            "SQL query",
            'A SELECT over the inputs: `self` (or "in") and `in2`.',
            {"query": {"type": "string", "minLength": 1, "title": "Query"}},
            ["query"],
            {"query": {"ui:widget": "sql"}},
            inputs=["in", "in2"],
            optional_inputs=["in2"],
        ),
        _transform(
            "validate",
            "Validate rows",
            "Check rules; passing rows leave on `valid`, failing "
            "rows on `invalid` with an `_errors` column.",
            {"rules": {"type": "array", "minItems": 1, "items": _validate_rule_schema()}},
            ["rules"],
            outputs=["valid", "invalid"],
        ),
    ]


@cache
def node_types() -> tuple[NodeType, ...]:
    """Every node type, sources first. Cached: connector specs do not change at run time."""
    sources = [_inline_source()]
    destinations = [_dataset_destination()]
    for type_name in registry.connector_type_names():
        direction, title = _connector_direction(type_name)
        if direction in ("source", "both"):
            sources.append(_source_type(type_name, title))
        # The managed dataset has its own node (no connection to pick).
        if direction in ("destination", "both") and type_name != "dataset":
            destinations.append(_destination_type(type_name, title))
    return (*sources, *_transforms(), *destinations)


@cache
def node_types_by_name() -> dict[str, NodeType]:
    return {node_type.type: node_type for node_type in node_types()}


def get_node_type(type_name: str) -> NodeType | None:
    return node_types_by_name().get(normalise_type(type_name))


def normalise_type(type_name: str) -> str:
    """Bare transform names (`filter`) are accepted for `transform.filter`."""
    if "." not in type_name and f"transform.{type_name}" in node_types_by_name():
        return f"transform.{type_name}"
    return type_name


def connector_type_of(node_type: str) -> str | None:
    """`source.postgres` → `postgres`; None for inline sources and transforms."""
    category, _, name = node_type.partition(".")
    if category in ("source", "destination") and name != "inline":
        return name
    return None
