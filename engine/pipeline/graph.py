"""Compile the builder's React Flow document into an ExecutionGraph.

Input shape (what the builder saves): `{nodes: [{id, type?, data: {...}, position, ...}],
edges: [{id, source, target, sourceHandle, targetHandle}], viewport}`.

Rules:
- A node's catalog type is the first non-empty string among `data.node_type`,
  `data.nodeType`, `data.type` and `node.type` (React Flow's `node.type` usually names the
  UI component, so data wins). Bare transform names (`filter`) mean `transform.filter`.
- A node's config is `data.config` (missing → `{}`); every other key is UI-only and ignored.
- Handle ids are port names. A null handle means the node's only port (for inputs: its only
  required port, e.g. sql's `in`); it is an error on a node with several candidate ports.
- Several edges into a multi-input port (union's `in`) reach the transform as `in[0]`,
  `in[1]`, ... in the order the edges are listed.
- The topological order is deterministic: ties are broken by the nodes' order in the document.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import defaultdict
from typing import Any

from pydantic import BaseModel

from engine.pipeline.catalog import NodeType, get_node_type, normalise_type

_TYPE_KEYS: tuple[tuple[str, ...], ...] = (
    ("data", "node_type"),
    ("data", "nodeType"),
    ("data", "type"),
    ("type",),
)


class Issue(BaseModel):
    """One validation finding, placed so that a canvas can highlight it."""

    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    pointer: str | None = None  # JSON pointer into the visual definition


class GraphNode(BaseModel):
    id: str
    type: str
    config: dict[str, Any] = {}
    label: str | None = None
    index: int = 0  # position in visual_definition.nodes, for pointers


class GraphEdge(BaseModel):
    id: str
    source: str
    source_port: str
    target: str
    target_port: str
    # Key under which the target's transform receives this edge's frame (`in`, `in[1]`...).
    input_key: str
    index: int = 0  # position in visual_definition.edges


class ExecutionGraph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    order: list[str]  # topological order of node ids

    def node(self, node_id: str) -> GraphNode:
        return self._nodes_by_id()[node_id]

    def _nodes_by_id(self) -> dict[str, GraphNode]:
        return {node.id: node for node in self.nodes}

    def in_edges(self, node_id: str) -> list[GraphEdge]:
        return [edge for edge in self.edges if edge.target == node_id]

    def out_edges(self, node_id: str) -> list[GraphEdge]:
        return [edge for edge in self.edges if edge.source == node_id]

    def upstream(self, node_id: str) -> set[str]:
        """Every node with a path to `node_id`."""
        return _reach(node_id, {n.id: [e.source for e in self.in_edges(n.id)] for n in self.nodes})

    def downstream(self, node_id: str) -> set[str]:
        """Every node reachable from `node_id`."""
        return _reach(node_id, {n.id: [e.target for e in self.out_edges(n.id)] for n in self.nodes})

    def fingerprint(self) -> str:
        """Stable hash of what executes (not of positions or labels)."""
        payload = self.model_dump(
            include={"nodes": {"__all__": {"id", "type", "config"}}, "edges": True}
        )
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class GraphError(ValueError):
    """The document cannot be compiled; `issues` says where."""

    def __init__(self, issues: list[Issue]):
        super().__init__("; ".join(issue.message for issue in issues))
        self.issues = issues


class Analysis(BaseModel):
    """What compile found: the usable part of the graph and the structural issues."""

    graph: ExecutionGraph
    issues: list[Issue]
    node_types: dict[str, NodeType]  # node id → catalog entry, for nodes with a known type


def _reach(start: str, neighbours: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(neighbours.get(start, []))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(neighbours.get(current, []))
    return seen


def _lookup(raw: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = raw
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _node_type_name(raw: dict[str, Any]) -> tuple[str | None, str]:
    """(type name, pointer suffix where it was found)."""
    for path in _TYPE_KEYS:
        value = _lookup(raw, path)
        if isinstance(value, str) and value.strip():
            return value.strip(), "/" + "/".join(path)
    return None, "/data/node_type"


def _read_nodes(
    raw_nodes: list[Any], issues: list[Issue]
) -> tuple[list[GraphNode], dict[str, NodeType]]:
    nodes: list[GraphNode] = []
    types: dict[str, NodeType] = {}
    seen: set[str] = set()
    for index, raw in enumerate(raw_nodes):
        pointer = f"/nodes/{index}"
        node_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(node_id, str) or not node_id:
            issues.append(
                Issue(
                    code="invalid_definition",
                    pointer=f"{pointer}/id",
                    message="node needs a non-empty string id",
                )
            )
            continue
        if node_id in seen:
            issues.append(
                Issue(
                    code="duplicate_node_id",
                    node_id=node_id,
                    pointer=f"{pointer}/id",
                    message=f"node id {node_id!r} is used more than once",
                )
            )
            continue
        seen.add(node_id)
        type_name, type_pointer = _node_type_name(raw)
        node_type = get_node_type(type_name) if type_name else None
        if node_type is None:
            issues.append(
                Issue(
                    code="unknown_node_type",
                    node_id=node_id,
                    pointer=pointer + type_pointer,
                    message=f"unknown node type {type_name!r}" if type_name else "node has no type",
                )
            )
            continue
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        config = data.get("config")
        if config is None:
            config = {}
        label = data.get("label")
        nodes.append(
            GraphNode(
                id=node_id,
                type=normalise_type(type_name),
                index=index,
                config=config if isinstance(config, dict) else {"__invalid__": config},
                label=label if isinstance(label, str) else None,
            )
        )
        types[node_id] = node_type
    return nodes, types


def _resolve_port(
    handle: Any,
    ports: list[str],
    pointer: str,
    edge_id: str,
    node_id: str,
    side: str,
    issues: list[Issue],
    optional: list[str] | None = None,
) -> str | None:
    if handle is None or handle == "":
        required = [port for port in ports if port not in (optional or [])]
        if len(required) == 1:
            return required[0]
        message = (
            f"node {node_id!r} has no {side} ports"
            if not ports
            else f"choose one of the {side} ports {ports} of node {node_id!r}"
        )
        issues.append(
            Issue(
                code="wrong_port",
                edge_id=edge_id,
                node_id=node_id,
                pointer=pointer,
                message=message,
            )
        )
        return None
    if handle not in ports:
        issues.append(
            Issue(
                code="wrong_port",
                edge_id=edge_id,
                node_id=node_id,
                pointer=pointer,
                message=f"node {node_id!r} has no {side} port {handle!r} (ports: {ports})",
            )
        )
        return None
    return str(handle)


def _read_edges(
    raw_edges: list[Any], types: dict[str, NodeType], known_ids: set[str], issues: list[Issue]
) -> list[GraphEdge]:
    edges: list[GraphEdge] = []
    used_keys: dict[tuple[str, str], int] = defaultdict(int)
    for index, raw in enumerate(raw_edges):
        pointer = f"/edges/{index}"
        if not isinstance(raw, dict):
            issues.append(
                Issue(code="invalid_definition", pointer=pointer, message="edge must be an object")
            )
            continue
        edge_id = str(raw.get("id") or f"edge-{index}")
        ends_ok = True
        for end in ("source", "target"):
            node_id = raw.get(end)
            if node_id not in known_ids:
                issues.append(
                    Issue(
                        code="dangling_edge",
                        edge_id=edge_id,
                        pointer=f"{pointer}/{end}",
                        message=f"edge {edge_id!r} {end} {node_id!r} is not a node",
                    )
                )
                ends_ok = False
        if not ends_ok:
            continue
        source, target = raw["source"], raw["target"]
        if source not in types or target not in types:
            continue  # the node itself is already reported (unknown type)
        source_port = _resolve_port(
            raw.get("sourceHandle"),
            types[source].outputs,
            f"{pointer}/sourceHandle",
            edge_id,
            source,
            "output",
            issues,
        )
        target_port = _resolve_port(
            raw.get("targetHandle"),
            types[target].inputs,
            f"{pointer}/targetHandle",
            edge_id,
            target,
            "input",
            issues,
            types[target].optional_inputs,
        )
        if source_port is None or target_port is None:
            continue
        count = used_keys[(target, target_port)]
        if target_port in types[target].multi_inputs:
            input_key = f"{target_port}[{count}]"
        elif count:
            issues.append(
                Issue(
                    code="duplicate_input",
                    edge_id=edge_id,
                    node_id=target,
                    pointer=f"{pointer}/targetHandle",
                    message=f"input {target_port!r} of node {target!r} already has an edge",
                )
            )
            continue
        else:
            input_key = target_port
        used_keys[(target, target_port)] += 1
        edges.append(
            GraphEdge(
                id=edge_id,
                source=source,
                source_port=source_port,
                target=target,
                target_port=target_port,
                input_key=input_key,
                index=index,
            )
        )
    return edges


def _missing_inputs(
    nodes: list[GraphNode], edges: list[GraphEdge], types: dict[str, NodeType], issues: list[Issue]
) -> None:
    connected = {(edge.target, edge.target_port) for edge in edges}
    for node in nodes:
        node_type = types[node.id]
        for port in node_type.inputs:
            if port not in node_type.optional_inputs and (node.id, port) not in connected:
                issues.append(
                    Issue(
                        code="missing_input",
                        node_id=node.id,
                        pointer=f"/nodes/{node.index}",
                        message=f"input {port!r} of node {node.id!r} is not connected",
                    )
                )


def _strongly_connected(nodes: list[GraphNode], edges: list[GraphEdge]) -> list[set[str]]:
    """Tarjan's algorithm (iterative), used to name exactly the nodes on a cycle."""
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        successors[edge.source].append(edge.target)
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in (node.id for node in nodes):
        if root in index_of:
            continue
        work = [(root, iter(successors[root]))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            current, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index_of:
                    index_of[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[current] = min(low[current], index_of[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[current])
            if low[current] == index_of[current]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == current:
                        break
                components.append(component)
    return components


def _cycle_issues(nodes: list[GraphNode], edges: list[GraphEdge]) -> list[Issue]:
    """One issue per edge inside a cycle (both ends in the same strongly connected part)."""
    component_of: dict[str, int] = {}
    for number, component in enumerate(_strongly_connected(nodes, edges)):
        for member in component:
            component_of[member] = number
    sizes = defaultdict(int)
    for number in component_of.values():
        sizes[number] += 1
    return [
        Issue(
            code="cycle",
            edge_id=edge.id,
            node_id=edge.target,
            pointer=f"/edges/{edge.index}",
            message=f"edge {edge.id!r} closes a cycle ({edge.source!r} → {edge.target!r})",
        )
        for edge in edges
        if component_of[edge.source] == component_of[edge.target]
        and (edge.source == edge.target or sizes[component_of[edge.source]] > 1)
    ]


def _topological_order(nodes: list[GraphNode], edges: list[GraphEdge]) -> list[str]:
    """Kahn's algorithm; nodes on or after a cycle are left out."""
    position = {node.id: node.index for node in nodes}
    indegree = {node.id: 0 for node in nodes}
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        indegree[edge.target] += 1
        successors[edge.source].append(edge.target)
    ready = [(position[n], n) for n, degree in indegree.items() if degree == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node_id = heapq.heappop(ready)
        order.append(node_id)
        for successor in successors[node_id]:
            indegree[successor] -= 1
            if indegree[successor] == 0:
                heapq.heappush(ready, (position[successor], successor))
    return order


def analyse(visual_definition: Any) -> Analysis:
    """Read a builder document as far as possible, collecting structural issues."""
    issues: list[Issue] = []
    document = visual_definition if isinstance(visual_definition, dict) else {}
    if not isinstance(visual_definition, dict):
        issues.append(
            Issue(
                code="invalid_definition", pointer="", message="visual definition must be an object"
            )
        )
    raw_nodes, raw_edges = document.get("nodes", []), document.get("edges", [])
    for key, value in (("nodes", raw_nodes), ("edges", raw_edges)):
        if not isinstance(value, list):
            issues.append(
                Issue(code="invalid_definition", pointer=f"/{key}", message=f"{key} must be a list")
            )
    raw_nodes = raw_nodes if isinstance(raw_nodes, list) else []
    raw_edges = raw_edges if isinstance(raw_edges, list) else []

    nodes, types = _read_nodes(raw_nodes, issues)
    known_ids = {
        raw.get("id")
        for raw in raw_nodes
        if isinstance(raw, dict) and isinstance(raw.get("id"), str)
    }
    edges = _read_edges(raw_edges, types, known_ids, issues)
    _missing_inputs(nodes, edges, types, issues)
    issues.extend(_cycle_issues(nodes, edges))
    graph = ExecutionGraph(nodes=nodes, edges=edges, order=_topological_order(nodes, edges))
    return Analysis(graph=graph, issues=issues, node_types=types)


def compile_graph(visual_definition: Any) -> ExecutionGraph:
    """The executable DAG, or GraphError listing every structural issue."""
    analysis = analyse(visual_definition)
    if analysis.issues:
        raise GraphError(analysis.issues)
    return analysis.graph
