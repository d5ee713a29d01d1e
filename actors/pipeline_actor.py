"""One actor per pipeline: it owns that pipeline's executions.

HTTP handlers, the scheduler and retries never touch execution state; they send the actor a
message (Run, DryRun, Cancel, Retry, Rollback). The actor persists every transition of an
execution (its row, its steps and the audit event in one transaction), then publishes the
event. What a run reports while it goes (step updates, progress, log lines) is written behind
it by a RunJournal, batched into few transactions, and all stored before the run's final
transition. Runs go through the engine executor in a child task, so the mailbox keeps flowing
while a run is going: a Cancel reaches the run's CancelToken at once.

Concurrency is a per-pipeline policy (`pipelines.concurrency`, default 1): further runs wait
as `queued` and start in order when a slot frees up.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol
from uuid import UUID

import polars as pl
from loguru import logger
from pydantic import BaseModel

from actors.bus.base import BusEvent
from actors.runtime import Actor, ActorError, Deferred
from engine.connectors.base import ConnectorContext, Writer, WriteResult
from engine.connectors.dataset import store_for
from engine.pipeline import (
    CancelToken,
    ConnectorIO,
    ExecutionGraph,
    GraphError,
    GraphNode,
    Issue,
    PipelineIOError,
    StepUpdate,
    compile_graph,
    dry_run,
    execute,
)
from engine.pipeline.dry_run import json_safe
from engine.pipeline.expressions import error_summary
from engine.pipeline.schema_bridge import schema_to_fields
from engine.schema import Field, apply_contract
from storage.db import transaction
from storage.models import (
    Connector,
    Dataset,
    ExecutionLog,
    ExecutionStep,
    Pipeline,
    PipelineExecution,
    PipelineVersion,
)

ACTIVE_STATUSES = ("queued", "running", "cancelling")
RETRYABLE_STATUSES = ("failed", "cancelled", "crashed")
STEP_EVENTS = {
    "running": "step.started",
    "succeeded": "step.completed",
    "failed": "step.failed",
    "skipped": "step.skipped",
    "cancelled": "step.updated",
}
CRASHED_MESSAGE = "The process running this execution stopped before it finished."


# --- messages ------------------------------------------------------------------------------


class Run(BaseModel):
    parameters: dict[str, Any] = {}
    trigger: Literal["manual", "schedule", "retry", "api"] = "manual"
    user_id: UUID | None = None
    correlation_id: str | None = None


class DryRun(BaseModel):
    test_data: dict[str, list[dict[str, Any]]] | None = None
    sample_limit: int = 100


class Cancel(BaseModel):
    execution_id: UUID
    user_id: UUID | None = None
    correlation_id: str | None = None


class Retry(BaseModel):
    execution_id: UUID
    user_id: UUID | None = None
    correlation_id: str | None = None


class Rollback(BaseModel):
    execution_id: UUID
    user_id: UUID | None = None
    correlation_id: str | None = None


class _RunFinished(BaseModel):
    execution_id: UUID


MESSAGES: dict[str, type[BaseModel]] = {
    cls.__name__: cls for cls in (Run, DryRun, Cancel, Retry, Rollback)
}


# --- refusals (the caller maps them to HTTP) -------------------------------------------------


class NotFoundError(ActorError):
    pass


class ConflictError(ActorError):
    pass


class InvalidPipeline(ActorError):
    def __init__(self, message: str, issues: list[Issue]):
        super().__init__(message)
        self.issues = issues


# --- what the actor needs from the platform --------------------------------------------------


class ExecutionEvents(Protocol):
    """Audit events are stored with the change (outbox), published after the commit."""

    async def record(
        self,
        conn: Any,
        *,
        topics: list[str],
        type: str,
        entity_type: str,
        entity_id: str,
        data: dict[str, Any],
        user_id: UUID | None,
        correlation_id: str | None,
    ) -> list[BusEvent]: ...

    async def publish(self, events: list[BusEvent]) -> None: ...


@dataclass
class PipelineActorDeps:
    owner_token: str
    data_dir: Path
    events: ExecutionEvents
    connector_context: ConnectorContext
    # Publishes without storing: log lines (stored in execution_logs, their id is the seq).
    publish_live: Callable[[BusEvent], Awaitable[None]]
    # connector_id → (type, config with secrets plain) for the connectors nodes reference
    connections: Callable[[list[GraphNode]], Awaitable[dict[str, tuple[str, dict[str, Any]]]]]
    batch_size: int = 50_000
    # Keep every node's output on disk so a retry resumes from the failed step (costs I/O on
    # every run); off: a retry runs from the start.
    retry_cache: bool = True

    @property
    def work_root(self) -> Path:
        return work_root(self.data_dir)


def work_root(data_dir: Path) -> Path:
    """Where runs keep their per-node outputs for retries: DATA_DIR/work/<pipeline>/<run>."""
    return data_dir / "work"


def now() -> datetime:
    return datetime.now(UTC)


def execution_topics(execution: PipelineExecution) -> list[str]:
    return [f"execution:{execution.id}", f"pipeline:{execution.pipeline_id}"]


def execution_data(execution: PipelineExecution) -> dict[str, Any]:
    return {
        "execution_id": str(execution.id),
        "pipeline_id": str(execution.pipeline_id),
        "version": execution.version,
        "status": execution.status,
        "progress": execution.progress,
        "error": execution.error,
    }


async def record_execution_event(
    conn: Any,
    execution: PipelineExecution,
    events: ExecutionEvents,
    event_type: str,
    *,
    topics: list[str] | None = None,
    data: dict[str, Any] | None = None,
    user_id: UUID | None = None,
) -> list[BusEvent]:
    """Store an event about `execution` in the caller's transaction (by default its state, on
    its own and its pipeline's topics); the caller publishes it after the commit."""
    return await events.record(
        conn,
        topics=topics or execution_topics(execution),
        type=event_type,
        entity_type="execution",
        entity_id=str(execution.id),
        data=execution_data(execution) if data is None else data,
        user_id=user_id,
        correlation_id=execution.correlation_id,
    )


