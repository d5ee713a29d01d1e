"""Fixed-window rate limiting: one interface, in-process and Redis implementations."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from redis.asyncio import Redis


class RateLimiter(ABC):
    def __init__(self, limit: int, window_seconds: int):
        self.limit = limit
        self.window = window_seconds

    @abstractmethod
    async def hit(self, key: str, limit: int | None = None) -> int | None:
        """Count one attempt; return seconds to wait when over `limit`, else None."""

    @abstractmethod
    async def reset(self, key: str) -> None: ...


class MemoryRateLimiter(RateLimiter):
    MAX_KEYS = 100_000

    def __init__(self, limit: int, window_seconds: int):
        super().__init__(limit, window_seconds)
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, limit: int | None = None) -> int | None:
        now = time.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        count += 1
        if len(self._windows) >= self.MAX_KEYS:
            self._evict_expired(now)
        self._windows[key] = (start, count)
        if count > (limit or self.limit):
            return max(1, int(self.window - (now - start)) + 1)
        return None

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    def _evict_expired(self, now: float) -> None:
        for key in [k for k, (s, _) in self._windows.items() if now - s >= self.window]:
            del self._windows[key]


class RedisRateLimiter(RateLimiter):
    def __init__(self, redis: Redis, limit: int, window_seconds: int, prefix: str = "ratelimit:"):
        super().__init__(limit, window_seconds)
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, limit: int | None = None) -> int | None:
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            count, _, ttl = (
                await pipe.incr(name).expire(name, self.window, nx=True).ttl(name).execute()
            )
        if count > (limit or self.limit):
            return max(1, int(ttl))
        return None

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
