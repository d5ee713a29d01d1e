"""Suggested read settings per stream, from its discovered schema.

- primary key: the declared one; else a single not-null `id`-like column ("id", "<stream>_id",
  "uuid", "key") of an integer or string type;
- cursor field (incremental reads): a column whose values only grow as rows are added or
  changed. Timestamps named like update markers ("updated_at", "modified", "last_modified"...)
  come first, then creation timestamps, then an integer primary key (auto-increment ids grow,
  though they miss updates);
- batch size: rows of about `TARGET_BATCH_BYTES` given the row width the types suggest,
  bounded, and never more than the stream holds.
"""

from __future__ import annotations

import re

from engine.schema import Field, LogicalType, StreamSchema

TARGET_BATCH_BYTES = 32 * 1024 * 1024
MIN_BATCH, MAX_BATCH = 1_000, 500_000
# Rough bytes per value, for sizing batches (strings and JSON: a typical short value).
_TYPE_BYTES = {
    LogicalType.BOOLEAN: 1,
    LogicalType.INTEGER: 8,
    LogicalType.NUMBER: 8,
    LogicalType.DECIMAL: 16,
    LogicalType.DATE: 4,
    LogicalType.DATETIME: 8,
    LogicalType.TIME: 8,
    LogicalType.STRING: 32,
    LogicalType.BINARY: 256,
    LogicalType.JSON: 256,
    LogicalType.UNKNOWN: 16,
}
_TIMESTAMP_TYPES = {LogicalType.DATETIME, LogicalType.DATE}
_UPDATE_NAMES = re.compile(
    r"^(updated|modified|changed|last_?modified|last_?updated|updated_?on|modified_?on"
    r"|mtime|update_?time|modify_?time|sys_?updated)(_?at|_?on|_?time|_?ts|_?date)?$",
    re.IGNORECASE,
)
_CREATE_NAMES = re.compile(
    r"^(created|inserted|added|ctime|create_?time|insert_?time|timestamp|ts|event_?time"
    r"|occurred)(_?at|_?on|_?time|_?ts|_?date)?$",
    re.IGNORECASE,
)
_KEY_TYPES = {LogicalType.INTEGER, LogicalType.STRING}


def recommend(stream: StreamSchema) -> dict:
    notes: list[str] = []
    primary_key, key_source = _primary_key(stream)
    if key_source == "inferred":
        notes.append(f"No declared primary key; {primary_key[0]!r} looks like one.")
    elif key_source == "none":
        notes.append("No primary key: upserts into a destination need one chosen by hand.")
    cursor = _cursor_field(stream, primary_key)
    if cursor is None:
        notes.append("No column that only grows: read in full refresh.")
    elif cursor.type == LogicalType.INTEGER:
        notes.append(f"{cursor.name!r} grows with new rows but misses updates to old ones.")
    row_bytes = estimated_row_bytes(stream.fields)
    return {
        "stream": stream.name,
        "primary_key": primary_key,
        "primary_key_source": key_source,
        "cursor_field": cursor.name if cursor else None,
        "sync_mode": "incremental" if cursor else "full_refresh",
        "batch_size": batch_size(row_bytes, stream.row_estimate),
        "row_estimate": stream.row_estimate,
        "estimated_row_bytes": row_bytes,
        "notes": notes,
    }


def _primary_key(stream: StreamSchema) -> tuple[list[str], str]:
    declared = [f.name for f in stream.fields if f.primary_key]
    if declared:
        return declared, "declared"
    singular = stream.name.split(".")[-1].split(":")[-1].rstrip("s").lower()
    likely = {"id", "uuid", "key", f"{singular}_id", f"{singular}id"}
    for field in stream.fields:
        if field.name.lower() in likely and field.type in _KEY_TYPES and not field.nullable:
            return [field.name], "inferred"
    return [], "none"


def _cursor_field(stream: StreamSchema, primary_key: list[str]) -> Field | None:
    timestamps = [f for f in stream.fields if f.type in _TIMESTAMP_TYPES]
    for pattern in (_UPDATE_NAMES, _CREATE_NAMES):
        named = [f for f in timestamps if pattern.match(f.name)]
        if named:
            return min(named, key=lambda f: f.nullable)  # prefer a column never null
    if len(primary_key) == 1:
        key = next(f for f in stream.fields if f.name == primary_key[0])
        if key.type == LogicalType.INTEGER:
            return key
    return None


def estimated_row_bytes(fields: list[Field]) -> int:
    return max(1, sum(_TYPE_BYTES.get(f.type, 16) for f in fields))


def batch_size(row_bytes: int, row_estimate: int | None) -> int:
    size = _round(max(MIN_BATCH, min(MAX_BATCH, TARGET_BATCH_BYTES // row_bytes)))
    if row_estimate is not None and row_estimate > 0:
        size = min(size, max(row_estimate, 1))
    return size


def _round(value: int) -> int:
    """Two significant digits: 43690 → 44000."""
    digits = len(str(value)) - 2
    return round(value, -digits) if digits > 0 else value
