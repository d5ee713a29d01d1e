"""Transforms: one function per node type, `(inputs, config) -> outputs`, lazy throughout.

`inputs` maps an input port to a LazyFrame. A port that accepts several edges (union's "in")
arrives as `in[0]`, `in[1]`, ... in edge order; `port_frames` collects them. The same functions
run during validation (on empty frames, to compute output schemas), execution and dry runs, so
the three can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.pipeline.expressions import (
    ExpressionError,
    guard_sql_text,
    is_row_wise,
    parse_expression,
)
from engine.pipeline.schema_bridge import logical_to_polars, schema_to_fields

Inputs = Mapping[str, pl.LazyFrame]
Outputs = dict[str, pl.LazyFrame]
ConfigPath = tuple[str | int, ...]
TransformFn = Callable[[Inputs, dict[str, Any]], Outputs]

ERRORS_COLUMN = "_errors"


class TransformConfigError(ValueError):
    """A config that passed its JSON Schema but still cannot run (e.g. a bad regex)."""

    def __init__(self, message: str, path: ConfigPath = ()):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class ColumnRef:
    """A column a config names, with where in the config it is named (for pointers)."""

    path: ConfigPath
    column: str
    port: str = "in"


@dataclass(frozen=True)
class TransformDef:
    fn: TransformFn
    # Row-wise transforms can run batch by batch on a stream; others need all rows at once.
    streamable: Callable[[dict[str, Any]], bool] = lambda _config: False
    expressions: Callable[[dict[str, Any]], list[tuple[ConfigPath, str]]] = lambda _c: []
    column_refs: Callable[[dict[str, Any]], list[ColumnRef]] = lambda _c: []
    # Partial configs, one per list item, to locate which item breaks a schema check.
    items: Callable[[dict[str, Any]], list[tuple[ConfigPath, dict[str, Any]]]] = lambda _c: []
    # Where a node-level planning error points when no single item is to blame.
    error_path: ConfigPath = ()


def port_frames(inputs: Inputs, port: str) -> list[pl.LazyFrame]:
    """All frames on a port: `port` itself, or `port[0]`, `port[1]`, ... for multi-edge ports."""
    frames = [inputs[port]] if port in inputs else []
    indexed = re.compile(rf"^{re.escape(port)}\[(\d+)\]$")
    numbered = sorted(
        (int(match.group(1)), frame)
        for key, frame in inputs.items()
        if (match := indexed.match(key))
    )
    return frames + [frame for _, frame in numbered]


def _single(inputs: Inputs, port: str = "in") -> pl.LazyFrame:
    return inputs[port]


def _always(_config: dict[str, Any]) -> bool:
    return True


def _row_wise_expressions(
    expressions: Callable[[dict[str, Any]], list[tuple[ConfigPath, str]]],
) -> Callable[[dict[str, Any]], bool]:
    """Streamable unless an expression aggregates or looks at other rows (AVG, LAG...)."""

    def streamable(config: dict[str, Any]) -> bool:
        return all(is_row_wise(text) for _path, text in expressions(config))

    return streamable


# --- column-shaping transforms ---------------------------------------------------------------


def select(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    return {"out": _single(inputs).select(config["columns"])}


def rename(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    return {"out": _single(inputs).rename(config["mapping"])}


def drop(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    return {"out": _single(inputs).drop(config["columns"])}


def cast_expr(column: str, logical_type: str, source: pl.DataType | None, strict: bool) -> pl.Expr:
    """Cast one column; strings parse into dates and times (a plain cast refuses those)."""
    target = logical_to_polars(logical_type)
    expr = pl.col(column)
    if source is not None and isinstance(source, pl.String):
        if isinstance(target, pl.Date):
            return expr.str.to_date(strict=strict)
        if isinstance(target, pl.Datetime):
            return expr.str.to_datetime(time_unit="us", strict=strict)
        if isinstance(target, pl.Time):
            return expr.str.to_time(strict=strict)
    return expr.cast(target, strict=strict)


def cast(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    frame = _single(inputs)
    schema = frame.collect_schema()
    strict = bool(config.get("strict", False))
    exprs = [
        cast_expr(column, logical, schema.get(column), strict)
        for column, logical in config["columns"].items()
    ]
    return {"out": frame.with_columns(exprs)}


# --- row-wise expressions ---------------------------------------------------------------------


def filter_rows(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    return {"out": _single(inputs).filter(parse_expression(config["expression"]))}


def derive(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    frame = _single(inputs)
    # One with_columns per entry so that a derived column can use the ones before it.
    for column in config["columns"]:
        frame = frame.with_columns(parse_expression(column["expression"]).alias(column["name"]))
    return {"out": frame}


def fill_null(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    exprs = []
    for rule in config["columns"]:
        column = pl.col(rule["column"])
        if rule.get("strategy"):
            exprs.append(column.fill_null(strategy=rule["strategy"]))
        else:
            exprs.append(column.fill_null(rule.get("value")))
    return {"out": _single(inputs).with_columns(exprs)}


# Strategies that look at other rows would give different answers batch by batch.
_ROW_WISE_FILL = {None, "zero", "one"}


def _fill_null_streamable(config: dict[str, Any]) -> bool:
    return all(rule.get("strategy") in _ROW_WISE_FILL for rule in config.get("columns", []))


# --- mapping (schema mapping rules) -----------------------------------------------------------


def apply_mapping_rules(frame: pl.LazyFrame, rules: list[dict[str, Any]]) -> pl.LazyFrame:
    """Minimal rule application: {target, source | expression, cast?, default?} per column.

    Kept local and small so that engine.schema.mapping can replace it without changing nodes.
    """
    schema = frame.collect_schema()
    exprs = []
    for rule in rules:
        if rule.get("expression"):
            expr = parse_expression(rule["expression"])
            source_dtype = None
        else:
            expr = pl.col(rule["source"])
            source_dtype = schema.get(rule["source"])
        if rule.get("cast"):
            if rule.get("source"):
                expr = cast_expr(rule["source"], rule["cast"], source_dtype, strict=False)
            else:
                expr = expr.cast(logical_to_polars(rule["cast"]), strict=False)
        if rule.get("default") is not None:
            expr = expr.fill_null(rule["default"])
        exprs.append(expr.alias(rule["target"]))
    return frame.select(exprs)


def mapping(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    frame = _single(inputs)
    if config.get("target_schema"):
        return {"out": _apply_schema_mapping(frame, config)}
    mapped = apply_mapping_rules(frame, config["rules"])
    if config.get("keep_unmapped"):
        targets = {rule["target"] for rule in config["rules"]}
        rest = [name for name in frame.collect_schema().names() if name not in targets]
        mapped = pl.concat([frame.select(rest), mapped], how="horizontal")
    return {"out": mapped}


def _apply_schema_mapping(frame: pl.LazyFrame, config: dict[str, Any]) -> pl.LazyFrame:
    """With a target schema, the schema service's mapping (exact fields, types, order)."""
    # Imported here: the schema service is optional for every other transform.
    from engine.schema.mapping import Mapping, mapping_to_exprs

    schema = frame.collect_schema()
    spec = Mapping(
        source_schema=schema_to_fields(schema),
        target_schema=config["target_schema"],
        rules=config["rules"],
    )
    return frame.select(mapping_to_exprs(spec, schema))


