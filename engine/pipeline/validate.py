"""Validation a canvas can highlight: structure, configs, expressions and column schemas.

Schemas propagate through the graph without data: each transform runs on empty frames with
its inputs' schemas, using the very functions the executor runs, so a pipeline that validates
is planned the same way it executes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import polars as pl
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError
from pydantic import BaseModel

from engine.pipeline.catalog import NodeType, get_node_type
from engine.pipeline.expressions import ExpressionError, error_summary, referenced_columns
from engine.pipeline.graph import Analysis, ExecutionGraph, GraphNode, Issue, analyse
from engine.pipeline.schema_bridge import empty_frame, schema_to_fields
from engine.pipeline.transforms import (
    TRANSFORMS,
    ConfigPath,
    TransformConfigError,
    transform_name,
)
from engine.schema import Field

# `resolve_source_schema(node)` → the fields a connector source will produce, or None when
# unknown (unreachable database, no saved schema). May be sync or async.
SchemaResolver = Callable[[GraphNode], list[Field] | Awaitable[list[Field] | None] | None]


class ValidationResult(BaseModel):
    valid: bool
    errors: list[Issue]
    warnings: list[Issue]
    # Output schema per node (first output port); `port_schemas` has every port.
    node_schemas: dict[str, list[Field]]
    port_schemas: dict[str, dict[str, list[Field]]] = {}


def json_pointer(parts: tuple[str | int, ...] | list[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def config_pointer(node: GraphNode, path: ConfigPath = ()) -> str:
    return f"/nodes/{node.index}/data/config" + json_pointer(path)


@cache
def _validator(node_type: str) -> Draft202012Validator:
    entry = get_node_type(node_type)
    assert entry is not None
    return Draft202012Validator(entry.config_schema)


def _schema_error_path(error: SchemaValidationError) -> ConfigPath:
    path = tuple(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        # Point at the missing field itself, which is where the form shows it.
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            return (*path, missing[0])
    return path


def config_issues(node: GraphNode) -> list[Issue]:
    """JSON Schema errors for a node's config, each with a pointer to the field."""
    if "__invalid__" in node.config:
        return [
            Issue(
                code="config_invalid",
                node_id=node.id,
                pointer=config_pointer(node),
                message="config must be an object",
            )
        ]
    errors = sorted(
        _validator(node.type).iter_errors(node.config),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    return [
        Issue(
            code="config_invalid",
            node_id=node.id,
            pointer=config_pointer(node, _schema_error_path(error)),
            message=error.message,
        )
        for error in errors
    ]


def expression_issues(node: GraphNode) -> list[Issue]:
    definition = TRANSFORMS.get(transform_name(node.type))
    if definition is None:
        return []
    issues = []
    for path, text in definition.expressions(node.config):
        try:
            referenced_columns(text)
        except ExpressionError as exc:
            issues.append(
                Issue(
                    code="invalid_expression",
                    node_id=node.id,
                    pointer=config_pointer(node, path),
                    message=str(exc),
                )
            )
    return issues


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, pl.exceptions.ColumnNotFoundError):
        return "unknown_column"
    if isinstance(exc, ExpressionError):
        return "invalid_expression"
    if isinstance(exc, pl.exceptions.DuplicateError):
        return "duplicate_column"
    if isinstance(exc, TransformConfigError | KeyError):
        return "config_invalid"
    return "type_mismatch"


