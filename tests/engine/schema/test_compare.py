"""Schema comparison (`POST /schema/compare`) and fingerprints for schema history."""

from __future__ import annotations

from engine.schema import (
    ChangeKind,
    Field,
    LogicalType,
    StreamSchema,
    compare,
    has_breaking_changes,
    schema_fingerprint,
)

T = LogicalType


def f(name: str, type_: str, nullable: bool = True) -> Field:
    return Field(name=name, type=LogicalType(type_), nullable=nullable)


def _summary(changes):
    return [(c.field, c.change.value, c.breaking) for c in changes]


def test_identical_schemas_have_no_changes():
    fields = [f("id", "integer", False), f("name", "string")]
    assert compare(fields, list(fields)) == []


def test_removed_field_is_breaking_and_added_field_is_not():
    changes = compare(
        [f("id", "integer"), f("legacy", "string")], [f("id", "integer"), f("new", "date")]
    )
    assert _summary(changes) == [("legacy", "removed", True), ("new", "added", False)]
    removed, added = changes
    assert removed.from_type == T.STRING and removed.to_type is None
    assert added.to_type == T.DATE


def test_widening_type_changes_are_not_breaking():
    old = [
        f("a", "integer"),
        f("b", "integer"),
        f("c", "date"),
        f("d", "boolean"),
        f("e", "unknown"),
    ]
    new = [
        f("a", "number"),
        f("b", "decimal"),
        f("c", "datetime"),
        f("d", "string"),
        f("e", "json"),
    ]
    changes = compare(old, new)
    assert [c.change for c in changes] == [ChangeKind.TYPE_CHANGED] * 5
    assert not has_breaking_changes(changes)
    assert (changes[0].from_type, changes[0].to_type) == (T.INTEGER, T.NUMBER)


def test_narrowing_type_changes_are_breaking():
    old = [f("a", "number"), f("b", "string"), f("c", "datetime"), f("d", "json")]
    new = [f("a", "integer"), f("b", "integer"), f("c", "date"), f("d", "integer")]
    assert [c.breaking for c in compare(old, new)] == [True, True, True, True]


def test_tightening_to_not_null_is_breaking_relaxing_is_not():
    changes = compare(
        [f("a", "string", True), f("b", "string", False)],
        [f("a", "string", False), f("b", "string", True)],
    )
    assert _summary(changes) == [
        ("a", "nullability_changed", True),
        ("b", "nullability_changed", False),
    ]
    assert (changes[0].from_nullable, changes[0].to_nullable) == (True, False)


def test_a_field_can_change_type_and_nullability_at_once_in_a_stable_order():
    changes = compare([f("x", "integer", False)], [f("x", "string", True)])
    assert [c.change.value for c in changes] == ["type_changed", "nullability_changed"]


def test_order_follows_the_old_schema_then_added_fields_in_new_order():
    old = [f("z", "string"), f("a", "string"), f("m", "string")]
    new = [f("n2", "string"), f("m", "integer"), f("n1", "string"), f("z", "string")]
    assert [(c.field, c.change.value) for c in compare(old, new)] == [
        ("a", "removed"),
        ("m", "type_changed"),
        ("n2", "added"),
        ("n1", "added"),
    ]


def test_accepts_stream_schemas_and_plain_dicts():
    left = StreamSchema(name="t", fields=[f("id", "integer")])
    right = [{"name": "id", "type": "number"}]
    assert _summary(compare(left, right)) == [("id", "type_changed", False)]


def test_describe_reads_like_a_sentence():
    (change,) = compare([f("price", "number")], [f("price", "string")])
    assert change.describe() == "price: type changed from number to string"


def test_fingerprint_is_stable_and_ignores_order_and_native_types():
    a = [f("id", "integer", False), f("name", "string")]
    b = [
        Field(name="name", type=T.STRING, native_type="varchar(80)"),
        Field(name="id", type=T.INTEGER, nullable=False, native_type="int4"),
    ]
    assert schema_fingerprint(a) == schema_fingerprint(b)
    assert len(schema_fingerprint(a)) == 64
    assert schema_fingerprint(a) == schema_fingerprint(StreamSchema(name="s", fields=a))


def test_fingerprint_changes_whenever_compare_finds_a_change():
    base = [f("id", "integer", False), f("name", "string")]
    variants = [
        [f("id", "number", False), f("name", "string")],
        [f("id", "integer", True), f("name", "string")],
        [f("id", "integer", False)],
        [f("id", "integer", False), f("name", "string"), f("extra", "string")],
        [f("ID", "integer", False), f("name", "string")],
    ]
    fingerprints = {schema_fingerprint(v) for v in variants}
    assert len(fingerprints) == len(variants)
    assert schema_fingerprint(base) not in fingerprints
