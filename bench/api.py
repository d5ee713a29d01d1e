"""API throughput and latency: our real server against a bare Sanic app, in the same run.

Starts `aggregator serve` (embedded mode: SQLite in a fresh temporary DATA_DIR, one process),
registers the first user, logs in and creates 100 pipelines; starts bench/bare_sanic.py, which
answers with our `GET /api/v1/pipelines?limit=100` response from memory two ways (Sanic's json()
of the page as Python objects, and the pre-encoded bytes); then loads them with wrk for
GET /pipelines?limit=100 and POST /pipelines at each concurrency and prints one JSON document.
Both servers are pinned to CPU 0 and wrk to CPU 1 (taskset), so the load generator does not
steal the server's core.

    .venv/bin/python bench/api.py [--duration 10] [--warmup 3] [--concurrency 1,10,50]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from loadgen import wrk, wrk_version

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LIST_PATH = "/api/v1/pipelines"
ENCODED_PATH = f"{LIST_PATH}/encoded"  # bare only: the response's bytes, pre-encoded
SERVER_CPU = "0"
LOAD_CPU = "1"
ADMIN = {"email": "bench@example.com", "password": "bench-password-123"}
# Every setting our server reads from the environment is removed first, so the run does not
# depend on the caller's shell; these are then the only ones set.
SETTING_NAMES = frozenset(
    {
        "ENVIRONMENT", "HOST", "PORT", "DATA_DIR", "DATABASE_URL", "REDIS_URL", "SECRET_KEY",
        "ALLOWED_ORIGINS", "WORKERS", "LOG_LEVEL", "LOG_FORMAT", "SMTP_URL", "CLAMD_URL",
        "ACCESS_LOG", "ALLOW_SELF_REGISTRATION", "CONFIG_DIR", "LOGIN_RATE_LIMIT",
        "MAX_BODY_BYTES", "PROMETHEUS_MULTIPROC_DIR",
    }
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def canvas(index: int) -> dict[str, Any]:
    """A small React Flow canvas as the builder saves it: 3 to 5 nodes in a chain."""
    kinds = [
        ("source", {"connector": "postgres", "table": f"orders_{index}"}),
        ("filter", {"expression": "amount > 100 AND status = 'paid'"}),
        ("derive", {"column": "amount_eur", "expression": "amount * 0.92"}),
        ("aggregate", {"group_by": ["customer_id"], "metrics": {"amount_eur": "sum"}}),
        ("destination", {"connector": "dataset", "name": f"paid_orders_{index}"}),
    ]
    chosen = [*kinds[: 2 + index % 3], kinds[-1]]  # 3, 4 or 5 nodes
    nodes = [
        {
            "id": f"n{i}",
            "type": kind,
            "position": {"x": 80 + 220 * i, "y": 120 + 30 * (i % 2)},
            "data": {"label": kind.title(), "config": config},
            "width": 180,
            "height": 64,
        }
        for i, (kind, config) in enumerate(chosen)
    ]
    edges = [
        {"id": f"e{i}-{i + 1}", "source": f"n{i}", "target": f"n{i + 1}", "type": "smoothstep"}
        for i in range(len(nodes) - 1)
    ]
    return {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 0.9}}


def pipeline_body(index: int) -> dict[str, Any]:
    return {
        "name": f"Paid orders {index}",
        "description": "Paid orders per customer, converted to EUR.",
        "visual_definition": canvas(index),
        "schedule": "0 * * * *" if index % 2 else None,
    }


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; log:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base_url + path, timeout=1.0).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start in {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, argv: list[str], env: dict[str, str], log_path: Path, port: int) -> Server:
    log = log_path.open("wb")
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *argv],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Server(name, process, port, log_path)


def our_environment(data_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    settings = {"ENVIRONMENT": "development", "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(settings, PYTHONUNBUFFERED="1")
    return env, settings


def seed(server: Server, pipelines: int) -> tuple[str, bytes]:
    """First user (admin), a token, the pipelines; returns the token and the list response."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.post("/api/v1/auth/register", json=ADMIN).raise_for_status()
        login = client.post("/api/v1/auth/login", json=ADMIN)
        login.raise_for_status()
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for index in range(pipelines):
            client.post(LIST_PATH, json=pipeline_body(index), headers=headers).raise_for_status()
        listing = client.get(LIST_PATH, params={"limit": 100}, headers=headers)
        listing.raise_for_status()
        assert len(listing.json()["items"]) == min(pipelines, 100)
        return token, listing.content


