"""The executor through ConnectorIO with the real file connector: read, validate, write, abort."""

import polars as pl

from engine.connectors.base import ConnectorContext
from engine.pipeline import ConnectorIO, compile_graph, dry_run, execute, validate
from tests.engine.pipeline.helpers import RecordingDestinations, document, edge, node


def _setup(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "in" / "sales.csv").write_text(
        "country,amount\nFR,10\nDE,5\nFR,7\nIT,-1\n", encoding="utf-8"
    )
    connections = {
        "files-in": ("file", {"path": "in"}),
        "files-out": ("file", {"path": "out"}),
    }
    return ConnectorIO(connections, ConnectorContext(data_dir=tmp_path), batch_size=2)


def _pipeline(expression: str = "amount > 0") -> dict:
    return document(
        [
            node("sales", "source.file", {"connector_id": "files-in", "stream": "sales.csv"}),
            node("f", "transform.filter", {"expression": expression}),
            node(
                "agg",
                "transform.aggregate",
                {
                    "group_by": ["country"],
                    "aggregations": [{"column": "amount", "op": "sum", "as": "total"}],
                },
            ),
            node(
                "out",
                "destination.file",
                {"connector_id": "files-out", "stream": "totals.csv", "mode": "replace"},
            ),
        ],
        [edge("sales", "f"), edge("f", "agg"), edge("agg", "out")],
    )


async def test_file_to_file_run_and_validation(tmp_path):
    io = _setup(tmp_path)
    result = await validate(_pipeline(), io.source_schema)
    assert result.valid, result.errors
    assert [f.name for f in result.node_schemas["agg"]] == ["country", "total"]

    run = await execute(compile_graph(_pipeline()), reader=io, destinations=io)
    assert run.status == "succeeded", run.error
    written = pl.read_csv(tmp_path / "out" / "totals.csv")
    assert written.to_dicts() == [{"country": "FR", "total": 17}, {"country": "DE", "total": 5}]
    assert run.rows["sales"] == 4  # read in batches of 2


async def test_failed_run_leaves_the_file_as_it_was(tmp_path):
    io = _setup(tmp_path)
    assert (await execute(compile_graph(_pipeline()), reader=io, destinations=io)).status == (
        "succeeded"
    )
    before = (tmp_path / "out" / "totals.csv").read_bytes()

    # A second destination fails after the first one has staged its rows.
    doc = _pipeline()
    doc["nodes"].append(
        node("strict", "transform.cast", {"columns": {"country": "integer"}, "strict": True})
    )
    doc["nodes"].append(
        node("out2", "destination.file", {"connector_id": "files-out", "stream": "other.csv"})
    )
    doc["edges"] += [edge("sales", "strict"), edge("strict", "out2")]
    run = await execute(compile_graph(doc), reader=io, destinations=io)
    assert run.status == "failed" and run.failed_node == "strict"
    assert (tmp_path / "out" / "totals.csv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["totals.csv"]


async def test_dry_run_samples_the_file_and_writes_nothing(tmp_path):
    io = _setup(tmp_path)
    result = await dry_run(_pipeline(), reader=io, sample_limit=3)
    assert result.status == "succeeded"
    assert result.nodes["sales"].rows_out == 3
    assert result.nodes["out"].would_write["rows"] == 2
    assert list((tmp_path / "out").iterdir()) == []


async def test_unknown_connection_fails_the_source_node(tmp_path):
    io = _setup(tmp_path)
    doc = _pipeline()
    doc["nodes"][0]["data"]["config"]["connector_id"] = "missing"
    run = await execute(compile_graph(doc), reader=io, destinations=io)
    assert (run.status, run.failed_node) == ("failed", "sales")
    assert "unknown connection" in run.error


async def test_source_to_aggregate_runs_as_one_plan_with_every_steps_counts(tmp_path):
    io = _setup(tmp_path)
    updates = {}

    async def on_step(update):
        updates[update.node_id] = update

    work = tmp_path / "work"
    run = await execute(
        compile_graph(_pipeline()), reader=io, destinations=io, on_step=on_step, work_dir=work
    )
    assert run.status == "succeeded", run.error
    counts = {key: (step.rows_in, step.rows_out) for key, step in updates.items()}
    assert counts == {"sales": (4, 4), "f": (4, 3), "agg": (3, 2), "out": (2, 2)}
    # One lazy plan: neither the source's nor the filter's rows were spilled to Parquet.
    assert not list(work.glob("sales-*/**/*.parquet"))
    assert not list(work.glob("f-*/**/*.parquet"))
    written = pl.read_csv(tmp_path / "out" / "totals.csv")
    assert written.to_dicts() == [{"country": "FR", "total": 17}, {"country": "DE", "total": 5}]


async def test_retry_after_a_fused_plan_reuses_its_output(tmp_path):
    io = _setup(tmp_path)
    work = tmp_path / "work"
    graph = compile_graph(_pipeline())
    failing = RecordingDestinations(out={"fail_on_write": True})
    first = await execute(graph, reader=io, destinations=failing, work_dir=work)
    assert (first.status, first.failed_node) == ("failed", "out")
    assert not list(work.glob("sales-*/**/*.parquet"))  # fused: only the aggregate is kept

    retry = await execute(
        graph, reader=io, destinations=RecordingDestinations(), work_dir=work, resume_from={"out"}
    )
    assert retry.status == "succeeded", retry.error
    assert retry.reused == ["sales", "f", "agg"]
    assert retry.rows["sales"] == 4 and retry.rows["f"] == 3 and retry.rows["agg"] == 2

    # The filter changed: its cache and the aggregate's are stale, the source reruns too
    # (its output was never materialised).
    changed = compile_graph(_pipeline("amount > 6"))
    again = await execute(
        changed, reader=io, destinations=RecordingDestinations(), work_dir=work, resume_from={"out"}
    )
    assert again.status == "succeeded", again.error
    assert again.reused == []
    assert again.rows["f"] == 2


async def test_a_plan_that_fails_names_the_node_at_fault(tmp_path):
    io = _setup(tmp_path)
    doc = _pipeline()
    doc["nodes"][1]["data"]["config"] = {"expression": "amount > 0"}
    doc["nodes"].insert(
        2, node("c", "transform.cast", {"columns": {"country": "integer"}, "strict": True})
    )
    doc["edges"] = [edge("sales", "f"), edge("f", "c"), edge("c", "agg"), edge("agg", "out")]
    run = await execute(compile_graph(doc), reader=io, destinations=io)
    assert (run.status, run.failed_node) == ("failed", "c")


async def test_row_preserving_steps_in_a_fused_plan_report_their_input_count(tmp_path):
    io = _setup(tmp_path)
    doc = _pipeline("double > 0")
    doc["nodes"].insert(
        1,
        node(
            "d", "transform.derive", {"columns": [{"name": "double", "expression": "amount * 2"}]}
        ),
    )
    doc["edges"] = [edge("sales", "d"), edge("d", "f"), edge("f", "agg"), edge("agg", "out")]
    run = await execute(compile_graph(doc), reader=io, destinations=io, work_dir=tmp_path / "w")
    assert run.status == "succeeded", run.error
    steps = {step.node_id: (step.rows_in, step.rows_out) for step in run.steps}
    assert steps["sales"] == (4, 4) and steps["d"] == (4, 4) and steps["f"] == (4, 3)
    assert steps["agg"] == (3, 2)
    assert not list((tmp_path / "w").glob("d-*/**/*.parquet"))
