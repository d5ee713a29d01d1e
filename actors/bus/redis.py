"""Redis pub/sub bus (scaled mode): fan-out across processes and hosts.

One pub/sub connection per process holds a PSUBSCRIBE per distinct local pattern; a reader
task hands each message to the local subscriptions of the pattern it matched, through the
same bounded per-subscription queues as the in-process bus. Payloads are JSON. Channels are
prefixed so the bus never sees other Redis traffic.
"""

from __future__ import annotations

import asyncio

from loguru import logger
from redis.asyncio import Redis

from actors.bus.base import BusEvent, EventBus, EventHandler, Subscription
from actors.bus.memory import DEFAULT_QUEUE_SIZE, LocalFanout, LocalSubscription

CHANNEL_PREFIX = "bus:"
RECONNECT_DELAY_SECONDS = 1.0


class _RedisSubscription(Subscription):
    def __init__(self, bus: RedisBus, local: LocalSubscription):
        self._bus = bus
        self._local = local

    async def close(self) -> None:
        await self._local.close()
        await self._bus._release(self._local.pattern)


class RedisBus(EventBus):
    def __init__(self, redis: Redis, queue_size: int = DEFAULT_QUEUE_SIZE):
        self._redis = redis
        self.local = LocalFanout(queue_size)
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._patterns: dict[str, int] = {}  # pattern -> local subscriptions using it
        self._subscribed = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.local.close()
        await self._pubsub.aclose()

    async def publish(self, event: BusEvent) -> None:
        await self._redis.publish(CHANNEL_PREFIX + event.topic, event.model_dump_json())

    async def subscribe(self, pattern: str, handler: EventHandler) -> Subscription:
        local = self.local.add(pattern, handler)
        if self._patterns.get(pattern, 0) == 0:
            # Returns once Redis has registered the pattern: later publishes reach us.
            await self._pubsub.psubscribe(CHANNEL_PREFIX + pattern)
            self._subscribed.set()
        self._patterns[pattern] = self._patterns.get(pattern, 0) + 1
        return _RedisSubscription(self, local)

    async def _release(self, pattern: str) -> None:
        self._patterns[pattern] -= 1
        if self._patterns[pattern] == 0:
            del self._patterns[pattern]
            await self._pubsub.punsubscribe(CHANNEL_PREFIX + pattern)

    def queue_depth(self) -> int:
        return self.local.depth()

    async def _read(self) -> None:
        await self._subscribed.wait()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # redis-py re-subscribes on reconnect; events published meanwhile are lost
                # live but stay in the events table for `since` resume.
                logger.warning("redis bus connection lost ({}); retrying", exc)
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                continue
            if message is None or message["type"] != "pmessage":
                continue
            try:
                event = BusEvent.model_validate_json(message["data"])
            except ValueError:
                logger.warning("ignored a malformed bus message on {}", message["channel"])
                continue
            pattern = message["pattern"]
            if isinstance(pattern, bytes):
                pattern = pattern.decode()
            self.local.dispatch(event, pattern.removeprefix(CHANNEL_PREFIX))