def measure(
    url: str, connections: int, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    wrk(url, connections, args.warmup, env, cpu=LOAD_CPU)
    run = wrk(url, connections, args.duration, env, cpu=LOAD_CPU)
    return {
        "requests_per_s": round(run["requests_per_s"], 1),
        "p50_ms": run["latency_ms"]["p50"],
        "p99_ms": run["latency_ms"]["p99"],
        "max_ms": run["latency_ms"]["max"],
        "requests": run["requests"],
        "errors": {k: v for k, v in run["errors"].items() if v},
    }


def ratio(ours: dict[str, Any], peer: dict[str, Any]) -> float:
    return round(ours["requests_per_s"] / peer["requests_per_s"], 3)


def load_average() -> list[float]:
    """Other work on the machine skews the figures: recorded before and after the run."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def machine() -> dict[str, Any]:
    import sanic
    import tortoise

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sanic": sanic.__version__,
        "tortoise_orm": tortoise.__version__,
        # Tortoise parses SQLite timestamps with ciso8601 when present; Sanic uses uvloop.
        "accelerators": {name: installed(name) for name in ("ciso8601", "uvloop", "orjson")},
        "wrk": wrk_version(),
    }


def targets(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 2: GET at c=10 at least 0.3x bare with p99 < 20 ms; GET p99 < 200 ms at c=50."""
    by_key = {(r["endpoint"], r["concurrency"]): r for r in results}
    checks: dict[str, Any] = {}
    if (get10 := by_key.get(("GET", 10))) is not None:
        checks["get_c10_ratio_at_least_0.3"] = get10["ratio_rps"] >= 0.3
        checks["get_c10_ratio_vs_encoded_at_least_0.3"] = get10["ratio_rps_vs_encoded"] >= 0.3
        checks["get_c10_p99_under_20ms"] = get10["ours"]["p99_ms"] < 20
    if (get50 := by_key.get(("GET", 50))) is not None:
        checks["get_c50_p99_under_200ms"] = get50["ours"]["p99_ms"] < 200
    return checks


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    servers: list[Server] = []
    load_before = load_average()
    try:
        env, settings = our_environment(workdir / "data")
        subprocess.run(
            [PYTHON, "-m", "app.cli", "migrate"], cwd=ROOT, env=env, check=True,
            capture_output=True,
        )  # fmt: skip
        ours_port = free_port()
        ours = start(
            "ours",
            [PYTHON, "-m", "app.cli", "serve", "--port", str(ours_port)],
            env,
            workdir / "ours.log",
            ours_port,
        )
        servers.append(ours)
        ours.wait_ready("/api/v1/health")
        token, list_body = seed(ours, args.pipelines)

        list_file = workdir / "list.json"
        list_file.write_bytes(list_body)
        bare_port = free_port()
        bare = start(
            "bare",
            [PYTHON, str(ROOT / "bench" / "bare_sanic.py"), "--port", str(bare_port),
             "--list-body", str(list_file)],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            workdir / "bare.log",
            bare_port,
        )  # fmt: skip
        servers.append(bare)
        bare.wait_ready(LIST_PATH)
        assert httpx.get(f"{bare.base_url}{LIST_PATH}").json() == json.loads(list_body)
        assert httpx.get(f"{bare.base_url}{ENCODED_PATH}").content == list_body

        post_file = workdir / "post.json"
        post_file.write_bytes(json.dumps(pipeline_body(args.pipelines)).encode())
        endpoints = [
            ("GET", f"{LIST_PATH}?limit=100", {}),
            ("POST", LIST_PATH, {"BENCH_METHOD": "POST", "BENCH_BODY_FILE": str(post_file)}),
        ]
        results = []
        # GET first: POST adds rows, and the list must be measured on the 100 seeded ones.
        for method, path, extra in endpoints:
            for connections in args.concurrency:
                row: dict[str, Any] = {"endpoint": method, "concurrency": connections}
                row["ours"] = measure(
                    ours.base_url + path, connections, args, {**extra, "BENCH_TOKEN": token}
                )
                row["bare"] = measure(bare.base_url + path, connections, args, extra)
                row["ratio_rps"] = ratio(row["ours"], row["bare"])
                if method == "GET":
                    row["bare_encoded"] = measure(
                        bare.base_url + ENCODED_PATH, connections, args, extra
                    )
                    row["ratio_rps_vs_encoded"] = ratio(row["ours"], row["bare_encoded"])
                print(json.dumps(row), file=sys.stderr, flush=True)
                results.append(row)
        for server in servers:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} died during the run")
        return {
            "benchmark": "api",
            "machine": {
                **machine(),
                "load_average_before": load_before,
                "load_average_after": load_average(),
            },
            "settings": {
                "ours": {
                    "command": "python -m app.cli serve --port <free port> (after app.cli migrate)",
                    "mode": "embedded (SQLite in a fresh temporary DATA_DIR, one process)",
                    "environment": {**settings, "DATA_DIR": "<fresh temp dir>"},
                    "other_settings": "defaults (config/default.toml): ACCESS_LOG on, "
                    "records below WARNING dropped by the log sink",
                    "seeded_pipelines": args.pipelines,
                    "list_response_bytes": len(list_body),
                },
                "bare": {
                    "command": "python bench/bare_sanic.py (Sanic, single process)",
                    "access_log": False,
                    "get": "our list response held in memory as Python objects, answered "
                    "with Sanic's json() (ratio_rps)",
                    "get_encoded": "the exact bytes of our list response, from memory "
                    "(ratio_rps_vs_encoded)",
                    "post": "orjson-parses the body, answers 201 with a pipeline-shaped object",
                },
                "load": {
                    "tool": "wrk -t1 --timeout 10s, bench/wrk.lua",
                    "duration_s": args.duration,
                    "warmup_s": args.warmup,
                    "get_path": f"{LIST_PATH}?limit=100",
                    "post_body_bytes": post_file.stat().st_size,
                },
                "cpu_pinning": f"servers on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU} (taskset)",
                "latency_unit": "ms",
            },
            "results": results,
            "targets_issue_2": targets(results),
        }
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per run")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 10, 50],
        help="comma-separated connection counts",
    )
    parser.add_argument("--pipelines", type=int, default=100, help="pipelines to create")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
