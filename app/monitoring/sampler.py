"""Live metrics topics: one sampling task per (topic, interval) in use, whatever the number of
subscribers; each snapshot is serialised once and sent to all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from actors.bus.base import BusEvent
from app.realtime.connection import Connection
from app.realtime.protocol import event_message

Snapshot = Callable[[], Awaitable[dict[str, Any]]]


class MetricsSampler:
    def __init__(self, sources: dict[str, Snapshot], default_interval_ms: int):
        self.sources = sources
        self.default_interval_ms = default_interval_ms
        self._groups: dict[tuple[str, int], set[Connection]] = {}
        self._tasks: dict[tuple[str, int], asyncio.Task] = {}
        self._membership: dict[tuple[Connection, str], int] = {}

    def add(self, conn: Connection, topic: str, interval_ms: int | None) -> None:
        interval = max(interval_ms or self.default_interval_ms, 250)
        self.remove(conn, topic)
        key = (topic, interval)
        self._groups.setdefault(key, set()).add(conn)
        self._membership[(conn, topic)] = interval
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"sampler:{key}")

    def remove(self, conn: Connection, topic: str) -> None:
        interval = self._membership.pop((conn, topic), None)
        if interval is None:
            return
        group = self._groups.get((topic, interval))
        if group is not None:
            group.discard(conn)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, key: tuple[str, int]) -> None:
        topic, interval = key
        kind = topic.split(":", 1)[1]
        try:
            while self._groups.get(key):
                try:
                    snapshot = await self.sources[topic]()
                except Exception:
                    logger.exception("sampling {} failed", topic)
                else:
                    event = BusEvent(
                        topic=topic,
                        seq=0,
                        type=f"metric.{kind}",
                        entity_type="metric",
                        entity_id=kind,
                        data=snapshot,
                    )
                    text = event_message(event)
                    for conn in list(self._groups.get(key, ())):
                        conn.send(text)
                await asyncio.sleep(interval / 1000)
        finally:
            # No subscriber left (or shutting down): the next subscriber starts a new task.
            self._tasks.pop(key, None)
            self._groups.pop(key, None)
