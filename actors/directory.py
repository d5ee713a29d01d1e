"""Where a pipeline's actor lives. Every command for a pipeline goes through the directory,
which finds (or becomes) the pipeline's owner and delivers the message there.

- `InProcessDirectory` (embedded mode): this process owns every pipeline.
- `RedisDirectory` (scaled mode, actors/directory_redis.py): a Redis lease with expiry and a
  fencing token names the one owning process per pipeline; other processes forward commands
  to it over Redis.

Replies cross process boundaries, so `ask` always answers in wire form (JSON-ready values);
refusals are raised as the same ActorError subclasses everywhere.

The directory also knows which processes are alive. Executions whose owner is not alive
become `crashed` (at start-up and then periodically), so none is ever stuck `running`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from abc import ABC, abstractmethod
from typing import Any
from uuid import UUID

from loguru import logger
from pydantic import BaseModel

from actors.pipeline_actor import (
    MESSAGES,
    ConflictError,
    ExecutionEvents,
    InvalidPipeline,
    NotFoundError,
    crash_orphans,
)
from actors.runtime import ActorError, ActorStopped, MailboxFull, Supervisor
from engine.pipeline import Issue

DEFAULT_TIMEOUT = 30.0
ORPHAN_SWEEP_SECONDS = 10.0


def to_wire(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, UUID):
        return str(value)
    return value


def error_to_wire(exc: ActorError) -> dict[str, Any]:
    issues = [i.model_dump() for i in exc.issues] if isinstance(exc, InvalidPipeline) else None
    return {"kind": type(exc).__name__, "message": str(exc), "issues": issues}


_ERRORS: dict[str, type[ActorError]] = {
    cls.__name__: cls
    for cls in (NotFoundError, ConflictError, MailboxFull, ActorStopped, ActorError)
}


def error_from_wire(payload: dict[str, Any]) -> ActorError:
    if payload.get("kind") == "InvalidPipeline":
        issues = [Issue.model_validate(i) for i in payload.get("issues") or []]
        return InvalidPipeline(payload["message"], issues)
    return _ERRORS.get(payload.get("kind", ""), ActorError)(payload.get("message", "refused"))


def message_to_wire(message: BaseModel) -> dict[str, Any]:
    return {"kind": type(message).__name__, "body": message.model_dump(mode="json")}


def message_from_wire(payload: dict[str, Any]) -> BaseModel:
    return MESSAGES[payload["kind"]].model_validate(payload["body"])


class ActorDirectory(ABC):
    def __init__(self, supervisor: Supervisor, events: ExecutionEvents, token: str | None = None):
        self.supervisor = supervisor
        self.events = events
        self.token = token or uuid.uuid4().hex
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.supervisor.start()
        await self.sweep_orphans()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="orphan-sweeper")

    async def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.supervisor.close()

    @abstractmethod
    async def ask(
        self, pipeline_id: UUID, message: BaseModel, within: float = DEFAULT_TIMEOUT
    ) -> Any:
        """Deliver `message` to the pipeline's owner; the reply in wire form."""

    @abstractmethod
    async def live_tokens(self) -> set[str]:
        """Owner tokens of the processes that are alive."""

    async def ask_local(self, pipeline_id: UUID, message: BaseModel, within: float) -> Any:
        return to_wire(await self.supervisor.ask(pipeline_id, message, within=within))

    async def sweep_orphans(self) -> None:
        try:
            await crash_orphans(await self.live_tokens(), self.events)
        except Exception as exc:  # retried on the next sweep
            logger.opt(exception=exc).warning("orphan sweep failed")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(ORPHAN_SWEEP_SECONDS)
            await self.sweep_orphans()


class InProcessDirectory(ActorDirectory):
    """One process owns everything (embedded mode, or a single scaled web process)."""

    async def ask(
        self, pipeline_id: UUID, message: BaseModel, within: float = DEFAULT_TIMEOUT
    ) -> Any:
        return await self.ask_local(pipeline_id, message, within)

    async def live_tokens(self) -> set[str]:
        return {self.token}
