"""The outbox: events stored in the transaction that caused them, published after commit.

    async with outbox.transaction() as conn:
        ...change rows with using_db=conn...
        await record_event(conn, "pipeline.updated", "pipeline", pipeline.id, data, user_id)
    # committed: the event is now on the bus and its row marked published

An event is stored once per topic: under its entity's own topic (`<entity_type>:<id>`, the
audit-trail row) and under any further `topics` (copies with `origin_id` set), each with the
next sequence number of that topic. If the process dies between commit and publish, the relay
(`Outbox.relay_once`, run at start-up and periodically) publishes what is still unpublished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient

from actors.bus.base import BusEvent, EventBus
from actors.events import entity_topic, event_data
from storage import db
from storage.models import Event
from storage.sequences import next_seq

RELAY_BATCH = 500

# Events recorded in open outbox transactions, by connection, until the commit publishes them.
_pending: dict[int, list[BusEvent]] = {}


@asynccontextmanager
async def transaction() -> AsyncIterator[BaseDBAsyncClient]:
    """A database transaction that publishes the events recorded in it once it has committed."""
    async with db.transaction() as conn:
        key = id(conn)
        _pending[key] = []
        try:
            yield conn
        except BaseException:
            _pending.pop(key, None)
            raise
    await outbox.publish_stored(_pending.pop(key, []))


async def record_event(
    conn: BaseDBAsyncClient,
    type: str,
    entity_type: str,
    entity_id: object,
    data: dict[str, Any],
    user_id: UUID | None = None,
    topics: Iterable[str] = (),
    correlation_id: str | None = None,
) -> BusEvent:
    """Store the event inside the `outbox.transaction()` of `conn`; published on commit.

    Returns the copy under the entity's own topic."""
    pending = _pending.get(id(conn))
    if pending is None:
        raise RuntimeError("record_event needs the connection of an outbox.transaction()")
    events = await store_event(
        conn, type, entity_type, entity_id, data, user_id, topics, correlation_id
    )
    pending.extend(events)
    return events[0]


async def store_event(
    conn: BaseDBAsyncClient,
    type: str,
    entity_type: str,
    entity_id: object,
    data: dict[str, Any],
    user_id: UUID | None = None,
    topics: Iterable[str] = (),
    correlation_id: str | None = None,
) -> list[BusEvent]:
    """Store one row per topic (the entity's own topic first); the caller publishes them
    with `outbox.publish_stored` after its commit."""
    payload = event_data(type, data)
    event_id, now = uuid4(), datetime.now(UTC)
    correlation_id = correlation_id or outbox.correlation_id()
    events: list[BusEvent] = []
    for topic in dict.fromkeys([entity_topic(entity_type, entity_id), *topics]):
        event = BusEvent(
            id=event_id,
            topic=topic,
            seq=await next_seq(conn, topic),
            type=type,
            entity_type=entity_type,
            entity_id=str(entity_id),
            data=payload,
            user_id=user_id,
            correlation_id=correlation_id,
            created_at=now,
        )
        await Event.create(
            id=event_id if not events else uuid4(),
            origin_id=event_id if events else None,
            **event.model_dump(exclude={"id"}),
            using_db=conn,
        )
        events.append(event)
    return events


class OutboxEvents:
    """The outbox as the pipeline actors' `ExecutionEvents` (record in their transaction,
    publish after it)."""

    async def record(
        self,
        conn: BaseDBAsyncClient,
        *,
        topics: list[str],
        type: str,
        entity_type: str,
        entity_id: str,
        data: dict[str, Any],
        user_id: UUID | None,
        correlation_id: str | None,
    ) -> list[BusEvent]:
        return await store_event(
            conn, type, entity_type, entity_id, data, user_id, topics, correlation_id
        )

    async def publish(self, events: list[BusEvent]) -> None:
        await outbox.publish_stored(events)


class Outbox:
    """Publishes stored events. Configured with the process's bus at start-up; until then
    (CLI commands, migrations) events stay stored and the next server's relay sends them."""

    def __init__(self) -> None:
        self.bus: EventBus | None = None
        # The app plugs in its request correlation id (actors do not import app).
        self.correlation_id: Callable[[], str | None] = lambda: None

    async def publish_stored(self, events: list[BusEvent]) -> None:
        """Publish stored events (seq > 0) and mark their rows published."""
        if self.bus is None or not events:
            return
        published: list[BusEvent] = []
        try:
            for event in events:
                await self.bus.publish(event)
                published.append(event)
        except Exception:
            logger.exception("publishing stored events failed; the relay will retry")
        finally:
            await _mark_published(published)

    async def relay_once(self, older_than: timedelta) -> int:
        """Publish stored events still unpublished `older_than` after they were written."""
        count = 0
        while True:
            cutoff = datetime.now(UTC) - older_than
            rows = (
                await Event.filter(published_at=None, created_at__lte=cutoff)
                .order_by("created_at", "topic", "seq")
                .limit(RELAY_BATCH)
            )
            if not rows:
                return count
            await self.publish_stored([bus_event_from_row(row) for row in rows])
            count += len(rows)
            if len(rows) < RELAY_BATCH:
                return count

    async def run_relay(self, interval: float, grace: float) -> None:
        while True:
            try:
                relayed = await self.relay_once(timedelta(seconds=grace))
                if relayed:
                    logger.info("outbox relay published {} stored events", relayed)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay failed; retrying")
            await asyncio.sleep(interval)


async def _mark_published(events: list[BusEvent]) -> None:
    if not events:
        return
    by_topic: dict[str, list[int]] = {}
    for event in events:
        by_topic.setdefault(event.topic, []).append(event.seq)
    now = datetime.now(UTC)
    for topic, seqs in by_topic.items():
        await Event.filter(topic=topic, seq__in=seqs).update(published_at=now)


def bus_event_from_row(row: Event) -> BusEvent:
    return BusEvent(
        id=row.origin_id or row.id,
        topic=row.topic,
        seq=row.seq,
        type=row.type,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        data=row.data,
        user_id=row.user_id,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
    )


outbox = Outbox()
