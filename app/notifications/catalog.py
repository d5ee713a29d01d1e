"""Which events notify whom, on which channels by default, and what the message says.

Channels: `websocket` — the in-app notification (stored, listed, pushed live on
`notifications:<user_id>`); `email` — a message to the account's address (when SMTP_URL is
set). Each user may switch any (event type, channel) pair on or off; the defaults are below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from string import Template
from typing import Any
from uuid import UUID

from actors.bus.base import BusEvent
from storage.models import Pipeline

WEBSOCKET, EMAIL = "websocket", "email"
CHANNELS = (WEBSOCKET, EMAIL)


@dataclass(frozen=True)
class Audience:
    """Who is told about one event, and the values its templates fill in."""

    recipients: set[UUID]
    values: dict[str, Any]


Resolver = Callable[[BusEvent], Awaitable[Audience]]


@dataclass(frozen=True)
class NotificationKind:
    event_type: str
    defaults: frozenset[str]  # channels on unless the user switched them off
    title: str  # string.Template over the audience's values
    body: str
    resolve: Resolver
    # A cheap check on the event itself, before any work is queued for it.
    wanted: Callable[[BusEvent], bool] = lambda event: True

    def render(self, values: dict[str, Any]) -> tuple[str, str]:
        """Title and plain-text body."""
        return Template(self.title).safe_substitute(values), Template(self.body).safe_substitute(
            values
        )


def html_body(title: str, text: str) -> str:
    """The simple HTML alternative of an email."""
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in text.splitlines() if line.strip())
    return f"<html><body><h2>{escape(title)}</h2>{paragraphs}</body></html>"


def _error_message(data: dict[str, Any]) -> str:
    error = data.get("error") or {}
    return str(error.get("message") or error.get("detail") or "no details")


def _people(*ids: object) -> set[UUID]:
    return {UUID(str(i)) for i in ids if i}


async def _execution(event: BusEvent) -> Audience:
    """The pipeline's owner and whoever started the run."""
    pipeline_id = event.data.get("pipeline_id")
    pipeline = (
        await Pipeline.get_or_none(id=pipeline_id).values("name", "owner_id")
        if pipeline_id
        else None
    )
    values = {
        "pipeline_name": pipeline["name"] if pipeline else "(deleted pipeline)",
        "pipeline_id": pipeline_id,
        "execution_id": event.entity_id,
        "error": _error_message(event.data),
    }
    owner = pipeline["owner_id"] if pipeline else None
    return Audience(_people(owner, event.user_id), values)


async def _job(event: BusEvent) -> Audience:
    """The user who started the job (system jobs, e.g. notification delivery, tell no one)."""
    values = {"job_kind": event.data.get("kind", ""), "job_id": event.entity_id}
    values["error"] = _error_message(event.data)
    return Audience(_people(event.user_id), values)


def _started_by_someone(event: BusEvent) -> bool:
    # System jobs (this very delivery among them) have no user: telling no one about them
    # also keeps their own job events from queueing more delivery jobs.
    return event.user_id is not None


async def _account(event: BusEvent) -> Audience:
    """The account's owner, when someone else (an admin) changed it."""
    values = {"changed": ", ".join(event.data.get("changed", [])) or "details"}
    values["role"] = event.data.get("role") or ""
    changed_by_self = event.user_id is not None and str(event.user_id) == event.entity_id
    return Audience(set() if changed_by_self else _people(event.entity_id), values)


KINDS: dict[str, NotificationKind] = {
    kind.event_type: kind
    for kind in (
        NotificationKind(
            "execution.failed",
            frozenset({WEBSOCKET, EMAIL}),
            "Pipeline \u201c$pipeline_name\u201d failed",
            "The run $execution_id of pipeline \u201c$pipeline_name\u201d failed: $error",
            _execution,
        ),
        NotificationKind(
            "execution.crashed",
            frozenset({WEBSOCKET, EMAIL}),
            "Pipeline \u201c$pipeline_name\u201d was interrupted",
            "The run $execution_id of pipeline \u201c$pipeline_name\u201d stopped when its "
            "server process ended. Nothing was published; run it again.",
            _execution,
        ),
        NotificationKind(
            "execution.succeeded",
            frozenset({WEBSOCKET}),
            "Pipeline \u201c$pipeline_name\u201d succeeded",
            "The run $execution_id of pipeline \u201c$pipeline_name\u201d finished.",
            _execution,
        ),
        NotificationKind(
            "job.failed",
            frozenset({WEBSOCKET, EMAIL}),
            "Job $job_kind failed",
            "The background job $job_id ($job_kind) failed: $error",
            _job,
            _started_by_someone,
        ),
        NotificationKind(
            "job.succeeded",
            frozenset({WEBSOCKET}),
            "Job $job_kind finished",
            "The background job $job_id ($job_kind) finished.",
            _job,
            _started_by_someone,
        ),
        NotificationKind(
            "user.updated",
            frozenset({WEBSOCKET, EMAIL}),
            "Your account was changed",
            "An administrator changed your account: $changed. Your role is $role.",
            _account,
        ),
    )
}
