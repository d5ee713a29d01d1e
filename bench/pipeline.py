"""Pipeline throughput through the real engine (a pipeline run by its actor in a real server)
against what a user would otherwise write by hand, in the same run. Prints one JSON document.

(a) CSV (5M rows) → filter → derive → aggregate → managed dataset;
    peers: raw Polars (the ceiling) and pandas.
(b) PostgreSQL table (1M rows) → PostgreSQL table;
    peers: `psql \\copy` out and in (the ceiling) and pandas (read_sql + to_sql).

For every contender: seconds, rows/s and peak RSS of the process doing the work (the server
for our runs, a fresh subprocess for each peer), sampled every 20 ms. Our seconds run from the
POST that starts a run to the moment the client hears it finished: the execution's terminal
event on the WebSocket, the way the frontend follows a run. After the timed runs, wrk polls
`GET /executions/{id}` over 10 connections, as fast as it is answered, for 4 s with no run
going and then for 4 s while runs go back to back: p50/p99 of those answers show whether a
run starves the event loop. Results are compared with the peers' results.

With `--repeat N` (CSV case) ours and the peers take turns N times and the median run of each
is reported, with every run's seconds beside it.

    .venv/bin/python bench/pipeline.py [--csv-rows 5000000] [--pg-rows 1000000] [--repeat 1]
                                       [--skip-csv] [--skip-pg] [--pg-url postgres://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import psutil
import websockets
from loadgen import wrk

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ADMIN = {"email": "bench@example.com", "password": "bench-password-123"}
PROBE_CONCURRENCY = 10
PROBE_SECONDS = 4
FILTER = "amount > 100"
TERMINAL = ("succeeded", "failed", "cancelled", "crashed")
TERMINAL_EVENTS = tuple(f"execution.{status}" for status in TERMINAL)
SERVER_ENV_DROP = ("DATABASE_URL", "REDIS_URL", "WORKERS", "PORT", "HOST")


# --- measuring ---------------------------------------------------------------------------


class PeakRss:
    """Samples a process's resident memory (with its children) every 20 ms."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        try:
            total = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                total += child.memory_info().rss
            return total
        except psutil.Error:
            return 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mib(value: int) -> float:
    return round(value / 2**20, 1)


def figures(name: str, rows: int, seconds: float, peak: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "peak_rss_mib": mib(peak),
        **extra,
    }


def run_peer(name: str, rows: int, code: str, env: dict[str, str] | None = None) -> dict:
    """`code` in a fresh interpreter; it prints its own work time (s) as the last line."""
    process = subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    with PeakRss(process.pid) as rss:
        out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed: {err[-2000:]}")
    return figures(name, rows, float(out.strip().splitlines()[-1]), rss.peak)


