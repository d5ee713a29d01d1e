"""In-process bus (embedded mode), and the local fan-out that the Redis bus reuses.

Every subscription owns a bounded queue drained by its own task, so `publish` only appends to
queues and never waits for a handler. Events reach a subscription in publish order. A
subscription whose queue is full drops its oldest event (and says so in the log): the bus
never grows without bound because one handler is slow.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from fnmatch import fnmatchcase

from loguru import logger

from actors.bus.base import BusEvent, EventBus, EventHandler, Subscription

DEFAULT_QUEUE_SIZE = 10_000


class LocalSubscription(Subscription):
    def __init__(self, owner: LocalFanout, pattern: str, handler: EventHandler, size: int):
        self.owner = owner
        self.pattern = pattern
        self._handler = handler
        self._queue: deque[BusEvent] = deque(maxlen=size)
        self._ready = asyncio.Event()
        self._dropped = 0
        self._task = asyncio.create_task(self._drain(), name=f"bus-subscriber:{pattern}")

    @property
    def depth(self) -> int:
        return len(self._queue)

    def offer(self, event: BusEvent) -> None:
        if len(self._queue) == self._queue.maxlen:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.warning(
                    "bus subscriber {} is behind; dropped {} events", self.pattern, self._dropped
                )
        self._queue.append(event)
        self._ready.set()

    async def _drain(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                event = self._queue.popleft()
                try:
                    result = self._handler(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("bus handler for {} failed on {}", self.pattern, event.type)
            self._ready.clear()

    async def close(self) -> None:
        self.owner.remove(self)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class LocalFanout:
    """Local subscriptions by pattern, matched with shell-style globs (as Redis does)."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE):
        self.queue_size = queue_size
        self.subscriptions: list[LocalSubscription] = []

    def add(self, pattern: str, handler: EventHandler) -> LocalSubscription:
        subscription = LocalSubscription(self, pattern, handler, self.queue_size)
        self.subscriptions.append(subscription)
        return subscription

    def remove(self, subscription: LocalSubscription) -> None:
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)

    def dispatch(self, event: BusEvent, pattern: str | None = None) -> None:
        """To every subscription whose pattern matches (or, from Redis, that is `pattern`)."""
        for subscription in self.subscriptions:
            if pattern is not None:
                if subscription.pattern == pattern:
                    subscription.offer(event)
            elif fnmatchcase(event.topic, subscription.pattern):
                subscription.offer(event)

    def depth(self) -> int:
        return sum(s.depth for s in self.subscriptions)

    async def close(self) -> None:
        for subscription in list(self.subscriptions):
            await subscription.close()


class MemoryBus(EventBus):
    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE):
        self.local = LocalFanout(queue_size)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.local.close()

    async def publish(self, event: BusEvent) -> None:
        self.local.dispatch(event)

    async def subscribe(self, pattern: str, handler: EventHandler) -> Subscription:
        return self.local.add(pattern, handler)

    def queue_depth(self) -> int:
        return self.local.depth()
