"""Every transform on small frames, with exact expected results."""

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.pipeline.expressions import ExpressionError
from engine.pipeline.transforms import run_transform

ORDERS = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "customer": ["ann", "bob", "ann", None],
        "amount": [10.0, 20.0, None, 5.0],
        "day": ["2024-01-02", "2024-01-03", "bad", "2024-01-05"],
    }
)


def run(node_type: str, config: dict, frame: pl.DataFrame = ORDERS, port: str = "out"):
    return run_transform(node_type, {"in": frame.lazy()}, config)[port].collect()


def test_select_keeps_columns_in_order():
    assert run("select", {"columns": ["amount", "id"]}).columns == ["amount", "id"]


def test_rename_and_drop():
    assert run("rename", {"mapping": {"customer": "client"}}).columns == [
        "id",
        "client",
        "amount",
        "day",
    ]
    assert run("drop", {"columns": ["day", "amount"]}).columns == ["id", "customer"]


def test_cast_parses_strings_and_nulls_failures():
    result = run("cast", {"columns": {"day": "date", "id": "string", "amount": "integer"}})
    assert result["day"].to_list() == [date(2024, 1, 2), date(2024, 1, 3), None, date(2024, 1, 5)]
    assert result["id"].to_list() == ["1", "2", "3", "4"]
    assert result["amount"].to_list() == [10, 20, None, 5]


def test_strict_cast_fails_on_bad_values():
    with pytest.raises(pl.exceptions.PolarsError):
        run("cast", {"columns": {"day": "date"}, "strict": True})


def test_filter_sql_predicate():
    result = run("filter", {"expression": "amount >= 10 AND customer = 'ann'"})
    assert result["id"].to_list() == [1]


def test_filter_refuses_file_functions():
    with pytest.raises(ExpressionError):
        run("filter", {"expression": "id IN (SELECT x FROM read_csv('/etc/passwd'))"})


def test_derive_uses_earlier_derived_columns():
    result = run(
        "derive",
        {
            "columns": [
                {"name": "gross", "expression": "amount * 1.5"},
                {"name": "label", "expression": "UPPER(customer) || ':' || CAST(gross AS VARCHAR)"},
            ]
        },
    )
    assert result["gross"].to_list() == [15.0, 30.0, None, 7.5]
    assert result["label"].to_list() == ["ANN:15.0", "BOB:30.0", None, None]


def test_aggregate_every_op():
    config = {
        "group_by": ["customer"],
        "aggregations": [
            {"column": "amount", "op": "sum", "as": "total"},
            {"column": "amount", "op": "mean"},
            {"column": "amount", "op": "min"},
            {"column": "amount", "op": "max"},
            {"column": "amount", "op": "count"},
            {"column": "id", "op": "count_distinct"},
            {"column": "id", "op": "first"},
            {"column": "id", "op": "last"},
            {"column": "id", "op": "median"},
            {"column": "id", "op": "std"},
            {"op": "count", "as": "rows"},
        ],
    }
    result = run("aggregate", config)
    expected = pl.DataFrame(
        {
            "customer": ["ann", "bob", None],
            "total": [10.0, 20.0, 5.0],
            "amount_mean": [10.0, 20.0, 5.0],
            "amount_min": [10.0, 20.0, 5.0],
            "amount_max": [10.0, 20.0, 5.0],
            "amount_count": [1, 1, 1],
            "id_count_distinct": [2, 1, 1],
            "id_first": [1, 2, 4],
            "id_last": [3, 2, 4],
            "id_median": [2.0, 2.0, 4.0],
            "id_std": [2**0.5, None, None],
            "rows": [2, 1, 1],
        }
    )
    assert_frame_equal(result, expected, check_dtypes=False)


def test_aggregate_without_groups_is_one_row():
    result = run("aggregate", {"aggregations": [{"column": "amount", "op": "sum"}]})
    assert result.to_dicts() == [{"amount_sum": 35.0}]


LEFT = pl.DataFrame({"k": [1, 2, 3], "l": ["a", "b", "c"]})
RIGHT = pl.DataFrame({"k": [2, 3, 4], "r": ["x", "y", "z"]})


def join(how: str, **config):
    result = run_transform(
        "join", {"left": LEFT.lazy(), "right": RIGHT.lazy()}, {"how": how, **config}
    )["out"].collect()
    return result.sort("k", nulls_last=True).to_dicts()


def test_join_kinds():
    assert join("inner", on=["k"]) == [{"k": 2, "l": "b", "r": "x"}, {"k": 3, "l": "c", "r": "y"}]
    assert join("left", on=["k"]) == [
        {"k": 1, "l": "a", "r": None},
        {"k": 2, "l": "b", "r": "x"},
        {"k": 3, "l": "c", "r": "y"},
    ]
    assert join("right", on=["k"]) == [
        {"k": 2, "l": "b", "r": "x"},
        {"k": 3, "l": "c", "r": "y"},
        {"k": 4, "l": None, "r": "z"},
    ]
    assert join("full", on=["k"]) == [
        {"k": 1, "l": "a", "r": None},
        {"k": 2, "l": "b", "r": "x"},
        {"k": 3, "l": "c", "r": "y"},
        {"k": 4, "l": None, "r": "z"},
    ]
    assert join("semi", on=["k"]) == [{"k": 2, "l": "b"}, {"k": 3, "l": "c"}]
    assert join("anti", on=["k"]) == [{"k": 1, "l": "a"}]


