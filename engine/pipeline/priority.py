"""The data plane yields the CPU to the API.

Polars runs a plan on its own native threads (the compute pool, the streaming engine's
executors, the tokio runtime for I/O), which take every core they can get. In one process
with the web server that competes with the event loop: on 2 cores, status requests waited 65-81 ms
(p99) while runs went, 55-57 ms with these threads at nice 10 (no better at 19: the rest is
contention inside the process), against 15-25 ms with no run. They therefore run at a lower
scheduling priority (a higher nice value; lowering one's own threads' priority needs no
privilege). When nothing else wants the CPU they still get all of it, so runs lose nothing.

Linux only (threads are found in /proc/self/task); elsewhere this does nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

# Thread names (Linux `comm`, at most 15 characters) of Polars' native pools.
DATA_PLANE_THREAD_PREFIXES = ("polars-", "async-executor", "tokio-rt-worker")
DATA_PLANE_NICE = 10
TASKS = Path("/proc/self/task")


def lower_data_plane_priority() -> int:
    """Give every Polars thread that exists now the data plane's nice value; returns how many
    were changed. Cheap (a few dozen small reads): called around every plan, since Polars
    starts some threads on demand."""
    if not TASKS.is_dir():
        return 0
    changed = 0
    for task in TASKS.iterdir():
        try:
            name = (task / "comm").read_text().strip()
            thread_id = int(task.name)
            if name.startswith(DATA_PLANE_THREAD_PREFIXES) and (
                os.getpriority(os.PRIO_PROCESS, thread_id) < DATA_PLANE_NICE
            ):
                os.setpriority(os.PRIO_PROCESS, thread_id, DATA_PLANE_NICE)
                changed += 1
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return changed


def start_data_plane() -> None:
    """Start Polars' pools with a tiny streaming plan and lower their priority at once, so
    that the first run after start-up already yields to the API."""
    with tempfile.TemporaryDirectory(prefix="data-plane-") as directory:
        plan = pl.LazyFrame({"key": [1, 2, 2]}).group_by("key").agg(pl.len())
        plan.sink_parquet(Path(directory) / "warm.parquet", engine="streaming")
    lower_data_plane_priority()