async def load_graph(pipeline: Pipeline, version: int) -> ExecutionGraph:
    """The compiled graph of `version`; a canvas that does not compile is InvalidPipeline."""
    row = await PipelineVersion.get_or_none(pipeline_id=pipeline.id, version=version)
    visual = row.visual_definition if row else pipeline.visual_definition
    try:
        graph = compile_graph(visual)
    except GraphError as exc:
        raise InvalidPipeline("The pipeline does not compile; validate it.", exc.issues) from None
    if not graph.nodes:
        issue = Issue(code="empty_pipeline", message="the pipeline has no nodes")
        raise InvalidPipeline("The pipeline is empty.", [issue])
    return graph


# --- the source reader that remembers incremental cursors -------------------------------------


class CursorTrackingIO(ConnectorIO):
    """ConnectorIO that notes the highest cursor value each incremental source produced, so
    the state can be saved on the connector once the run's writes are committed."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cursors: dict[str, Any] = {}

    async def read(
        self, node: GraphNode, *, limit: int | None = None
    ) -> AsyncIterator[pl.DataFrame]:
        cursor_field = node.config.get("cursor_field")
        incremental = node.config.get("sync_mode") == "incremental" and cursor_field
        async for frame in super().read(node, limit=limit):
            if incremental and cursor_field in frame.columns and frame.height:
                highest = frame.get_column(cursor_field).max()
                if highest is not None and (
                    node.id not in self.cursors or highest > self.cursors[node.id]
                ):
                    self.cursors[node.id] = highest
            yield frame

    @contextlib.asynccontextmanager
    async def scan(self, node: GraphNode) -> AsyncIterator[pl.LazyFrame | None]:
        # Incremental sources go batch by batch: each batch's highest cursor is noted.
        if node.config.get("sync_mode") == "incremental" and node.config.get("cursor_field"):
            yield None
            return
        async with super().scan(node) as frame:
            yield frame


class ContractWriter(Writer):
    """Holds each batch to the destination's existing schema under the pipeline's policy
    (freeze: a misfit fails the run, so nothing is published; discard_*: drop what does not
    fit). The first misfit is logged once."""

    def __init__(
        self,
        inner: Writer,
        expected: list[Field],
        policy: str,
        log: Callable[[str], Awaitable[None]],
    ):
        self.inner, self.expected, self.policy, self.log = inner, expected, policy, log
        self.reported = False

    async def write_batch(self, frame: pl.DataFrame) -> None:
        result = await asyncio.to_thread(apply_contract, frame, self.expected, self.policy)
        if result.changes and not self.reported:
            self.reported = True
            listing = "; ".join(change.describe() for change in result.changes)
            await self.log(f"schema policy {self.policy}: {listing}")
        await self.inner.write_batch(result.frame)

    async def commit(self) -> WriteResult:
        return await self.inner.commit()

    async def abort(self) -> None:
        await self.inner.abort()


class PipelineIO(CursorTrackingIO):
    """The run's reader/writers: cursor tracking, plus the schema policy on destinations."""

    def __init__(self, *args: Any, schema_policy: str = "evolve", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.schema_policy = schema_policy
        self.log: Callable[[str, str | None], Awaitable[None]] | None = None

    async def open_writer(self, node: GraphNode) -> Writer:
        writer = await super().open_writer(node)
        if self.schema_policy == "evolve":
            return writer  # destinations take new columns and types as they come
        expected = await self.destination_fields(node)
        if not expected:
            return writer  # a first write defines the schema

        async def log(message: str) -> None:
            if self.log is not None:
                await self.log(message, node.id)

        return ContractWriter(writer, expected, self.schema_policy, log)

    async def destination_fields(self, node: GraphNode) -> list[Field] | None:
        if node.type == "destination.dataset":
            store = store_for(self.ctx)
            name = node.config["dataset"]
            if not await asyncio.to_thread(store.exists, name):
                return None
            return schema_to_fields(await asyncio.to_thread(store.schema, name))
        try:
            return await self.source_schema(node)  # discovers the destination's stream
        except Exception as exc:
            raise PipelineIOError(f"cannot read the schema of {node.id!r}: {exc}") from exc


def state_key(pipeline_id: UUID, node_id: str) -> str:
    return f"pipeline:{pipeline_id}:{node_id}"


async def connector_io(
    deps: PipelineActorDeps, pipeline_id: UUID, graph: ExecutionGraph, schema_policy="evolve"
) -> PipelineIO:
    connections = await deps.connections(graph.nodes)
    rows = await Connector.filter(id__in=list(connections)) if connections else []
    by_id = {str(row.id): row for row in rows}
    state = {}
    for node in graph.nodes:
        row = by_id.get(str(node.config.get("connector_id")))
        saved = (row.state or {}).get(state_key(pipeline_id, node.id)) if row else None
        if saved:
            state[node.id] = {"cursor": saved.get("cursor")}
    return PipelineIO(
        connections,
        deps.connector_context,
        state=state,
        batch_size=deps.batch_size,
        schema_policy=schema_policy,
    )


# --- the actor -----------------------------------------------------------------------------


@dataclass
class _RunHandle:
    task: asyncio.Task[None]
    cancel: CancelToken


@dataclass
class PipelineActor(Actor):
    pipeline_id: UUID
    deps: PipelineActorDeps
    running: dict[UUID, _RunHandle] = field(default_factory=dict)
    queue: list[UUID] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.pipeline_id)

    def busy(self) -> bool:
        return bool(self.running or self.queue)

    async def on_start(self) -> None:
        # After a restart in this process: runs whose task died with the old loop crashed;
        # queued ones are picked up again in order.
        rows = await PipelineExecution.filter(
            pipeline_id=self.pipeline_id,
            owner_token=self.deps.owner_token,
            status__in=ACTIVE_STATUSES,
        ).order_by("created_at")
        self.queue = []
        for row in rows:
            if row.status == "queued":
                self.queue.append(row.id)
            elif row.id not in self.running:
                await mark_crashed(row, self.deps.events)
        await self._pump()

    async def on_stop(self) -> None:
        for handle in self.running.values():
            handle.cancel.cancel("the server is shutting down")
        tasks = [handle.task for handle in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Run):
            return await self._run(message)
        if isinstance(message, Cancel):
            return await self._cancel(message)
        if isinstance(message, Retry):
            return await self._retry(message)
        if isinstance(message, Rollback):
            return await self._rollback(message)
        if isinstance(message, DryRun):
            return await self._dry_run(message)
        if isinstance(message, _RunFinished):
            self.running.pop(message.execution_id, None)
            return await self._pump()
        raise ActorError(f"unknown message {type(message).__name__}")

    # --- run / queue -----------------------------------------------------------------------

    async def _pipeline(self) -> Pipeline:
        pipeline = await Pipeline.get_or_none(id=self.pipeline_id)
        if pipeline is None:
            raise NotFoundError(f"No pipeline with id {self.pipeline_id}.")
        return pipeline

    async def _run(self, message: Run, retry_of: PipelineExecution | None = None) -> UUID:
        pipeline = await self._pipeline()
        version = retry_of.version if retry_of else pipeline.version
        await load_graph(pipeline, version)  # refuse a canvas that does not compile
        async with transaction() as conn:
            execution = await PipelineExecution.create(
                pipeline_id=pipeline.id,
                version=version,
                status="queued",
                trigger=message.trigger,
                parameters=message.parameters,
                created_by_id=message.user_id,
                correlation_id=message.correlation_id,
                owner_token=self.deps.owner_token,
                retry_of_id=retry_of.id if retry_of else None,
                result={"work_key": _work_key(retry_of) if retry_of else None},
                using_db=conn,
            )
            events = await record_execution_event(
                conn, execution, self.deps.events, "execution.queued", user_id=message.user_id
            )
        await self.deps.events.publish(events)
        self.queue.append(execution.id)
        await self._pump()
        return execution.id

    async def _pump(self) -> None:
        pipeline = await Pipeline.get_or_none(id=self.pipeline_id)
        limit = max(1, pipeline.concurrency if pipeline else 1)
        while self.queue and len(self.running) < limit:
            execution_id = self.queue.pop(0)
            execution = await PipelineExecution.get_or_none(id=execution_id)
            if execution is None or execution.status != "queued":
                continue
            token = CancelToken()
            task = asyncio.create_task(self._execute(execution, token), name=f"run-{execution_id}")
            self.running[execution_id] = _RunHandle(task, token)

    async def _execute(self, execution: PipelineExecution, cancel: CancelToken) -> None:
        try:
            await ExecutionRun(self.deps, execution, cancel).run()
        except Exception as exc:  # a bug: never leave the execution running
            logger.opt(exception=exc).error("execution {} failed unexpectedly", execution.id)
            await finish(
                execution,
                self.deps.events,
                status="failed",
                error={"message": error_summary(exc)},
            )
        finally:
            if not self.stopped:
                self.tell(_RunFinished(execution_id=execution.id))

    async def _execution(self, execution_id: UUID) -> PipelineExecution:
        execution = await PipelineExecution.get_or_none(
            id=execution_id, pipeline_id=self.pipeline_id
        )
        if execution is None:
            raise NotFoundError(f"No execution with id {execution_id}.")
        return execution

    async def _cancel(self, message: Cancel) -> str:
        execution = await self._execution(message.execution_id)
        if execution.status == "queued":
            self.queue = [i for i in self.queue if i != execution.id]
            await finish(execution, self.deps.events, status="cancelled", user_id=message.user_id)
            return "cancelled"
        handle = self.running.get(execution.id)
        if execution.status in ("running", "cancelling") and handle is not None:
            handle.cancel.cancel("cancelled by a user")
            if execution.status == "running":
                await transition(
                    execution,
                    self.deps.events,
                    "execution.cancelling",
                    {"status": "cancelling"},
                    user_id=message.user_id,
                )
            return "cancelling"
        raise ConflictError(
            f"The execution is {execution.status}; only active runs can be cancelled."
        )

    async def _retry(self, message: Retry) -> UUID:
        original = await self._execution(message.execution_id)
        if original.status not in RETRYABLE_STATUSES:
            raise ConflictError(
                f"The execution is {original.status}; only failed, cancelled or crashed runs "
                "can be retried."
            )
        run = Run(
            parameters=original.parameters,
            trigger="retry",
            user_id=message.user_id,
            correlation_id=message.correlation_id,
        )
        return await self._run(run, retry_of=original)

    async def _rollback(self, message: Rollback) -> dict[str, Any]:
        execution = await self._execution(message.execution_id)
        if execution.status != "succeeded":
            raise ConflictError(
                f"The execution is {execution.status}; only a succeeded run can be rolled back."
            )
        if self.running:
            raise ConflictError("A run of this pipeline is in progress; roll back when it ends.")
        datasets = (execution.result or {}).get("datasets") or {}
        if not datasets:
            raise ConflictError("This run wrote no managed dataset, so there is nothing to undo.")
        store = store_for(self.deps.connector_context)
        restored = {}
        for entry in datasets.values():
            name, version, previous = entry["dataset"], entry["version"], entry.get("previous")
            current = await asyncio.to_thread(store.current_version, name)
            if current != version:
                raise ConflictError(
                    f"Dataset {name!r} is at version {current}, not the v{version} this run "
                    "wrote; a later run or rollback changed it."
                )
            if previous is None:
                raise ConflictError(f"Dataset {name!r} has no version before v{version}.")
            restored[name] = previous
        for name, previous in restored.items():
            await store.rollback(name, previous)
            await Dataset.filter(name=name).update(current_version=previous)
        result = {**(execution.result or {}), "rolled_back_to": restored}
        await transition(
            execution,
            self.deps.events,
            "execution.rolled_back",
            {"status": "rolled_back", "result": result},
            user_id=message.user_id,
        )
        return {"status": "rolled_back", "datasets": restored}

    async def _dry_run(self, message: DryRun) -> Deferred:
        pipeline = await self._pipeline()
        graph = await load_graph(pipeline, pipeline.version)
        io = await connector_io(self.deps, self.pipeline_id, graph)
        work = dry_run(
            graph, test_data=message.test_data, sample_limit=message.sample_limit, reader=io
        )
        return Deferred(work)


