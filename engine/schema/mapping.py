"""Field mappings: how a target schema's columns are produced from a source schema's.

A rule fills one target field from a source field or from a SQL expression over source fields
(parsed by Polars' SQL parser, never `eval`), optionally casting first, and filling nulls with a
default. Applying a mapping yields exactly the target fields, in target order, with the target
types: a target without a rule is null (or invalid, when it is not nullable).

`suggest_mapping` proposes rules by name similarity (normalised names, common abbreviations)
weighted by how safely the source type converts to the target type, assigned greedily one to
one above a threshold.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from engine.schema.compare import as_fields
from engine.schema.polars_types import (
    CastNotPossibleError,
    CastSafety,
    can_cast,
    cast_expr,
    dtype_for_field,
    logical_from_polars,
    polars_dtype_for,
)
from engine.schema.types import Field, LogicalType

DEFAULT_THRESHOLD = 0.6

# --- models -----------------------------------------------------------------------------------


class MappingRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    source: str | None = None
    expression: str | None = None  # SQL expression over source fields, e.g. "upper(country)"
    cast: LogicalType | None = None  # convert the source to this type first
    default: Any = None  # fills nulls (and a target with neither source nor expression)

    @model_validator(mode="after")
    def _one_origin(self) -> MappingRule:
        if self.source is not None and self.expression is not None:
            raise ValueError("a rule takes either a source or an expression, not both")
        if self.source is None and self.expression is None and self.default is None:
            raise ValueError("a rule needs a source, an expression or a default")
        return self


def _unwrap_stream(value: Any) -> Any:
    # The API accepts a whole stream schema ({name, fields}) as well as a bare field list.
    if isinstance(value, MappingABC) and "fields" in value:
        return value["fields"]
    return getattr(value, "fields", value)


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_schema: list[Field]
    target_schema: list[Field]
    rules: list[MappingRule] = []

    @field_validator("source_schema", "target_schema", mode="before")
    @classmethod
    def _fields_of_stream(cls, value: Any) -> Any:
        return _unwrap_stream(value)


class Suggestion(BaseModel):
    target: str
    source: str
    score: float  # 0..1
    cast: LogicalType | None = None  # set when the source type differs from the target's


class MappingIssue(BaseModel):
    pointer: str  # JSON pointer into the mapping, e.g. "/rules/2/source"
    message: str
    severity: Literal["error", "warning"] = "error"


class InvalidMappingError(ValueError):
    def __init__(self, issues: Sequence[MappingIssue]) -> None:
        self.issues = list(issues)
        listing = "; ".join(f"{issue.pointer}: {issue.message}" for issue in self.issues)
        super().__init__(f"invalid mapping: {listing}")


class MappingTemplate(BaseModel):
    id: str
    title: str
    description: str
    target_schema: list[Field]


# --- name similarity --------------------------------------------------------------------------

# Abbreviations and synonyms, each mapped to the tokens it stands for.
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "qty": ("quantity",),
    "identifier": ("id",),
    "num": ("number",),
    "no": ("number",),
    "nbr": ("number",),
    "nr": ("number",),
    "amt": ("amount",),
    "desc": ("description",),
    "descr": ("description",),
    "addr": ("address",),
    "tel": ("phone",),
    "telephone": ("phone",),
    "mail": ("email",),
    "cust": ("customer",),
    "client": ("customer",),
    "prod": ("product",),
    "txn": ("transaction",),
    "dt": ("date",),
    "ts": ("timestamp",),
    "cnt": ("count",),
    "pct": ("percent",),
    "ref": ("reference",),
    "msg": ("message",),
    "org": ("organization",),
    "organisation": ("organization",),
    "dept": ("department",),
    "fname": ("first", "name"),
    "firstname": ("first", "name"),
    "lname": ("last", "name"),
    "lastname": ("last", "name"),
    "surname": ("last", "name"),
    "zip": ("postal", "code"),
    "zipcode": ("postal", "code"),
    "postcode": ("postal", "code"),
    "dob": ("birth", "date"),
    "curr": ("currency",),
    "ccy": ("currency",),
    "lat": ("latitude",),
    "lng": ("longitude",),
    "lon": ("longitude",),
}
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^0-9a-zA-Z]+")


@lru_cache(maxsize=4096)
def name_tokens(name: str) -> tuple[str, ...]:
    """Lower-case words of a field name: "customerID", "customer_id" and "Customer Identifier"
    all give ("customer", "id")."""
    tokens: list[str] = []
    for chunk in _NON_ALNUM.split(name):
        for word in _CAMEL_BOUNDARY.sub(" ", chunk).lower().split():
            tokens.extend(_ABBREVIATIONS.get(word, (word,)))
    return tuple(tokens)


@dataclass(frozen=True)
class _Name:
    words: frozenset[str]
    text: str  # the words run together: "customerid"


@lru_cache(maxsize=4096)
def _name(name: str) -> _Name:
    tokens = name_tokens(name)
    return _Name(frozenset(tokens), "".join(tokens))


# Character similarity catches spelling variants ("order_date" / "ordered_at") but also rewards
# shared filler ("customer_id" / "order_id"), so it counts a little less than word overlap.
_RATIO_WEIGHT = 0.9


def name_similarity(left: str, right: str) -> float:
    """0..1: the best of the (damped) character similarity of the normalised names, the word
    overlap (Jaccard), and a containment score for one name's words all appearing in the
    other's ("email" vs "email_address")."""
    return _similarity(_name(left), _name(right))


