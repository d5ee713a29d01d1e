"""Safe parsing of the SQL-style expressions users type (filters, derived columns, rules).

Expressions go through Polars' SQL parser (`pl.sql_expr`), never `eval`. Polars SQL also knows
table functions such as `read_csv('/etc/passwd')`; those would let a pipeline read files on the
server, so any query or expression that names one is refused before Polars sees it.
"""

from __future__ import annotations

import re

import polars as pl

# Table functions Polars SQL understands (and plausible future ones): read_*, scan_*.
_FILE_FUNCTION = re.compile(r"\b(read|scan)_[a-z_]+\s*\(", re.IGNORECASE)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


# Functions that look at other rows: an expression using one cannot run batch by batch.
_NOT_ROW_WISE = re.compile(
    r"\b(OVER|SELECT|SUM|AVG|MEAN|MIN|MAX|COUNT|MEDIAN|MODE|STDDEV\w*|VARIANCE|VAR_\w+|"
    r"FIRST|LAST|ARRAY_AGG|STRING_AGG|QUANTILE_\w+|PERCENTILE_\w+|CORR|COVAR\w*|ROW_NUMBER|"
    r"RANK|DENSE_RANK|PERCENT_RANK|CUME_DIST|NTILE|LAG|LEAD|FIRST_VALUE|LAST_VALUE|NTH_VALUE)"
    r"\s*\(|\bOVER\b|\bSELECT\b",
    re.IGNORECASE,
)


class ExpressionError(ValueError):
    """An expression a user typed that cannot be used; the message is safe to show."""


def _strip_literals(text: str) -> str:
    # A literal such as 'read_csv(' is data, not a call.
    return _STRING_LITERAL.sub("''", text)


def guard_sql_text(text: str) -> None:
    if _FILE_FUNCTION.search(_strip_literals(text)):
        raise ExpressionError("file and table functions (read_*, scan_*) are not allowed")


def parse_expression(text: str) -> pl.Expr:
    """Parse one SQL expression, e.g. `amount * 1.2` or `status = 'paid' AND amount > 0`."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("expression is empty")
    guard_sql_text(text)
    try:
        return pl.sql_expr(text)
    except Exception as exc:  # Polars raises several error types for bad SQL
        raise ExpressionError(f"cannot parse expression {text!r}: {_first_line(exc)}") from None


def is_row_wise(text: str | None) -> bool:
    """Whether an expression only looks at its own row (so per-batch results are exact).

    Conservative: any aggregate or window function (SUM, AVG, ROW_NUMBER, ... OVER) or a
    subquery makes the node run on all rows at once instead.
    """
    return not text or not _NOT_ROW_WISE.search(_strip_literals(text))


def referenced_columns(text: str) -> list[str]:
    """Columns an expression reads (for unknown_column checks with a precise pointer)."""
    return parse_expression(text).meta.root_names()


def _first_line(exc: BaseException) -> str:
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def error_summary(exc: BaseException) -> str:
    """Polars errors carry the query plan after the first line; users need only the first."""
    return _first_line(exc)
