"""Scaled mode: exactly one live owner per pipeline across processes and nodes.

- Liveness: every process keeps `agg:proc:<token>` alive (TTL, refreshed by a heartbeat).
- Ownership: `agg:lease:<pipeline>` holds `<token>:<fence>` with an expiry; the fence comes
  from `INCR agg:fence:<pipeline>`, so every new ownership has a larger fencing token than
  any before it. The owner renews its leases; one it fails to renew (it was too slow, another
  process took over) stops its local actor at once, so two actors never run side by side for
  longer than the lease lets a stale one believe it still owns the pipeline.
- Routing: a command for a pipeline another process owns is published on that process's
  inbox channel; the reply comes back on the sender's reply channel. A publish nobody hears
  means the owner is gone: its lease is taken over (compare-and-delete, then acquire).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any
from uuid import UUID

import orjson
from loguru import logger
from pydantic import BaseModel
from redis.asyncio import Redis

from actors.directory import (
    DEFAULT_TIMEOUT,
    ActorDirectory,
    error_from_wire,
    error_to_wire,
    message_from_wire,
    message_to_wire,
)
from actors.pipeline_actor import ExecutionEvents
from actors.runtime import ActorError, ActorStopped, Supervisor

PREFIX = "agg:"
LEASE_MS = 15_000
PROCESS_TTL_S = 10
HEARTBEAT_S = 3.0

# Renew or release only a lease that is still ours (value compared atomically).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _lease_key(pipeline_id: UUID) -> str:
    return f"{PREFIX}lease:{pipeline_id}"


def _inbox(token: str) -> str:
    return f"{PREFIX}actors:inbox:{token}"


def _replies(token: str) -> str:
    return f"{PREFIX}actors:reply:{token}"


class RedisDirectory(ActorDirectory):
    def __init__(
        self,
        redis: Redis,
        supervisor: Supervisor,
        events: ExecutionEvents,
        token: str | None = None,
    ):
        super().__init__(supervisor, events, token)
        self.redis = redis
        self.leases: dict[UUID, str] = {}  # pipeline → our lease value "<token>:<fence>"
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._tasks: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def start(self) -> None:
        await self._beat()
        await self._pubsub.subscribe(_inbox(self.token), _replies(self.token))
        self._tasks = [
            asyncio.create_task(self._listen(), name="actor-directory-listener"),
            asyncio.create_task(self._keep_alive(), name="actor-directory-heartbeat"),
        ]
        await super().start()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().close()
        for pipeline_id, value in list(self.leases.items()):
            with contextlib.suppress(Exception):
                await self._release(keys=[_lease_key(pipeline_id)], args=[value])
        with contextlib.suppress(Exception):
            await self.redis.delete(f"{PREFIX}proc:{self.token}")
            await self._pubsub.aclose()

    # --- liveness ------------------------------------------------------------------------

    async def live_tokens(self) -> set[str]:
        tokens = {self.token}
        async for key in self.redis.scan_iter(match=f"{PREFIX}proc:*", count=500):
            tokens.add((key.decode() if isinstance(key, bytes) else key).rsplit(":", 1)[1])
        return tokens

    async def _beat(self) -> None:
        await self.redis.set(f"{PREFIX}proc:{self.token}", "1", ex=PROCESS_TTL_S)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._beat()
                await self._renew_leases()
            except Exception as exc:  # Redis blip: the next beat retries
                logger.warning("actor directory heartbeat failed: {}", exc)

    # --- leases --------------------------------------------------------------------------

    async def _acquire(self, pipeline_id: UUID) -> str | None:
        """Our lease value if we hold (or just took) the lease, else None."""
        if pipeline_id in self.leases:
            return self.leases[pipeline_id]
        fence = await self.redis.incr(f"{PREFIX}fence:{pipeline_id}")
        value = f"{self.token}:{fence}"
        if await self.redis.set(_lease_key(pipeline_id), value, nx=True, px=LEASE_MS):
            self.leases[pipeline_id] = value
            return value
        return None

    async def _owner(self, pipeline_id: UUID) -> tuple[str, str]:
        """(owner token, lease value) — taking the lease when it is free."""
        if await self._acquire(pipeline_id):
            return self.token, self.leases[pipeline_id]
        raw = await self.redis.get(_lease_key(pipeline_id))
        if raw is None:  # expired between the two calls
            return await self._owner(pipeline_id)
        value = raw.decode() if isinstance(raw, bytes) else raw
        return value.split(":", 1)[0], value

    async def _renew_leases(self) -> None:
        for pipeline_id, value in list(self.leases.items()):
            renewed = await self._renew(keys=[_lease_key(pipeline_id)], args=[value, LEASE_MS])
            if not renewed:
                logger.warning("lost the lease on pipeline {}; stopping its actor", pipeline_id)
                self.leases.pop(pipeline_id, None)
                await self.supervisor.stop(pipeline_id)
            elif pipeline_id not in self.supervisor.slots:
                # The actor stopped (idle): let another process own the pipeline next time.
                await self._release(keys=[_lease_key(pipeline_id)], args=[value])
                self.leases.pop(pipeline_id, None)

    # --- asking --------------------------------------------------------------------------

    async def ask(
        self, pipeline_id: UUID, message: BaseModel, within: float = DEFAULT_TIMEOUT
    ) -> Any:
        for _attempt in range(3):
            owner, value = await self._owner(pipeline_id)
            if owner == self.token:
                return await self.ask_local(pipeline_id, message, within)
            reply = await self._forward(owner, pipeline_id, message, within)
            if reply is not None:
                return reply
            # Nobody listens on the owner's inbox: it is gone. Take the lease over.
            await self._release(keys=[_lease_key(pipeline_id)], args=[value])
        raise ActorStopped(f"no process could take pipeline {pipeline_id}")

    async def _forward(
        self, owner: str, pipeline_id: UUID, message: BaseModel, within: float
    ) -> Any | None:
        request_id = uuid.uuid4().hex
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = reply
        payload = {
            "id": request_id,
            "reply_to": self.token,
            "pipeline_id": str(pipeline_id),
            "within": within,
            "message": message_to_wire(message),
        }
        try:
            if not await self.redis.publish(_inbox(owner), orjson.dumps(payload)):
                return None
            answer = await asyncio.wait_for(reply, within)
        finally:
            self._waiting.pop(request_id, None)
        if "error" in answer:
            raise error_from_wire(answer["error"])
        return answer["value"]

    async def _listen(self) -> None:
        inbox, replies = _inbox(self.token), _replies(self.token)
        while True:
            try:
                async for raw in self._pubsub.listen():
                    channel = raw["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    data = orjson.loads(raw["data"])
                    if channel == replies:
                        waiter = self._waiting.get(data["id"])
                        if waiter is not None and not waiter.done():
                            waiter.set_result(data)
                    elif channel == inbox:
                        task = asyncio.create_task(self._serve(data))
                        self._serving.add(task)
                        task.add_done_callback(self._serving.discard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("actor directory listener restarting: {}", exc)
                await asyncio.sleep(0.5)

    async def _serve(self, request: dict[str, Any]) -> None:
        """A command forwarded to us as the owner: run it here, send the answer back."""
        pipeline_id = UUID(request["pipeline_id"])
        try:
            if pipeline_id not in self.leases:
                raise ActorStopped("this process no longer owns the pipeline; retry")
            message = message_from_wire(request["message"])
            answer: dict[str, Any] = {
                "value": await self.ask_local(pipeline_id, message, request["within"])
            }
        except ActorError as exc:
            answer = {"error": error_to_wire(exc)}
        except Exception as exc:
            logger.opt(exception=exc).error("forwarded command for {} failed", pipeline_id)
            answer = {"error": {"kind": "ActorError", "message": "the owner failed"}}
        answer["id"] = request["id"]
        await self.redis.publish(_replies(request["reply_to"]), orjson.dumps(answer))
