"""Polars' worker threads run below the event loop's priority (engine/pipeline/priority.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import polars as pl
import pytest

from engine.pipeline.priority import (
    DATA_PLANE_NICE,
    DATA_PLANE_THREAD_PREFIXES,
    lower_data_plane_priority,
    start_data_plane,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="threads are read from /proc")


def niceness_by_thread() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for task in Path("/proc/self/task").iterdir():
        name = (task / "comm").read_text().strip()
        found.setdefault(name, []).append(os.getpriority(os.PRIO_PROCESS, int(task.name)))
    return found


def test_polars_threads_yield_and_the_calling_thread_does_not(tmp_path: Path) -> None:
    start_data_plane()
    # A plan that reads and writes files through the streaming engine, as runs do.
    pl.DataFrame({"a": range(100_000), "b": range(100_000)}).write_csv(tmp_path / "in.csv")
    plan = pl.scan_csv(tmp_path / "in.csv").filter(pl.col("a") > 5).group_by("b").agg(pl.len())
    plan.sink_parquet(tmp_path / "out.parquet", engine="streaming")
    lower_data_plane_priority()

    threads = niceness_by_thread()
    data_plane = {
        name: values
        for name, values in threads.items()
        if name.startswith(DATA_PLANE_THREAD_PREFIXES)
    }
    assert any(name.startswith("polars-") for name in data_plane)
    assert all(value == DATA_PLANE_NICE for values in data_plane.values() for value in values)
    assert os.getpriority(os.PRIO_PROCESS, 0) < DATA_PLANE_NICE  # the caller keeps its own
    assert lower_data_plane_priority() == 0  # nothing left to change
