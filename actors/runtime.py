"""A small actor runtime: an actor is a coroutine draining a bounded mailbox; a supervisor
starts actors on demand, restarts one that crashes (with backoff) and stops idle ones.

Messages are handled one at a time, so an actor's state needs no locks. A handler that must
wait for long work (a pipeline run, a dry run) starts a task and returns `Deferred(task)`: the
caller's reply waits for the task while the mailbox keeps flowing (a cancel must get through
while a run is going).

Errors: an `ActorError` raised by a handler is an answer ("no such execution", "cannot retry
a running execution") and goes back to the caller; any other exception is a crash: it goes
back to the caller too, and the supervisor restarts the actor (`on_start` runs again and
rebuilds state from storage).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from loguru import logger

DEFAULT_MAILBOX_SIZE = 256
DEFAULT_ASK_TIMEOUT = 30.0


class ActorError(Exception):
    """An expected refusal: returned to the caller, the actor keeps running."""


class MailboxFull(ActorError):
    pass


class ActorStopped(ActorError):
    pass


@dataclass
class Deferred:
    """A reply that is not ready yet: the runtime awaits `awaitable` outside the mailbox."""

    awaitable: Awaitable[Any]


@dataclass
class _Envelope:
    message: Any
    reply: asyncio.Future[Any] | None


class Actor:
    """Subclass and implement `handle`. `on_start` runs before the first message (and again
    after a restart), `on_stop` when the actor stops; `busy()` keeps an idle actor alive."""

    def __init__(self, key: Hashable, mailbox_size: int = DEFAULT_MAILBOX_SIZE):
        self.key = key
        self.mailbox: asyncio.Queue[_Envelope] = asyncio.Queue(mailbox_size)
        self.last_activity = time.monotonic()
        self.stopped = False

    # --- to override ---------------------------------------------------------------------

    async def handle(self, message: Any) -> Any:
        raise NotImplementedError

    async def on_start(self) -> None:
        return None

    async def on_stop(self) -> None:
        return None

    def busy(self) -> bool:
        return False

    # --- sending -------------------------------------------------------------------------

    async def ask(self, message: Any, within: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Envelope(message, reply))
        return await asyncio.wait_for(asyncio.shield(reply), within)

    def tell(self, message: Any) -> None:
        self._put(_Envelope(message, None))

    def _put(self, envelope: _Envelope) -> None:
        if self.stopped:
            raise ActorStopped(f"actor {self.key} has stopped")
        try:
            self.mailbox.put_nowait(envelope)
        except asyncio.QueueFull:
            raise MailboxFull(f"actor {self.key} is overloaded; try again shortly") from None
        self.last_activity = time.monotonic()

    # --- the loop ------------------------------------------------------------------------

    async def run_loop(self) -> None:
        """Drain the mailbox until cancelled; a crash propagates to the supervisor."""
        await self.on_start()
        while True:
            envelope = await self.mailbox.get()
            self.last_activity = time.monotonic()
            try:
                result = await self.handle(envelope.message)
            except ActorError as exc:
                _settle(envelope.reply, error=exc)
                continue
            except Exception as exc:
                _settle(envelope.reply, error=exc)
                raise
            if isinstance(result, Deferred):
                _chain(result.awaitable, envelope.reply)
            else:
                _settle(envelope.reply, value=result)

    def fail_pending(self, error: BaseException) -> None:
        """Answer every waiting caller (the actor is stopping or restarting)."""
        while not self.mailbox.empty():
            _settle(self.mailbox.get_nowait().reply, error=error)


def _settle(
    reply: asyncio.Future[Any] | None, value: Any = None, error: BaseException | None = None
) -> None:
    if reply is None or reply.done():
        return
    if error is not None:
        reply.set_exception(error)
    else:
        reply.set_result(value)


def _chain(awaitable: Awaitable[Any], reply: asyncio.Future[Any] | None) -> None:
    task = asyncio.ensure_future(awaitable)

    def done(finished: asyncio.Future[Any]) -> None:
        if finished.cancelled():
            _settle(reply, error=ActorStopped("the work was cancelled"))
        elif finished.exception() is not None:
            _settle(reply, error=finished.exception())
        else:
            _settle(reply, value=finished.result())

    task.add_done_callback(done)


ActorFactory = Callable[[Hashable], Actor]


@dataclass
class _Slot:
    actor: Actor
    task: asyncio.Task[None]
    restarts: int = 0


class Supervisor:
    """Owns the actors of one process: spawn on demand, restart on crash, stop when idle."""

    def __init__(
        self,
        factory: ActorFactory,
        *,
        idle_seconds: float = 300.0,
        max_backoff: float = 30.0,
        reap_interval: float = 10.0,
    ):
        self.factory = factory
        self.idle_seconds = idle_seconds
        self.max_backoff = max_backoff
        self.reap_interval = reap_interval
        self.slots: dict[Hashable, _Slot] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever(), name="actor-reaper")

    async def close(self) -> None:
        self._closing = True
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for key in list(self.slots):
            await self.stop(key)

    def get(self, key: Hashable) -> Actor:
        """The live actor for `key`, started if needed."""
        if self._closing:
            raise ActorStopped("the process is shutting down")
        slot = self.slots.get(key)
        if slot is None:
            actor = self.factory(key)
            slot = _Slot(actor, asyncio.create_task(self._supervise(key, actor)))
            self.slots[key] = slot
        return slot.actor

    async def ask(self, key: Hashable, message: Any, within: float | None = None) -> Any:
        return await self.get(key).ask(message, within=within)

    async def stop(self, key: Hashable) -> None:
        slot = self.slots.pop(key, None)
        if slot is None:
            return
        slot.actor.stopped = True
        slot.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await slot.task
        slot.actor.fail_pending(ActorStopped(f"actor {key} stopped"))
        with contextlib.suppress(Exception):
            await slot.actor.on_stop()

    async def _supervise(self, key: Hashable, actor: Actor) -> None:
        """Run the actor's loop; after a crash wait (exponential backoff) and run it again."""
        restarts = 0
        while True:
            try:
                await actor.run_loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                restarts += 1
                delay = min(self.max_backoff, 0.1 * 2 ** (restarts - 1))
                logger.opt(exception=exc).error(
                    "actor {} crashed (restart #{} in {:.1f}s)", key, restarts, delay
                )
                slot = self.slots.get(key)
                if slot is not None:
                    slot.restarts = restarts
                await asyncio.sleep(delay)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            await self.reap_idle()

    async def reap_idle(self) -> None:
        now = time.monotonic()
        for key, slot in list(self.slots.items()):
            actor = slot.actor
            idle = now - actor.last_activity > self.idle_seconds
            if idle and actor.mailbox.empty() and not actor.busy():
                logger.debug("stopping idle actor {}", key)
                await self.stop(key)
