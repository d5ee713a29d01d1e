"""The pipeline data plane: node catalog, compile, validate, execute, dry run, perf test.

What the actor layer calls:
- `node_types()` — the builder's palette.
- `compile_graph(visual_definition) -> ExecutionGraph` (raises GraphError with issues).
- `await validate(visual_definition, resolve_source_schema) -> ValidationResult`.
- `await execute(graph, reader=..., destinations=..., on_step=..., cancel=...) -> ExecutionResult`.
- `await dry_run(graph_or_visual, test_data=..., sample_limit=..., reader=...) -> DryRunResult`.
- `await perf_test(graph_or_visual, rows=..., resolve_source_schema=...) -> PerfResult`.
"""

from engine.pipeline.catalog import NodeType, get_node_type, node_types
from engine.pipeline.dry_run import DryRunResult, NodeReport, dry_run
from engine.pipeline.executor import (
    CancelToken,
    ExecutionResult,
    PipelineExecutor,
    StepStatus,
    StepUpdate,
    execute,
)
from engine.pipeline.graph import (
    ExecutionGraph,
    GraphEdge,
    GraphError,
    GraphNode,
    Issue,
    analyse,
    compile_graph,
)
from engine.pipeline.io import ConnectorIO, DestinationOpener, PipelineIOError, SourceReader
from engine.pipeline.perf import PerfResult, perf_test
from engine.pipeline.validate import SchemaResolver, ValidationResult, validate

__all__ = [
    "CancelToken",
    "ConnectorIO",
    "DestinationOpener",
    "DryRunResult",
    "ExecutionGraph",
    "ExecutionResult",
    "GraphEdge",
    "GraphError",
    "GraphNode",
    "Issue",
    "NodeReport",
    "NodeType",
    "PerfResult",
    "PipelineExecutor",
    "PipelineIOError",
    "SchemaResolver",
    "SourceReader",
    "StepStatus",
    "StepUpdate",
    "ValidationResult",
    "analyse",
    "compile_graph",
    "dry_run",
    "execute",
    "get_node_type",
    "node_types",
    "perf_test",
    "validate",
]
