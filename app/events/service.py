"""Reading the audit trail.

Visibility: one shared workspace, so every signed-in user reads the audit events of shared
objects (pipelines, connectors, transformations, executions...). Events about users
(`entity_type=user`: account changes, logouts) are personal: admins see all of them, others
only their own. Only original rows are listed (copies stored under further topics for replay
are not repeated).

Cursor: opaque, encodes (created_at, id) of the last row; the order is stable on that pair.
"""

from __future__ import annotations

import base64
from datetime import datetime
from uuid import UUID

import orjson
from tortoise.expressions import Q

from app.auth.principal import Principal
from app.core.errors import Unprocessable
from app.events.schemas import EventListQuery
from storage.models import Event

FIELDS = (
    "id",
    "seq",
    "topic",
    "type",
    "entity_type",
    "entity_id",
    "data",
    "user_id",
    "correlation_id",
    "created_at",
)


def encode_cursor(created_at: datetime, event_id: UUID) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(event_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, event_id = orjson.loads(raw)
        return datetime.fromisoformat(created_at), UUID(event_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise Unprocessable(
            "The cursor is not valid.",
            errors=[{"pointer": "/query/after", "message": "use next_cursor of a previous page"}],
        ) from None


async def list_events(principal: Principal, query: EventListQuery) -> dict:
    events = Event.filter(origin_id=None)
    if not principal.is_admin:
        events = events.filter(~Q(entity_type="user") | Q(entity_id=str(principal.id)))
    filters = {
        "entity_type": query.entity_type,
        "entity_id": query.entity_id,
        "user_id": query.user_id,
        "created_at__gte": query.from_,
        "created_at__lt": query.to,
    }
    events = events.filter(**{k: v for k, v in filters.items() if v is not None})
    if query.type:
        events = (
            events.filter(type__startswith=query.type[:-1])
            if query.type.endswith("*")
            else events.filter(type=query.type)
        )
    descending = query.order == "desc"
    if query.after:
        created_at, event_id = decode_cursor(query.after)
        op = "lt" if descending else "gt"
        events = events.filter(
            Q(**{f"created_at__{op}": created_at})
            | Q(created_at=created_at, **{f"id__{op}": event_id})
        )
    prefix = "-" if descending else ""
    rows = (
        await events.order_by(f"{prefix}created_at", f"{prefix}id")
        .limit(query.limit + 1)
        .values(*FIELDS)
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return {"items": rows, "next_cursor": next_cursor}
