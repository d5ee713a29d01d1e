"""The per-process service container, built once at start-up.

Mode-dependent parts (rate limiting now; the event bus and job queue later) are chosen here
and only here: embedded mode when REDIS_URL is unset, scaled mode when it is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from actors.bus.base import EventBus
from actors.bus.memory import MemoryBus
from actors.bus.outbox import OutboxEvents
from actors.bus.redis import RedisBus
from actors.directory import ActorDirectory, InProcessDirectory
from actors.directory_redis import RedisDirectory
from actors.jobs import JobQueue
from actors.jobs.arq_queue import ArqJobQueue
from actors.jobs.inprocess_queue import InProcessJobQueue
from actors.jobs.runner import JobRunner
from app.auth.principal import PrincipalCache
from app.auth.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from app.auth.service import AuthService
from app.auth.tokens import TokenCodec
from app.connectors.secrets import SecretBox
from app.connectors.service import ConnectorService
from app.executions.runtime import actor_supervisor, process_token
from app.executions.service import ExecutionService
from app.jobs.environment import job_policy, job_resources, job_schedules
from app.jobs.kinds import load_job_kinds
from app.notifications.mailer import email_configured
from app.notifications.service import NotificationService
from app.realtime.service import Realtime
from app.settings import Settings


@dataclass
class Services:
    settings: Settings
    tokens: TokenCodec
    principals: PrincipalCache
    auth: AuthService
    connectors: ConnectorService
    redis: Redis | None
    executions: ExecutionService
    bus: EventBus
    jobs: JobQueue
    realtime: Realtime | None = None  # WebSocket hub, live metrics, outbox relay
    notifications: NotificationService | None = None  # events → notification jobs

    @property
    def hub(self):
        return self.realtime.hub

    async def close(self) -> None:
        if self.realtime is not None:
            await self.realtime.close()
        await self.executions.close()
        if self.notifications is not None:
            await self.notifications.close()
        await self.jobs.close()
        await self.bus.close()
        if self.redis is not None:
            await self.redis.aclose()


def _login_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    limit, window = settings.LOGIN_RATE_LIMIT, settings.LOGIN_RATE_WINDOW_SECONDS
    if redis is not None:
        return RedisRateLimiter(redis, limit, window)
    return MemoryRateLimiter(limit, window)


def _event_bus(redis: Redis | None) -> EventBus:
    return RedisBus(redis) if redis is not None else MemoryBus()


def _job_queue(settings: Settings, bus: EventBus) -> JobQueue:
    load_job_kinds()
    runner = JobRunner(bus, job_resources(settings), job_policy(settings))
    if settings.REDIS_URL:
        return ArqJobQueue(runner, queue_name=settings.JOB_QUEUE_NAME, redis_url=settings.REDIS_URL)
    return InProcessJobQueue(
        runner,
        concurrency=settings.JOB_CONCURRENCY,
        poll_seconds=settings.JOB_POLL_SECONDS,
        consume=settings.JOB_WORKER_ENABLED,
        schedules=job_schedules(settings),
    )


async def build_services(settings: Settings) -> Services:
    redis = Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    tokens = TokenCodec(settings)
    principals = PrincipalCache()
    connectors = ConnectorService(SecretBox(settings.SECRET_KEY))
    bus = _event_bus(redis)
    await bus.start()
    auth = AuthService(
        tokens, principals, _login_limiter(settings, redis), settings.ALLOW_SELF_REGISTRATION
    )
    services = Services(
        settings=settings,
        tokens=tokens,
        principals=principals,
        auth=auth,
        connectors=connectors,
        redis=redis,
        executions=ExecutionService(
            _actor_directory(settings, connectors, redis, bus),
            settings.SCHEDULER_INTERVAL_SECONDS,
            settings.DATA_DIR,
        ),
        bus=bus,
        jobs=_job_queue(settings, bus),
    )
    await services.jobs.start()
    services.notifications = NotificationService(bus, services.jobs, email_configured(settings))
    await services.notifications.start()
    await services.executions.start()
    services.realtime = Realtime(settings, bus, principals)
    await services.realtime.start()
    return services


def _actor_directory(
    settings: Settings, connectors: ConnectorService, redis: Redis | None, bus: EventBus
) -> ActorDirectory:
    # Scaled mode: one owner per pipeline across processes (Redis lease + fencing token).
    events = OutboxEvents()
    token = process_token()
    supervisor = actor_supervisor(settings, connectors, events, bus, token)
    if redis is not None:
        return RedisDirectory(redis, supervisor, events, token)
    return InProcessDirectory(supervisor, events, token)
