"""Job kinds: `@job("kind")` registers the coroutine that does the work.

A job function is `async def fn(ctx: JobContext, payload) -> dict | None`: `ctx` is an
arq-style dict (job_id, job_try, progress, bus, jobs, settings...), `payload` the validated
payload model when the kind declares one, else the stored dict. Jobs may run more than once
(a retry, a crashed worker), so every job function must be idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from pydantic import BaseModel

from actors.bus.base import EventBus


class JobFailed(Exception):
    """A permanent failure: the job is marked failed at once, without retries."""


class JobContext(TypedDict, total=False):
    job_id: str
    job_try: int
    kind: str
    created_by: str | None
    correlation_id: str | None
    # await ctx["progress"](0.5) stores the fraction done and publishes job.progress
    progress: Callable[[float], Awaitable[None]]
    bus: EventBus
    jobs: Any  # the JobQueue, to enqueue follow-up jobs
    settings: Any


JobFunction = Callable[[JobContext, Any], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class JobSpec:
    kind: str
    function: JobFunction
    payload_model: type[BaseModel] | None = None
    max_attempts: int | None = None  # None: the JOB_MAX_ATTEMPTS setting

    def validate_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Raises pydantic.ValidationError for a payload the kind does not accept."""
        if self.payload_model is None:
            return payload
        return self.payload_model.model_validate(payload).model_dump(mode="json")

    def load_payload(self, payload: dict[str, Any]) -> Any:
        if self.payload_model is None:
            return payload
        return self.payload_model.model_validate(payload)


_REGISTRY: dict[str, JobSpec] = {}


def job(
    kind: str, *, payload: type[BaseModel] | None = None, max_attempts: int | None = None
) -> Callable[[JobFunction], JobFunction]:
    def register(function: JobFunction) -> JobFunction:
        existing = _REGISTRY.get(kind)
        if existing is not None and existing.function is not function:
            raise RuntimeError(f"job kind {kind!r} is registered twice")
        _REGISTRY[kind] = JobSpec(kind, function, payload, max_attempts)
        return function

    return register


def spec_for(kind: str) -> JobSpec | None:
    return _REGISTRY.get(kind)


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)
