"""The per-process hub: connections by topic, fed by ONE bus subscription per process.

Each event is serialised once and handed to every local socket subscribed to its topic.
Auth events (`user.logged_out|updated|deleted`, on `user:<id>`), from any process, make the hub
re-check that user's sockets here and close those whose session ended. A gap in a topic's live
sequence is filled from storage (`_replay`) before later events of it are delivered.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from pydantic import ValidationError
from tortoise import connections

from actors.bus.base import BusEvent, EventBus, Subscription
from actors.bus.outbox import bus_event_from_row
from actors.pipeline_actor import log_view
from app.auth.principal import PrincipalCache
from app.monitoring.sampler import MetricsSampler
from app.monitoring.service import PipelineMonitor
from app.realtime import protocol
from app.realtime.connection import CLOSE_UNAUTHORIZED, Connection
from app.realtime.recorder import ConnectionRecorder
from app.realtime.topics import METRIC_TOPICS, authorize
from storage.models import Event, ExecutionLog
from storage.sequences import last_seq

REPLAY_PAGE = 500
LOGS_PREFIX = "logs:"
# Events after which a user's sockets must be re-checked (their session may have ended).
AUTH_EVENTS = frozenset({"user.logged_out", "user.updated", "user.deleted"})
MAX_REPLAY_BUFFER = 50_000


class Hub:
    def __init__(
        self,
        bus: EventBus,
        principals: PrincipalCache,
        recorder: ConnectionRecorder,
        sampler: MetricsSampler,
        pipelines: PipelineMonitor,
        max_topics: int,
    ):
        self.bus = bus
        self.principals = principals
        self.recorder = recorder
        self.sampler = sampler
        self.pipelines = pipelines
        self.max_topics = max_topics
        self.by_topic: dict[str, set[Connection]] = defaultdict(set)
        self.by_user: dict[UUID, set[Connection]] = defaultdict(set)
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self.recorder.start()
        self._subscription = await self.bus.subscribe("*", self._on_event)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
        await self.sampler.close()
        for conn in [c for conns in self.by_user.values() for c in conns]:
            conn.close(1001, "server shutting down")
        await self.recorder.close()

    # --- connections --------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self.by_user.values())

    def send_backlog(self) -> int:
        return sum(c.backlog for conns in self.by_user.values() for c in conns)

    def attach(self, conn: Connection) -> None:
        self.by_user[conn.principal.id].add(conn)
        self.recorder.opened(conn)

    def detach(self, conn: Connection) -> None:
        conn.closing = True
        for topic in list(conn.topics):
            self._forget(conn, topic)
        user_conns = self.by_user.get(conn.principal.id)
        if user_conns is not None:
            user_conns.discard(conn)
            if not user_conns:
                del self.by_user[conn.principal.id]
        self.recorder.closed(conn)

    def _forget(self, conn: Connection, topic: str) -> None:
        conn.topics.pop(topic, None)
        conn.release(topic)
        if topic in METRIC_TOPICS:
            self.sampler.remove(conn, topic)
            return
        subscribers = self.by_topic.get(topic)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self.by_topic[topic]

    # --- bus → sockets ------------------------------------------------------------------

    def _on_event(self, event: BusEvent) -> None:
        self.pipelines.observe(event)
        if event.type in AUTH_EVENTS:
            self._spawn(self._recheck_user(UUID(event.entity_id)))
        subscribers = self.by_topic.get(event.topic)
        if not subscribers:
            return
        text = protocol.event_message(event)
        for conn in list(subscribers):
            if conn.deliver(event.topic, event.seq, text):
                self._spawn(self._replay(conn, event.topic, conn.topics[event.topic]))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recheck_user(self, user_id: UUID) -> None:
        """Close this user's sockets whose session no longer holds (logout, deletion...)."""
        conns = list(self.by_user.get(user_id, ()))
        if not conns:
            return
        self.principals.forget_user(user_id)
        for conn in conns:
            principal = await self.principals.get(user_id, conn.principal.session_id)
            if principal is None:
                conn.close(CLOSE_UNAUTHORIZED, "session ended")
            else:
                conn.principal = principal  # e.g. a new role

    # --- client → server ----------------------------------------------------------------

    async def handle(self, conn: Connection, raw: str | bytes) -> None:
        if not conn.take_token():
            if conn.last_rate_error + 1 < asyncio.get_running_loop().time():
                conn.last_rate_error = asyncio.get_running_loop().time()
                conn.send(protocol.error_message("rate_limited", "Too many messages; slow down."))
            return
        try:
            message = protocol.client_message.validate_json(raw)
        except ValidationError as exc:
            detail = "; ".join(
                f"{'/'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}"
                for e in exc.errors(include_url=False)[:5]
            )
            conn.send(protocol.error_message("invalid_message", detail))
            return
        if isinstance(message, protocol.Subscribe):
            await self.subscribe(conn, message)
        elif isinstance(message, protocol.Unsubscribe):
            self.unsubscribe(conn, message.topics)
        elif isinstance(message, protocol.Ping):
            conn.send(protocol.PONG)

    async def subscribe(self, conn: Connection, message: protocol.Subscribe) -> None:
        accepted: list[str] = []
        for requested in dict.fromkeys(message.topics):
            topic = await authorize(conn.principal, requested)
            if topic is None:
                conn.send(
                    protocol.error_message(
                        "forbidden_topic",
                        f"You cannot subscribe to {requested!r}: unknown or not visible to you.",
                        requested,
                    )
                )
                continue
            if topic not in conn.topics and len(conn.topics) >= self.max_topics:
                conn.send(
                    protocol.error_message(
                        "too_many_topics", f"At most {self.max_topics} topics per socket.", topic
                    )
                )
                continue
            accepted.append(topic)
        if not accepted:
            return
        for topic in accepted:
            if topic in METRIC_TOPICS:
                conn.topics[topic] = 0
                self.sampler.add(conn, topic, message.interval_ms)
            elif topic not in conn.topics or message.since is not None:
                conn.topics[topic] = 0
                if message.since is not None:
                    conn.hold(topic)
                self.by_topic[topic].add(conn)
        self.recorder.topics_changed(conn)
        conn.send(protocol.subscribed_message(accepted))
        if message.since is not None:
            for topic in accepted:
                if topic not in METRIC_TOPICS:
                    await self._replay(conn, topic, message.since)

    def unsubscribe(self, conn: Connection, topics: list[str]) -> None:
        removed = []
        for requested in topics:
            topic = self._own_name(conn, requested)
            if topic in conn.topics:
                self._forget(conn, topic)
                removed.append(topic)
        conn.send(protocol.unsubscribed_message(removed))

    @staticmethod
    def _own_name(conn: Connection, topic: str) -> str:
        return f"notifications:{conn.principal.id}" if topic == "notifications" else topic.lower()

    # --- resume -------------------------------------------------------------------------

    async def _replay(self, conn: Connection, topic: str, since: int) -> None:
        """Stored events with seq > since in order, then the live ones held meanwhile, each
        once. If the stored history no longer reaches back to `since`, the client is told to
        resync (reload state over REST) and stays subscribed to what comes next."""
        try:
            if not topic.startswith(LOGS_PREFIX) and await _history_lost(topic, since):
                conn.topics[topic] = await last_seq(connections.get("default"), topic)
                conn.send(
                    protocol.error_message(
                        "resync_required",
                        f"History of {topic} no longer reaches seq {since}; reload and "
                        "subscribe again without `since`.",
                        topic,
                    )
                )
                return
            after = since
            while not conn.closing:
                events = await _stored_after(topic, after)
                for event in events:
                    conn.topics[topic] = event.seq
                    await conn.send_paced(protocol.event_message(event))
                if len(events) < REPLAY_PAGE:
                    break
                after = events[-1].seq
                if conn.held(topic) > MAX_REPLAY_BUFFER:
                    conn.close_too_slow()
                    return
        finally:
            for seq, text in conn.release(topic):
                if topic in conn.topics and seq > conn.topics[topic]:
                    conn.topics[topic] = seq
                    conn.send(text)


async def _history_lost(topic: str, since: int) -> bool:
    """True if stored events after `since` are gone (retention), or `since` is ahead of the
    topic (its history was reset)."""
    current = await last_seq(connections.get("default"), topic)
    if since >= current:
        return since > current
    first = await Event.filter(topic=topic, seq__gt=since).order_by("seq").first()
    return first is None or first.seq != since + 1


async def _stored_after(topic: str, after: int) -> list[BusEvent]:
    """The next page of a topic's history: the events table, or for `logs:<execution>` the
    execution's log lines (their row id is that topic's sequence)."""
    if topic.startswith(LOGS_PREFIX):
        execution_id = topic.removeprefix(LOGS_PREFIX)
        rows = (
            await ExecutionLog.filter(execution_id=execution_id, id__gt=after)
            .order_by("id")
            .limit(REPLAY_PAGE)
        )
        return [
            BusEvent(
                topic=topic,
                seq=row.id,
                type="execution.log",
                entity_type="execution",
                entity_id=execution_id,
                data=log_view(row),
                created_at=row.ts,
            )
            for row in rows
        ]
    rows = await Event.filter(topic=topic, seq__gt=after).order_by("seq").limit(REPLAY_PAGE)
    return [bus_event_from_row(row) for row in rows]