def _work_key(execution: PipelineExecution) -> str:
    return (execution.result or {}).get("work_key") or str(execution.id)


# --- transitions ---------------------------------------------------------------------------


async def transition(
    execution: PipelineExecution,
    events: ExecutionEvents,
    event_type: str,
    changes: dict[str, Any],
    *,
    user_id: UUID | None = None,
    step_changes: dict[str, Any] | None = None,
) -> None:
    """Persist `changes` (and the audit event) in one transaction, then publish."""
    async with transaction() as conn:
        recorded = await record_transition(
            conn,
            execution,
            events,
            event_type,
            changes,
            user_id=user_id,
            step_changes=step_changes,
        )
    await events.publish(recorded)


async def record_transition(
    conn: Any,
    execution: PipelineExecution,
    events: ExecutionEvents,
    event_type: str,
    changes: dict[str, Any],
    *,
    user_id: UUID | None = None,
    step_changes: dict[str, Any] | None = None,
) -> list[BusEvent]:
    """`transition` inside the caller's transaction; the caller publishes after its commit."""
    for name, value in changes.items():
        setattr(execution, name, value)
    await PipelineExecution.filter(id=execution.id).using_db(conn).update(**changes)
    if step_changes:
        await (
            ExecutionStep.filter(execution_id=execution.id, status__in=("pending", "running"))
            .using_db(conn)
            .update(**step_changes)
        )
    return await record_execution_event(conn, execution, events, event_type, user_id=user_id)


