"""validate(): every code with the exact node/edge id and JSON pointer; schema propagation."""

from engine.pipeline import GraphNode, validate
from engine.schema import Field, LogicalType
from tests.engine.pipeline.helpers import dataset_out, document, edge, inline, node

ROWS = [{"id": 1, "name": "a", "amount": 2.5}]


def issues(result, code):
    return [
        (i.node_id, i.edge_id, i.pointer) for i in result.errors + result.warnings if i.code == code
    ]


def schema(result, node_id):
    return [(f.name, f.type.value) for f in result.node_schemas[node_id]]


async def test_valid_pipeline_propagates_schemas():
    doc = document(
        [
            inline("src", ROWS),
            node(
                "d",
                "transform.derive",
                {
                    "columns": [
                        {"name": "double", "expression": "amount * 2"},
                        {"name": "big", "expression": "double > 3"},
                    ]
                },
            ),
            node(
                "agg",
                "transform.aggregate",
                {
                    "group_by": ["name"],
                    "aggregations": [
                        {"column": "double", "op": "sum", "as": "total"},
                        {"op": "count"},
                    ],
                },
            ),
            dataset_out("out"),
        ],
        [edge("src", "d"), edge("d", "agg"), edge("agg", "out")],
    )
    result = await validate(doc)
    assert result.valid, result.errors
    assert result.warnings == []
    assert schema(result, "d") == [
        ("id", "integer"),
        ("name", "string"),
        ("amount", "number"),
        ("double", "number"),
        ("big", "boolean"),
    ]
    assert schema(result, "agg") == [("name", "string"), ("total", "number"), ("count", "integer")]
    assert schema(result, "out") == schema(result, "agg")


async def test_source_schema_from_async_callback_and_validate_ports():
    seen = []

    async def resolve(graph_node: GraphNode):
        seen.append((graph_node.id, graph_node.config["stream"]))
        return [
            Field(name="email", type=LogicalType.STRING),
            Field(name="age", type=LogicalType.INTEGER),
        ]

    doc = document(
        [
            node("users", "source.postgres", {"connector_id": "c1", "stream": "public.users"}),
            node(
                "check",
                "transform.validate",
                {"rules": [{"column": "age", "check": "range", "min": 0}]},
            ),
            dataset_out("good"),
            dataset_out("bad", "bad"),
        ],
        [edge("users", "check"), edge("check", "good", "valid"), edge("check", "bad", "invalid")],
    )
    result = await validate(doc, resolve)
    assert result.valid, result.errors
    assert seen == [("users", "public.users")]
    assert [f.name for f in result.port_schemas["check"]["valid"]] == ["email", "age"]
    assert [f.name for f in result.port_schemas["check"]["invalid"]] == ["email", "age", "_errors"]
    assert [f.name for f in result.node_schemas["bad"]] == ["email", "age", "_errors"]


async def test_unknown_source_schema_is_a_warning_and_skips_column_checks():
    doc = document(
        [
            node("users", "source.postgres", {"connector_id": "c1", "stream": "users"}),
            node("sel", "transform.select", {"columns": ["whatever"]}),
            dataset_out("out"),
        ],
        [edge("users", "sel"), edge("sel", "out")],
    )
    result = await validate(doc, lambda _node: None)
    assert result.valid
    assert issues(result, "schema_unknown") == [("users", None, None)]
    assert "sel" not in result.node_schemas


async def test_config_invalid_points_at_the_field():
    doc = document(
        [
            inline("src", ROWS),
            node("lim", "transform.limit", {"n": -1}),
            node("agg", "transform.aggregate", {"aggregations": [{"column": "id", "op": "avg"}]}),
            node("f", "transform.filter", {}),
            dataset_out("out"),
        ],
        [edge("src", "lim"), edge("lim", "agg"), edge("agg", "f"), edge("f", "out")],
    )
    result = await validate(doc)
    assert not result.valid
    assert issues(result, "config_invalid") == [
        ("lim", None, "/nodes/1/data/config/n"),
        ("agg", None, "/nodes/2/data/config/aggregations/0/op"),
        ("f", None, "/nodes/3/data/config/expression"),
    ]


