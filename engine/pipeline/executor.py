"""Run an ExecutionGraph on Polars.

How data moves:
- Nodes are grouped into *segments*. A segment starts at a source, at a blocking transform
  (aggregate, sort, join, dedupe, union, limit, sql, validate) or at a node whose input fans
  out; row-wise transforms and destinations that are the single consumer of a streaming node
  join that node's segment. A segment streams batch by batch: each source batch goes through
  every row-wise stage and into the destination writer before the next batch is read, so a
  linear chain source → row-wise transforms → destination runs in bounded memory.
- Blocking transforms read their inputs from Parquet spilled in the work dir and run on
  Polars' streaming engine (`sink_parquet(engine="streaming")`, which writes its result to
  disk rather than holding it in memory).
- Destinations are staged. Writers are committed only after every node succeeded; any failure
  or cancellation aborts every writer, so destinations stay as they were.

Cancellation: the CancelToken is checked between batches and between steps, and every wait
(next source batch, a Polars computation in a worker thread) races the token, so a cancel takes
effect within one batch wait. A Polars computation already running in a thread cannot be
interrupted; it finishes in the background and its result is discarded.

Retries: with a persistent `work_dir`, every node's output is kept as Parquet with a key made of
its type, config and its inputs' keys. `resume_from` names the nodes to run again (the failed
ones); those, everything downstream of them and every destination run again, while any other
node whose cached output has the same key is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel

from engine.connectors.base import Writer, WriteResult
from engine.pipeline.catalog import get_node_type
from engine.pipeline.expressions import error_summary
from engine.pipeline.graph import ExecutionGraph, GraphNode
from engine.pipeline.io import DestinationOpener, SourceReader, inline_frame
from engine.pipeline.priority import lower_data_plane_priority
from engine.pipeline.transforms import TRANSFORMS, transform_name

DEFAULT_BATCH_SIZE = 50_000


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class StepUpdate(BaseModel):
    node_id: str
    status: StepStatus
    rows_in: int | None = None
    rows_out: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None


class ExecutionResult(BaseModel):
    status: Literal["succeeded", "failed", "cancelled"]
    steps: list[StepUpdate]
    rows: dict[str, int]  # rows out per node (all ports together)
    port_rows: dict[str, dict[str, int]] = {}
    outputs: dict[str, WriteResult]  # destination node id → what was committed
    error: str | None = None
    failed_node: str | None = None
    reused: list[str] = []  # nodes whose cached output was reused (retries)


StepHook = Callable[[StepUpdate], Awaitable[None]]
ProgressHook = Callable[[float], Awaitable[None]]
LogHook = Callable[[str, str, str | None], Awaitable[None]]  # (level, message, node_id)


class CancelToken:
    """Set once by whoever wants the run to stop; the executor checks and races it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: str | None = None

    def cancel(self, reason: str | None = None) -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class ExecutionCancelled(Exception):
    pass


class NodeFailed(Exception):
    def __init__(self, node_id: str, error: BaseException):
        super().__init__(f"node {node_id!r} failed: {error_summary(error)}")
        self.node_id = node_id
        self.error = error


def _now() -> datetime:
    return datetime.now(UTC)


async def _noop(*_args: Any) -> None:
    return None


@dataclass
class _Segment:
    """Nodes that run together on one stream of batches; `members[0]` is the head.

    `chain` (source → row-wise transforms) feeds a blocking head: when the source can be
    scanned lazily, chain and head run as one Polars plan instead of batch by batch."""

    members: list[str]
    chain: list[str] = field(default_factory=list)


@dataclass
class _NodeState:
    step: StepUpdate
    port_rows: dict[str, int] = field(default_factory=dict)


def _is_streamable(node: GraphNode) -> bool:
    if node.type.startswith("destination."):
        return True
    definition = TRANSFORMS.get(transform_name(node.type))
    return bool(
        definition and node.type.startswith("transform.") and definition.streamable(node.config)
    )