class _Propagation:
    """Walks the graph in order, computing each node's output schema per port."""

    def __init__(self, analysis: Analysis, resolver: SchemaResolver | None):
        self.graph: ExecutionGraph = analysis.graph
        self.types: dict[str, NodeType] = analysis.node_types
        self.resolver = resolver
        self.ports: dict[str, dict[str, list[Field]]] = {}
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []

    async def run(self, broken: set[str]) -> None:
        for node_id in self.graph.order:
            node = self.graph.node(node_id)
            if node_id in broken:
                continue
            category = self.types[node_id].category
            if category == "source":
                fields = await self._source_fields(node)
                if fields is not None:
                    self.ports[node_id] = {"out": fields}
                continue
            inputs = self._input_fields(node)
            if inputs is None:
                continue  # an upstream schema is unknown; nothing to check against
            if category == "destination":
                self._check_destination(node, inputs["in"])
                self.ports[node_id] = {"in": inputs["in"]}
            else:
                # Planning is cheap on empty frames but still CPU work: keep it off the loop.
                await asyncio.to_thread(self._check_transform, node, inputs)

    async def _source_fields(self, node: GraphNode) -> list[Field] | None:
        if node.type == "source.inline":
            rows = node.config.get("rows") or []
            return schema_to_fields(pl.DataFrame(rows, infer_schema_length=None).schema)
        fields = None
        if self.resolver is not None:
            try:
                fields = self.resolver(node)
                if inspect.isawaitable(fields):
                    fields = await fields
            except Exception as exc:
                self.warnings.append(
                    Issue(
                        code="schema_unknown",
                        node_id=node.id,
                        message=f"cannot read the source schema: {exc}",
                    )
                )
                return None
        if fields is None:
            self.warnings.append(
                Issue(
                    code="schema_unknown",
                    node_id=node.id,
                    message="source schema unknown; columns not checked",
                )
            )
        return fields

    def _input_fields(self, node: GraphNode) -> dict[str, list[Field]] | None:
        """Schemas per input key, or None when an input is unknown or not connected."""
        inputs = {}
        connected = set()
        for edge in self.graph.in_edges(node.id):
            upstream = self.ports.get(edge.source, {}).get(edge.source_port)
            if upstream is None:
                return None
            inputs[edge.input_key] = upstream
            connected.add(edge.target_port)
        node_type = self.types[node.id]
        required = set(node_type.inputs) - set(node_type.optional_inputs)
        return inputs if required <= connected else None

    def _unknown_column(
        self, node: GraphNode, path: ConfigPath, column: str, available: list[str]
    ) -> None:
        self.errors.append(
            Issue(
                code="unknown_column",
                node_id=node.id,
                pointer=config_pointer(node, path),
                message=f"column {column!r} does not exist (available: "
                f"{', '.join(available) or 'none'})",
            )
        )

    def _check_destination(self, node: GraphNode, fields: list[Field]) -> None:
        names = [field.name for field in fields]
        for index, column in enumerate(node.config.get("primary_key") or []):
            if column not in names:
                self._unknown_column(node, ("primary_key", index), column, names)

    def _check_columns(self, node: GraphNode, inputs: dict[str, list[Field]]) -> bool:
        definition = TRANSFORMS[transform_name(node.type)]
        before = len(self.errors)
        for ref in definition.column_refs(node.config):
            names = [field.name for field in inputs.get(ref.port, [])]
            if ref.port in inputs and ref.column not in names:
                self._unknown_column(node, ref.path, ref.column, names)
        if "in" in inputs:
            names = [field.name for field in inputs["in"]]
            for path, text in definition.expressions(node.config):
                for column in referenced_columns(text):
                    if column not in names and not self._derived_earlier(node, path, column):
                        self._unknown_column(node, path, column, names)
        return len(self.errors) == before

    @staticmethod
    def _derived_earlier(node: GraphNode, path: ConfigPath, column: str) -> bool:
        # A derive column may use the columns derived before it (mapping rules may not: they
        # all read the input).
        if transform_name(node.type) != "derive" or len(path) < 2:
            return False
        items = node.config.get("columns") or []
        position = path[1] if isinstance(path[1], int) else 0
        return any(
            isinstance(item, dict) and item.get("name") == column for item in items[:position]
        )

    def _check_transform(self, node: GraphNode, inputs: dict[str, list[Field]]) -> None:
        if not self._check_columns(node, inputs):
            return
        definition = TRANSFORMS[transform_name(node.type)]
        frames = {key: empty_frame(fields) for key, fields in inputs.items()}
        try:
            outputs = _plan(definition.fn, frames, node.config)
        except Exception as exc:
            self._report_failure(node, frames, exc)
            return
        self.ports[node.id] = outputs

    def _report_failure(
        self, node: GraphNode, frames: dict[str, pl.LazyFrame], exc: Exception
    ) -> None:
        definition = TRANSFORMS[transform_name(node.type)]
        path: ConfigPath = getattr(exc, "path", ()) or definition.error_path
        # Re-plan item by item to point at the entry that breaks (e.g. aggregations/2).
        for item_path, partial in definition.items(node.config):
            try:
                _plan(definition.fn, frames, partial)
            except Exception as item_exc:
                exc, path = item_exc, (*item_path, *getattr(item_exc, "path", ())[-1:])
                break
        self.errors.append(
            Issue(
                code=_error_code(exc),
                node_id=node.id,
                pointer=config_pointer(node, path),
                message=error_summary(exc),
            )
        )


def _plan(
    fn: Any, frames: dict[str, pl.LazyFrame], config: dict[str, Any]
) -> dict[str, list[Field]]:
    # collect() on zero rows, not just collect_schema(): some type errors (comparing a string
    # with a number) only surface when the plan is executed.
    outputs = fn(frames, config)
    return {port: schema_to_fields(frame.collect().schema) for port, frame in outputs.items()}


def _reachability_warnings(analysis: Analysis) -> list[Issue]:
    graph = analysis.graph
    destinations = [
        n.id for n in graph.nodes if analysis.node_types[n.id].category == "destination"
    ]
    if not destinations:
        return [
            Issue(code="no_destination", message="the pipeline writes nowhere: add a destination")
        ]
    feeding = set(destinations)
    for destination in destinations:
        feeding |= graph.upstream(destination)
    return [
        Issue(
            code="unreachable",
            node_id=node.id,
            pointer=f"/nodes/{node.index}",
            message=f"node {node.id!r} does not lead to any destination",
        )
        for node in graph.nodes
        if node.id not in feeding
    ]


async def validate(
    visual_definition: Any, resolve_source_schema: SchemaResolver | None = None
) -> ValidationResult:
    """Validate a builder document; never raises for bad input."""
    analysis = analyse(visual_definition)
    errors = list(analysis.issues)
    broken: set[str] = set()
    for node in analysis.graph.nodes:
        node_errors = config_issues(node)
        if not node_errors:
            node_errors = expression_issues(node)
        if node_errors:
            broken.add(node.id)
            errors.extend(node_errors)

    propagation = _Propagation(analysis, resolve_source_schema)
    await propagation.run(broken)
    errors.extend(propagation.errors)
    warnings = propagation.warnings + _reachability_warnings(analysis)
    port_schemas = {node_id: ports for node_id, ports in propagation.ports.items() if ports}
    return ValidationResult(
        valid=not errors,
        errors=errors,
        warnings=warnings,
        node_schemas={
            node_id: next(iter(ports.values())) for node_id, ports in port_schemas.items()
        },
        port_schemas=port_schemas,
    )
