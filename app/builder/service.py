"""The visual builder's helpers: node palette, validation, dry runs of unsaved canvases, perf
tests and version diffs. Runs of saved pipelines go through their actor (app/executions)."""

from __future__ import annotations

from typing import Any

from app.connectors.service import ConnectorService
from app.core.errors import Unprocessable
from app.executions.service import issues_as_errors
from app.executions.wiring import SchemaDiscovery, connector_io
from engine.connectors.base import ConnectorContext
from engine.pipeline import GraphError, analyse, compile_graph, dry_run, node_types, perf_test
from engine.pipeline import validate as validate_definition
from storage.models import PipelineVersion

UI_STATE_KEYS = {"selected", "dragging", "positionAbsolute", "measured", "resizing"}


def palette() -> list[dict[str, Any]]:
    return [node_type.model_dump(mode="json") for node_type in node_types()]


class BuilderService:
    def __init__(self, connectors: ConnectorService, ctx: ConnectorContext):
        self.connectors = connectors
        self.ctx = ctx

    async def validate(self, visual_definition: dict[str, Any]) -> dict[str, Any]:
        io = await connector_io(self.connectors, self.ctx, analyse(visual_definition).graph.nodes)
        result = await validate_definition(visual_definition, SchemaDiscovery(io))
        return result.model_dump(mode="json", exclude={"port_schemas"})

    async def dry_run(
        self,
        visual_definition: dict[str, Any],
        test_data: dict[str, list[dict[str, Any]]] | None,
        sample_limit: int,
    ) -> dict[str, Any]:
        """An unsaved canvas on test rows or source samples; writes nothing."""
        io = await connector_io(self.connectors, self.ctx, analyse(visual_definition).graph.nodes)
        result = await dry_run(
            visual_definition, test_data=test_data, sample_limit=sample_limit, reader=io
        )
        return result.to_api()

    async def perf_test(self, visual_definition: dict[str, Any], rows: int) -> dict[str, Any]:
        try:
            graph = compile_graph(visual_definition)
        except GraphError as exc:
            raise Unprocessable(
                "The pipeline does not compile; validate it.", errors=issues_as_errors(exc.issues)
            ) from None
        io = await connector_io(self.connectors, self.ctx, graph.nodes)
        try:
            result = await perf_test(graph, rows=rows, resolve_source_schema=SchemaDiscovery(io))
        except ValueError as exc:  # a source whose schema cannot be discovered
            raise Unprocessable(str(exc)) from None
        return result.model_dump(mode="json")


# --- version diff ------------------------------------------------------------------------


def _by_id(items: list[Any]) -> dict[str, dict[str, Any]]:
    return {str(item["id"]): item for item in items if isinstance(item, dict) and "id" in item}


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Top-level keys that differ (and `data.<key>` inside data), UI state ignored."""
    fields = []
    for key in sorted((set(old) | set(new)) - UI_STATE_KEYS):
        if key == "data" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            fields += [f"data.{name}" for name in _changed_fields(old[key], new[key])]
        elif old.get(key) != new.get(key):
            fields.append(key)
    return fields


def diff_items(old: list[Any], new: list[Any]) -> dict[str, Any]:
    before, after = _by_id(old), _by_id(new)
    changed = []
    for item_id in before.keys() & after.keys():
        fields = _changed_fields(before[item_id], after[item_id])
        if fields:
            changed.append({"id": item_id, "fields": fields})
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(changed, key=lambda change: change["id"]),
    }


def diff_versions(new: PipelineVersion, old: PipelineVersion) -> dict[str, Any]:
    new_canvas, old_canvas = new.visual_definition or {}, old.visual_definition or {}
    return {
        "version": new.version,
        "against": old.version,
        "fields": [
            name
            for name in ("name", "description", "schedule")
            if getattr(new, name) != getattr(old, name)
        ],
        "nodes": diff_items(old_canvas.get("nodes") or [], new_canvas.get("nodes") or []),
        "edges": diff_items(old_canvas.get("edges") or [], new_canvas.get("edges") or []),
    }
