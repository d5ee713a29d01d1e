from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.http import json_response, parse_query
from app.events import service
from app.events.schemas import EventListQuery, EventPage
from storage.models import Role

bp = Blueprint("events", url_prefix="/api/v1/events")


@bp.get("")
@requires(Role.VIEWER)
@doc(
    tag="events",
    summary="The audit trail, newest first by default, with a cursor",
    description=(
        "Filters: entity_type, entity_id, type (exact or `prefix.*`), user_id, from, to. "
        "Pass `next_cursor` back as `after` for the next page. Events about users are "
        "visible to admins and to the user concerned; all others to every signed-in user."
    ),
    query=EventListQuery,
    response=EventPage,
    errors=(422,),
)
async def list_events(request: Request):
    query = parse_query(request, EventListQuery)
    return json_response(await service.list_events(current_principal(request), query))