async def finish(
    execution: PipelineExecution,
    events: ExecutionEvents,
    *,
    status: str,
    error: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    user_id: UUID | None = None,
) -> None:
    changes: dict[str, Any] = {"status": status, "completed_at": now(), "error": error}
    if status == "succeeded":
        changes["progress"] = 1.0
    if result is not None:
        changes["result"] = result
    await transition(
        execution,
        events,
        f"execution.{status}",
        changes,
        user_id=user_id,
        step_changes={"status": "skipped"} if status != "succeeded" else None,
    )


async def mark_crashed(execution: PipelineExecution, events: ExecutionEvents) -> None:
    await transition(
        execution,
        events,
        "execution.crashed",
        {"status": "crashed", "completed_at": now(), "error": {"message": CRASHED_MESSAGE}},
        step_changes={"status": "failed", "error": {"message": CRASHED_MESSAGE}},
    )


async def crash_orphans(live_tokens: set[str], events: ExecutionEvents) -> int:
    """Executions whose owning process is gone become `crashed`, never stuck."""
    orphans = await PipelineExecution.filter(status__in=ACTIVE_STATUSES).exclude(
        owner_token__in=list(live_tokens)
    )
    for execution in orphans:
        await mark_crashed(execution, events)
    if orphans:
        logger.warning("{} execution(s) of stopped processes marked crashed", len(orphans))
    return len(orphans)