def test_join_with_different_key_names():
    right = RIGHT.rename({"k": "key"})
    result = run_transform(
        "join",
        {"left": LEFT.lazy(), "right": right.lazy()},
        {"how": "inner", "left_on": ["k"], "right_on": ["key"]},
    )["out"].collect()
    assert result.sort("k").to_dicts() == [
        {"k": 2, "l": "b", "r": "x"},
        {"k": 3, "l": "c", "r": "y"},
    ]


def test_union_by_name_with_missing_columns_null():
    a = pl.LazyFrame({"id": [1], "name": ["a"]})
    b = pl.LazyFrame({"name": ["b"], "extra": [True]})
    c = pl.LazyFrame({"id": [3.5]})
    result = run_transform("union", {"in[0]": a, "in[1]": b, "in[2]": c}, {})["out"].collect()
    assert result.to_dicts() == [
        {"id": 1.0, "name": "a", "extra": None},
        {"id": None, "name": "b", "extra": True},
        {"id": 3.5, "name": None, "extra": None},
    ]


def test_deduplicate_keep_first_and_last():
    first = run("deduplicate", {"subset": ["customer"], "keep": "first"})
    last = run("deduplicate", {"subset": ["customer"], "keep": "last"})
    assert first["id"].to_list() == [1, 2, 4]
    assert last["id"].to_list() == [2, 3, 4]
    frame = pl.DataFrame({"a": [1, 1, 2]})
    assert run("deduplicate", {}, frame)["a"].to_list() == [1, 2]


def test_sort_multiple_keys():
    result = run(
        "sort",
        {"by": [{"column": "customer"}, {"column": "id", "descending": True}], "nulls_last": True},
    )
    assert result["id"].to_list() == [3, 1, 2, 4]


def test_limit_with_offset():
    assert run("limit", {"n": 2, "offset": 1})["id"].to_list() == [2, 3]


def test_fill_null_value_and_strategy():
    result = run(
        "fill_null",
        {
            "columns": [
                {"column": "customer", "value": "unknown"},
                {"column": "amount", "strategy": "forward"},
            ]
        },
    )
    assert result["customer"].to_list() == ["ann", "bob", "ann", "unknown"]
    assert result["amount"].to_list() == [10.0, 20.0, 20.0, 5.0]


def test_mapping_rules():
    config = {
        "rules": [
            {"target": "order_id", "source": "id", "cast": "string"},
            {"target": "who", "expression": "UPPER(customer)", "default": "?"},
            {"target": "on", "source": "day", "cast": "date"},
        ]
    }
    result = run("mapping", config)
    assert result.columns == ["order_id", "who", "on"]
    assert result.to_dicts()[2] == {"order_id": "3", "who": "ANN", "on": None}
    assert result["who"].to_list() == ["ANN", "BOB", "ANN", "?"]


def test_mapping_keep_unmapped():
    result = run("mapping", {"rules": [{"target": "ID", "source": "id"}], "keep_unmapped": True})
    assert result.columns == ["id", "customer", "amount", "day", "ID"]


def test_mapping_with_target_schema_uses_schema_service():
    config = {
        "rules": [{"target": "total", "source": "amount"}],
        "target_schema": [
            {"name": "total", "type": "number"},
            {"name": "note", "type": "string"},
        ],
    }
    result = run("mapping", config)
    assert result.columns == ["total", "note"]
    assert result["note"].to_list() == [None] * 4


def test_sql_over_named_ports():
    inputs = {"in": LEFT.lazy(), "in2": RIGHT.lazy()}
    query = "SELECT self.k, l, r FROM self JOIN in2 ON self.k = in2.k ORDER BY self.k"
    result = run_transform("sql", inputs, {"query": query})["out"].collect()
    assert result.to_dicts() == [{"k": 2, "l": "b", "r": "x"}, {"k": 3, "l": "c", "r": "y"}]


def test_sql_cannot_read_files(tmp_path):
    secret = tmp_path / "secret.csv"
    pl.DataFrame({"x": [1]}).write_csv(secret)
    for query in (
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM READ_CSV ('{secret}')",
    ):
        with pytest.raises(ExpressionError):
            run_transform("sql", {"in": LEFT.lazy()}, {"query": query})


def test_validate_routes_bad_rows_with_errors():
    config = {
        "rules": [
            {"column": "customer", "check": "not_null"},
            {"column": "amount", "check": "range", "min": 6, "max": 15},
            {"column": "customer", "check": "in_set", "values": ["ann", "bob"]},
            {
                "column": "day",
                "check": "regex",
                "pattern": r"^\d{4}-\d{2}-\d{2}$",
                "message": "day must be ISO",
            },
            {"check": "expression", "expression": "id < 4"},
            {"column": "customer", "check": "unique"},
        ]
    }
    outputs = run_transform("validate", {"in": ORDERS.lazy()}, config)
    valid, invalid = outputs["valid"].collect(), outputs["invalid"].collect()
    assert valid.columns == ORDERS.columns
    assert valid["id"].to_list() == []
    assert invalid.select("id", "_errors").to_dicts() == [
        {"id": 1, "_errors": "customer: unique failed"},
        {"id": 2, "_errors": "amount: range failed"},
        {"id": 3, "_errors": "day must be ISO; customer: unique failed"},
        {
            "id": 4,
            "_errors": "customer: not_null failed; amount: range failed; row: expression failed",
        },
    ]


def test_validate_passes_good_rows():
    config = {"rules": [{"column": "amount", "check": "not_null"}]}
    outputs = run_transform("validate", {"in": ORDERS.lazy()}, config)
    assert outputs["valid"].collect()["id"].to_list() == [1, 2, 4]
    assert outputs["invalid"].collect()["id"].to_list() == [3]
