"""The WebSocket wire format (API.md): client messages in, server messages out."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from actors.bus.base import BusEvent

TopicName = Annotated[str, Field(min_length=1, max_length=120)]


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Subscribe(_ClientMessage):
    type: Literal["subscribe"]
    topics: list[TopicName] = Field(min_length=1, max_length=100)
    since: int | None = Field(None, ge=0)  # resume: replay stored events with seq > since
    interval_ms: int | None = Field(None, ge=250, le=3_600_000)  # metrics:* topics


class Unsubscribe(_ClientMessage):
    type: Literal["unsubscribe"]
    topics: list[TopicName] = Field(min_length=1, max_length=100)


class Ping(_ClientMessage):
    type: Literal["ping"]


class Pong(_ClientMessage):
    type: Literal["pong"]  # answer to a server heartbeat message; nothing to do


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping | Pong, Field(discriminator="type")]
client_message = TypeAdapter(ClientMessage)


def _dumps(value: dict) -> bytes:
    # UTF-8 JSON, encoded once per message however many sockets it goes to; sent as text.
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)


def event_message(event: BusEvent) -> bytes:
    return _dumps(
        {
            "type": "event",
            "topic": event.topic,
            "seq": event.seq,
            "event": event.type,
            "id": str(event.id),
            "entity_type": event.entity_type,
            "entity_id": event.entity_id,
            "data": event.data,
            "user_id": str(event.user_id) if event.user_id else None,
            "correlation_id": event.correlation_id,
            "ts": event.created_at,
        }
    )


def error_message(code: str, message: str, topic: str | None = None) -> bytes:
    body: dict = {"type": "error", "code": code, "message": message}
    if topic is not None:
        body["topic"] = topic
    return _dumps(body)


def subscribed_message(topics: list[str]) -> bytes:
    return _dumps({"type": "subscribed", "topics": topics})


def unsubscribed_message(topics: list[str]) -> bytes:
    return _dumps({"type": "unsubscribed", "topics": topics})


PONG = _dumps({"type": "pong"})
