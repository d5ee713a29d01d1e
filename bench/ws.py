"""WebSocket fan-out: N authenticated subscribers of one topic on the real server, against a
bare `websockets` broadcast server (bench/ws_bare.py) with the same client code, in one run.

    .venv/bin/python bench/ws.py [--clients 1000,5000] [--events 20] [--rate 2] [--procs 4]
                                 [--repeat 3]

Our server: `aggregator serve` (embedded mode, fresh SQLite in a temp dir) started as a
subprocess with BENCH_HOOKS=true, which enables the admin-only POST /api/v1/bench/publish:
the server publishes `events` events at `rate`/s on the bus (the path every live event takes:
bus → hub → per-socket send path), each stamped with its publish time. Clients (spread over
`procs` processes so they are not the bottleneck) record publish-to-receive latency per
message. Memory: the server's RSS before and after connecting and subscribing N clients.
Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- clients (run in worker processes) ------------------------------------------------------


async def _client_run(url, token, topic, n_clients, expected, ready, go, deadline_s):
    """Connect and subscribe `n_clients` sockets, report ready, then count what arrives."""
    latencies: list[float] = []
    delivered = [0] * n_clients
    sockets = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(i: int):
        async with gate:
            ws = await websockets.connect(
                url,
                subprotocols=["bearer", token] if token else None,
                open_timeout=60,
                ping_interval=None,
                max_queue=None,
            )
            await ws.send(json.dumps({"type": "subscribe", "topics": [topic]}))
            answer = json.loads(await ws.recv())
            assert answer["type"] == "subscribed", answer
            sockets.append((i, ws))

    await asyncio.gather(*(connect(i) for i in range(n_clients)))
    ready.put(len(sockets))

    async def receive(i: int, ws) -> None:
        while delivered[i] < expected:
            raw = await ws.recv()
            now = time.time()
            message = json.loads(raw)
            if message.get("type") == "event" and message.get("event") == "bench.tick":
                latencies.append(now - message["data"]["sent_at"])
                delivered[i] += 1

    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    tasks = [asyncio.create_task(receive(i, ws)) for i, ws in sockets]
    await asyncio.wait(tasks, timeout=deadline_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(ws.close() for _, ws in sockets), return_exceptions=True)
    return sum(delivered), latencies


def client_process(url, token, topic, n_clients, expected, ready, go, deadline_s, results):
    raise_fd_limit()
    delivered, latencies = asyncio.run(
        _client_run(url, token, topic, n_clients, expected, ready, go, deadline_s)
    )
    results.put((delivered, latencies))


class ClientFleet:
    def __init__(self, url, token, topic, n_clients, procs, expected, deadline_s):
        ctx = mp.get_context("spawn")
        self.ready, self.results, self.go = ctx.Queue(), ctx.Queue(), ctx.Event()
        shares = [n_clients // procs + (1 if i < n_clients % procs else 0) for i in range(procs)]
        self.processes = [
            ctx.Process(
                target=client_process,
                args=(
                    url,
                    token,
                    topic,
                    share,
                    expected,
                    self.ready,
                    self.go,
                    deadline_s,
                    self.results,
                ),
            )
            for share in shares
            if share
        ]

    def connect(self) -> int:
        for process in self.processes:
            process.start()
        return sum(self.ready.get(timeout=300) for _ in self.processes)

    def collect(self) -> tuple[int, list[float]]:
        delivered, latencies = 0, []
        for _ in self.processes:
            d, lat = self.results.get(timeout=600)
            delivered += d
            latencies += lat
        for process in self.processes:
            process.join(30)
        return delivered, latencies


# --- servers ------------------------------------------------------------------------------


class OurServer:
    name = "aggregator"

    def __init__(self, port: int):
        self.port = port
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-ws-"))
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            "DATA_DIR": str(self.data_dir),
            "ENVIRONMENT": "development",
            "BENCH_HOOKS": "true",
            "ACCESS_LOG": "false",
            "LOG_LEVEL": "WARNING",
            "LOGIN_RATE_LIMIT": "1000",
        }
        self.process: subprocess.Popen | None = None
        self.token = ""
        self.topic = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    def start(self) -> None:
        cli = [sys.executable, "-m", "app.cli"]
        subprocess.run([*cli, "migrate"], env=self.env, cwd=ROOT, check=True, capture_output=True)
        self.log = (self.data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [*cli, "serve", "--port", str(self.port)],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_fd_limit,
        )
        _wait_http(f"{self.base}/api/v1/health")
        with httpx.Client(base_url=self.base, timeout=30) as client:
            account = {"email": "bench@example.com", "password": PASSWORD, "full_name": "B"}
            client.post("/api/v1/auth/register", json=account).raise_for_status()
            credentials = {"email": account["email"], "password": PASSWORD}
            login = client.post("/api/v1/auth/login", json=credentials)
            login.raise_for_status()
            self.token = login.json()["access_token"]
            headers = {"Authorization": f"Bearer {self.token}"}
            pipeline = client.post("/api/v1/pipelines", headers=headers, json={"name": "bench"})
            self.topic = f"pipeline:{pipeline.json()['id']}"

    def publish(self, count: int, rate: float, payload_bytes: int) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            response = client.post(
                "/api/v1/bench/publish",
                headers={"Authorization": f"Bearer {self.token}"},
                json={
                    "topic": self.topic,
                    "count": count,
                    "rate": rate,
                    "payload_bytes": payload_bytes,
                },
            )
            response.raise_for_status()

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(30)


class BareServer:
    name = "bare-websockets"

    def __init__(self, port: int):
        self.port = port
        self.process: subprocess.Popen | None = None
        self.token = None
        self.topic = "pipeline:bench"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "ws_bare.py"), str(self.port)],
            stdout=subprocess.PIPE,
            preexec_fn=raise_fd_limit,
        )
        assert self.process.stdout.readline().strip() == b"ready"

    def publish(self, count: int, rate: float, payload_bytes: int) -> None:
        async def send() -> None:
            async with websockets.connect(self.ws_url) as ws:
                await ws.send(
                    json.dumps(
                        {
                            "type": "publish",
                            "topic": self.topic,
                            "count": count,
                            "rate": rate,
                            "payload_bytes": payload_bytes,
                        }
                    )
                )
                await ws.recv()

        asyncio.run(send())

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(30)


def _wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


# --- one measurement ----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _warm_up(url: str, token: str | None, topic: str, sockets: int = 50) -> None:
    for _ in range(sockets):
        async with websockets.connect(url, subprotocols=["bearer", token] if token else None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": [topic]}))
            await ws.recv()


def measure(server_cls, n_clients: int, args) -> dict:
    server = server_cls(free_port())
    try:
        server.start()
        pid = server.process.pid
        # One-time costs (lazy imports, caches) of the first sockets are not per connection.
        asyncio.run(_warm_up(server.ws_url, server.token, server.topic))
        time.sleep(1.0)
        rss_before = psutil.Process(pid).memory_info().rss
        fleet = ClientFleet(
            server.ws_url,
            server.token,
            server.topic,
            n_clients,
            min(args.procs, n_clients),
            args.events,
            args.events / args.rate + 30,
        )
        started = time.monotonic()
        connected = fleet.connect()
        connect_s = time.monotonic() - started
        time.sleep(2.0)  # let per-connection bookkeeping settle before measuring
        rss_after = psutil.Process(pid).memory_info().rss
        fleet.go.set()
        time.sleep(0.5)
        cpu_before = psutil.Process(pid).cpu_times()
        server.publish(args.events, args.rate, args.payload_bytes)
        delivered, latencies = fleet.collect()
        cpu_after = psutil.Process(pid).cpu_times()
        cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    finally:
        server.stop()
    expected = n_clients * args.events
    return {
        "server": server.name,
        "clients": n_clients,
        "connected": connected,
        "connect_seconds": round(connect_s, 2),
        "events": args.events,
        "delivered": delivered,
        "expected": expected,
        "all_delivered": delivered == expected,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
            "max": round(max(latencies) * 1000, 2) if latencies else None,
            "mean": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        },
        "server_rss_mib": {
            "before": round(rss_before / 2**20, 1),
            "after_connect": round(rss_after / 2**20, 1),
        },
        "rss_per_connection_kib": round((rss_after - rss_before) / max(connected, 1) / 1024, 1),
        # CPU the server spent while publishing: its cost per delivered message, whatever
        # else runs on the machine (latency is sensitive to that; this is not).
        "server_cpu_seconds": round(cpu_s, 2),
        "server_cpu_us_per_message": round(cpu_s / max(delivered, 1) * 1e6, 1),
    }


def _median_run(results: list[dict]) -> dict:
    """The run with the median p99 (the middle one; the better of two)."""
    ordered = sorted(results, key=lambda r: r["latency_ms"]["p99"])
    return ordered[(len(ordered) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,5000")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="events per second")
    parser.add_argument("--payload-bytes", type=int, default=64)
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server and size")
    args = parser.parse_args()
    raise_fd_limit()
    runs = []
    for n in (int(x) for x in args.clients.split(",")):
        # Alternate the two servers so load from elsewhere on the machine hits both alike;
        # the checks use the median run of each.
        ours_runs, bare_runs = [], []
        for _ in range(args.repeat):
            ours_runs.append(measure(OurServer, n, args))
            bare_runs.append(measure(BareServer, n, args))
        ours, bare = _median_run(ours_runs), _median_run(bare_runs)
        runs.append(
            {
                "clients": n,
                "ours": ours,
                "bare": bare,
                "all_runs": {"ours": ours_runs, "bare": bare_runs},
                "checks": {
                    "every_event_to_every_client": all(r["all_delivered"] for r in ours_runs),
                    "p99_within_1_5x_bare": ours["latency_ms"]["p99"]
                    <= 1.5 * bare["latency_ms"]["p99"],
                    "p99_under_500ms": ours["latency_ms"]["p99"] < 500,
                    "rss_per_connection_under_32kib": ours["rss_per_connection_kib"] < 32,
                },
            }
        )
    print(
        json.dumps(
            {
                "bench": "ws",
                "machine": {
                    "cpus": os.cpu_count(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version(),
                    "websockets": websockets.__version__,
                },
                "params": vars(args),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