def _ports(node: GraphNode) -> list[str]:
    entry = get_node_type(node.type)
    return entry.outputs if entry else []


def _dir_name(node_id: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in node_id)[:40]
    return f"{safe}-{hashlib.sha256(node_id.encode()).hexdigest()[:12]}"


# Transforms that keep every row of their input (so a fused plan need not count theirs).
_ROW_PRESERVING = frozenset({"derive", "rename", "drop", "fill_null"})


class _RowCounter:
    """Counts the rows a LazyFrame yields while a plan streams them (any thread)."""

    def __init__(self, stop: Callable[[], bool]) -> None:
        self.rows = 0
        self._stop = stop
        self._lock = threading.Lock()

    def _count(self, frame: pl.DataFrame) -> pl.DataFrame:
        if self._stop():
            # Cancelled: failing the plan stops it instead of letting it run on unobserved.
            raise ExecutionCancelled
        with self._lock:
            self.rows += frame.height
        return frame

    def hook(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        # Filters must not move past the hook (it counts what this node yields); projections
        # may (a row count does not depend on the columns), so the scan still reads only the
        # columns the plan uses.
        return frame.map_batches(
            self._count,
            predicate_pushdown=False,
            projection_pushdown=True,
            slice_pushdown=False,
            streamable=True,
        )


class _Cache:
    """Node outputs as Parquet parts under work_dir/<node>/<port>/, with a key in _meta.json."""

    def __init__(self, root: Path):
        self.root = root

    def port_dir(self, node_id: str, port: str) -> Path:
        return self.root / _dir_name(node_id) / port

    def node_dir(self, node_id: str) -> Path:
        return self.root / _dir_name(node_id)

    def reset(self, node_id: str) -> None:
        shutil.rmtree(self.node_dir(node_id), ignore_errors=True)

    def scan(self, node_id: str, port: str) -> pl.LazyFrame:
        parts = sorted(self.port_dir(node_id, port).glob("*.parquet"))
        if len(parts) == 1:
            return pl.scan_parquet(parts[0])
        # Batches from one source may differ (a column all-null in one batch, typed in the
        # next; a field missing from one API page): stack by name, widening types.
        return pl.concat([pl.scan_parquet(part) for part in parts], how="diagonal_relaxed")

    def write_part(self, node_id: str, port: str, frame: pl.DataFrame, number: int) -> None:
        directory = self.port_dir(node_id, port)
        directory.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(directory / f"part-{number:06d}.parquet")

    def has_parts(self, node_id: str, port: str) -> bool:
        directory = self.port_dir(node_id, port)
        return directory.is_dir() and any(directory.glob("*.parquet"))

    def save_meta(self, node_id: str, key: str, rows_in: int | None, ports: dict[str, int]) -> None:
        meta = {"key": key, "rows_in": rows_in, "port_rows": ports}
        self.node_dir(node_id).mkdir(parents=True, exist_ok=True)  # fused nodes have no parts
        (self.node_dir(node_id) / "_meta.json").write_text(json.dumps(meta))

    def load_meta(self, node_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.node_dir(node_id) / "_meta.json").read_text())
        except (OSError, ValueError):
            return None


