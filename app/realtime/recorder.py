"""websocket_connections rows: who is connected where, written in batches.

Opening and closing a socket only notes the change; a flush task writes the notes every
WS_RECORD_FLUSH_SECONDS (one insert batch, one delete) and refreshes `last_ping` of every
live socket of this process with a single UPDATE every WS_LAST_PING_SECONDS. At start-up the
rows of this process's predecessor (same host, port and worker slot) are deleted, and so are
rows of any process that stopped refreshing them (3 refresh intervals), i.e. that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

from loguru import logger
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from app.realtime.connection import Connection
from storage.models import WebSocketConnection


class ConnectionRecorder:
    def __init__(self, process_token: str, flush_seconds: float, last_ping_seconds: float):
        self.process_token = process_token
        self.flush_seconds = flush_seconds
        self.last_ping_seconds = last_ping_seconds
        self._opened: dict[UUID, WebSocketConnection] = {}
        self._closed: set[UUID] = set()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        removed = await self._delete_dead(including_predecessor=True)
        if removed:
            logger.info("removed {} websocket_connections rows of dead processes", removed)
        self._task = asyncio.create_task(self._run(), name="ws-recorder")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await WebSocketConnection.filter(process_token=self.process_token).delete()

    def opened(self, conn: Connection) -> None:
        now = datetime.now(UTC)
        self._opened[conn.id] = WebSocketConnection(
            id=conn.id,
            user_id=conn.principal.id,
            process_token=self.process_token,
            topics=[],
            remote_addr=conn.remote_addr[:64],
            connected_at=now,
            last_ping=now,
        )

    def closed(self, conn: Connection) -> None:
        if self._opened.pop(conn.id, None) is None:
            self._closed.add(conn.id)

    def topics_changed(self, conn: Connection) -> None:
        # Topics are written with the row when it is still pending; later changes are not
        # persisted per message (the registry in memory is the source of truth).
        pending = self._opened.get(conn.id)
        if pending is not None:
            pending.topics = sorted(conn.topics)[:50]

    async def _run(self) -> None:
        next_ping = time.monotonic() + self.last_ping_seconds
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
                if time.monotonic() >= next_ping:
                    next_ping = time.monotonic() + self.last_ping_seconds
                    await self._refresh_last_ping()
                    await self._delete_dead(including_predecessor=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("writing websocket_connections failed; retrying")

    async def flush(self) -> None:
        opened, self._opened = list(self._opened.values()), {}
        closed, self._closed = list(self._closed), set()
        if opened:
            try:
                await WebSocketConnection.bulk_create(opened, batch_size=500)
            except IntegrityError:
                # A user deleted meanwhile breaks the batch on its foreign key: go one by one.
                for row in opened:
                    with contextlib.suppress(IntegrityError):
                        await row.save(force_create=True)
        if closed:
            await WebSocketConnection.filter(id__in=closed).delete()

    async def _refresh_last_ping(self) -> None:
        await WebSocketConnection.filter(process_token=self.process_token).update(
            last_ping=datetime.now(UTC)
        )

    async def _delete_dead(self, including_predecessor: bool) -> int:
        stale = Q(last_ping__lt=datetime.now(UTC) - timedelta(seconds=3 * self.last_ping_seconds))
        if including_predecessor:
            stale |= Q(process_token=self.process_token)
        return await WebSocketConnection.filter(stale).delete()
