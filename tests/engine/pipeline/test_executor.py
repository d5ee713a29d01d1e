"""execute(): streaming, blocking transforms, staged commits, failure, cancellation, retry."""

import asyncio
import time

import polars as pl
import pytest

from engine.connectors.base import ConnectorContext
from engine.connectors.dataset import store_for
from engine.pipeline import CancelToken, ConnectorIO, StepStatus, compile_graph, execute
from tests.engine.pipeline.helpers import (
    GeneratedReader,
    RecordingDestinations,
    RecordingWriter,
    dataset_out,
    document,
    edge,
    inline,
    node,
)


def generated_source(node_id: str = "src") -> dict:
    # Read through the in-test GeneratedReader (any connector type works for the executor).
    return node(node_id, "source.postgres", {"connector_id": "gen", "stream": "numbers"})


def dest(node_id: str) -> dict:
    return node(node_id, "destination.postgres", {"connector_id": "db", "stream": node_id})


def statuses(result) -> dict[str, str]:
    return {step.node_id: step.status.value for step in result.steps}


async def test_linear_chain_streams_batch_by_batch():
    doc = document(
        [
            generated_source(),
            node("f", "transform.filter", {"expression": '"group" = 0'}),
            node("d", "transform.derive", {"columns": [{"name": "x", "expression": "id * 2"}]}),
            dest("out"),
        ],
        [edge("src", "f"), edge("f", "d"), edge("d", "out")],
    )
    reader = GeneratedReader(batches=20, batch_rows=1_000)
    reads_at_first_write: list[int] = []

    class Spy(RecordingWriter):
        async def write_batch(self, frame):
            if not self.staged:
                reads_at_first_write.append(reader.batches_read)
            await super().write_batch(frame)

    class Destinations(RecordingDestinations):
        async def open_writer(self, graph_node):
            self.writers[graph_node.id] = Spy(graph_node.id)
            return self.writers[graph_node.id]

    destinations = Destinations()
    result = await execute(compile_graph(doc), reader=reader, destinations=destinations)

    assert result.status == "succeeded", result.error
    # The first batch reached the destination while the source still had 19 batches to go.
    assert reads_at_first_write == [1]
    writer = destinations.writers["out"]
    assert len(writer.staged) == 20
    expected = [i for i in range(20_000) if i % 7 == 0]
    assert writer.published["id"].to_list() == expected
    assert writer.published["x"].to_list() == [i * 2 for i in expected]
    assert result.rows == {
        "src": 20_000,
        "f": len(expected),
        "d": len(expected),
        "out": len(expected),
    }
    assert set(statuses(result).values()) == {"succeeded"}
    assert result.outputs["out"].rows_written == len(expected)


async def test_blocking_transforms_fan_out_and_ports():
    doc = document(
        [
            inline(
                "orders",
                [
                    {"id": 1, "cust": "a", "amount": 5},
                    {"id": 2, "cust": "b", "amount": -1},
                    {"id": 3, "cust": "a", "amount": 7},
                ],
            ),
            inline("customers", [{"cust": "a", "name": "Ann"}, {"cust": "b", "name": "Bob"}]),
            node(
                "check",
                "transform.validate",
                {"rules": [{"column": "amount", "check": "range", "min": 0}]},
            ),
            node("j", "transform.join", {"how": "left", "on": ["cust"]}),
            node(
                "agg",
                "transform.aggregate",
                {
                    "group_by": ["name"],
                    "aggregations": [{"column": "amount", "op": "sum", "as": "total"}],
                },
            ),
            node("sorted", "transform.sort", {"by": [{"column": "total", "descending": True}]}),
            node("all", "transform.union"),
            dest("totals"),
            dest("rejects"),
            dest("everything"),
        ],
        [
            edge("orders", "check"),
            edge("check", "j", "valid", "left"),
            edge("customers", "j", None, "right"),
            edge("j", "agg"),
            edge("agg", "sorted"),
            edge("sorted", "totals"),
            edge("check", "rejects", "invalid"),
            edge("orders", "all"),
            edge("customers", "all"),
            edge("all", "everything"),
        ],
    )
    destinations = RecordingDestinations()
    progress: list[float] = []

    async def on_progress(fraction):
        progress.append(fraction)

    result = await execute(compile_graph(doc), destinations=destinations, on_progress=on_progress)
    assert result.status == "succeeded", result.error
    published = {name: w.published for name, w in destinations.writers.items()}
    assert published["totals"].to_dicts() == [{"name": "Ann", "total": 12}]
    assert published["rejects"].select("id", "_errors").to_dicts() == [
        {"id": 2, "_errors": "amount: range failed"}
    ]
    assert published["everything"].height == 5
    assert set(published["everything"].columns) == {"id", "cust", "amount", "name"}
    assert result.port_rows["check"] == {"valid": 2, "invalid": 1}
    assert progress[-1] == 1.0 and progress == sorted(progress)


