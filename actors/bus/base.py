"""Bus contract. Publishing never blocks on a slow subscriber; events on one topic are
delivered in publish order; every event carries an id and a per-topic sequence number."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, Field


class BusEvent(BaseModel):
    """What travels on the bus and, for WebSocket clients, over the wire."""

    id: UUID = Field(default_factory=uuid4)
    topic: str  # pipeline:<id>, execution:<id>, logs:<execution>, notifications:<user>, ...
    seq: int  # per topic, strictly increasing; 0 for ephemeral events (metrics)
    type: str  # e.g. pipeline.updated, execution.started, step.completed
    entity_type: str
    entity_id: str
    data: dict[str, Any] = Field(default_factory=dict)
    user_id: UUID | None = None
    correlation_id: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


EventHandler = Callable[[BusEvent], Awaitable[None] | None]


class Subscription(ABC):
    @abstractmethod
    async def close(self) -> None: ...


class EventBus(ABC):
    """Handlers are called in topic order; a handler must not block (queue work instead)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, event: BusEvent) -> None: ...

    @abstractmethod
    async def subscribe(self, pattern: str, handler: EventHandler) -> Subscription:
        """`pattern` is a topic or a glob like `pipeline:*` or `*`."""

    def queue_depth(self) -> int:
        """Events waiting in this process's subscriber queues (for monitoring)."""
        return 0
