import pytest

from engine.pipeline import GraphError, analyse, compile_graph
from tests.engine.pipeline.helpers import dataset_out, document, edge, inline, node


def _codes(issues):
    return [(issue.code, issue.node_id, issue.edge_id, issue.pointer) for issue in issues]


def test_compile_react_flow_document():
    doc = document(
        [
            dataset_out("out"),  # listed first: order must still follow the edges
            inline("a", [{"x": 1}]),
            node("join", "transform.join", {"how": "inner", "on": ["x"]}),
            inline("b", [{"x": 1}]),
            node("f", "filter", {"expression": "x > 0"}),
        ],
        [
            edge("a", "join", None, "left", "e1"),
            edge("b", "join", None, "right", "e2"),
            edge("join", "f", "out", None, "e3"),
            edge("f", "out", None, None, "e4"),
        ],
    )
    graph = compile_graph(doc)
    # Deterministic: ties broken by document order (a before b), dependencies first.
    assert graph.order == ["a", "b", "join", "f", "out"]
    assert graph.node("f").type == "transform.filter"  # bare name normalised
    assert graph.node("f").config == {"expression": "x > 0"}
    assert graph.node("f").label == "f"
    edges = {(e.id, e.source, e.source_port, e.target, e.target_port) for e in graph.edges}
    assert edges == {
        ("e1", "a", "out", "join", "left"),
        ("e2", "b", "out", "join", "right"),
        ("e3", "join", "out", "f", "in"),
        ("e4", "f", "out", "out", "in"),
    }
    assert compile_graph(doc) == graph


def test_node_type_rule_prefers_data_over_react_flow_type():
    doc = document(
        [
            {"id": "a", "type": "source.inline", "data": {"config": {"rows": []}}},
            {
                "id": "b",
                "type": "default",
                "data": {"nodeType": "transform.limit", "config": {"n": 1}},
            },
            {"id": "c", "type": "default", "data": {"type": "transform.limit", "config": {"n": 2}}},
        ],
        [edge("a", "b"), edge("b", "c")],
    )
    graph = compile_graph(doc)
    assert [n.type for n in graph.nodes] == ["source.inline", "transform.limit", "transform.limit"]


def test_union_takes_several_edges_in_edge_order():
    doc = document(
        [inline("a", []), inline("b", []), inline("c", []), node("u", "transform.union")],
        [edge("c", "u", edge_id="first"), edge("a", "u", edge_id="second"), edge("b", "u")],
    )
    keys = {e.source: e.input_key for e in compile_graph(doc).edges}
    assert keys == {"c": "in[0]", "a": "in[1]", "b": "in[2]"}


def test_compile_error_lists_structural_issues():
    doc = document([inline("a", []), node("f", "transform.filter", {"expression": "1"})], [])
    with pytest.raises(GraphError) as raised:
        compile_graph(doc)
    assert _codes(raised.value.issues) == [("missing_input", "f", None, "/nodes/1")]


def test_structural_issue_codes_and_pointers():
    doc = document(
        [
            inline("a", []),
            inline("a", []),  # duplicate id
            node("x", "transform.nope"),
            node("j", "transform.join", {"on": ["k"]}),
            node("v", "transform.validate", {"rules": []}),
            node("f", "transform.filter", {"expression": "1"}),
        ],
        [
            edge("a", "ghost", edge_id="dangling"),
            edge("a", "j", None, None, "ambiguous"),  # join has two inputs
            edge("v", "f", "oops", None, "bad-handle"),
            edge("a", "j", None, "left", "ok-left"),
            edge("a", "j", None, "left", "second-left"),
        ],
    )
    issues = _codes(analyse(doc).issues)
    assert ("duplicate_node_id", "a", None, "/nodes/1/id") in issues
    assert ("unknown_node_type", "x", None, "/nodes/2/data/node_type") in issues
    assert ("dangling_edge", None, "dangling", "/edges/0/target") in issues
    assert ("wrong_port", "j", "ambiguous", "/edges/1/targetHandle") in issues
    assert ("wrong_port", "v", "bad-handle", "/edges/2/sourceHandle") in issues
    assert ("duplicate_input", "j", "second-left", "/edges/4/targetHandle") in issues
    assert ("missing_input", "j", None, "/nodes/3") in issues  # "right" never connected
    assert ("missing_input", "v", None, "/nodes/4") in issues


def test_cycle_names_the_edges_on_the_cycle():
    doc = document(
        [
            inline("s", []),
            node("u", "transform.union"),
            node("f", "transform.filter", {"expression": "true"}),
            node("g", "transform.limit", {"n": 1}),
        ],
        [
            edge("s", "u", edge_id="in"),
            edge("u", "f", edge_id="uf"),
            edge("f", "u", edge_id="back"),
            edge("f", "g", edge_id="out"),
        ],
    )
    analysis = analyse(doc)
    cycle = sorted((i.edge_id, i.node_id, i.pointer) for i in analysis.issues if i.code == "cycle")
    assert cycle == [("back", "u", "/edges/2"), ("uf", "f", "/edges/1")]
    assert analysis.graph.order == ["s"]  # nodes on or after the cycle cannot be ordered


def test_fingerprint_ignores_layout():
    doc = document([inline("a", [{"x": 1}]), dataset_out("o")], [edge("a", "o")])
    moved = document([inline("a", [{"x": 1}]), dataset_out("o")], [edge("a", "o")])
    moved["nodes"][0]["position"] = {"x": 500, "y": 9}
    moved["viewport"] = {"x": 3, "y": 3, "zoom": 2}
    assert compile_graph(doc).fingerprint() == compile_graph(moved).fingerprint()


def test_null_handle_goes_to_the_only_required_input():
    doc = document(
        [inline("a", []), inline("b", []), node("q", "transform.sql", {"query": "SELECT 1"})],
        [edge("a", "q", edge_id="main"), edge("b", "q", None, "in2", "extra")],
    )
    ports = {e.id: e.target_port for e in compile_graph(doc).edges}
    assert ports == {"main": "in", "extra": "in2"}