class PipelineExecutor:
    def __init__(
        self,
        graph: ExecutionGraph,
        *,
        reader: SourceReader | None = None,
        destinations: DestinationOpener | None = None,
        on_step: StepHook | None = None,
        on_progress: ProgressHook | None = None,
        on_log: LogHook | None = None,
        cancel: CancelToken | None = None,
        work_dir: Path | str | None = None,
        resume_from: set[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        self.graph = graph
        self.reader = reader
        self.destinations = destinations
        self.on_step = on_step or _noop
        self.on_progress = on_progress or _noop
        self.on_log = on_log or _noop
        self.cancel = cancel or CancelToken()
        self.persistent = work_dir is not None
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.resume_from = resume_from
        self.batch_size = batch_size
        self.nodes = {node.id: node for node in graph.nodes}
        self.states = {
            node.id: _NodeState(StepUpdate(node_id=node.id, status=StepStatus.PENDING))
            for node in graph.nodes
        }
        self.writers: dict[str, Writer] = {}
        self.committed: dict[str, WriteResult] = {}
        self.keys = self._cache_keys()
        self.reused: list[str] = []
        self._fused: set[str] = set()  # blocking nodes computed by a fused lazy plan
        self._finished = 0
        self._cache: _Cache

    # --- public ------------------------------------------------------------------------------

    async def run(self) -> ExecutionResult:
        root = self.work_dir or Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="pipeline-"))
        root.mkdir(parents=True, exist_ok=True)
        self._cache = _Cache(root)
        try:
            return await self._run()
        finally:
            if not self.persistent:
                await asyncio.to_thread(shutil.rmtree, root, True)

    # --- orchestration ---------------------------------------------------------------------

    async def _run(self) -> ExecutionResult:
        error: str | None = None
        failed_node: str | None = None
        status: Literal["succeeded", "failed", "cancelled"] = "succeeded"
        try:
            to_run = await self._reuse_cached()
            for segment in self._segments(to_run):
                self._check_cancel()
                await self._run_segment(segment)
            self._check_cancel()
            await self._commit_all()
        except ExecutionCancelled:
            status, error = "cancelled", self.cancel.reason or "cancelled"
            await self._settle(StepStatus.CANCELLED, None)
        except NodeFailed as exc:
            status, error, failed_node = "failed", str(exc), exc.node_id
            with contextlib.suppress(Exception):
                await self._fail_node(exc.node_id, error_summary(exc.error))
            await self._settle(StepStatus.CANCELLED, failed_node)
        except Exception as exc:  # a hook, a bug or an I/O failure outside any node
            status, error = "failed", error_summary(exc)
            await self._settle(StepStatus.CANCELLED, None)
        finally:
            # Also when the task running us is cancelled (asyncio.CancelledError skips the
            # handlers above): staged writes must never be left behind.
            if self.writers:
                await asyncio.shield(self._abort_writers())
        if status != "succeeded":
            with contextlib.suppress(Exception):
                level = "error" if status == "failed" else "warning"
                await self.on_log(level, error or status, failed_node)
        return ExecutionResult(
            status=status,
            steps=[state.step for state in self.states.values()],
            rows={nid: sum(s.port_rows.values()) for nid, s in self.states.items() if s.port_rows},
            port_rows={nid: dict(s.port_rows) for nid, s in self.states.items() if s.port_rows},
            outputs=self.committed,
            error=error,
            failed_node=failed_node,
            reused=self.reused,
        )

    def _check_cancel(self) -> None:
        if self.cancel.cancelled:
            raise ExecutionCancelled

    async def _guard(self, awaitable: Awaitable[Any]) -> Any:
        """Await `awaitable` unless the token fires first (then raise ExecutionCancelled)."""
        self._check_cancel()
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.ensure_future(self.cancel.wait())
        try:
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task in done:
            return task.result()
        task.cancel()
        # A worker thread cannot be stopped: let it finish and drop its result quietly.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        # Give a cancelled coroutine (e.g. a source's __anext__) a moment to unwind so that its
        # generator can be closed; a thread-backed task returns at once.
        await asyncio.wait({task}, timeout=0.5)
        raise ExecutionCancelled

    # --- step bookkeeping --------------------------------------------------------------------

    async def _update(self, node_id: str, **changes: Any) -> None:
        state = self.states[node_id]
        state.step = state.step.model_copy(update=changes)
        await self.on_step(state.step)

    async def _start(self, node_id: str) -> None:
        await self._update(node_id, status=StepStatus.RUNNING, started_at=_now())

    async def _succeed(self, node_id: str) -> None:
        state = self.states[node_id]
        rows_out = sum(state.port_rows.values()) if state.port_rows else 0
        await self._update(
            node_id, status=StepStatus.SUCCEEDED, rows_out=rows_out, completed_at=_now()
        )
        self._finished += 1
        await self.on_progress(min(1.0, self._finished / max(1, len(self.nodes))))
        await self.on_log("info", f"{node_id}: {rows_out} rows", node_id)

    async def _fail_node(self, node_id: str, message: str) -> None:
        await self._update(node_id, status=StepStatus.FAILED, error=message, completed_at=_now())

    async def _settle(self, running_status: StepStatus, failed_node: str | None) -> None:
        """After a stop: running steps become `running_status`, pending ones `skipped`.

        Hook errors are swallowed here: the writers still have to be aborted after this.
        """
        for node_id, state in self.states.items():
            if node_id == failed_node:
                continue
            with contextlib.suppress(Exception):
                if state.step.status == StepStatus.RUNNING:
                    await self._update(node_id, status=running_status, completed_at=_now())
                elif state.step.status == StepStatus.PENDING:
                    await self._update(node_id, status=StepStatus.SKIPPED)

    # --- planning ----------------------------------------------------------------------------

    def _cache_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for node_id in self.graph.order:
            node = self.nodes[node_id]
            inputs = sorted(
                (edge.input_key, keys[edge.source], edge.source_port)
                for edge in self.graph.in_edges(node_id)
            )
            payload = json.dumps([node.type, node.config, inputs], sort_keys=True, default=str)
            keys[node_id] = hashlib.sha256(payload.encode()).hexdigest()
        return keys

    async def _reuse_cached(self) -> list[str]:
        """Nodes to run, in order; cached ones (retry) are marked succeeded and skipped.

        A node whose output was fused into a downstream plan has its counts (meta) but no
        Parquet: it is skipped as long as no node that consumes it has to run again."""
        if self.resume_from is None or not self.persistent:
            return list(self.graph.order)
        valid = {}
        known = {}
        for node_id in self.graph.order:
            valid[node_id], known[node_id] = await asyncio.to_thread(self._cache_state, node_id)
        run = set(self.resume_from) & set(self.nodes)
        run |= {node_id for node_id in self.graph.order if not known[node_id]}
        while True:
            closure = set(run)
            for node_id in run:
                closure |= self.graph.downstream(node_id)
            for node_id in reversed(self.graph.order):
                if node_id not in closure and not valid[node_id]:
                    consumers = {edge.target for edge in self.graph.out_edges(node_id)}
                    if consumers & closure:
                        closure.add(node_id)
            if closure == run:
                break
            run = closure
        for node_id in self.graph.order:
            if node_id not in run:
                await self._mark_reused(node_id)
        return [node_id for node_id in self.graph.order if node_id in run]

    def _cache_state(self, node_id: str) -> tuple[bool, bool]:
        """(output cached as Parquet, counts known) for the current key."""
        node = self.nodes[node_id]
        if node.type.startswith("destination."):
            return False, False  # writes are never reused: the failed run's writers were aborted
        meta = self._cache.load_meta(node_id)
        known = bool(meta and meta.get("key") == self.keys[node_id])
        valid = known and all(self._cache.has_parts(node_id, port) for port in _ports(node))
        return valid, known

    async def _mark_reused(self, node_id: str) -> None:
        meta = self._cache.load_meta(node_id) or {}
        self.states[node_id].port_rows = dict(meta.get("port_rows") or {})
        self.reused.append(node_id)
        await self._update(node_id, rows_in=meta.get("rows_in"), started_at=_now())
        await self._succeed(node_id)
        await self.on_log("info", f"{node_id}: reused cached output", node_id)

    def _segments(self, to_run: list[str]) -> list[_Segment]:
        running = set(to_run)
        segment_of: dict[str, _Segment] = {}
        segments: list[_Segment] = []
        for node_id in to_run:
            upstream = self._fusable_upstream(node_id, running)
            if upstream is not None and segment_of[upstream].members[-1] == upstream:
                segment = segment_of[upstream]
                segment.members.append(node_id)
            else:
                segment = _Segment([node_id])
                segments.append(segment)
            segment_of[node_id] = segment
        for segment in list(segments):
            feeder = self._fusable_chain(segment, segment_of, running)
            if feeder is not None:
                segments.remove(feeder)
                segment.chain = feeder.members
        return segments

    def _fusable_chain(
        self, segment: _Segment, segment_of: dict[str, _Segment], running: set[str]
    ) -> _Segment | None:
        """The source segment that only feeds this segment's blocking head, if any."""
        head = self.nodes[segment.members[0]]
        in_edges = self.graph.in_edges(head.id)
        if (
            not head.type.startswith("transform.")
            or _is_streamable(head)
            or len(in_edges) != 1
            or in_edges[0].input_key != "in"
            or in_edges[0].source_port != "out"
            or in_edges[0].source not in running
        ):
            return None
        feeder = segment_of[in_edges[0].source]
        first = self.nodes[feeder.members[0]]
        if (
            feeder.members[-1] != in_edges[0].source
            or not first.type.startswith("source.")
            or first.type == "source.inline"
            or len(self.graph.out_edges(in_edges[0].source)) != 1
            or any(self.nodes[n].type.startswith("destination.") for n in feeder.members)
        ):
            return None
        return feeder

    def _fusable_upstream(self, node_id: str, running: set[str]) -> str | None:
        """The node this one can take batches from directly, if any."""
        node = self.nodes[node_id]
        in_edges = self.graph.in_edges(node_id)
        if not _is_streamable(node) or len(in_edges) != 1:
            return None
        upstream = self.nodes[in_edges[0].source]
        if upstream.id not in running or len(self.graph.out_edges(upstream.id)) != 1:
            return None
        if upstream.type.startswith("source.") or _is_streamable(upstream):
            return upstream.id
        return None

    # --- running segments --------------------------------------------------------------------

    async def _run_segment(self, segment: _Segment) -> None:
        head = self.nodes[segment.members[0]]
        if segment.chain:
            await self._run_chain(segment.chain, head)
        for node_id in segment.members:
            if not (segment.chain and node_id == head.id):
                await asyncio.to_thread(self._cache.reset, node_id)
            await self._start(node_id)
        if segment.chain:
            if head.id not in self._fused:
                await self._run_blocking(head)
            if len(segment.members) > 1:
                batches = self._scan_batches(head.id, "out")
                await self._stream(segment.members[1:], batches, source=None)
        elif head.type.startswith("source."):
            await self._stream(segment.members[1:], self._source_batches(head), source=head.id)
        elif _is_streamable(head):
            edge = self.graph.in_edges(head.id)[0]
            batches = self._scan_batches(edge.source, edge.source_port)
            await self._stream(segment.members, batches, source=None)
        else:
            await self._run_blocking(head)
            if len(segment.members) > 1:
                batches = self._scan_batches(head.id, "out")
                await self._stream(segment.members[1:], batches, source=None)
        for node_id in segment.members:
            node = self.nodes[node_id]
            if not node.type.startswith("destination."):
                await self._finish(node_id)

    async def _run_chain(self, chain: list[str], head: GraphNode) -> None:
        """source → row-wise transforms feeding `head`: one lazy plan computing the head's
        output too when the source can be scanned, else streamed and spilled for the head."""
        for node_id in chain:
            await asyncio.to_thread(self._cache.reset, node_id)
            await self._start(node_id)
        await asyncio.to_thread(self._cache.reset, head.id)
        if await self._run_fused(chain, head):
            self._fused.add(head.id)
        else:
            # No lazy scan for this source, or the plan failed: the batch path then names
            # the node at fault.
            source = self.nodes[chain[0]]
            await self._stream(chain[1:], self._source_batches(source), source=source.id)
        for node_id in chain:
            await self._finish(node_id)

    async def _finish(self, node_id: str) -> None:
        state = self.states[node_id]
        if self.persistent:
            await asyncio.to_thread(
                self._cache.save_meta,
                node_id,
                self.keys[node_id],
                state.step.rows_in,
                state.port_rows,
            )
        await self._succeed(node_id)

    async def _source_batches(self, node: GraphNode) -> AsyncIterator[pl.DataFrame]:
        try:
            if node.type == "source.inline":
                yield inline_frame(node.config, node.config.get("limit"))
                return
            if self.reader is None:
                raise RuntimeError("no source reader configured")
            iterator = self.reader.read(node).__aiter__()
        except Exception as exc:
            raise NodeFailed(node.id, exc) from exc
        try:
            while True:
                try:
                    batch = await self._guard(iterator.__anext__())
                except StopAsyncIteration:
                    return
                except (ExecutionCancelled, NodeFailed):
                    raise
                except Exception as exc:
                    raise NodeFailed(node.id, exc) from exc
                yield batch
        finally:
            with contextlib.suppress(Exception):
                await iterator.aclose()  # type: ignore[attr-defined]

    async def _scan_batches(self, node_id: str, port: str) -> AsyncIterator[pl.DataFrame]:
        """Batches of a materialised output, read in a worker thread one at a time."""
        frame = self._cache.scan(node_id, port)
        batches: Iterator[pl.DataFrame] = iter(
            frame.collect_batches(chunk_size=self.batch_size, engine="streaming")
        )
        yielded = False
        while True:
            batch = await self._guard(asyncio.to_thread(next, batches, None))
            if batch is None:
                break
            yielded = True
            yield batch
        if not yielded:
            # No rows at all: one empty batch still carries the columns downstream.
            schema = await asyncio.to_thread(frame.collect_schema)
            yield pl.DataFrame(schema=schema)

    async def _stream(
        self, stages: list[str], batches: AsyncIterator[pl.DataFrame], source: str | None
    ) -> None:
        """Push each batch through `stages` (row-wise transforms, then maybe a destination)."""
        for node_id in stages:
            if self.nodes[node_id].type.startswith("destination."):
                await self._open_writer(node_id)
        persist = self._persisted_stages(([source] if source else []) + stages)
        number = 0
        seen_batch = False
        async with contextlib.aclosing(batches):
            async for batch in batches:
                self._check_cancel()
                seen_batch = True
                outputs = await self._guard(
                    asyncio.to_thread(self._apply_stages, batch, stages, persist, number, source)
                )
                await self._count(batch, outputs, source)
                await self._write(outputs)
                number += 1
                self._check_cancel()
        if not seen_batch:
            # Nothing arrived: still leave an (empty) output for downstream scans.
            empty = pl.DataFrame()
            outputs = await asyncio.to_thread(self._apply_stages, empty, stages, persist, 0, source)
            await self._count(empty, outputs, source)

    def _persisted_stages(self, node_ids: list[str]) -> set[str]:
        """Stages whose batches are written to the work dir (for downstream nodes or retries)."""
        persisted = set()
        for node_id in node_ids:
            if self.nodes[node_id].type.startswith("destination."):
                continue
            consumers = self.graph.out_edges(node_id)
            feeds_outside = consumers and (node_id == node_ids[-1])
            if self.persistent or feeds_outside:
                persisted.add(node_id)
        return persisted

    def _apply_stages(
        self,
        batch: pl.DataFrame,
        stages: list[str],
        persist: set[str],
        number: int,
        source: str | None,
    ) -> list[tuple[str, pl.DataFrame]]:
        """Runs in a worker thread: one batch through every stage, spilling where needed."""
        if source in persist:
            self._cache.write_part(source, "out", batch, number)
        outputs = []
        current = batch
        for node_id in stages:
            node = self.nodes[node_id]
            if not node.type.startswith("destination.") and current.width > 0:
                try:
                    result = TRANSFORMS[transform_name(node.type)].fn(
                        {"in": current.lazy()}, node.config
                    )
                    current = result["out"].collect()
                except Exception as exc:
                    raise NodeFailed(node_id, exc) from exc
            outputs.append((node_id, current))
            if node_id in persist:
                self._cache.write_part(node_id, "out", current, number)
        return outputs

    async def _count(
        self, batch: pl.DataFrame, outputs: list[tuple[str, pl.DataFrame]], source: str | None
    ) -> None:
        previous = batch.height
        if source is not None:
            self._add_rows(source, batch.height, batch.height)
        for node_id, frame in outputs:
            self._add_rows(node_id, previous, frame.height)
            previous = frame.height

    def _add_rows(self, node_id: str, rows_in: int, rows_out: int) -> None:
        state = self.states[node_id]
        state.step = state.step.model_copy(update={"rows_in": (state.step.rows_in or 0) + rows_in})
        state.port_rows["out"] = state.port_rows.get("out", 0) + rows_out

    async def _write(self, outputs: list[tuple[str, pl.DataFrame]]) -> None:
        for node_id, frame in outputs:
            writer = self.writers.get(node_id)
            if writer is not None and frame.height:
                try:
                    await self._guard(writer.write_batch(frame))
                except (ExecutionCancelled, NodeFailed):
                    raise
                except Exception as exc:
                    raise NodeFailed(node_id, exc) from exc

    async def _open_writer(self, node_id: str) -> None:
        if self.destinations is None:
            raise NodeFailed(node_id, RuntimeError("no destination opener configured"))
        try:
            self.writers[node_id] = await self._guard(
                self.destinations.open_writer(self.nodes[node_id])
            )
        except (ExecutionCancelled, NodeFailed):
            raise
        except Exception as exc:
            raise NodeFailed(node_id, exc) from exc

    async def _run_fused(self, chain: list[str], head: GraphNode) -> bool:
        """source → row-wise transforms → `head` as one lazy plan on the streaming engine,
        with every node's row count taken in the same pass. False when the source has no lazy
        scan, or the plan failed (the caller then runs the batch path, which attributes the
        error to its node)."""
        scan = getattr(self.reader, "scan", None)
        if scan is None:
            return False
        source = self.nodes[chain[0]]
        try:
            manager = scan(source)
            frame = await self._guard(manager.__aenter__())
        except ExecutionCancelled:
            raise
        except Exception:
            return False
        try:
            if frame is None:
                return False
            counts, port_rows = await self._guard(
                asyncio.to_thread(self._compute_fused, chain, head, frame)
            )
        except ExecutionCancelled:
            raise
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self.on_log("info", f"lazy plan failed ({error_summary(exc)})", head.id)
            await asyncio.to_thread(self._cache.reset, head.id)
            return False
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(manager.__aexit__(None, None, None))
        previous = counts[0]
        for node_id, rows in zip(chain, counts, strict=True):
            state = self.states[node_id]
            state.step = state.step.model_copy(update={"rows_in": previous})
            state.port_rows["out"] = rows
            previous = rows
        # Announced when the head starts (after the chain has finished, as on the batch path).
        state = self.states[head.id]
        state.step = state.step.model_copy(update={"rows_in": counts[-1]})
        state.port_rows = port_rows
        return True

    def _compute_fused(
        self, chain: list[str], head: GraphNode, source: pl.LazyFrame
    ) -> tuple[list[int], dict[str, int]]:
        """Runs in a worker thread: one plan on the streaming engine, sunk to the head's
        Parquet. Each chain node's rows are counted as they flow past (a pass-through hook per
        node), so the source is read once; separate `select(pl.len())` queries would each
        scan and filter it again."""
        counters: list[_RowCounter | None] = []
        frame = source
        for node_id in chain:
            node = self.nodes[node_id]
            if node.type.startswith("transform."):
                name = transform_name(node.type)
                frame = TRANSFORMS[name].fn({"in": frame}, node.config)["out"]
                if name in _ROW_PRESERVING:
                    counters.append(None)  # as many rows as its input: no hook needed
                    continue
            counter = _RowCounter(lambda: self.cancel.cancelled)
            frame = counter.hook(frame)
            counters.append(counter)
        outputs = TRANSFORMS[transform_name(head.type)].fn({"in": frame}, head.config)
        paths = {}
        for port in outputs:
            directory = self._cache.port_dir(head.id, port)
            directory.mkdir(parents=True, exist_ok=True)
            paths[port] = directory / "part-000000.parquet"
        sinks = [outputs[port].sink_parquet(path, lazy=True) for port, path in paths.items()]
        pl.collect_all(sinks, engine="streaming")
        port_rows = {
            port: pl.scan_parquet(path).select(pl.len()).collect().item()
            for port, path in paths.items()
        }
        counts: list[int] = []
        for counter in counters:
            counts.append(counter.rows if counter is not None else counts[-1])
        return counts, port_rows

    async def _run_blocking(self, node: GraphNode) -> None:
        inputs = {
            edge.input_key: self._cache.scan(edge.source, edge.source_port)
            for edge in self.graph.in_edges(node.id)
        }
        rows_in = sum(
            self.states[edge.source].port_rows.get(edge.source_port, 0)
            for edge in self.graph.in_edges(node.id)
        )
        await self._update(node.id, rows_in=rows_in)
        try:
            port_rows = await self._guard(asyncio.to_thread(self._compute_blocking, node, inputs))
        except ExecutionCancelled:
            raise
        except Exception as exc:
            raise NodeFailed(node.id, exc) from exc
        self.states[node.id].port_rows = port_rows

    def _compute_blocking(self, node: GraphNode, inputs: dict[str, pl.LazyFrame]) -> dict[str, int]:
        """Runs in a worker thread: the transform on the streaming engine, sunk to Parquet."""
        if all(frame.collect_schema().len() == 0 for frame in inputs.values()):
            # Upstream produced nothing at all (not even columns): pass emptiness along.
            outputs = {port: pl.LazyFrame() for port in _ports(node)}
        else:
            outputs = TRANSFORMS[transform_name(node.type)].fn(inputs, node.config)
        port_rows = {}
        for port, frame in outputs.items():
            directory = self._cache.port_dir(node.id, port)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / "part-000000.parquet"
            if frame.collect_schema().len() == 0:
                pl.DataFrame().write_parquet(path)
            else:
                frame.sink_parquet(path, engine="streaming")
            port_rows[port] = pl.scan_parquet(path).select(pl.len()).collect().item()
        return port_rows

    # --- destinations ------------------------------------------------------------------------

    async def _commit_all(self) -> None:
        """Publish every staged write; only reached when every node succeeded."""
        # A cancel is honoured up to here; once publishing starts it runs to the end so that
        # destinations are not left half published because of a late cancel.
        self._check_cancel()
        for node_id, writer in list(self.writers.items()):
            try:
                result = await writer.commit()
            except Exception as exc:
                raise NodeFailed(node_id, exc) from exc
            self.committed[node_id] = result
            del self.writers[node_id]
            self.states[node_id].port_rows = {"in": result.rows_written}
            await self._succeed(node_id)

    async def _abort_writers(self) -> None:
        for node_id, writer in list(self.writers.items()):
            try:
                await writer.abort()
            except Exception as exc:  # keep aborting the others
                with contextlib.suppress(Exception):
                    await self.on_log("error", f"abort failed: {error_summary(exc)}", node_id)
        self.writers.clear()


async def execute(
    graph: ExecutionGraph,
    *,
    reader: SourceReader | None = None,
    destinations: DestinationOpener | None = None,
    on_step: StepHook | None = None,
    on_progress: ProgressHook | None = None,
    on_log: LogHook | None = None,
    cancel: CancelToken | None = None,
    work_dir: Path | str | None = None,
    resume_from: set[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ExecutionResult:
    """Run `graph` to completion, failure or cancellation; never raises for node errors."""
    executor = PipelineExecutor(
        graph,
        reader=reader,
        destinations=destinations,
        on_step=on_step,
        on_progress=on_progress,
        on_log=on_log,
        cancel=cancel,
        work_dir=work_dir,
        resume_from=resume_from,
        batch_size=batch_size,
    )
    lower_data_plane_priority()
    try:
        return await executor.run()
    finally:
        lower_data_plane_priority()  # threads Polars started during the plan
