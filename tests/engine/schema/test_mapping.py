"""Field mappings: suggestions, validation with pointers, and applying them to frames."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pydantic
import pytest

from engine.schema import (
    MAPPING_TEMPLATES,
    MAX_SUGGEST_PAIRS,
    Field,
    InvalidMappingError,
    LogicalType,
    Mapping,
    MappingRule,
    MappingTooLargeError,
    apply_mapping,
    mapping_from_suggestions,
    mapping_template,
    mapping_to_exprs,
    suggest_mapping,
    validate_mapping,
)

T = LogicalType


def f(name: str, type_: str = "string", nullable: bool = True, native: str | None = None):
    return Field(name=name, type=LogicalType(type_), nullable=nullable, native_type=native)


SOURCE = [
    f("customerId", "integer", nullable=False),
    f("qty", "string"),
    f("email", "string"),
    f("fname", "string"),
    f("signup", "string"),
    f("price", "number"),
]
TARGET = [
    f("customer_id", "string", nullable=False),
    f("quantity", "integer"),
    f("phone", "string"),
    f("first_name", "string"),
    f("signed_up", "date"),
    f("unit_price", "decimal", native="numeric(10,2)"),
]


def _pairs(suggestions):
    return {s.target: s.source for s in suggestions}


# --- suggestions ------------------------------------------------------------------------------


def test_suggest_maps_names_across_case_styles_and_abbreviations():
    pairs = _pairs(suggest_mapping(SOURCE, TARGET))
    assert pairs["customer_id"] == "customerId"
    assert pairs["quantity"] == "qty"
    assert pairs["first_name"] == "fname"
    assert pairs["unit_price"] == "price"


def test_suggest_does_not_map_unrelated_fields():
    pairs = _pairs(suggest_mapping(SOURCE, TARGET))
    assert "phone" not in pairs  # "email" is not a phone number
    assert pairs.get("phone") != "email"


def test_suggestions_carry_a_score_and_the_cast_needed():
    by_target = {s.target: s for s in suggest_mapping(SOURCE, TARGET)}
    assert by_target["customer_id"].score == 1.0
    assert by_target["customer_id"].cast == T.STRING  # integer -> string
    assert by_target["first_name"].cast is None  # same type
    assert 0 < by_target["quantity"].score < 1  # text -> integer may fail: ranked lower


def test_each_source_is_used_once_and_the_best_match_wins():
    sources = [f("name"), f("customer_name")]
    targets = [f("first_name"), f("customer_name")]
    pairs = _pairs(suggest_mapping(sources, targets))
    assert pairs == {"customer_name": "customer_name", "first_name": "name"}


def test_impossible_types_are_never_suggested():
    assert suggest_mapping([f("tags", "json")], [f("tags", "integer")]) == []


def test_threshold_controls_how_loose_suggestions_are():
    sources, targets = [f("status")], [f("state")]
    assert suggest_mapping(sources, targets, threshold=0.95) == []
    assert _pairs(suggest_mapping(sources, targets, threshold=0.5)) == {"state": "status"}


def test_suggest_accepts_stream_schemas_as_the_api_sends_them():
    source = {"name": "crm", "fields": [{"name": "E-Mail", "type": "string"}]}
    target = {"name": "contacts", "fields": [{"name": "email", "type": "string"}]}
    assert _pairs(suggest_mapping(source, target)) == {"email": "E-Mail"}


def test_suggesting_over_huge_schemas_is_refused():
    many = [f(f"c{i}") for i in range(MAX_SUGGEST_PAIRS // 100 + 1)]
    with pytest.raises(MappingTooLargeError):
        suggest_mapping(many, [f(f"t{i}") for i in range(100)])


# --- validation -------------------------------------------------------------------------------


def _issues(mapping, severity="error"):
    return [(i.pointer, i.message) for i in validate_mapping(mapping) if i.severity == severity]


def test_a_mapping_built_from_suggestions_has_no_errors():
    mapping = mapping_from_suggestions(SOURCE, TARGET, suggest_mapping(SOURCE, TARGET))
    assert _issues(mapping) == []


def test_validation_points_at_each_problem():
    mapping = Mapping(
        source_schema=SOURCE,
        target_schema=TARGET,
        rules=[
            MappingRule(target="nope", source="email"),
            MappingRule(target="customer_id", source="ghost"),
            MappingRule(target="phone", expression="upper(ghost)"),
            MappingRule(target="first_name", expression="fname +"),
            MappingRule(target="signed_up", source="price"),
            MappingRule(target="unit_price", source="price", cast="decimal", default="abc"),
            MappingRule(target="unit_price", source="price"),
        ],
    )
    issues = dict(_issues(mapping))
    assert "not a field of the target schema" in issues["/rules/0/target"]
    assert "'ghost' is not a field of the source schema" in issues["/rules/1/source"]
    assert "ghost" in issues["/rules/2/expression"]
    assert "invalid expression" in issues["/rules/3/expression"]
    assert issues["/rules/4/source"] == "cannot convert number to date"
    assert "not a valid decimal" in issues["/rules/5/default"]
    assert "mapped twice" in issues["/rules/6/target"]


def test_required_targets_must_be_covered():
    mapping = Mapping(source_schema=SOURCE, target_schema=TARGET, rules=[])
    assert _issues(mapping) == [("/target_schema/0", "required target 'customer_id' has no rule")]
    with_default = Mapping(
        source_schema=SOURCE,
        target_schema=TARGET,
        rules=[MappingRule(target="customer_id", default="unknown")],
    )
    assert _issues(with_default) == []


def test_lossy_conversions_without_an_explicit_cast_are_warnings():
    rule = MappingRule(target="quantity", source="qty")
    mapping = Mapping(
        source_schema=SOURCE,
        target_schema=TARGET,
        rules=[rule, MappingRule(target="customer_id", source="customerId")],
    )
    assert _issues(mapping) == []
    assert [p for p, _ in _issues(mapping, "warning")] == ["/rules/0/source"]
    rule.cast = T.INTEGER
    assert _issues(mapping, "warning") == []


def test_a_rule_takes_a_source_or_an_expression_not_both():
    with pytest.raises(pydantic.ValidationError):
        MappingRule(target="a", source="b", expression="c")
    with pytest.raises(pydantic.ValidationError):
        MappingRule(target="a")


def test_expressions_are_parsed_never_evaluated_as_python():
    mapping = Mapping(
        source_schema=SOURCE,
        target_schema=[f("x")],
        rules=[MappingRule(target="x", expression="__import__('os').system('true')")],
    )
    assert [p for p, _ in _issues(mapping)] == ["/rules/0/expression"]


# --- applying ---------------------------------------------------------------------------------

FRAME = pl.DataFrame(
    {
        "customerId": [1, 2],
        "qty": ["3", "x"],
        "email": ["a@example.com", "b@example.com"],
        "fname": ["ann", None],
        "signup": ["2024-05-01", None],
        "price": [1.234, 2.5],
    }
)


def _mapping(*rules: MappingRule) -> Mapping:
    return Mapping(source_schema=SOURCE, target_schema=TARGET, rules=list(rules))


def test_apply_produces_exactly_the_target_columns_in_order_with_target_types():
    mapping = _mapping(
        MappingRule(target="signed_up", source="signup", cast="date", default="2020-01-01"),
        MappingRule(target="customer_id", source="customerId"),
        MappingRule(target="quantity", source="qty", cast="integer", default=0),
        MappingRule(target="first_name", expression="upper(fname) || '!'"),
        MappingRule(target="unit_price", source="price"),
    )
    result = apply_mapping(FRAME, mapping)
    assert result.columns == [t.name for t in TARGET]
    assert result.schema == pl.Schema(
        {
            "customer_id": pl.String,
            "quantity": pl.Int64,
            "phone": pl.String,
            "first_name": pl.String,
            "signed_up": pl.Date,
            "unit_price": pl.Decimal(10, 2),
        }
    )
    assert result.rows() == [
        ("1", 3, None, "ANN!", dt.date(2024, 5, 1), Decimal("1.23")),
        ("2", 0, None, None, dt.date(2020, 1, 1), Decimal("2.50")),
    ]


def test_mapping_to_exprs_gives_one_named_expression_per_target():
    mapping = _mapping(MappingRule(target="customer_id", source="customerId"))
    exprs = mapping_to_exprs(mapping)
    assert [e.meta.output_name() for e in exprs] == [t.name for t in TARGET]
    assert FRAME.lazy().select(exprs).collect().height == 2


def test_an_invalid_mapping_is_not_applied():
    with pytest.raises(InvalidMappingError, match="customer_id"):
        apply_mapping(FRAME, _mapping())


def test_mapping_follows_the_actual_column_types_of_the_frame():
    mapping = _mapping(MappingRule(target="customer_id", source="customerId"))
    frame = FRAME.with_columns(pl.col("customerId").cast(pl.String) + "-A")
    assert apply_mapping(frame, mapping)["customer_id"].to_list() == ["1-A", "2-A"]


def test_data_that_lacks_a_mapped_column_is_refused_with_a_pointer():
    mapping = _mapping(
        MappingRule(target="customer_id", source="customerId"),
        MappingRule(target="first_name", source="fname"),
    )
    with pytest.raises(InvalidMappingError) as raised:
        apply_mapping(FRAME.drop("fname"), mapping)
    assert [issue.pointer for issue in raised.value.issues] == ["/rules/1"]


def test_json_targets_take_object_defaults_as_json_text():
    mapping = Mapping(
        source_schema=[f("meta", "json")],
        target_schema=[f("meta", "json")],
        rules=[MappingRule(target="meta", source="meta", default={"empty": True})],
    )
    frame = pl.DataFrame({"meta": ['{"a":1}', None]})
    assert apply_mapping(frame, mapping)["meta"].to_list() == ['{"a":1}', '{"empty":true}']


# --- templates --------------------------------------------------------------------------------


def test_templates_are_ready_made_target_schemas():
    ids = [t.id for t in MAPPING_TEMPLATES]
    assert {"customer_contact", "order_line"} <= set(ids)
    assert len(ids) == len(set(ids))
    order_line = mapping_template("order_line")
    assert order_line is not None
    assert {"order_id", "quantity", "unit_price"} <= {f.name for f in order_line.target_schema}
    assert mapping_template("missing") is None


def test_a_template_works_with_suggestions():
    contact = mapping_template("customer_contact")
    source = [
        f("CustomerID", "integer"),
        f("E-mail"),
        f("Telephone"),
        f("FirstName"),
        f("LastName"),
    ]
    pairs = _pairs(suggest_mapping(source, contact.target_schema))
    assert pairs == {
        "customer_id": "CustomerID",
        "first_name": "FirstName",
        "last_name": "LastName",
        "email": "E-mail",
        "phone": "Telephone",
    }