async def test_invalid_expression_points_at_the_expression():
    doc = document(
        [
            inline("src", ROWS),
            node(
                "d",
                "transform.derive",
                {
                    "columns": [
                        {"name": "ok", "expression": "id + 1"},
                        {"name": "bad", "expression": "id +* 2"},
                    ]
                },
            ),
            node(
                "f",
                "transform.filter",
                {"expression": "id IN (SELECT * FROM read_parquet('/etc/x'))"},
            ),
            dataset_out("out"),
        ],
        [edge("src", "d"), edge("d", "f"), edge("f", "out")],
    )
    result = await validate(doc)
    assert issues(result, "invalid_expression") == [
        ("d", None, "/nodes/1/data/config/columns/1/expression"),
        ("f", None, "/nodes/2/data/config/expression"),
    ]


async def test_unknown_column_points_at_the_reference():
    doc = document(
        [
            inline("src", ROWS),
            node("sel", "transform.select", {"columns": ["id", "nmae"]}),
            node("f", "transform.filter", {"expression": "amount > 1"}),  # dropped by select
            dataset_out("out"),
        ],
        [edge("src", "sel"), edge("sel", "f"), edge("f", "out")],
    )
    result = await validate(doc)
    assert issues(result, "unknown_column") == [("sel", None, "/nodes/1/data/config/columns/1")]

    doc["nodes"][1]["data"]["config"]["columns"] = ["id", "name"]
    result = await validate(doc)
    assert issues(result, "unknown_column") == [("f", None, "/nodes/2/data/config/expression")]
    assert "amount" in result.errors[0].message


async def test_unknown_column_in_join_keys_and_destination_key():
    doc = document(
        [
            inline("l", ROWS),
            inline("r", [{"key": 1, "v": True}]),
            node("j", "transform.join", {"how": "left", "on": ["id"]}),
            node(
                "out",
                "destination.postgres",
                {"connector_id": "c", "stream": "t", "mode": "upsert", "primary_key": ["pk"]},
            ),
        ],
        [edge("l", "j", None, "left"), edge("r", "j", None, "right"), edge("j", "out")],
    )
    result = await validate(doc)
    assert issues(result, "unknown_column") == [("j", None, "/nodes/2/data/config/on/0")]

    doc["nodes"][2]["data"]["config"] = {"how": "left", "left_on": ["id"], "right_on": ["key"]}
    result = await validate(doc)
    assert issues(result, "unknown_column") == [("out", None, "/nodes/3/data/config/primary_key/0")]


async def test_type_mismatch_points_at_the_aggregation():
    doc = document(
        [
            inline("src", ROWS),
            node(
                "agg",
                "transform.aggregate",
                {
                    "group_by": ["id"],
                    "aggregations": [
                        {"column": "amount", "op": "sum"},
                        {"column": "name", "op": "sum"},
                    ],
                },
            ),
            node("f", "transform.filter", {"expression": "name > 3"}),
            dataset_out("out"),
        ],
        [edge("src", "agg"), edge("src", "f"), edge("agg", "out")],
    )
    result = await validate(doc)
    assert issues(result, "type_mismatch") == [
        ("agg", None, "/nodes/1/data/config/aggregations/1"),
        ("f", None, "/nodes/2/data/config/expression"),
    ]


async def test_join_key_type_mismatch():
    doc = document(
        [
            inline("l", [{"k": 1}]),
            inline("r", [{"k": "1"}]),
            node("j", "transform.join", {"how": "inner", "on": ["k"]}),
            dataset_out("out"),
        ],
        [edge("l", "j", None, "left"), edge("r", "j", None, "right"), edge("j", "out")],
    )
    assert issues(await validate(doc), "type_mismatch") == [("j", None, "/nodes/2/data/config")]


