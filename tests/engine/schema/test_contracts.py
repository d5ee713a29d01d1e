"""Schema contracts at run time: evolve, freeze, discard_row, discard_value."""

from __future__ import annotations

import datetime as dt
import time

import polars as pl
import pytest

from engine.schema import (
    ContractPolicy,
    Field,
    LogicalType,
    SchemaContractViolation,
    apply_contract,
)

T = LogicalType

EXPECTED = [
    Field(name="id", type=T.INTEGER, nullable=False),
    Field(name="amount", type=T.NUMBER),
    Field(name="day", type=T.DATE),
]


def _frame(**columns) -> pl.DataFrame:
    return pl.DataFrame(columns)


def _changes(result_or_error):
    return [(c.field, c.change.value) for c in result_or_error.changes]


# --- data that fits ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["evolve", "freeze", "discard_row", "discard_value"])
def test_fitting_data_passes_every_mode_converted_to_the_expected_types(mode):
    # CSV-like text that parses is data that fits.
    frame = _frame(day=["2024-01-01", None], id=["1", "2"], amount=[1, 2])
    result = apply_contract(frame, EXPECTED, mode)
    assert result.changes == []
    assert result.rows_discarded == result.values_discarded == 0
    assert result.frame.columns == ["id", "amount", "day"]  # expected order
    assert result.frame.schema == pl.Schema({"id": pl.Int64, "amount": pl.Float64, "day": pl.Date})
    assert result.frame.rows() == [(1, 1.0, dt.date(2024, 1, 1)), (2, 2.0, None)]


def test_a_missing_nullable_column_is_filled_with_nulls():
    result = apply_contract(_frame(id=[1, 2]), EXPECTED, "freeze")
    assert result.frame["day"].to_list() == [None, None]
    assert result.frame.schema["day"] == pl.Date


# --- freeze -----------------------------------------------------------------------------------


def test_freeze_rejects_an_added_column():
    frame = _frame(id=[1], amount=[1.0], day=[None], coupon=["X"])
    with pytest.raises(SchemaContractViolation, match="coupon: added") as raised:
        apply_contract(frame, EXPECTED, "freeze")
    assert _changes(raised.value) == [("coupon", "added")]


def test_freeze_rejects_values_that_do_not_fit_and_nulls_in_not_null_fields():
    frame = _frame(id=[1, None], amount=["1.5", "lots"], day=[None, None])
    with pytest.raises(SchemaContractViolation) as raised:
        apply_contract(frame, EXPECTED, "freeze")
    assert _changes(raised.value) == [("id", "nullability_changed"), ("amount", "type_changed")]
    assert "amount: type changed from number to string" in str(raised.value)


# --- evolve -----------------------------------------------------------------------------------


def test_evolve_keeps_new_columns_and_widens_types_and_reports_it():
    frame = _frame(id=[1, None], amount=[1, 2], day=["2024-01-01", "someday"], coupon=["X", None])
    result = apply_contract(frame, EXPECTED, "evolve")
    assert result.frame.columns == ["id", "amount", "day", "coupon"]
    assert result.frame["day"].to_list() == ["2024-01-01", "someday"]  # nothing lost
    assert _changes(result) == [
        ("id", "nullability_changed"),
        ("day", "type_changed"),
        ("coupon", "added"),
    ]
    fields = {f.name: (f.type, f.nullable) for f in result.fields}
    assert fields == {
        "id": (T.INTEGER, True),
        "amount": (T.NUMBER, True),
        "day": (T.STRING, True),
        "coupon": (T.STRING, True),
    }
    assert result.rows_discarded == result.values_discarded == 0


def test_evolve_turns_an_integer_field_into_number_when_fractions_arrive():
    expected = [Field(name="qty", type=T.INTEGER)]
    result = apply_contract(_frame(qty=[1.0, 2.5]), expected, "evolve")
    assert result.frame["qty"].to_list() == [1.0, 2.5]
    assert [(c.from_type, c.to_type, c.breaking) for c in result.changes] == [
        (T.INTEGER, T.NUMBER, False)
    ]