def prune_work_dirs(work_root: Path, max_age_seconds: float) -> int:
    """Delete retry caches nobody retried in time (a successful run deletes its own)."""
    if not work_root.is_dir():
        return 0
    cutoff = datetime.now(UTC).timestamp() - max_age_seconds
    pruned = 0
    for pipeline_dir in work_root.iterdir():
        for run_dir in pipeline_dir.iterdir() if pipeline_dir.is_dir() else []:
            if run_dir.stat().st_mtime < cutoff:
                shutil.rmtree(run_dir, ignore_errors=True)
                pruned += 1
    return pruned


# --- a run's step, progress and log records, written behind the run -------------------------


@dataclass
class _Progress:
    data: dict[str, Any]  # the execution's event data when the progress was reported


class RunJournal:
    """Step updates, progress and log lines of one run, written behind it.

    The executor's hooks only queue a record, so the run never waits for the database
    between steps (with ~20 records a run, those waits were a fixed cost on every run). One
    flush at a time writes everything queued so far in a single transaction — each step's
    latest state, the latest progress, every log line and one stored event per record, in
    the order they were reported — and then publishes those events. `close` returns once
    everything is written. A failed flush fails the run at its next record or at `close`, as
    a failing hook did."""

    def __init__(
        self,
        execution: PipelineExecution,
        events: ExecutionEvents,
        publish_live: Callable[[BusEvent], Awaitable[None]],
    ):
        self.execution = execution
        self.events = events
        self.publish_live = publish_live
        self._queue: list[StepUpdate | _Progress | ExecutionLog] = []
        self._writer: asyncio.Task[None] | None = None

    # The executor's hooks: coroutines by its contract, though none of them waits.

    async def step(self, update: StepUpdate) -> None:
        self._add(update)

    async def progress(self, progress: float) -> None:
        self.execution.progress = progress
        self._add(_Progress(execution_data(self.execution)))

    async def log(self, level: str, message: str, node_id: str | None) -> None:
        row = ExecutionLog(
            execution_id=self.execution.id,
            ts=now(),  # when it happened, not when the flush got to it
            level=level.upper(),
            message=message,
            node_id=node_id,
        )
        self._add(row)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer  # raises what a flush raised

    def _add(self, record: StepUpdate | _Progress | ExecutionLog) -> None:
        if self._writer is not None and self._writer.done():
            self._writer.result()  # a failed flush fails the run here
            self._writer = None
        self._queue.append(record)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            await self._write(batch)

    async def _write(self, batch: list[StepUpdate | _Progress | ExecutionLog]) -> None:
        stored: list[BusEvent] = []
        async with transaction() as conn:
            for record in batch:
                if isinstance(record, ExecutionLog):
                    await record.save(using_db=conn)
                else:
                    stored += await self._record(conn, record)
            await self._save_latest(conn, batch)
        await self.events.publish(stored)
        for record in batch:
            if isinstance(record, ExecutionLog):
                await self._publish_log(record)

    async def _save_latest(
        self, conn: Any, batch: list[StepUpdate | _Progress | ExecutionLog]
    ) -> None:
        """Step updates carry the step's whole state so far: the last one of each step is
        all the row needs. Likewise the last progress for the execution."""
        latest = {record.node_id: record for record in batch if isinstance(record, StepUpdate)}
        for update in latest.values():
            await (
                ExecutionStep.filter(execution_id=self.execution.id, node_id=update.node_id)
                .using_db(conn)
                .update(**step_changes(update))
            )
        progress = [record for record in batch if isinstance(record, _Progress)]
        if progress:
            await (
                PipelineExecution.filter(id=self.execution.id)
                .using_db(conn)
                .update(progress=progress[-1].data["progress"])
            )

    async def _record(self, conn: Any, record: StepUpdate | _Progress) -> list[BusEvent]:
        if isinstance(record, _Progress):
            return await record_execution_event(
                conn, self.execution, self.events, "execution.progress", data=record.data
            )
        return await record_execution_event(
            conn,
            self.execution,
            self.events,
            STEP_EVENTS.get(record.status.value, "step.updated"),
            topics=[f"execution:{self.execution.id}"],
            data={"execution_id": str(self.execution.id), **step_event_data(record)},
        )

    async def _publish_log(self, row: ExecutionLog) -> None:
        event = BusEvent(
            topic=f"logs:{self.execution.id}",
            seq=row.id,  # log ids only grow: a natural per-topic sequence
            type="execution.log",
            entity_type="execution",
            entity_id=str(self.execution.id),
            data=log_view(row),
            correlation_id=self.execution.correlation_id,
        )
        try:
            await self.publish_live(event)
        except Exception as exc:  # the line is stored; readers page through the API
            logger.warning("could not publish a log line: {}", exc)


