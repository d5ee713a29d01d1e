from jsonschema import Draft202012Validator

from engine.connectors.registry import connector_type_names
from engine.pipeline import get_node_type, node_types


def test_every_config_schema_is_valid_draft_2020_12():
    for entry in node_types():
        Draft202012Validator.check_schema(entry.config_schema)
        assert entry.config_schema["$schema"].endswith("2020-12/schema")
        assert "ui:order" in entry.ui_schema


def test_one_source_per_connector_type_plus_inline():
    types = {entry.type for entry in node_types()}
    assert "source.inline" in types
    for name in connector_type_names():
        assert f"source.{name}" in types or (name == "http_api" and "source.http_api" in types)


def test_destinations_only_for_writable_connectors():
    types = {entry.type for entry in node_types()}
    assert "destination.dataset" in types
    assert "destination.http_api" not in types  # HTTP APIs are read-only sources


def test_ports():
    assert get_node_type("transform.join").inputs == ["left", "right"]
    assert get_node_type("transform.validate").outputs == ["valid", "invalid"]
    assert get_node_type("transform.union").multi_inputs == ["in"]
    assert get_node_type("transform.sql").optional_inputs == ["in2"]
    source = get_node_type("source.postgres")
    assert (source.category, source.inputs, source.outputs) == ("source", [], ["out"])
    destination = get_node_type("destination.postgres")
    assert (destination.category, destination.inputs, destination.outputs) == (
        "destination",
        ["in"],
        [],
    )


def test_bare_transform_names_are_accepted():
    assert get_node_type("filter").type == "transform.filter"


def test_source_config_requires_a_cursor_for_incremental():
    schema = get_node_type("source.postgres").config_schema
    validator = Draft202012Validator(schema)
    assert not list(validator.iter_errors({"connector_id": "c", "stream": "t"}))
    errors = list(
        validator.iter_errors({"connector_id": "c", "stream": "t", "sync_mode": "incremental"})
    )
    assert errors and "cursor_field" in errors[0].message
