"""Schema contracts: what a run does when incoming data does not fit the expected schema.

In the spirit of dlt's schema contracts, a policy names a mode for two kinds of misfit:
- `columns`: columns the expected schema does not have;
- `data_type`: values that do not fit their field (a value that fails the cast to the field's
  type, a null in a not-null field, a not-null field missing altogether).

Modes:
- evolve: accept. New columns are kept (after the expected ones); a field whose values do not
  fit its type takes a type that holds them (e.g. integer -> number, date -> string); a not-null
  field that receives nulls becomes nullable. The changes are reported.
- freeze: raise `SchemaContractViolation` listing the changes; nothing is written.
- discard_row: drop the rows that do not fit (rows with a value in a new column, rows with a
  value that fails its cast or a null in a not-null field); new columns are then dropped.
- discard_value: drop new columns and null out values that fail their cast. A row whose
  not-null field would be left null cannot be kept and is dropped.

Values are checked vectorised: each column is cast non-strictly and a value "fails" when it was
not null before the cast and is null after (or, for numeric and datetime narrowing, when it does
not survive the round trip, so 1.5 never silently becomes the integer 1). Text that parses ("42"
into an integer field, as CSV files deliver it) fits and is converted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict

from engine.schema.compare import (
    ChangeKind,
    SchemaChange,
    SchemaLike,
    as_fields,
    nullability_change,
    type_change,
)
from engine.schema.polars_types import (
    CastSafety,
    can_cast,
    cast_expr,
    common_type,
    dtype_for_field,
    logical_from_polars,
)
from engine.schema.types import Field, LogicalType


class ContractMode(StrEnum):
    EVOLVE = "evolve"
    FREEZE = "freeze"
    DISCARD_ROW = "discard_row"
    DISCARD_VALUE = "discard_value"


class ContractPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: ContractMode = ContractMode.EVOLVE
    data_type: ContractMode = ContractMode.EVOLVE

    @classmethod
    def of(cls, policy: ContractPolicy | ContractMode | str | Mapping[str, Any]) -> ContractPolicy:
        """A policy from a policy, a single mode for both kinds, or a dict."""
        if isinstance(policy, ContractPolicy):
            return policy
        if isinstance(policy, str):
            mode = ContractMode(policy)
            return cls(columns=mode, data_type=mode)
        return cls.model_validate(policy)


class SchemaContractViolation(ValueError):
    """Incoming data broke a frozen contract; `changes` lists how."""

    def __init__(self, changes: Sequence[SchemaChange]) -> None:
        self.changes = list(changes)
        listing = "; ".join(change.describe() for change in self.changes)
        super().__init__(f"data does not fit the frozen schema: {listing}")


@dataclass
class ContractResult:
    frame: pl.DataFrame
    changes: list[SchemaChange]  # how the incoming data differed from the expected schema
    rows_discarded: int
    values_discarded: int  # non-null values nulled out or dropped with a column, in kept rows
    fields: list[Field]  # the schema `frame` conforms to (differs from expected under evolve)


@dataclass
class _ColumnPlan:
    """How one expected field is produced from the incoming frame."""

    field: Field
    source: pl.DataType | None  # None: the column is missing
    conformed: pl.Expr  # the column converted to the field's type (failures are null)
    failed: pl.Expr | None  # per row: the value does not fit; None when no value can fail

    @property
    def source_type(self) -> LogicalType:
        return LogicalType.UNKNOWN if self.source is None else logical_from_polars(self.source)


def apply_contract(
    frame: pl.DataFrame,
    expected: SchemaLike,
    policy: ContractPolicy | ContractMode | str | Mapping[str, Any] = ContractMode.EVOLVE,
) -> ContractResult:
    """Check `frame` against the `expected` fields and apply `policy` to what does not fit."""
    policy = ContractPolicy.of(policy)
    fields = as_fields(expected)
    expected_names = {f.name for f in fields}
    plans = [_plan_column(frame.schema.get(f.name), f) for f in fields]
    new_columns = [name for name in frame.columns if name not in expected_names]

    masks = _compute_masks(frame, plans, new_columns)
    counts = masks.sum().row(0, named=True) if masks.width else {}
    type_failures = {i: counts.get(f"failed{i}", 0) for i in range(len(plans))}
    null_failures = {i: counts.get(f"null{i}", 0) for i in range(len(plans))}

    column_changes = [_added_change(name, frame.schema[name]) for name in new_columns]
    value_changes = _value_changes(plans, type_failures, null_failures, frame.height)
    _enforce_freeze(policy, column_changes, value_changes)

    keep = _keep_mask(policy, plans, new_columns, masks)
    kept = frame.filter(keep) if keep is not None else frame
    kept_masks = masks.filter(keep) if keep is not None else masks

    evolve_types = policy.data_type == ContractMode.EVOLVE
    output, out_fields = _output_columns(plans, type_failures, null_failures, evolve_types)
    values_discarded = _count_discarded_values(policy, plans, new_columns, kept_masks)
    if policy.columns == ContractMode.EVOLVE:
        output += [pl.col(name) for name in new_columns]
        out_fields += [
            _new_field(name, frame, counts.get(f"new{j}", 0)) for j, name in enumerate(new_columns)
        ]

    return ContractResult(
        frame=kept.select(output),
        changes=value_changes + column_changes,
        rows_discarded=frame.height - kept.height,
        values_discarded=values_discarded,
        fields=out_fields,
    )


# --- planning ---------------------------------------------------------------------------------

# Narrowing conversions checked by a round trip: a value fits when converting it back gives the
# same value (1.0 -> 1 fits, 1.5 -> 1 does not; midnight datetimes fit a date).
_ROUND_TRIP_SOURCES = {
    LogicalType.INTEGER,
    LogicalType.NUMBER,
    LogicalType.DECIMAL,
    LogicalType.DATETIME,
}


def _plan_column(source: pl.DataType | None, field: Field) -> _ColumnPlan:
    dtype = dtype_for_field(field)
    if source is None:
        return _ColumnPlan(field, None, pl.lit(None, dtype), None)
    column = pl.col(field.name)
    source_type = logical_from_polars(source)
    safety = can_cast(source_type, field.type)
    if source_type == field.type:
        # Same logical type: keep the column as it came (Float32 stays Float32, a decimal keeps
        # its scale) rather than forcing the canonical dtype.
        return _ColumnPlan(field, source, column, None)
    if safety == CastSafety.IMPOSSIBLE:
        return _ColumnPlan(field, source, pl.lit(None, dtype), column.is_not_null())
    converted = cast_expr(column, source, field.type, dtype)
    if safety == CastSafety.SAFE:
        return _ColumnPlan(field, source, converted, None)
    failed = column.is_not_null() & converted.is_null()
    if source_type in _ROUND_TRIP_SOURCES and field.type != LogicalType.TIME:
        changed = converted.cast(source, strict=False) != column
        failed = failed | changed.fill_null(False)
    return _ColumnPlan(field, source, converted, failed)


def _compute_masks(
    frame: pl.DataFrame, plans: Sequence[_ColumnPlan], new_columns: Sequence[str]
) -> pl.DataFrame:
    """One boolean column per check, computed in one pass: failed<i> (value does not fit its
    type), null<i> (null in a not-null field), new<j> (a value in an unexpected column)."""
    exprs = []
    for i, plan in enumerate(plans):
        if plan.failed is not None:
            exprs.append(plan.failed.alias(f"failed{i}"))
        if not plan.field.nullable:
            is_null = pl.col(plan.field.name).is_null() if plan.source is not None else pl.lit(True)
            exprs.append(is_null.alias(f"null{i}"))
    exprs += [pl.col(name).is_not_null().alias(f"new{j}") for j, name in enumerate(new_columns)]
    if not exprs:
        return pl.DataFrame()
    # A literal-only select would yield one row; broadcasting against a row index keeps height.
    return frame.select(exprs, _row=pl.int_range(pl.len())).drop("_row")


# --- changes ----------------------------------------------------------------------------------


def _added_change(name: str, dtype: pl.DataType) -> SchemaChange:
    return SchemaChange(
        field=name, change=ChangeKind.ADDED, to_type=logical_from_polars(dtype), breaking=False
    )


def _value_changes(
    plans: Sequence[_ColumnPlan],
    type_failures: Mapping[int, int],
    null_failures: Mapping[int, int],
    height: int,
) -> list[SchemaChange]:
    changes = []
    for i, plan in enumerate(plans):
        name = plan.field.name
        if type_failures[i]:
            changes.append(type_change(name, plan.field.type, _evolved_type(plan)))
        if plan.source is None and not plan.field.nullable and height:
            changes.append(
                SchemaChange(
                    field=name, change=ChangeKind.REMOVED, from_type=plan.field.type, breaking=True
                )
            )
        elif null_failures[i]:
            changes.append(nullability_change(name, False, True))
    return changes


def _evolved_type(plan: _ColumnPlan) -> LogicalType:
    """The type a field takes under evolve: one holding both the expected and incoming values
    when the incoming values convert into it safely, else the incoming type itself."""
    widened = common_type(plan.field.type, plan.source_type)
    if can_cast(plan.source_type, widened) == CastSafety.SAFE:
        return widened
    return plan.source_type


def _enforce_freeze(
    policy: ContractPolicy,
    column_changes: Sequence[SchemaChange],
    value_changes: Sequence[SchemaChange],
) -> None:
    violations = []
    if policy.data_type == ContractMode.FREEZE:
        violations += value_changes
    if policy.columns == ContractMode.FREEZE:
        violations += column_changes
    if violations:
        raise SchemaContractViolation(violations)


# --- output -----------------------------------------------------------------------------------


def _keep_mask(
    policy: ContractPolicy,
    plans: Sequence[_ColumnPlan],
    new_columns: Sequence[str],
    masks: pl.DataFrame,
) -> pl.Series | None:
    """Which rows survive, or None when the policy drops none."""
    drop: list[str] = []
    for i, plan in enumerate(plans):
        failed, null = f"failed{i}", f"null{i}"
        if policy.data_type == ContractMode.DISCARD_ROW:
            drop += [name for name in (failed, null) if name in masks.columns]
        elif policy.data_type == ContractMode.DISCARD_VALUE and not plan.field.nullable:
            # Nulling the value out would break the not-null field: the row has to go.
            drop += [name for name in (failed, null) if name in masks.columns]
    if policy.columns == ContractMode.DISCARD_ROW:
        drop += [f"new{j}" for j in range(len(new_columns))]
    if not drop:
        return None
    return masks.select(~pl.any_horizontal(drop)).to_series()


def _output_columns(
    plans: Sequence[_ColumnPlan],
    type_failures: Mapping[int, int],
    null_failures: Mapping[int, int],
    evolve: bool,
) -> tuple[list[pl.Expr], list[Field]]:
    exprs, fields = [], []
    for i, plan in enumerate(plans):
        field = plan.field.model_copy()
        if evolve and type_failures[i]:
            field.type = _evolved_type(plan)
            expr = (
                pl.col(field.name)
                if field.type == plan.source_type
                else cast_expr(pl.col(field.name), plan.source, field.type)
            )
        elif plan.failed is not None:
            expr = pl.when(plan.failed).then(None).otherwise(plan.conformed)
        else:
            expr = plan.conformed
        if evolve and (null_failures[i] or (plan.source is None and not field.nullable)):
            field.nullable = True
        exprs.append(expr.alias(field.name))
        fields.append(field)
    return exprs, fields


def _count_discarded_values(
    policy: ContractPolicy,
    plans: Sequence[_ColumnPlan],
    new_columns: Sequence[str],
    kept_masks: pl.DataFrame,
) -> int:
    counted = []
    if policy.data_type != ContractMode.EVOLVE:
        counted += [f"failed{i}" for i in range(len(plans)) if f"failed{i}" in kept_masks.columns]
    if policy.columns != ContractMode.EVOLVE:
        counted += [f"new{j}" for j in range(len(new_columns))]
    if not counted or kept_masks.height == 0:
        return 0
    return int(kept_masks.select(pl.sum_horizontal(pl.col(counted).sum())).item())


def _new_field(name: str, frame: pl.DataFrame, non_null: int) -> Field:
    dtype = frame.schema[name]
    return Field(
        name=name,
        type=logical_from_polars(dtype),
        nullable=non_null < frame.height or frame.height == 0,
        native_type=str(dtype),
    )
