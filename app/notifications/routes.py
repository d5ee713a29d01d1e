from __future__ import annotations

from sanic import Blueprint, Request

from app.auth.access import current_principal, requires
from app.core.docs import doc
from app.core.http import json_response, parse_body, parse_query, parse_uuid
from app.notifications import service
from app.notifications.schemas import (
    NotificationListQuery,
    NotificationOut,
    NotificationPage,
    PreferencesOut,
    PreferencesUpdate,
    ReadAllOut,
)
from storage.models import Role

bp = Blueprint("notifications", url_prefix="/api/v1/notifications")


def _email_available(request: Request) -> bool:
    return request.app.ctx.services.notifications.email_available


@bp.get("")
@requires(Role.VIEWER)
@doc(
    tag="notifications",
    summary="Your notifications, newest first, with the unread count",
    query=NotificationListQuery,
    response=NotificationPage,
    errors=(422,),
)
async def list_notifications(request: Request):
    query = parse_query(request, NotificationListQuery)
    return json_response(await service.list_for(current_principal(request).id, query))


@bp.post("/read-all")
@requires(Role.VIEWER)
@doc(tag="notifications", summary="Mark all your notifications read", response=ReadAllOut)
async def read_all(request: Request):
    return json_response(await service.mark_all_read(current_principal(request).id))


@bp.get("/preferences")
@requires(Role.VIEWER)
@doc(
    tag="notifications",
    summary="Your notification preferences: each event type and channel, effective values",
    response=PreferencesOut,
)
async def get_preferences(request: Request):
    user_id = current_principal(request).id
    return json_response(await service.preferences_of(user_id, _email_available(request)))


@bp.put("/preferences")
@requires(Role.VIEWER)
@doc(
    tag="notifications",
    summary="Switch channels on or off per event type (pairs not listed keep their value)",
    body=PreferencesUpdate,
    response=PreferencesOut,
    errors=(409,),
)
async def put_preferences(request: Request):
    body = parse_body(request, PreferencesUpdate)
    return json_response(
        await service.update_preferences(
            current_principal(request).id, body.preferences, _email_available(request)
        )
    )


@bp.post("/<notification_id>/read")
@requires(Role.VIEWER)
@doc(
    tag="notifications",
    summary="Mark one notification read",
    response=NotificationOut,
    errors=(404,),
)
async def read_one(request: Request, notification_id: str):
    notification = parse_uuid(notification_id, "notification")
    return json_response(await service.mark_read(current_principal(request).id, notification))
