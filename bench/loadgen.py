"""wrk as the load generator for the benchmarks: a C client that is never the bottleneck,
with bench/wrk.lua adding the bearer token (and a POST body) and printing its summary as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

WRK = shutil.which("wrk") or "/usr/bin/wrk"
LUA_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"


def wrk(
    url: str, connections: int, seconds: int, env: dict[str, str], cpu: str | None = None
) -> dict[str, Any]:
    """One wrk run (one thread); `cpu` pins it to that core with taskset."""
    pinning = ["taskset", "-c", cpu] if cpu is not None else []
    argv = [
        *pinning, WRK, "-t1", f"-c{connections}", f"-d{seconds}s",
        "--timeout", "10s", "-s", str(LUA_SCRIPT), url,
    ]  # fmt: skip
    result = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk printed no summary:\n{result.stdout}\n{result.stderr}")


def wrk_version() -> str:
    return subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout.split()[1]