async def test_step_hooks_report_lifecycle():
    doc = document(
        [
            inline("a", [{"x": 1}, {"x": 2}]),
            node("f", "transform.filter", {"expression": "x > 1"}),
            dest("out"),
        ],
        [edge("a", "f"), edge("f", "out")],
    )
    updates, logs = [], []

    async def on_step(update):
        updates.append((update.node_id, update.status.value))

    async def on_log(level, message, node_id):
        logs.append((level, node_id))

    result = await execute(
        compile_graph(doc), destinations=RecordingDestinations(), on_step=on_step, on_log=on_log
    )
    assert result.status == "succeeded"
    for node_id in ("a", "f", "out"):
        assert updates.index((node_id, "running")) < updates.index((node_id, "succeeded"))
    f_step = next(s for s in result.steps if s.node_id == "f")
    assert (f_step.rows_in, f_step.rows_out) == (2, 1)
    assert f_step.started_at <= f_step.completed_at
    assert ("info", "f") in logs


async def test_cancel_takes_effect_within_one_second_and_leaves_destinations_untouched():
    # An effectively endless source (1e6 batches); cancel once the destination has data staged.
    doc = document(
        [
            generated_source(),
            node("f", "transform.filter", {"expression": "id >= 0"}),
            dest("out"),
            generated_source("src2"),
            node(
                "agg",
                "transform.aggregate",
                {"group_by": ["group"], "aggregations": [{"op": "count"}]},
            ),
            dest("other"),
        ],
        [edge("src", "f"), edge("f", "out"), edge("src2", "agg"), edge("agg", "other")],
    )
    reader = GeneratedReader(batches=1_000_000, batch_rows=5_000, delay=0.001)
    destinations = RecordingDestinations()
    token = CancelToken()
    task = asyncio.create_task(
        execute(compile_graph(doc), reader=reader, destinations=destinations, cancel=token)
    )
    await asyncio.wait_for(destinations.staged.wait(), timeout=30)
    cancelled_at = time.monotonic()
    token.cancel("user asked")
    result = await asyncio.wait_for(task, timeout=30)
    elapsed = time.monotonic() - cancelled_at

    # The requirement is 1 s; 2 s leaves a margin for slow CI machines.
    assert elapsed < 2.0, f"cancel took {elapsed:.2f}s"
    assert result.status == "cancelled"
    assert result.error == "user asked"
    writer = destinations.writers["out"]
    assert writer.events[-1] == "abort" and "commit" not in writer.events
    assert writer.published is None
    assert "other" not in destinations.writers  # never reached
    assert statuses(result) == {
        "src": "cancelled",
        "f": "cancelled",
        "out": "cancelled",
        "src2": "skipped",
        "agg": "skipped",
        "other": "skipped",
    }


async def test_failure_in_a_later_node_aborts_every_writer():
    doc = document(
        [
            inline("a", [{"v": "1"}, {"v": "2"}]),
            dest("first"),
            inline("b", [{"v": "3"}, {"v": "oops"}]),
            node("strict", "transform.cast", {"columns": {"v": "integer"}, "strict": True}),
            dest("second"),
        ],
        [edge("a", "first"), edge("b", "strict"), edge("strict", "second")],
    )
    destinations = RecordingDestinations()
    result = await execute(compile_graph(doc), destinations=destinations)
    assert result.status == "failed"
    assert result.failed_node == "strict"
    assert "strict" in result.error
    assert statuses(result) == {
        "a": "succeeded",
        "first": "cancelled",
        "b": "cancelled",
        "strict": "failed",
        "second": "cancelled",
    }
    failed_step = next(s for s in result.steps if s.node_id == "strict")
    assert failed_step.error and "conversion" in failed_step.error.lower()
    for writer in destinations.writers.values():
        assert writer.published is None
        assert writer.events[-1] == "abort"
    assert destinations.writers["first"].events == ["write", "abort"]
    assert result.outputs == {}


async def test_source_error_fails_its_node():
    class Broken(GeneratedReader):
        async def read(self, graph_node, *, limit=None):
            yield pl.DataFrame({"id": [1]})
            raise ConnectionError("connection reset")

    doc = document([generated_source(), dest("out")], [edge("src", "out")])
    destinations = RecordingDestinations()
    result = await execute(compile_graph(doc), reader=Broken(1), destinations=destinations)
    assert (result.status, result.failed_node) == ("failed", "src")
    assert "connection reset" in result.error
    assert destinations.writers["out"].events == ["write", "abort"]