def step_changes(update: StepUpdate) -> dict[str, Any]:
    """The execution_steps columns an update sets."""
    changes: dict[str, Any] = {"status": update.status.value}
    for name in ("rows_in", "rows_out", "started_at", "completed_at"):
        value = getattr(update, name)
        if value is not None:
            changes[name] = value
    if update.error:
        changes["error"] = {"message": update.error}
    return changes


def step_event_data(update: StepUpdate) -> dict[str, Any]:
    data = update.model_dump(mode="json", exclude_none=True)
    if update.error:
        data["error"] = {"message": update.error}
    return data


# --- one run ---------------------------------------------------------------------------------


class ExecutionRun:
    """Drives the engine executor for one execution and mirrors it into storage and the bus."""

    def __init__(self, deps: PipelineActorDeps, execution: PipelineExecution, cancel: CancelToken):
        self.deps = deps
        self.execution = execution
        self.cancel = cancel
        self.work_dir = deps.work_root / str(execution.pipeline_id) / _work_key(execution)
        self.journal = RunJournal(execution, deps.events, deps.publish_live)

    async def run(self) -> None:
        try:
            outcome = await self._run()
        finally:
            await self.journal.close()  # what the run reported is stored before it ends
        await finish(self.execution, self.deps.events, **outcome)

    async def _run(self) -> dict[str, Any]:
        """The run itself; returns how it ended (the arguments of `finish`)."""
        execution = self.execution
        pipeline = await Pipeline.get(id=execution.pipeline_id)
        try:
            graph = await load_graph(pipeline, execution.version)
        except InvalidPipeline as exc:
            return {"status": "failed", "error": {"message": str(exc)}}
        await self._start(graph)
        io = await connector_io(self.deps, pipeline.id, graph, pipeline.schema_policy)
        io.log = partial(self.journal.log, "warning")
        resume_from = await self._resume_from()
        result = await execute(
            graph,
            reader=io,
            destinations=io,
            on_step=self.journal.step,
            on_progress=self.journal.progress,
            on_log=self.journal.log,
            cancel=self.cancel,
            work_dir=self.work_dir if self.deps.retry_cache else None,
            resume_from=resume_from,
            batch_size=self.deps.batch_size,
        )
        summary = {
            "work_key": _work_key(execution),
            "rows": result.rows,
            "outputs": {k: v.model_dump() for k, v in result.outputs.items()},
            "reused": result.reused,
        }
        if result.status == "succeeded":
            summary["datasets"] = await self._record_datasets(graph, pipeline, result.outputs)
            await self._save_cursors(pipeline.id, graph, io)
            await asyncio.to_thread(shutil.rmtree, self.work_dir, True)
            return {"status": "succeeded", "result": summary}
        error = {"message": result.error or result.status, "node_id": result.failed_node}
        return {"status": result.status, "error": error, "result": summary}

    async def _start(self, graph: ExecutionGraph) -> None:
        """The run's steps and its `running` state in one transaction."""
        async with transaction() as conn:
            await ExecutionStep.filter(execution_id=self.execution.id).using_db(conn).delete()
            await ExecutionStep.bulk_create(
                [
                    ExecutionStep(
                        execution_id=self.execution.id,
                        node_id=node_id,
                        node_type=graph.node(node_id).type,
                        position=position,
                    )
                    for position, node_id in enumerate(graph.order)
                ],
                using_db=conn,
            )
            recorded = await record_transition(
                conn,
                self.execution,
                self.deps.events,
                "execution.started",
                {"status": "running", "started_at": now(), "progress": 0.0},
            )
        await self.deps.events.publish(recorded)
        await self.journal.log("info", f"run started (version {self.execution.version})", None)

    async def _resume_from(self) -> set[str] | None:
        """Retry: re-run the nodes that did not succeed last time; the rest may be reused."""
        if self.execution.retry_of_id is None or not self.deps.retry_cache:
            return None
        steps = await ExecutionStep.filter(execution_id=self.execution.retry_of_id)
        return {step.node_id for step in steps if step.status != "succeeded"}

    async def _record_datasets(
        self, graph: ExecutionGraph, pipeline: Pipeline, outputs: dict[str, WriteResult]
    ) -> dict[str, Any]:
        """The catalog rows of the datasets this run wrote, and the version each replaced."""
        store = store_for(self.deps.connector_context)
        written = {}
        for node_id, output in outputs.items():
            if graph.node(node_id).type != "destination.dataset" or output.version is None:
                continue
            info = await asyncio.to_thread(store.version_info, output.stream, output.version)
            written[node_id] = {
                "dataset": output.stream,
                "version": output.version,
                "previous": info.parent,
                "rows": output.rows_written,
            }
            async with transaction() as conn:  # get_or_create's own is not safe to cancel
                dataset, created = await Dataset.get_or_create(
                    name=output.stream,
                    defaults={"pipeline_id": pipeline.id, "current_version": output.version},
                    using_db=conn,
                )
                if not created:
                    dataset.current_version = output.version
                    dataset.pipeline_id = pipeline.id
                    await dataset.save(
                        update_fields=["current_version", "pipeline_id", "updated_at"],
                        using_db=conn,
                    )
        return written

    async def _save_cursors(self, pipeline_id: UUID, graph: ExecutionGraph, io: PipelineIO) -> None:
        """Incremental state moves forward only after the writes were committed."""
        for node_id, cursor in io.cursors.items():
            node = graph.node(node_id)
            connector = await Connector.get_or_none(id=node.config["connector_id"])
            if connector is None:
                continue
            state = dict(connector.state or {})
            state[state_key(pipeline_id, node_id)] = {
                "stream": node.config.get("stream"),
                "cursor_field": node.config.get("cursor_field"),
                "cursor": json_safe(cursor),
            }
            await Connector.filter(id=connector.id).update(state=state)


def log_view(row: ExecutionLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "ts": row.ts.isoformat(),
        "level": row.level,
        "message": row.message,
        "node_id": row.node_id,
        "data": row.data,
    }