async def test_sql_errors_point_at_the_query():
    doc = document(
        [
            inline("src", ROWS),
            node("q", "transform.sql", {"query": "SELECT nope FROM self"}),
            dataset_out("out"),
        ],
        [edge("src", "q"), edge("q", "out")],
    )
    assert issues(await validate(doc), "unknown_column") == [
        ("q", None, "/nodes/1/data/config/query")
    ]
    doc["nodes"][1]["data"]["config"]["query"] = "SELECT id, amount * 2 AS twice FROM self"
    result = await validate(doc)
    assert result.valid, result.errors
    assert schema(result, "q") == [("id", "integer"), ("twice", "number")]


async def test_structural_codes_reach_validate():
    doc = document(
        [
            inline("a", ROWS),
            node("u", "transform.union"),
            node("f", "transform.filter", {"expression": "id > 0"}),
            node("x", "mystery"),
            dataset_out("out"),
        ],
        [
            edge("a", "u", edge_id="e0"),
            edge("u", "f", edge_id="e1"),
            edge("f", "u", edge_id="e2"),
            edge("f", "out", None, "nope", edge_id="e3"),
            edge("f", "nowhere", edge_id="e4"),
        ],
    )
    result = await validate(doc)
    assert not result.valid
    assert sorted(issues(result, "cycle")) == [("f", "e1", "/edges/1"), ("u", "e2", "/edges/2")]
    assert issues(result, "unknown_node_type") == [("x", None, "/nodes/3/data/node_type")]
    assert issues(result, "wrong_port") == [("out", "e3", "/edges/3/targetHandle")]
    assert issues(result, "dangling_edge") == [(None, "e4", "/edges/4/target")]
    assert issues(result, "missing_input") == [("out", None, "/nodes/4")]
    # Every node still gets its config checked; the acyclic prefix still gets a schema.
    assert "a" in result.node_schemas


async def test_duplicate_node_id():
    doc = document([inline("a", ROWS), inline("a", ROWS)], [])
    assert issues(await validate(doc), "duplicate_node_id") == [("a", None, "/nodes/1/id")]


async def test_no_destination_and_unreachable_warnings():
    doc = document(
        [inline("a", ROWS), node("f", "transform.filter", {"expression": "id > 0"})],
        [edge("a", "f")],
    )
    result = await validate(doc)
    assert result.valid
    assert issues(result, "no_destination") == [(None, None, None)]

    doc = document(
        [
            inline("a", ROWS),
            inline("lonely", ROWS),
            node("f", "transform.filter", {"expression": "id > 0"}),
            dataset_out("out"),
        ],
        [edge("a", "out"), edge("lonely", "f")],
    )
    result = await validate(doc)
    assert result.valid
    assert issues(result, "unreachable") == [("lonely", None, "/nodes/1"), ("f", None, "/nodes/2")]


async def test_garbage_document_is_reported_not_raised():
    result = await validate({"nodes": "x", "edges": None})
    assert not result.valid
    assert {(i.code, i.pointer) for i in result.errors} == {
        ("invalid_definition", "/nodes"),
        ("invalid_definition", "/edges"),
    }
    result = await validate([1, 2])
    assert not result.valid


async def test_mapping_rules_read_the_input_only():
    doc = document(
        [
            inline("src", ROWS),
            node(
                "m",
                "transform.mapping",
                {
                    "rules": [
                        {"target": "total", "source": "amount"},
                        {"target": "twice", "expression": "total * 2"},
                        {"target": "who", "source": "nobody"},
                    ]
                },
            ),
            dataset_out("out"),
        ],
        [edge("src", "m"), edge("m", "out")],
    )
    result = await validate(doc)
    assert sorted(issues(result, "unknown_column")) == [
        ("m", None, "/nodes/1/data/config/rules/1/expression"),
        ("m", None, "/nodes/1/data/config/rules/2/source"),
    ]


async def test_rename_onto_an_existing_column():
    doc = document(
        [
            inline("src", ROWS),
            node("r", "transform.rename", {"mapping": {"name": "id"}}),
            dataset_out("out"),
        ],
        [edge("src", "r"), edge("r", "out")],
    )
    assert issues(await validate(doc), "duplicate_column") == [("r", None, "/nodes/1/data/config")]