async def test_empty_source_writes_nothing_and_succeeds():
    doc = document(
        [
            inline("a", []),
            node("f", "transform.filter", {"expression": "x > 1"}),
            node("s", "transform.sort", {"by": [{"column": "x"}]}),
            dest("out"),
        ],
        [edge("a", "f"), edge("f", "s"), edge("s", "out")],
    )
    destinations = RecordingDestinations()
    result = await execute(compile_graph(doc), destinations=destinations)
    assert result.status == "succeeded", result.error
    assert result.outputs["out"].rows_written == 0


async def test_retry_resumes_from_the_failed_step(tmp_path):
    doc = document(
        [
            generated_source(),
            node(
                "agg",
                "transform.aggregate",
                {"group_by": ["group"], "aggregations": [{"column": "id", "op": "sum"}]},
            ),
            node("s", "transform.sort", {"by": [{"column": "group"}]}),
            dest("out"),
        ],
        [edge("src", "agg"), edge("agg", "s"), edge("s", "out")],
    )
    graph = compile_graph(doc)
    reader = GeneratedReader(batches=3, batch_rows=100)
    failing = RecordingDestinations(out={"fail_on_write": True})
    first = await execute(graph, reader=reader, destinations=failing, work_dir=tmp_path)
    assert (first.status, first.failed_node) == ("failed", "out")
    assert reader.batches_read == 3

    updates = []

    async def on_step(update):
        updates.append((update.node_id, update.status.value))

    working = RecordingDestinations()
    retry = await execute(
        graph,
        reader=reader,
        destinations=working,
        work_dir=tmp_path,
        resume_from={"out"},
        on_step=on_step,
    )
    assert retry.status == "succeeded", retry.error
    assert retry.reused == ["src", "agg", "s"]
    assert reader.batches_read == 3  # the source was not read again
    assert ("out", "running") in updates and ("agg", "running") not in updates
    published = working.writers["out"].published
    assert published["group"].to_list() == list(range(7))
    assert published["id_sum"].sum() == sum(range(300))

    # A changed step invalidates its cache and everything after it, not what comes before.
    doc["nodes"][2]["data"]["config"] = {"by": [{"column": "group", "descending": True}]}
    changed = await execute(
        compile_graph(doc),
        reader=reader,
        destinations=RecordingDestinations(),
        work_dir=tmp_path,
        resume_from={"out"},
    )
    assert changed.status == "succeeded"
    assert changed.reused == ["src", "agg"]


async def test_dataset_destination_is_unchanged_after_a_failed_run(tmp_path):
    ctx = ConnectorContext(data_dir=tmp_path)
    io = ConnectorIO({}, ctx)
    good = document(
        [inline("a", [{"x": 1}, {"x": 2}]), dataset_out("out", "numbers")], [edge("a", "out")]
    )
    result = await execute(compile_graph(good), reader=io, destinations=io)
    assert result.status == "succeeded", result.error
    assert result.outputs["out"].version is not None
    store = store_for(ctx)
    before = store.read("numbers").collect()
    versions = len(store.versions("numbers"))

    bad = document(
        [
            inline("a", [{"x": 9}]),
            dataset_out("out", "numbers"),
            inline("b", [{"v": "nope"}]),
            node("c", "transform.cast", {"columns": {"v": "integer"}, "strict": True}),
            dataset_out("out2", "other"),
        ],
        [edge("a", "out"), edge("b", "c"), edge("c", "out2")],
    )
    result = await execute(compile_graph(bad), reader=io, destinations=io)
    assert result.status == "failed"
    assert store.read("numbers").collect().equals(before)
    assert len(store.versions("numbers")) == versions
    assert not store.exists("other") or store.current_version("other") is None


@pytest.mark.parametrize("batch_size", [1, 3])
async def test_small_batches_give_the_same_result(batch_size):
    rows = [{"k": i % 3, "v": i} for i in range(10)]
    doc = document(
        [
            inline("a", rows),
            node("f", "transform.filter", {"expression": "v > 2"}),
            node("dd", "transform.deduplicate", {"subset": ["k"], "keep": "last"}),
            dest("out"),
        ],
        [edge("a", "f"), edge("f", "dd"), edge("dd", "out")],
    )
    destinations = RecordingDestinations()
    result = await execute(compile_graph(doc), destinations=destinations, batch_size=batch_size)
    assert result.status == "succeeded", result.error
    assert sorted(destinations.writers["out"].published.to_dicts(), key=lambda r: r["k"]) == [
        {"k": 0, "v": 9},
        {"k": 1, "v": 7},
        {"k": 2, "v": 8},
    ]


