"""Real-time wiring for one process: hub, connection records, live metrics, outbox relay."""

from __future__ import annotations

import asyncio
import os
import socket
from hashlib import sha256

from actors.bus.base import EventBus
from actors.bus.outbox import outbox
from app.auth.principal import PrincipalCache
from app.logging import correlation_id
from app.monitoring.sampler import MetricsSampler
from app.monitoring.service import PipelineMonitor, QueueDepths, SystemMonitor
from app.realtime.hub import Hub
from app.realtime.recorder import ConnectionRecorder
from app.settings import Settings


def slot_token(settings: Settings) -> str:
    """Names this process's slot (host, data directory, worker): a restarted worker gets the
    same token, so it can remove the websocket_connections rows its predecessor left."""
    data_dir = sha256(str(settings.DATA_DIR.resolve()).encode()).hexdigest()[:8]
    worker = os.environ.get("SANIC_WORKER_NAME", "main")
    return f"{socket.gethostname()[:24]}:{data_dir}:{worker}"[:64]


class Realtime:
    def __init__(self, settings: Settings, bus: EventBus, principals: PrincipalCache):
        self.settings = settings
        self.bus = bus
        self.pipelines = PipelineMonitor()
        self.system = SystemMonitor(settings.DATA_DIR)
        sampler = MetricsSampler(
            {"metrics:system": self.system.snapshot, "metrics:pipelines": self.pipelines.snapshot},
            settings.METRICS_INTERVAL_MS,
        )
        recorder = ConnectionRecorder(
            slot_token(settings), settings.WS_RECORD_FLUSH_SECONDS, settings.WS_LAST_PING_SECONDS
        )
        self.hub = Hub(bus, principals, recorder, sampler, self.pipelines, settings.WS_MAX_TOPICS)
        self.system.depths = QueueDepths(
            bus=bus.queue_depth,
            websocket_send=self.hub.send_backlog,
            websocket_connections=lambda: self.hub.connection_count,
        )
        self._relay: asyncio.Task | None = None

    async def start(self) -> None:
        outbox.bus = self.bus
        outbox.correlation_id = correlation_id.get
        await self.hub.start()
        self._relay = asyncio.create_task(
            outbox.run_relay(
                self.settings.OUTBOX_RELAY_INTERVAL_SECONDS,
                self.settings.OUTBOX_RELAY_GRACE_SECONDS,
            ),
            name="outbox-relay",
        )

    async def close(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        await self.hub.close()
        outbox.bus = None
