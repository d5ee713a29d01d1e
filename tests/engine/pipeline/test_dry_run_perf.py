"""Dry runs write nothing and show every node; perf tests time every node on synthetic rows."""

from datetime import date

from engine.pipeline import GraphNode, compile_graph, dry_run, perf_test
from engine.schema import Field, LogicalType
from tests.engine.pipeline.helpers import (
    GeneratedReader,
    dataset_out,
    document,
    edge,
    inline,
    node,
)


def pipeline() -> dict:
    return document(
        [
            node("orders", "source.postgres", {"connector_id": "c", "stream": "orders"}),
            node("f", "transform.filter", {"expression": "amount > 10"}),
            node(
                "agg",
                "transform.aggregate",
                {"group_by": ["country"], "aggregations": [{"column": "amount", "op": "sum"}]},
            ),
            dataset_out("out", "totals"),
        ],
        [edge("orders", "f"), edge("f", "agg"), edge("agg", "out")],
    )


async def test_dry_run_on_test_data_writes_nothing(tmp_path):
    test_data = {
        "orders": [
            {"country": "FR", "amount": 20, "day": date(2024, 1, 2)},
            {"country": "FR", "amount": 5, "day": date(2024, 1, 3)},
            {"country": "DE", "amount": 30, "day": None},
        ]
    }
    result = await dry_run(pipeline(), test_data=test_data)
    assert result.status == "succeeded"
    body = result.to_api()
    assert body["nodes"]["orders"]["preview"][0] == {
        "country": "FR",
        "amount": 20,
        "day": "2024-01-02",
    }
    assert body["nodes"]["f"]["rows_out"] == 2
    assert body["nodes"]["agg"]["preview"] == [
        {"country": "FR", "amount_sum": 20},
        {"country": "DE", "amount_sum": 30},
    ]
    assert [f["name"] for f in body["nodes"]["agg"]["schema"]] == ["country", "amount_sum"]
    out = body["nodes"]["out"]
    assert out["would_write"]["rows"] == 2 and out["would_write"]["stream"] == "totals"
    assert all(n["duration_ms"] >= 0 for n in body["nodes"].values())
    # Nothing was written anywhere (no dataset directory, no files).
    assert list(tmp_path.iterdir()) == []


async def test_dry_run_samples_real_sources_with_a_limit():
    doc = document(
        [
            node("src", "source.postgres", {"connector_id": "c", "stream": "t"}),
            node("lim", "transform.limit", {"n": 1000}),
            dataset_out("out"),
        ],
        [edge("src", "lim"), edge("lim", "out")],
    )
    reader = GeneratedReader(batches=100, batch_rows=50)
    result = await dry_run(doc, sample_limit=120, reader=reader)
    assert result.status == "succeeded"
    assert result.nodes["src"].rows_out == 120
    assert len(result.nodes["src"].preview) == 20
    assert reader.batches_read == 3  # stopped reading once the sample was complete


async def test_dry_run_reports_failures_and_skips_downstream_only():
    doc = document(
        [
            inline("a", [{"v": "x"}]),
            node("bad", "transform.cast", {"columns": {"v": "integer"}, "strict": True}),
            dataset_out("o1"),
            inline("b", [{"n": 1}]),
            dataset_out("o2", "two"),
        ],
        [edge("a", "bad"), edge("bad", "o1"), edge("b", "o2")],
    )
    result = await dry_run(doc)
    assert result.status == "failed"
    assert result.nodes["bad"].status == "failed" and result.nodes["bad"].error
    assert result.nodes["o1"].status == "skipped"
    assert result.nodes["o2"].status == "succeeded"
    assert result.nodes["o2"].would_write["rows"] == 1


async def test_dry_run_of_validate_shows_both_ports():
    doc = document(
        [
            inline("a", [{"n": 1}, {"n": None}]),
            node("v", "transform.validate", {"rules": [{"column": "n", "check": "not_null"}]}),
            dataset_out("good"),
            dataset_out("bad", "bad"),
        ],
        [edge("a", "v"), edge("v", "good", "valid"), edge("v", "bad", "invalid")],
    )
    result = await dry_run(doc)
    ports = result.nodes["v"].outputs
    assert ports["valid"]["rows_out"] == 1
    assert ports["invalid"]["preview"] == [{"n": None, "_errors": "n: not_null failed"}]


async def test_dry_run_types_test_rows_like_the_source():
    async def resolve(_node: GraphNode):
        return [
            Field(name="country", type=LogicalType.STRING),
            Field(name="amount", type=LogicalType.NUMBER),
            Field(name="day", type=LogicalType.DATE),
        ]

    test_data = {"orders": [{"country": "FR", "amount": "12.5", "day": "2024-03-01"}]}
    result = await dry_run(pipeline(), test_data=test_data, resolve_source_schema=resolve)
    assert result.status == "succeeded"
    source = result.nodes["orders"]
    assert [(f.name, f.type.value) for f in source.fields] == [
        ("country", "string"),
        ("amount", "number"),
        ("day", "date"),
    ]
    assert source.preview == [{"country": "FR", "amount": 12.5, "day": "2024-03-01"}]


async def test_dry_run_of_an_invalid_document():
    result = await dry_run(document([node("f", "transform.filter", {"expression": "1"})], []))
    assert result.status == "invalid"
    assert [e.code for e in result.errors] == ["missing_input"]


async def test_perf_test_reports_rows_per_second_and_slowest_node():
    def resolve(graph_node: GraphNode):
        return [
            Field(name="country", type=LogicalType.STRING),
            Field(name="amount", type=LogicalType.NUMBER),
            Field(name="day", type=LogicalType.DATE),
            Field(name="at", type=LogicalType.DATETIME),
            Field(name="ok", type=LogicalType.BOOLEAN),
        ]

    result = await perf_test(compile_graph(pipeline()), rows=50_000, resolve_source_schema=resolve)
    assert result.rows == 50_000
    assert set(result.nodes) == {"orders", "f", "agg", "out"}
    assert result.nodes["orders"].rows_out == 50_000
    assert result.nodes["f"].rows_in == 50_000
    assert result.nodes["agg"].rows_out == 1_000  # synthetic strings repeat 1,000 values
    assert all(n.status == "succeeded" and n.rows_per_s > 0 for n in result.nodes.values())
    slowest = max(result.nodes, key=lambda n: result.nodes[n].duration_ms)
    assert result.slowest_node == slowest


async def test_perf_test_with_an_unknown_source_schema_fails_that_branch_only():
    doc = document(
        [
            node("db", "source.postgres", {"connector_id": "c", "stream": "t"}),
            dataset_out("o1"),
            inline("rows", [{"x": 1}]),
            node("f", "transform.filter", {"expression": "x > 0"}),
            dataset_out("o2", "two"),
        ],
        [edge("db", "o1"), edge("rows", "f"), edge("f", "o2")],
    )
    result = await perf_test(doc, rows=1_000, resolve_source_schema=lambda _node: None)
    assert result.nodes["db"].status == "failed" and "schema unknown" in result.nodes["db"].error
    assert result.nodes["o1"].status == "skipped"
    assert result.nodes["f"].rows_in == 1_000 and result.nodes["o2"].status == "succeeded"
    assert result.slowest_node in {"rows", "f", "o2"}
