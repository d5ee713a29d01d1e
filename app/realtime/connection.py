"""One client socket: what it subscribed to, and a send path that never blocks the hub.

Fan-out calls `send` synchronously. While the socket keeps up, the frame is written straight
to the transport (as `websockets.broadcast` does): no task wake-up per message, which is what
keeps latency flat at thousands of sockets. Once the transport pushes back (its write buffer
is over the high-water mark), frames wait in a bounded queue drained by a writer task that
exists only while there is a backlog. A full queue means the client cannot keep up: it gets
a `slow_consumer` error and close code 4008, and its backlog is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from uuid import UUID, uuid4

from loguru import logger
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.protocol import OPEN

from app.auth.principal import Principal
from app.realtime.protocol import error_message

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4008
# Topics whose seq is a row id shared with other topics (gaps are normal there).
SPARSE_SEQ_PREFIXES = ("logs:",)


class Connection:
    __slots__ = (
        "__weakref__",
        "_queue",
        "_room",
        "_tokens",
        "_tokens_at",
        "_writer",
        "buffers",
        "burst",
        "closing",
        "id",
        "last_rate_error",
        "principal",
        "queue_limit",
        "rate",
        "remote_addr",
        "topics",
        "ws",
    )

    def __init__(
        self,
        ws: WebsocketImplProtocol,
        principal: Principal,
        queue_limit: int,
        rate: float,
        burst: int,
        remote_addr: str = "",
    ):
        self.id: UUID = uuid4()
        self.ws = ws
        self.principal = principal
        self.remote_addr = remote_addr
        self.queue_limit = queue_limit
        # topic -> last seq delivered (0: none yet); stored events are delivered once, in order
        self.topics: dict[str, int] = {}
        # topic -> live events held back while that topic's history is being replayed
        self.buffers: dict[str, list[tuple[int, bytes]]] | None = None
        self.closing = False
        # Created on the first backlog and dropped once drained: idle sockets stay small.
        self._queue: deque[bytes] | None = None
        self._writer: asyncio.Task | None = None
        self._room: asyncio.Event | None = None  # set when a paced sender may go on
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._tokens_at = time.monotonic()
        self.last_rate_error = 0.0

    # --- delivery -----------------------------------------------------------------------

    def deliver(self, topic: str, seq: int, text: bytes) -> bool:
        """A live event: dropped if already delivered (replay, relay), held during replay.

        True when it reveals a gap (an earlier event of the topic has not arrived: published
        out of order by another process, or lost in a bus reconnect): the event is held and
        the caller must fill the gap from storage."""
        if seq:
            if self.buffers is not None and topic in self.buffers:
                self.buffers[topic].append((seq, text))
                return False
            last = self.topics.get(topic, 0)
            if seq <= last:
                return False
            if last and seq > last + 1 and not topic.startswith(SPARSE_SEQ_PREFIXES):
                self.hold(topic)
                self.buffers[topic].append((seq, text))
                return True
            self.topics[topic] = seq
        self.send(text)
        return False

    def send(self, text: bytes) -> None:
        """Send one text message (UTF-8 JSON)."""
        if self.closing:
            return
        if self._writer is None and self._can_write_now():
            self._write_now(text)
            return
        if self._queue is None:
            self._queue = deque()
        elif len(self._queue) >= self.queue_limit:
            self.close_too_slow()
            return
        self._queue.append(text)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    async def send_paced(self, text: bytes) -> None:
        """Like `send`, but waits while the backlog is large (replays are paced by the client
        instead of overflowing the queue)."""
        if self.backlog > self.queue_limit // 2 and not self.closing:
            self._room = asyncio.Event()
            await self._room.wait()
        self.send(text)

    @property
    def backlog(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    def hold(self, topic: str) -> None:
        """Hold live events of `topic` back (its history is being replayed)."""
        if self.buffers is None:
            self.buffers = {}
        self.buffers[topic] = []

    def held(self, topic: str) -> int:
        return len(self.buffers.get(topic, ())) if self.buffers is not None else 0

    def release(self, topic: str) -> list[tuple[int, bytes]]:
        """The live events held back for `topic`; from now on they flow again."""
        if self.buffers is None:
            return []
        held = self.buffers.pop(topic, [])
        if not self.buffers:
            self.buffers = None
        return held

    def _can_write_now(self) -> bool:
        ws = self.ws
        io = ws.io_proto
        return (
            ws.ws_proto.state is OPEN
            and not ws.conn_mutex.locked()
            and io is not None
            and io.transport is not None
            and not io.transport.is_closing()
            and io._can_write.is_set()
        )

    def _write_now(self, text: bytes) -> None:
        proto = self.ws.ws_proto
        proto.send_text(text)
        transport = self.ws.io_proto.transport
        for data in proto.data_to_send():
            transport.write(data)

    async def _drain(self) -> None:
        try:
            while self._queue and not self.closing:
                # Sanic sends str as a text frame (bytes would become a binary frame).
                await self.ws.send(self._queue.popleft().decode())
                if self._room is not None and self.backlog <= self.queue_limit // 2:
                    self._room.set()
        except Exception as exc:  # the socket went away: the handler cleans up
            logger.debug("socket {} writer stopped: {!r}", self.id, exc)
            self.closing = True
        finally:
            self._writer = None
            self._queue = None
            if self._room is not None:
                self._room.set()  # a replay waiting for room must not wait forever

    # --- closing ------------------------------------------------------------------------

    def close_too_slow(self) -> None:
        logger.warning(
            "socket {} of user {} cannot keep up ({} queued): closing 4008",
            self.id,
            self.principal.id,
            self.backlog,
        )
        self._queue = None
        message = error_message(
            "slow_consumer", "You are not reading fast enough; reconnect with `since`."
        )
        self._close_now(CLOSE_TOO_SLOW, "too slow", last_words=message)

    def close(self, code: int, reason: str, last_words: bytes | None = None) -> None:
        self._queue = None
        self._close_now(code, reason, last_words)

    def _close_now(self, code: int, reason: str, last_words: bytes | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        if self._writer is not None:
            self._writer.cancel()
        ws = self.ws
        try:
            if last_words is not None and ws.ws_proto.state is OPEN and ws.io_proto:
                # Past the high-water mark on purpose: one small frame, then the close frame.
                self._write_now(last_words)
            ws.end_connection(code, reason)
        except Exception as exc:
            logger.debug("closing socket {} failed: {!r}", self.id, exc)

    # --- client message rate ------------------------------------------------------------

    def take_token(self) -> bool:
        """Token bucket: `rate` messages per second, bursts up to `burst`."""
        now = time.monotonic()
        self._tokens = min(self._tokens + (now - self._tokens_at) * self.rate, self.burst)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
