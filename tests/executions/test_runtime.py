"""The actor runtime on its own: replies, refusals, bounded mailboxes, deferred replies,
restarts after a crash and stopping idle actors."""

from __future__ import annotations

import asyncio

import pytest

from actors.runtime import Actor, ActorError, ActorStopped, Deferred, MailboxFull, Supervisor

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Counter(Actor):
    starts = 0

    def __init__(self, key, mailbox_size: int = 8):
        super().__init__(key, mailbox_size)
        self.count = 0
        self.gate = asyncio.Event()
        self.working = False

    async def on_start(self) -> None:
        type(self).starts += 1
        self.count = 0

    def busy(self) -> bool:
        return self.working

    async def handle(self, message):
        if message == "add":
            self.count += 1
            return self.count
        if message == "refuse":
            raise ActorError("not now")
        if message == "crash":
            raise RuntimeError("boom")
        if message == "slow":
            return Deferred(self.gate.wait())
        if message == "block":
            await self.gate.wait()
            return "unblocked"
        return None


async def test_replies_refusals_and_crash_restarts():
    Counter.starts = 0
    supervisor = Supervisor(Counter, idle_seconds=60, reap_interval=60)
    await supervisor.start()
    try:
        assert await supervisor.ask("a", "add") == 1
        assert await supervisor.ask("a", "add") == 2
        with pytest.raises(ActorError, match="not now"):
            await supervisor.ask("a", "refuse")
        assert await supervisor.ask("a", "add") == 3  # a refusal is no crash
        with pytest.raises(RuntimeError, match="boom"):
            await supervisor.ask("a", "crash")
        # Restarted (after its backoff) with fresh state from on_start.
        assert await supervisor.ask("a", "add", within=5) == 1
        assert Counter.starts == 2
        assert supervisor.slots["a"].restarts == 1
    finally:
        await supervisor.close()
    with pytest.raises(ActorStopped):
        supervisor.get("a")


async def test_deferred_replies_keep_the_mailbox_flowing():
    supervisor = Supervisor(Counter)
    await supervisor.start()
    try:
        actor = supervisor.get("b")
        slow = asyncio.ensure_future(actor.ask("slow"))
        assert await actor.ask("add", within=1) == 1  # answered while "slow" waits
        assert not slow.done()
        actor.gate.set()
        assert await slow is True
    finally:
        await supervisor.close()


async def test_a_full_mailbox_refuses_instead_of_growing():
    supervisor = Supervisor(lambda key: Counter(key, mailbox_size=2))
    await supervisor.start()
    try:
        actor = supervisor.get("c")
        blocked = asyncio.ensure_future(actor.ask("block"))
        await asyncio.sleep(0.05)  # the actor is inside "block"; the mailbox is empty
        actor.tell("add")
        actor.tell("add")
        with pytest.raises(MailboxFull):
            actor.tell("add")
        actor.gate.set()
        assert await blocked == "unblocked"
    finally:
        await supervisor.close()


async def test_idle_actors_stop_but_busy_ones_stay():
    supervisor = Supervisor(Counter, idle_seconds=0.05, reap_interval=60)
    await supervisor.start()
    try:
        await supervisor.ask("idle", "add")
        busy = supervisor.get("busy")
        busy.working = True
        await asyncio.sleep(0.1)
        await supervisor.reap_idle()
        assert "idle" not in supervisor.slots
        assert "busy" in supervisor.slots
        assert await supervisor.ask("idle", "add") == 1  # a new actor on demand
    finally:
        await supervisor.close()