def _similarity(
    left: _Name, right: _Name, matcher: difflib.SequenceMatcher | None = None, floor: float = 0.0
) -> float:
    """`name_similarity`; scores below `floor` are only approximate (never above the truth),
    which lets callers skip the costly character comparison for hopeless pairs."""
    if not left.words or not right.words:
        return 0.0
    if left.text == right.text:
        return 1.0
    common = len(left.words & right.words)
    best = common / len(left.words | right.words)
    if common == min(len(left.words), len(right.words)):
        best = max(best, 0.6 + 0.3 * common / max(len(left.words), len(right.words)))
    if matcher is None:
        matcher = difflib.SequenceMatcher(None, left.text, right.text)
    # Cheap upper bounds first; the full ratio only when it could change the outcome.
    for bound in (matcher.real_quick_ratio, matcher.quick_ratio, matcher.ratio):
        ratio = _RATIO_WEIGHT * bound()
        if ratio <= best or ratio < floor:
            return best
    return ratio


_SAFETY_WEIGHT = {CastSafety.SAFE: 1.0, CastSafety.LOSSY: 0.85, CastSafety.IMPOSSIBLE: 0.0}
# How much a pair's name score counts given its types: a lossy conversion ranks a little lower,
# an impossible one not at all. Precomputed: suggest_mapping looks it up for every pair.
_TYPE_WEIGHT = {
    (source, target): _SAFETY_WEIGHT[can_cast(source, target)]
    for source in LogicalType
    for target in LogicalType
}
# Every source is compared with every target; this bounds the work one request can ask for
# (500 x 500 similar names take about a second).
MAX_SUGGEST_PAIRS = 250_000


class MappingTooLargeError(ValueError):
    """Too many source x target field pairs to score."""


def suggest_mapping(
    source_fields: Sequence[Field] | Any,
    target_fields: Sequence[Field] | Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Suggestion]:
    """For each target field, the best source field, one to one, in target order; targets with
    no candidate scoring at least `threshold` are left out."""
    sources = as_fields(_unwrap_stream(source_fields))
    targets = as_fields(_unwrap_stream(target_fields))
    if len(sources) * len(targets) > MAX_SUGGEST_PAIRS:
        raise MappingTooLargeError(
            f"{len(sources)} source x {len(targets)} target fields is more than "
            f"{MAX_SUGGEST_PAIRS} pairs to compare"
        )
    candidates = _scored_pairs(sources, targets, threshold)
    candidates.sort()  # best score first; ties broken by schema order, so results are stable
    chosen: dict[int, Suggestion] = {}
    used_sources: set[int] = set()
    for negative_score, t_index, s_index in candidates:
        if t_index in chosen or s_index in used_sources:
            continue
        source, target = sources[s_index], targets[t_index]
        chosen[t_index] = Suggestion(
            target=target.name,
            source=source.name,
            score=round(-negative_score, 3),
            cast=target.type if source.type != target.type else None,
        )
        used_sources.add(s_index)
    return [chosen[i] for i in sorted(chosen)]