# --- the real server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, retry_cache: bool = True):
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_DROP}
        env.update(
            DATA_DIR=str(data_dir),
            ENVIRONMENT="development",
            SECRET_KEY="bench-secret-key-0123456789abcdef-0123456789",
            LOG_LEVEL="WARNING",
            ACCESS_LOG="false",
            PIPELINE_RETRY_CACHE=str(retry_cache).lower(),
        )
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        cli = [PYTHON, "-m", "app.cli"]
        subprocess.run([*cli, "migrate"], env=self.env, cwd=ROOT, check=True, capture_output=True)
        self.log = (self.data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [*cli, "serve", "--port", str(self.port), "--workers", "1"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/api/v1/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


class Api:
    def __init__(self, server: Server):
        self.server = server
        self.client = httpx.AsyncClient(base_url=server.base_url, timeout=120)
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        await self.client.post("/api/v1/auth/register", json={**ADMIN, "full_name": "Bench"})
        response = await self.client.post("/api/v1/auth/login", json=ADMIN)
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def post(self, path: str, body: dict | None = None) -> dict:
        response = await self.client.post(path, headers=self.headers, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"{path}: {response.status_code} {response.text}")
        return response.json()

    async def connector(self, type_: str, config: dict) -> str:
        body = {"name": type_, "type": type_, "config": config}
        return (await self.post("/api/v1/connectors", body))["id"]

    async def pipeline(self, name: str, nodes: list[dict], edges: list[tuple[str, str]]) -> str:
        definition = {
            "nodes": [
                {"id": n["id"], "data": {"node_type": n["type"], "config": n["config"]}}
                for n in nodes
            ],
            "edges": [
                {
                    "id": f"{a}-{b}",
                    "source": a,
                    "target": b,
                    "sourceHandle": "out",
                    "targetHandle": "in",
                }
                for a, b in edges
            ],
        }
        pipeline = await self.post(
            "/api/v1/pipelines", {"name": name, "visual_definition": definition}
        )
        validation = await self.post(f"/api/v1/pipelines/{pipeline['id']}/validate")
        if not validation["valid"]:
            raise RuntimeError(f"invalid pipeline: {validation['errors']}")
        return pipeline["id"]

    async def run_and_measure(self, name: str, pipeline_id: str, rows: int) -> dict:
        """One timed run, then the status API under load during another."""
        ours = await self.timed_run(name, pipeline_id, rows)
        return {**ours, **await self.status_api_during_runs(pipeline_id, ours["execution_id"])}

    async def timed_run(self, name: str, pipeline_id: str, rows: int) -> dict:
        """A run alone: throughput and the server's memory."""
        with PeakRss(self.server.process.pid) as rss:
            elapsed, execution_id = await self._run_watched(pipeline_id)
        url = f"/api/v1/executions/{execution_id}"
        final = (await self.client.get(url, headers=self.headers)).json()
        if final["status"] != "succeeded":
            raise RuntimeError(f"run failed: {final.get('error')}")
        return figures(
            name,
            rows,
            elapsed,
            rss.peak,
            server_seconds=_server_seconds(final),
            execution_id=execution_id,
        )

    async def status_api_during_runs(self, pipeline_id: str, finished_id: str) -> dict:
        """The status API polled by wrk (10 connections, as fast as they answer) for a few
        seconds with no run going, then as long again while runs of the pipeline go back to
        back, so that every request meets a run in progress."""
        url = f"{self.server.base_url}/api/v1/executions/{finished_id}"
        env = {"BENCH_TOKEN": self.headers["Authorization"].removeprefix("Bearer ")}
        idle = await asyncio.to_thread(wrk, url, PROBE_CONCURRENCY, PROBE_SECONDS, env)
        probes = asyncio.create_task(
            asyncio.to_thread(wrk, url, PROBE_CONCURRENCY, PROBE_SECONDS, env)
        )
        runs = 0
        while not probes.done():
            await self._run_watched(pipeline_id)
            runs += 1
        return {
            "status_api_during_runs": {**latency_figures(await probes), "runs": runs},
            "status_api_idle": latency_figures(idle),
        }

    async def _run_watched(self, pipeline_id: str) -> tuple[float, str]:
        """Seconds from the POST that starts a run to its terminal event on the WebSocket
        (subscribed before the POST, so no event can be missed), and the execution's id."""
        url = self.server.base_url.replace("http://", "ws://") + "/api/v1/ws"
        token = self.headers["Authorization"].removeprefix("Bearer ")
        async with websockets.connect(url, subprotocols=["bearer", token]) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": [f"pipeline:{pipeline_id}"]}))
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
            started = time.perf_counter()
            run = await self.post(f"/api/v1/pipelines/{pipeline_id}/run")
            execution_id = run["execution_id"]
            while True:
                message = json.loads(await ws.recv())
                if (
                    message["type"] == "event"
                    and message["event"] in TERMINAL_EVENTS
                    and message["data"]["execution_id"] == execution_id
                ):
                    return time.perf_counter() - started, execution_id


def latency_figures(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": run["requests"],
        "concurrency": PROBE_CONCURRENCY,
        "p50_ms": run["latency_ms"]["p50"],
        "p99_ms": run["latency_ms"]["p99"],
        "non_2xx_or_errors": sum(run["errors"].values()),
    }


def _server_seconds(execution: dict) -> float:
    from datetime import datetime

    started = datetime.fromisoformat(execution["started_at"])
    completed = datetime.fromisoformat(execution["completed_at"])
    return round((completed - started).total_seconds(), 3)


# --- (a) CSV → filter → derive → aggregate → dataset --------------------------------------


def write_csv(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    index = pl.int_range(0, rows, eager=False)
    pl.select(
        id=index,
        region=pl.format("region_{}", index % 50),
        amount=(index * 37 % 1000).cast(pl.Float64) / 3,
        qty=index % 7 + 1,
    ).write_csv(path)
    # On disk before anything reads it: otherwise the kernel writes the fresh file back while
    # the first contender (ours) runs, a cost the peers, running later, do not pay.
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


POLARS_PEER = """
    import sys, time
    import polars as pl
    started = time.perf_counter()
    (
        pl.scan_csv(sys.argv[1] if len(sys.argv) > 1 else {csv!r})
        .filter(pl.col("amount") > 100)
        .with_columns(total=pl.col("amount") * pl.col("qty"))
        .group_by("region")
        .agg(total=pl.col("total").sum(), n=pl.len(), avg_amount=pl.col("amount").mean())
        .sink_parquet({out!r}, engine="streaming")
    )
    print(time.perf_counter() - started)
"""

PANDAS_PEER = """
    import time
    import pandas as pd
    started = time.perf_counter()
    frame = pd.read_csv({csv!r})
    frame = frame[frame["amount"] > 100]
    frame = frame.assign(total=frame["amount"] * frame["qty"])
    result = frame.groupby("region", as_index=False).agg(
        total=("total", "sum"), n=("id", "size"), avg_amount=("amount", "mean")
    )
    result.to_parquet({out!r})
    print(time.perf_counter() - started)
"""


def median_run(results: list[dict]) -> dict:
    """The run with the median seconds (the lower one of an even count), with all runs'."""
    middle = statistics.median_low(result["seconds"] for result in results)
    chosen = next(result for result in results if result["seconds"] == middle)
    return {**chosen, "runs_seconds": [result["seconds"] for result in results]}


def same_aggregate(*frames: pl.DataFrame) -> bool:
    normalised = [
        f.select("region", "total", pl.col("n").cast(pl.Int64), "avg_amount").sort("region")
        for f in frames
    ]
    first = normalised[0]
    return all(
        f["region"].equals(first["region"])
        and f["n"].equals(first["n"])
        and ((f["total"] - first["total"]).abs() <= first["total"].abs() * 1e-9 + 1e-6).all()
        and ((f["avg_amount"] - first["avg_amount"]).abs() <= 1e-9).all()
        for f in normalised[1:]
    )


async def csv_case(api: Api, data_dir: Path, rows: int, repeat: int) -> dict:
    csv = data_dir / "bench_in" / "sales.csv"
    write_csv(csv, rows)
    source = await api.connector("file", {"path": "bench_in", "format": "csv"})
    pipeline_id = await api.pipeline(
        "csv to dataset",
        [
            {
                "id": "src",
                "type": "source.file",
                "config": {"connector_id": source, "stream": "sales.csv"},
            },
            {"id": "keep", "type": "transform.filter", "config": {"expression": FILTER}},
            {
                "id": "derive",
                "type": "transform.derive",
                "config": {"columns": [{"name": "total", "expression": "amount * qty"}]},
            },
            {
                "id": "agg",
                "type": "transform.aggregate",
                "config": {
                    "group_by": ["region"],
                    "aggregations": [
                        {"column": "total", "op": "sum", "as": "total"},
                        {"op": "count", "as": "n"},
                        {"column": "amount", "op": "mean", "as": "avg_amount"},
                    ],
                },
            },
            {"id": "ds", "type": "destination.dataset", "config": {"dataset": "bench_agg"}},
        ],
        [("src", "keep"), ("keep", "derive"), ("derive", "agg"), ("agg", "ds")],
    )
    polars_out, pandas_out = data_dir / "polars.parquet", data_dir / "pandas.parquet"
    runs: dict[str, list[dict]] = {"ours": [], "polars": [], "pandas": []}
    for _ in range(repeat):  # taking turns, so a burst of load elsewhere hits every contender
        runs["ours"].append(await api.timed_run("engine (actor, real server)", pipeline_id, rows))
        runs["polars"].append(
            run_peer("raw polars", rows, POLARS_PEER.format(csv=str(csv), out=str(polars_out)))
        )
        runs["pandas"].append(
            run_peer("pandas", rows, PANDAS_PEER.format(csv=str(csv), out=str(pandas_out)))
        )
    ours, polars_peer, pandas_peer = (median_run(runs[key]) for key in runs)
    ours.update(await api.status_api_during_runs(pipeline_id, ours["execution_id"]))
    expected = (pl.read_parquet(polars_out), pl.read_parquet(pandas_out))
    # Every version our runs wrote, the timed ones and those under the status probes.
    versions = sorted((data_dir / "datasets" / "bench_agg").glob("v*"))
    probed_runs = ours["status_api_during_runs"]["runs"]
    identical = len(versions) == repeat + probed_runs and all(
        same_aggregate(pl.read_parquet(version / "*.parquet"), *expected) for version in versions
    )
    return {
        "case": "csv -> filter -> derive -> aggregate -> dataset",
        "input_mib": mib(csv.stat().st_size),
        "results": [ours, polars_peer, pandas_peer],
        "vs_polars": round(ours["rows_per_s"] / polars_peer["rows_per_s"], 3),
        "vs_pandas": round(ours["rows_per_s"] / pandas_peer["rows_per_s"], 3),
        "identical_results": identical,
    }


# --- (b) PostgreSQL table → PostgreSQL table ----------------------------------------------


def psql_copy(url: str, dump: Path, rows: int) -> dict:
    """The ceiling: `\\copy` the table out to CSV and into an empty copy of it."""
    started = time.perf_counter()
    peak = 0
    for command in (f"\\copy src TO '{dump}' CSV", f"\\copy dst_copy FROM '{dump}' CSV"):
        process = subprocess.Popen(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", command])
        with PeakRss(process.pid) as rss:
            if process.wait() != 0:
                raise RuntimeError(f"psql failed: {command}")
        peak = max(peak, rss.peak)
    return figures("psql \\copy out + in", rows, time.perf_counter() - started, peak)


async def pg_case(api: Api, admin_url: str, rows: int, work: Path) -> dict:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        conn = await asyncpg.connect(url)
        await conn.execute(
            "CREATE TABLE src (id bigint PRIMARY KEY, region text, amount double precision, "
            "qty integer, note text)"
        )
        await conn.execute(
            "INSERT INTO src SELECT g, 'region_' || (g % 50), (g * 37 % 1000) / 3.0, g % 7 + 1, "
            f"md5(g::text) FROM generate_series(1, {rows}) g"
        )
        await conn.execute("ANALYZE src")
        parts = httpx.URL(url.replace("postgres://", "http://"))
        config = {
            "host": parts.host,
            "port": parts.port or 5432,
            "database": name,
            "user": parts.username or "postgres",
            "sslmode": "disable",
        }
        if parts.password:
            config["password"] = parts.password
        connector = await api.connector("postgres", config)
        pipeline_id = await api.pipeline(
            "table to table",
            [
                {
                    "id": "src",
                    "type": "source.postgres",
                    "config": {"connector_id": connector, "stream": "src"},
                },
                {
                    "id": "dst",
                    "type": "destination.postgres",
                    "config": {
                        "connector_id": connector,
                        "stream": "dst_engine",
                        "mode": "replace",
                    },
                },
            ],
            [("src", "dst")],
        )
        ours = await api.run_and_measure("engine (actor, real server)", pipeline_id, rows)

        await conn.execute("CREATE TABLE dst_copy (LIKE src)")
        copy_peer = await asyncio.to_thread(psql_copy, url, work / "src.csv", rows)
        pandas_peer = run_peer(
            "pandas (read_sql + to_sql)",
            rows,
            f"""
            import time
            import pandas as pd
            from sqlalchemy import create_engine
            engine = create_engine({url.replace("postgres://", "postgresql+psycopg2://")!r})
            started = time.perf_counter()
            frame = pd.read_sql("SELECT * FROM src", engine)
            frame.to_sql("dst_pandas", engine, if_exists="replace", index=False,
                         chunksize=10000, method="multi")
            print(time.perf_counter() - started)
            """,
        )
        checks = {}
        for table in ("src", "dst_engine", "dst_copy", "dst_pandas"):
            checks[table] = tuple(
                await conn.fetchrow(
                    f"SELECT count(*), sum(id), round(sum(amount)::numeric, 3), "
                    f"sum(qty), md5(string_agg(note, ',' ORDER BY id)) FROM {table}"
                )
            )
        await conn.close()
        return {
            "case": "postgres table -> postgres table",
            "results": [ours, copy_peer, pandas_peer],
            "vs_copy": round(ours["rows_per_s"] / copy_peer["rows_per_s"], 3),
            "vs_pandas": round(ours["rows_per_s"] / pandas_peer["rows_per_s"], 3),
            "identical_results": len(set(checks.values())) == 1,
        }
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv-rows", type=int, default=5_000_000)
    parser.add_argument("--pg-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="CSV case: runs per contender, median reported"
    )
    parser.add_argument("--skip-csv", action="store_true")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument(
        "--no-retry-cache",
        action="store_true",
        help="PIPELINE_RETRY_CACHE=false: runs keep no per-node outputs for retries",
    )
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    server = Server(data_dir, retry_cache=not args.no_retry_cache)
    report: dict[str, Any] = {
        "retry_cache": not args.no_retry_cache,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "polars": pl.__version__,
        },
        "cases": [],
    }
    try:
        server.start()
        api = Api(server)
        await api.login()
        if not args.skip_csv:
            report["cases"].append(await csv_case(api, data_dir, args.csv_rows, args.repeat))
        if not args.skip_pg:
            report["cases"].append(await pg_case(api, args.pg_url, args.pg_rows, data_dir))
        await api.client.aclose()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