# --- discard_row ------------------------------------------------------------------------------


def test_discard_row_drops_exactly_the_rows_that_do_not_fit():
    frame = _frame(
        id=["1", "2", "x", None, "5"],
        amount=[1.0, 2.0, 3.0, 4.0, 5.0],
        day=["2024-01-01", "not a day", None, None, "2024-01-05"],
    )
    result = apply_contract(frame, EXPECTED, "discard_row")
    assert result.frame["id"].to_list() == [1, 5]
    assert result.rows_discarded == 3
    assert result.values_discarded == 0
    assert result.frame.schema["day"] == pl.Date


def test_discard_row_drops_rows_that_use_a_new_column_then_the_column():
    frame = _frame(id=[1, 2, 3], amount=[1.0, 2.0, 3.0], day=[None] * 3, coupon=[None, "X", None])
    result = apply_contract(frame, EXPECTED, "discard_row")
    assert result.frame.columns == ["id", "amount", "day"]
    assert result.frame["id"].to_list() == [1, 3]
    assert result.rows_discarded == 1


def test_fractions_never_silently_truncate_into_integers():
    expected = [Field(name="qty", type=T.INTEGER)]
    result = apply_contract(_frame(qty=[1.0, 2.5, 3.0]), expected, "discard_row")
    assert result.frame["qty"].to_list() == [1, 3]


# --- discard_value ----------------------------------------------------------------------------


def test_discard_value_nulls_bad_values_and_drops_unexpected_columns():
    frame = _frame(
        id=[1, 2, 3],
        amount=["1.5", "n/a", "3"],
        day=["2024-01-01", "2024-02-30", None],
        coupon=["X", None, "Y"],
    )
    result = apply_contract(frame, EXPECTED, "discard_value")
    assert result.frame.columns == ["id", "amount", "day"]
    assert result.frame["amount"].to_list() == [1.5, None, 3.0]
    assert result.frame["day"].to_list() == [dt.date(2024, 1, 1), None, None]
    assert result.rows_discarded == 0
    assert result.values_discarded == 4  # "n/a", "2024-02-30", "X", "Y"


def test_discard_value_drops_a_row_whose_not_null_field_cannot_be_kept():
    frame = _frame(id=["1", "two", None], amount=[1.0, 2.0, 3.0], day=[None] * 3)
    result = apply_contract(frame, EXPECTED, "discard_value")
    assert result.frame["id"].to_list() == [1]
    assert result.rows_discarded == 2


# --- policies ---------------------------------------------------------------------------------


def test_columns_and_data_types_can_have_different_modes():
    policy = ContractPolicy(columns="discard_value", data_type="freeze")
    frame = _frame(id=[1], amount=[1.0], day=[None], coupon=["X"])
    result = apply_contract(frame, EXPECTED, policy)
    assert result.frame.columns == ["id", "amount", "day"]
    with pytest.raises(SchemaContractViolation):
        apply_contract(_frame(id=["x"]), EXPECTED, {"columns": "evolve", "data_type": "freeze"})


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        apply_contract(_frame(id=[1]), EXPECTED, "anything goes")


def test_an_empty_frame_passes():
    empty = pl.DataFrame(schema={"id": pl.Int64, "amount": pl.Float64})
    result = apply_contract(empty, EXPECTED, "freeze")
    assert result.frame.height == 0
    assert result.frame.columns == ["id", "amount", "day"]


def test_a_large_frame_is_checked_quickly():
    # Vectorised: half a million rows with failures must not take per-row Python time.
    n = 500_000
    frame = pl.DataFrame(
        {
            "id": pl.int_range(n, eager=True).cast(pl.String),
            "amount": pl.Series([1.5, None] * (n // 2)),
            "day": pl.Series(["2024-01-01", "bad"] * (n // 2)),
        }
    )
    started = time.perf_counter()
    result = apply_contract(frame, EXPECTED, "discard_row")
    assert time.perf_counter() - started < 5
    assert result.rows_discarded == n // 2