def _scored_pairs(
    sources: Sequence[Field], targets: Sequence[Field], threshold: float
) -> list[tuple[float, int, int]]:
    """(-score, target index, source index) for every pair scoring at least `threshold`."""
    source_names = [_name(source.name) for source in sources]
    pairs = []
    matcher = difflib.SequenceMatcher(None)
    for t_index, target in enumerate(targets):
        target_name = _name(target.name)
        matcher.set_seq2(target_name.text)  # the matcher caches its analysis of seq2
        for s_index, source in enumerate(sources):
            weight = _TYPE_WEIGHT[source.type, target.type]
            if weight == 0:
                continue
            matcher.set_seq1(source_names[s_index].text)
            similarity = _similarity(
                source_names[s_index], target_name, matcher, threshold / weight
            )
            if similarity * weight >= threshold:
                pairs.append((-similarity * weight, t_index, s_index))
    return pairs


def mapping_from_suggestions(
    source_fields: Sequence[Field],
    target_fields: Sequence[Field],
    suggestions: Sequence[Suggestion],
) -> Mapping:
    """A mapping that applies the suggestions as rules."""
    rules = [MappingRule(target=s.target, source=s.source, cast=s.cast) for s in suggestions]
    return Mapping(source_schema=source_fields, target_schema=target_fields, rules=rules)


# --- validation -------------------------------------------------------------------------------


def validate_mapping(mapping: Mapping) -> list[MappingIssue]:
    """Problems with a mapping, each with a JSON pointer: unknown or duplicate targets, unknown
    sources, expressions that do not parse or use unknown fields, impossible casts or defaults,
    and not-null targets nothing fills. Lossy conversions without an explicit `cast` and
    not-null targets fed by a nullable source without a default are warnings."""
    issues: list[MappingIssue] = []
    targets = {f.name: f for f in mapping.target_schema}
    sources = {f.name: f for f in mapping.source_schema}
    source_dtypes = {f.name: dtype_for_field(f) for f in mapping.source_schema}
    covered: set[str] = set()
    for index, rule in enumerate(mapping.rules):
        pointer = f"/rules/{index}"
        target = targets.get(rule.target)
        if target is None:
            issues.append(MappingIssue(pointer=f"{pointer}/target", message=_unknown_target(rule)))
            continue
        if rule.target in covered:
            issues.append(
                MappingIssue(
                    pointer=f"{pointer}/target", message=f"target '{rule.target}' is mapped twice"
                )
            )
            continue
        covered.add(rule.target)
        issues += _check_rule(rule, pointer, target, sources, source_dtypes)
    for index, target in enumerate(mapping.target_schema):
        if not target.nullable and target.name not in covered:
            issues.append(
                MappingIssue(
                    pointer=f"/target_schema/{index}",
                    message=f"required target '{target.name}' has no rule",
                )
            )
    return issues


def _unknown_target(rule: MappingRule) -> str:
    return f"'{rule.target}' is not a field of the target schema"


