"""The per-process service container, built once at start-up.

Mode-dependent parts (rate limiting now; the event bus and job queue later) are chosen here
and only here: embedded mode when REDIS_URL is unset, scaled mode when it is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.auth.principal import PrincipalCache
from app.auth.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from app.auth.service import AuthService
from app.auth.tokens import TokenCodec
from app.connectors.secrets import SecretBox
from app.connectors.service import ConnectorService
from app.settings import Settings


@dataclass
class Services:
    settings: Settings
    tokens: TokenCodec
    principals: PrincipalCache
    auth: AuthService
    connectors: ConnectorService
    redis: Redis | None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def _login_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    limit, window = settings.LOGIN_RATE_LIMIT, settings.LOGIN_RATE_WINDOW_SECONDS
    if redis is not None:
        return RedisRateLimiter(redis, limit, window)
    return MemoryRateLimiter(limit, window)


async def build_services(settings: Settings) -> Services:
    redis = Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    tokens = TokenCodec(settings)
    principals = PrincipalCache()
    auth = AuthService(
        tokens, principals, _login_limiter(settings, redis), settings.ALLOW_SELF_REGISTRATION
    )
    return Services(
        settings=settings,
        tokens=tokens,
        principals=principals,
        auth=auth,
        connectors=ConnectorService(SecretBox(settings.SECRET_KEY)),
        redis=redis,
    )