# --- blocking transforms ----------------------------------------------------------------------

_AGG_OPS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "sum": lambda e: e.sum(),
    "mean": lambda e: e.mean(),
    "min": lambda e: e.min(),
    "max": lambda e: e.max(),
    "count": lambda e: e.count(),
    "count_distinct": lambda e: e.n_unique(),
    "first": lambda e: e.first(),
    "last": lambda e: e.last(),
    "median": lambda e: e.median(),
    "std": lambda e: e.std(),
}


def aggregation_name(agg: dict[str, Any]) -> str:
    if agg.get("as"):
        return agg["as"]
    return f"{agg['column']}_{agg['op']}" if agg.get("column") else agg["op"]


def _aggregation_expr(agg: dict[str, Any]) -> pl.Expr:
    if not agg.get("column"):
        if agg["op"] != "count":
            raise TransformConfigError(f"'{agg['op']}' needs a column", ("column",))
        return pl.len().alias(aggregation_name(agg))
    return _AGG_OPS[agg["op"]](pl.col(agg["column"])).alias(aggregation_name(agg))


def aggregate(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    frame = _single(inputs)
    exprs = [_aggregation_expr(agg) for agg in config["aggregations"]]
    group_by = config.get("group_by") or []
    if not group_by:
        return {"out": frame.select(exprs)}
    # maintain_order keeps results deterministic (groups in order of first appearance).
    return {"out": frame.group_by(group_by, maintain_order=True).agg(exprs)}


def join(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    left, right = inputs["left"], inputs["right"]
    how = config.get("how", "inner")
    suffix = config.get("suffix", "_right")
    if config.get("on"):
        # Keys named once, like SQL USING: full joins coalesce the key columns.
        joined = left.join(right, on=config["on"], how=how, suffix=suffix, coalesce=True)
    else:
        joined = left.join(
            right,
            left_on=config["left_on"],
            right_on=config["right_on"],
            how=how,
            suffix=suffix,
        )
    return {"out": joined}


def union(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    frames = port_frames(inputs, "in")
    if len(frames) == 1:
        return {"out": frames[0]}
    # By column name; a column missing from one input is null there; types widen.
    return {"out": pl.concat(frames, how="diagonal_relaxed")}


def deduplicate(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    subset = config.get("subset") or None
    keep = config.get("keep", "first")
    return {"out": _single(inputs).unique(subset=subset, keep=keep, maintain_order=True)}


def sort(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    keys = config["by"]
    return {
        "out": _single(inputs).sort(
            [key["column"] for key in keys],
            descending=[bool(key.get("descending", False)) for key in keys],
            nulls_last=bool(config.get("nulls_last", False)),
            maintain_order=True,
        )
    }


def limit(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    return {"out": _single(inputs).slice(int(config.get("offset", 0)), int(config["n"]))}


SQL_PORTS = ("in", "in2")


def sql(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    query = config["query"]
    guard_sql_text(query)
    frames = {port: inputs[port] for port in SQL_PORTS if port in inputs}
    # `self` is Polars' own name for the main frame (LazyFrame.sql), easier than quoting "in".
    frames["self"] = frames["in"]
    _refuse_file_access(query, frames)
    return {"out": _run_sql(query, frames)}


def _run_sql(query: str, frames: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    try:
        return pl.SQLContext(frames=frames, eager=False).execute(query)
    except Exception as exc:
        raise ExpressionError(f"cannot run SQL: {str(exc).splitlines()[0]}") from None


def _refuse_file_access(query: str, frames: dict[str, pl.LazyFrame]) -> None:
    # Defence in depth beside the text guard: planned over empty in-memory frames, a query
    # that only uses its inputs has no SCAN in its plan; one that opens a file does.
    probes = {name: pl.LazyFrame(schema=frame.collect_schema()) for name, frame in frames.items()}
    if "SCAN" in _run_sql(query, probes).explain(optimized=False):
        raise ExpressionError("SQL may only read the node's inputs")


# --- validate ---------------------------------------------------------------------------------


def _rule_message(rule: dict[str, Any]) -> str:
    return rule.get("message") or f"{rule.get('column') or 'row'}: {rule['check']} failed"


def _rule_ok(rule: dict[str, Any], index: int) -> pl.Expr:
    """True where a row passes; nulls pass every check but not_null and expression."""
    check = rule["check"]
    if check == "expression":
        return parse_expression(rule["expression"]).fill_null(False)
    column = pl.col(rule["column"])
    if check == "not_null":
        return column.is_not_null()
    if check == "unique":
        return column.is_null() | column.is_unique()
    if check == "range":
        ok = pl.lit(True)
        if rule.get("min") is not None:
            ok = ok & (column >= rule["min"])
        if rule.get("max") is not None:
            ok = ok & (column <= rule["max"])
        return column.is_null() | ok
    if check == "regex":
        _check_regex(rule["pattern"], index)
        return column.is_null() | column.cast(pl.String).str.contains(rule["pattern"])
    if check == "in_set":
        return column.is_null() | column.is_in(rule["values"])
    raise TransformConfigError(f"unknown check {check!r}", ("rules", index, "check"))


def _check_regex(pattern: str, index: int) -> None:
    # Polars uses Rust's regex syntax; ask Polars itself rather than Python's `re`.
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except Exception as exc:
        raise TransformConfigError(
            f"invalid regex: {str(exc).splitlines()[0]}", ("rules", index, "pattern")
        ) from None


def validate_rows(inputs: Inputs, config: dict[str, Any]) -> Outputs:
    frame = _single(inputs)
    failures = [
        pl.when(_rule_ok(rule, index).not_()).then(pl.lit(_rule_message(rule)))
        for index, rule in enumerate(config["rules"])
    ]
    errors = pl.concat_list(failures).list.drop_nulls().list.join("; ")
    checked = frame.with_columns(errors.alias(ERRORS_COLUMN))
    return {
        "valid": checked.filter(pl.col(ERRORS_COLUMN) == "").drop(ERRORS_COLUMN),
        "invalid": checked.filter(pl.col(ERRORS_COLUMN) != ""),
    }


# --- what each transform reads, for validation -------------------------------------------------


def _refs(path: str, columns: Iterable[str] | None, port: str = "in") -> list[ColumnRef]:
    return [
        ColumnRef((path, i), c) if port == "in" else ColumnRef((path, i), c, port)
        for i, c in enumerate(columns or [])
    ]


def _join_refs(config: dict[str, Any]) -> list[ColumnRef]:
    if config.get("on"):
        on = config["on"]
        return _refs("on", on, "left") + _refs("on", on, "right")
    return _refs("left_on", config.get("left_on"), "left") + _refs(
        "right_on", config.get("right_on"), "right"
    )


def _validate_refs(config: dict[str, Any]) -> list[ColumnRef]:
    return [
        ColumnRef(("rules", i, "column"), rule["column"])
        for i, rule in enumerate(config.get("rules", []))
        if rule.get("check") != "expression" and rule.get("column")
    ]


def _validate_expressions(config: dict[str, Any]) -> list[tuple[ConfigPath, str]]:
    return [
        (("rules", i, "expression"), rule["expression"])
        for i, rule in enumerate(config.get("rules", []))
        if rule.get("check") == "expression"
    ]


def _mapping_expressions(config: dict[str, Any]) -> list[tuple[ConfigPath, str]]:
    return [
        (("rules", i, "expression"), rule["expression"])
        for i, rule in enumerate(config.get("rules", []))
        if rule.get("expression")
    ]


def _filter_expressions(config: dict[str, Any]) -> list[tuple[ConfigPath, str]]:
    return [(("expression",), config.get("expression"))]


def _derive_expressions(config: dict[str, Any]) -> list[tuple[ConfigPath, str]]:
    return [
        (("columns", i, "expression"), column.get("expression"))
        for i, column in enumerate(config.get("columns") or [])
    ]


def _mapping_refs(config: dict[str, Any]) -> list[ColumnRef]:
    return [
        ColumnRef(("rules", i, "source"), rule["source"])
        for i, rule in enumerate(config.get("rules", []))
        if rule.get("source") and not rule.get("expression")
    ]


def _prefix_items(key: str) -> Callable[[dict[str, Any]], list[tuple[ConfigPath, dict]]]:
    """Item i checked together with the items before it (derive may use earlier columns)."""

    def items(config: dict[str, Any]) -> list[tuple[ConfigPath, dict[str, Any]]]:
        values = config.get(key) or []
        return [((key, i), {**config, key: values[: i + 1]}) for i in range(len(values))]

    return items


def _single_items(key: str) -> Callable[[dict[str, Any]], list[tuple[ConfigPath, dict]]]:
    def items(config: dict[str, Any]) -> list[tuple[ConfigPath, dict[str, Any]]]:
        values = config.get(key) or []
        return [((key, i), {**config, key: [value]}) for i, value in enumerate(values)]

    return items


TRANSFORMS: dict[str, TransformDef] = {
    "select": TransformDef(
        select, _always, column_refs=lambda c: _refs("columns", c.get("columns"))
    ),
    "rename": TransformDef(
        rename,
        _always,
        column_refs=lambda c: [ColumnRef(("mapping", k), k) for k in c.get("mapping") or {}],
    ),
    "drop": TransformDef(drop, _always, column_refs=lambda c: _refs("columns", c.get("columns"))),
    "cast": TransformDef(
        cast,
        _always,
        column_refs=lambda c: [ColumnRef(("columns", k), k) for k in c.get("columns") or {}],
        items=lambda c: [
            (("columns", k), {**c, "columns": {k: v}}) for k, v in (c.get("columns") or {}).items()
        ],
    ),
    "filter": TransformDef(
        filter_rows,
        _row_wise_expressions(_filter_expressions),
        expressions=_filter_expressions,
        error_path=("expression",),
    ),
    "derive": TransformDef(
        derive,
        _row_wise_expressions(_derive_expressions),
        expressions=_derive_expressions,
        items=_prefix_items("columns"),
    ),
    "aggregate": TransformDef(
        aggregate,
        column_refs=lambda c: (
            _refs("group_by", c.get("group_by"))
            + [
                ColumnRef(("aggregations", i, "column"), agg["column"])
                for i, agg in enumerate(c.get("aggregations") or [])
                if agg.get("column")
            ]
        ),
        items=_single_items("aggregations"),
    ),
    "join": TransformDef(join, column_refs=_join_refs),
    "union": TransformDef(union),
    "deduplicate": TransformDef(
        deduplicate, column_refs=lambda c: _refs("subset", c.get("subset"))
    ),
    "sort": TransformDef(
        sort,
        column_refs=lambda c: [
            ColumnRef(("by", i, "column"), key["column"]) for i, key in enumerate(c.get("by") or [])
        ],
    ),
    "limit": TransformDef(limit),
    "fill_null": TransformDef(
        fill_null,
        _fill_null_streamable,
        column_refs=lambda c: [
            ColumnRef(("columns", i, "column"), rule["column"])
            for i, rule in enumerate(c.get("columns") or [])
        ],
        items=_single_items("columns"),
    ),
    "mapping": TransformDef(
        mapping,
        _row_wise_expressions(_mapping_expressions),
        expressions=_mapping_expressions,
        column_refs=_mapping_refs,
        items=_prefix_items("rules"),
    ),
    "sql": TransformDef(sql, error_path=("query",)),
    "validate": TransformDef(
        validate_rows,
        expressions=_validate_expressions,
        column_refs=_validate_refs,
        items=_single_items("rules"),
    ),
}


def run_transform(node_type: str, inputs: Inputs, config: dict[str, Any]) -> Outputs:
    """Apply a transform by catalog type (`transform.filter` or `filter`)."""
    return TRANSFORMS[transform_name(node_type)].fn(inputs, config)


def transform_name(node_type: str) -> str:
    return node_type.removeprefix("transform.")