def _check_rule(
    rule: MappingRule,
    pointer: str,
    target: Field,
    sources: MappingABC[str, Field],
    source_dtypes: MappingABC[str, pl.DataType],
) -> list[MappingIssue]:
    issues: list[MappingIssue] = []
    origin_type: LogicalType | None = None
    origin_nullable = True
    if rule.source is not None:
        source = sources.get(rule.source)
        if source is None:
            message = f"'{rule.source}' is not a field of the source schema"
            return [MappingIssue(pointer=f"{pointer}/source", message=message)]
        origin_type, origin_nullable = source.type, source.nullable
    elif rule.expression is not None:
        dtype, problem = expression_dtype(rule.expression, source_dtypes)
        if problem:
            return [MappingIssue(pointer=f"{pointer}/expression", message=problem)]
        origin_type = logical_from_polars(dtype)
    if origin_type is not None:
        issues += _check_conversion(rule, pointer, origin_type, target.type)
    if rule.default is not None and not default_fits(rule.default, target):
        issues.append(
            MappingIssue(
                pointer=f"{pointer}/default",
                message=f"default {rule.default!r} is not a valid {target.type}",
            )
        )
    if not target.nullable and rule.default is None and (origin_nullable or origin_type is None):
        issues.append(
            MappingIssue(
                pointer=f"{pointer}/default",
                message=f"required target '{target.name}' may receive nulls; set a default",
                severity="warning",
            )
        )
    return issues


def _check_conversion(
    rule: MappingRule, pointer: str, origin: LogicalType, target: LogicalType
) -> list[MappingIssue]:
    steps = [(origin, rule.cast), (rule.cast, target)] if rule.cast else [(origin, target)]
    where = (
        f"{pointer}/cast" if rule.cast else f"{pointer}/{'source' if rule.source else 'expression'}"
    )
    for start, end in steps:
        safety = can_cast(start, end)
        if safety == CastSafety.IMPOSSIBLE:
            return [MappingIssue(pointer=where, message=f"cannot convert {start} to {end}")]
        if safety == CastSafety.LOSSY and rule.cast is None:
            message = f"converting {start} to {end} may turn values into nulls; set cast to confirm"
            return [MappingIssue(pointer=where, message=message, severity="warning")]
    return []


def expression_dtype(
    expression: str, source_dtypes: MappingABC[str, pl.DataType]
) -> tuple[pl.DataType, str | None]:
    """The dtype a SQL expression yields over the source columns, or an error message. Parsed by
    Polars' SQL parser and resolved against an empty frame, so nothing is evaluated."""
    try:
        expr = pl.sql_expr(expression)
        schema = pl.LazyFrame(schema=dict(source_dtypes)).select(expr.alias("_")).collect_schema()
    except Exception as error:  # Polars raises several error types for bad SQL
        return pl.Null(), f"invalid expression: {_first_line(error)}"
    return schema["_"], None


def default_fits(default: Any, target: Field) -> bool:
    """True when `default` converts to the target's type (e.g. "2024-01-01" for a date)."""
    try:
        value = pl.select(_convert_literal(default, target)).item()
    except Exception:  # Polars raises several error types for unconvertible literals
        return False
    return value is not None


def _convert_literal(default: Any, target: Field) -> pl.Expr:
    if target.type == LogicalType.JSON and not isinstance(default, str):
        default = json.dumps(default, separators=(",", ":"))  # json travels as text
    literal = pl.lit(default)
    dtype = pl.select(literal).dtypes[0]
    return cast_expr(literal, dtype, target.type, dtype_for_field(target))


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


# --- applying ---------------------------------------------------------------------------------


def mapping_to_exprs(
    mapping: Mapping, source_dtypes: MappingABC[str, pl.DataType] | None = None
) -> list[pl.Expr]:
    """One expression per target field, in target order. `source_dtypes` are the actual column
    dtypes (a frame's schema); by default they come from the mapping's source schema. Raises
    InvalidMappingError when `validate_mapping` finds errors."""
    errors = [issue for issue in validate_mapping(mapping) if issue.severity == "error"]
    if errors:
        raise InvalidMappingError(errors)
    if source_dtypes is None:
        source_dtypes = {f.name: dtype_for_field(f) for f in mapping.source_schema}
    rules = {rule.target: (index, rule) for index, rule in enumerate(mapping.rules)}
    return [
        _target_expr(target, rules.get(target.name), source_dtypes)
        for target in mapping.target_schema
    ]