async def test_cancel_during_a_blocking_step_returns_promptly():
    doc = document(
        [
            generated_source(),
            node(
                "s",
                "transform.sort",
                {"by": [{"column": "group"}, {"column": "id", "descending": True}]},
            ),
            dest("out"),
        ],
        [edge("src", "s"), edge("s", "out")],
    )
    token = CancelToken()
    cancelled_at: list[float] = []

    async def on_step(update):
        if update.node_id == "s" and update.status is StepStatus.RUNNING and not cancelled_at:
            # Let the sort start in its worker thread, then cancel.
            asyncio.get_running_loop().call_later(0.05, token.cancel)
            cancelled_at.append(time.monotonic() + 0.05)

    destinations = RecordingDestinations()
    result = await execute(
        compile_graph(doc),
        reader=GeneratedReader(40, 50_000),
        destinations=destinations,
        cancel=token,
        on_step=on_step,
    )
    elapsed = time.monotonic() - cancelled_at[0]
    assert elapsed < 2.0, f"cancel took {elapsed:.2f}s"  # requirement 1 s, margin for CI
    assert result.status == "cancelled"
    assert statuses(result)["src"] == "succeeded"
    assert statuses(result)["s"] == "cancelled"
    assert all(w.published is None for w in destinations.writers.values())


async def test_cancelling_the_task_itself_still_aborts_writers():
    doc = document([generated_source(), dest("out")], [edge("src", "out")])
    destinations = RecordingDestinations()
    reader = GeneratedReader(batches=1_000_000, batch_rows=1_000, delay=0.001)
    task = asyncio.create_task(
        execute(compile_graph(doc), reader=reader, destinations=destinations)
    )
    await asyncio.wait_for(destinations.staged.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert destinations.writers["out"].events[-1] == "abort"


async def test_a_failing_hook_fails_the_run_and_aborts():
    doc = document([inline("a", [{"x": 1}]), dest("out")], [edge("a", "out")])

    async def on_progress(_fraction):
        raise RuntimeError("database is gone")

    destinations = RecordingDestinations()
    result = await execute(compile_graph(doc), destinations=destinations, on_progress=on_progress)
    assert result.status == "failed"
    assert "database is gone" in result.error
    assert destinations.writers["out"].published is None


async def test_window_and_aggregate_expressions_see_all_rows_not_one_batch():
    rows = [{"v": i} for i in range(10)]
    doc = document(
        [
            inline("a", rows),
            node("f", "transform.filter", {"expression": "v > AVG(v)"}),
            node(
                "d",
                "transform.derive",
                {"columns": [{"name": "n", "expression": "ROW_NUMBER() OVER (ORDER BY v)"}]},
            ),
            dest("out"),
        ],
        [edge("a", "f"), edge("f", "d"), edge("d", "out")],
    )
    destinations = RecordingDestinations()
    result = await execute(compile_graph(doc), destinations=destinations, batch_size=2)
    assert result.status == "succeeded", result.error
    assert destinations.writers["out"].published.to_dicts() == [
        {"v": v, "n": n} for n, v in enumerate(range(5, 10), start=1)
    ]


async def test_columns_survive_a_step_that_keeps_no_rows(tmp_path):
    doc = document(
        [
            generated_source(),
            node("f", "transform.filter", {"expression": "id < 0"}),
            node("s", "transform.sort", {"by": [{"column": "id"}]}),
            node("d", "transform.derive", {"columns": [{"name": "x", "expression": "id + 1"}]}),
            dest("out"),
        ],
        [edge("src", "f"), edge("f", "s"), edge("s", "d"), edge("d", "out")],
    )
    result = await execute(
        compile_graph(doc),
        reader=GeneratedReader(2, 100),
        destinations=RecordingDestinations(),
        work_dir=tmp_path,
    )
    assert result.status == "succeeded", result.error
    assert result.rows["d"] == 0
    # The derive ran on an empty batch that still had the columns.
    (output,) = tmp_path.glob("d-*/out")
    assert pl.scan_parquet(output / "*.parquet").collect_schema().names() == ["id", "group", "x"]


async def test_batches_with_drifting_columns_are_stacked_by_name():
    class Drifting(GeneratedReader):
        async def read(self, graph_node, *, limit=None):
            yield pl.DataFrame({"id": [2], "note": [None]})  # all-null: Null dtype
            yield pl.DataFrame({"id": [1], "note": ["x"], "extra": [1.5]})

    doc = document(
        [generated_source(), node("s", "transform.sort", {"by": [{"column": "id"}]}), dest("out")],
        [edge("src", "s"), edge("s", "out")],
    )
    destinations = RecordingDestinations()
    result = await execute(compile_graph(doc), reader=Drifting(0), destinations=destinations)
    assert result.status == "succeeded", result.error
    assert destinations.writers["out"].published.to_dicts() == [
        {"id": 1, "note": "x", "extra": 1.5},
        {"id": 2, "note": None, "extra": None},
    ]
