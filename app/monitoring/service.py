"""Snapshots of the machine and of pipeline activity, computed once and shared by every
subscriber and by GET /monitoring/system."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from actors.bus.base import BusEvent
from storage.models import Job, PipelineExecution, WebSocketConnection

ROWS_WINDOW_SECONDS = 10.0


@dataclass
class QueueDepths:
    """Where this process reads its queue depths from (set up by the service container)."""

    bus: Callable[[], int] = lambda: 0
    websocket_send: Callable[[], int] = lambda: 0
    websocket_connections: Callable[[], int] = lambda: 0


@dataclass
class SystemMonitor:
    data_dir: Path
    depths: QueueDepths = field(default_factory=QueueDepths)
    _process: psutil.Process = field(default_factory=psutil.Process)
    _last_net: tuple[float, int, int] | None = None

    def __post_init__(self) -> None:
        psutil.cpu_percent(None)  # the first call only primes the counter
        self._process.cpu_percent(None)

    async def snapshot(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self.data_dir if self.data_dir.exists() else Path.cwd()))
        return {
            "ts": datetime.now(UTC),
            "cpu": {
                "percent": psutil.cpu_percent(None),
                "count": psutil.cpu_count(),
                "load_1m": os.getloadavg()[0],
                "process_percent": self._process.cpu_percent(None),
            },
            "memory": {
                "total": memory.total,
                "available": memory.available,
                "percent": memory.percent,
                "process_rss": self._process.memory_info().rss,
            },
            "disk": {
                "path": str(self.data_dir),
                "total": disk.total,
                "free": disk.free,
                "percent": disk.percent,
            },
            "network": self._network(),
            "connections": {
                "websocket_this_process": self.depths.websocket_connections(),
                "websocket_all_processes": await WebSocketConnection.all().count(),
            },
            "queues": {
                "bus_subscribers": self.depths.bus(),
                "websocket_send": self.depths.websocket_send(),
                "jobs_queued": await Job.filter(status="queued").count(),
            },
        }

    def _network(self) -> dict[str, float]:
        counters = psutil.net_io_counters()
        now = time.monotonic()
        rates = {"bytes_sent_per_s": 0.0, "bytes_recv_per_s": 0.0}
        if self._last_net is not None:
            then, sent, recv = self._last_net
            elapsed = max(now - then, 1e-6)
            rates = {
                "bytes_sent_per_s": round((counters.bytes_sent - sent) / elapsed, 1),
                "bytes_recv_per_s": round((counters.bytes_recv - recv) / elapsed, 1),
            }
        self._last_net = (now, counters.bytes_sent, counters.bytes_recv)
        return {
            "bytes_sent": counters.bytes_sent,
            "bytes_recv": counters.bytes_recv,
            **rates,
        }


class PipelineMonitor:
    """Running and queued executions and recent failures from the database; rows/s from the
    step events seen on the bus over the last ROWS_WINDOW_SECONDS."""

    def __init__(self) -> None:
        self._rows: deque[tuple[float, int]] = deque(maxlen=100_000)

    def observe(self, event: BusEvent) -> None:
        if event.type in ("step.completed", "step.updated") and event.data.get("rows_out"):
            self._rows.append((time.monotonic(), int(event.data["rows_out"])))

    def rows_per_second(self) -> float:
        horizon = time.monotonic() - ROWS_WINDOW_SECONDS
        while self._rows and self._rows[0][0] < horizon:
            self._rows.popleft()
        return round(sum(rows for _, rows in self._rows) / ROWS_WINDOW_SECONDS, 1)

    async def snapshot(self) -> dict[str, Any]:
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        return {
            "ts": datetime.now(UTC),
            "running_executions": await PipelineExecution.filter(status="running").count(),
            "queued_executions": await PipelineExecution.filter(status="queued").count(),
            "failures_last_hour": await PipelineExecution.filter(
                status__in=("failed", "crashed"), updated_at__gte=hour_ago
            ).count(),
            "succeeded_last_hour": await PipelineExecution.filter(
                status="succeeded", updated_at__gte=hour_ago
            ).count(),
            "rows_per_second": self.rows_per_second(),
        }