def apply_mapping(frame: pl.DataFrame, mapping: Mapping) -> pl.DataFrame:
    """The frame reshaped into the target schema: exactly its fields, in its order, with its
    types; values that do not convert become null, then nulls take the rule's default."""
    return frame.select(mapping_to_exprs(mapping, frame.schema))


def _target_expr(
    target: Field,
    indexed_rule: tuple[int, MappingRule] | None,
    source_dtypes: MappingABC[str, pl.DataType],
) -> pl.Expr:
    dtype = dtype_for_field(target)
    if indexed_rule is None:
        return pl.lit(None, dtype).alias(target.name)
    index, rule = indexed_rule
    try:
        value = _rule_value(rule, target, dtype, source_dtypes)
    except (CastNotPossibleError, _UnusableRuleError) as error:
        # The mapping validated against its declared source schema, but the actual data has
        # other columns or types.
        issue = MappingIssue(pointer=f"/rules/{index}", message=str(error))
        raise InvalidMappingError([issue]) from error
    if rule.default is not None:
        value = value.fill_null(_convert_literal(rule.default, target))
    return value.alias(target.name)


class _UnusableRuleError(Exception):
    """A rule that cannot be applied to the actual columns."""


def _rule_value(
    rule: MappingRule,
    target: Field,
    dtype: pl.DataType,
    source_dtypes: MappingABC[str, pl.DataType],
) -> pl.Expr:
    if rule.source is None and rule.expression is None:
        return pl.lit(None, dtype)  # a default-only rule
    if rule.source is not None:
        if rule.source not in source_dtypes:
            raise _UnusableRuleError(f"the data has no column '{rule.source}'")
        expr, current = pl.col(rule.source), source_dtypes[rule.source]
    else:
        current, problem = expression_dtype(rule.expression or "", source_dtypes)
        if problem:
            raise _UnusableRuleError(problem)
        expr = pl.sql_expr(rule.expression or "")
    if rule.cast is not None and rule.cast != target.type:
        expr = cast_expr(expr, current, rule.cast)
        current = polars_dtype_for(rule.cast)
    return expr if current == dtype else cast_expr(expr, current, target.type, dtype)


# --- templates --------------------------------------------------------------------------------


def _f(name: str, type_: str, nullable: bool = True, native_type: str | None = None) -> Field:
    return Field(name=name, type=LogicalType(type_), nullable=nullable, native_type=native_type)


MAPPING_TEMPLATES: tuple[MappingTemplate, ...] = (
    MappingTemplate(
        id="customer_contact",
        title="Customer contact",
        description="One row per customer with the ways to reach them.",
        target_schema=[
            _f("customer_id", "string", nullable=False),
            _f("first_name", "string"),
            _f("last_name", "string"),
            _f("email", "string"),
            _f("phone", "string"),
            _f("company", "string"),
            _f("country", "string"),
            _f("created_at", "datetime"),
        ],
    ),
    MappingTemplate(
        id="order_line",
        title="Order line",
        description="One row per product line of an order.",
        target_schema=[
            _f("order_id", "string", nullable=False),
            _f("line_number", "integer"),
            _f("product_id", "string", nullable=False),
            _f("quantity", "integer", nullable=False),
            _f("unit_price", "decimal", native_type="decimal(18,2)"),
            _f("currency", "string"),
            _f("line_total", "decimal", native_type="decimal(18,2)"),
            _f("ordered_at", "datetime"),
        ],
    ),
    MappingTemplate(
        id="product",
        title="Product",
        description="One row per product in a catalogue.",
        target_schema=[
            _f("product_id", "string", nullable=False),
            _f("name", "string", nullable=False),
            _f("description", "string"),
            _f("category", "string"),
            _f("price", "decimal", native_type="decimal(18,2)"),
            _f("currency", "string"),
            _f("in_stock", "boolean"),
            _f("updated_at", "datetime"),
        ],
    ),
)


def mapping_template(template_id: str) -> MappingTemplate | None:
    return next((t for t in MAPPING_TEMPLATES if t.id == template_id), None)
