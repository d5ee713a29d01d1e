"""Every module that registers job kinds, imported wherever jobs are enqueued or run."""

from __future__ import annotations

import importlib

JOB_MODULES = ("app.jobs.maintenance", "app.notifications.jobs")


def load_job_kinds() -> None:
    for module in JOB_MODULES:
        importlib.import_module(module)
