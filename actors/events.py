"""Event types and their payloads (pydantic): what `data` holds for each event `type`.

The registry `EVENT_TYPES` maps a type name (`<entity>.<what happened>`) to the model its
`data` must satisfy; `record_event` and direct publishers validate through `event_data`.
Payload models allow extra fields so producers can add detail without a schema change here;
the fields listed are what consumers (frontend, notifications) may rely on.

Topics: `pipeline:<id>`, `execution:<id>`, `logs:<execution_id>`, `connector:<id>`,
`transformation:<id>`, `job:<id>`, `file:<id>`, `user:<id>` (auth events, server-internal),
`notifications:<user_id>`, `alerts`, `metrics:system`, `metrics:pipelines`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow")


class PipelineEvent(EventData):
    name: str
    version: int
    status: str | None = None
    changed: list[str] = []  # fields a save changed
    restored_from: int | None = None  # version.restored: the version copied


class ExecutionEvent(EventData):
    pipeline_id: UUID
    status: str  # queued|running|succeeded|failed|cancelling|cancelled|crashed|rolled_back
    version: int | None = None
    progress: float | None = None
    error: dict[str, Any] | None = None


class StepEvent(EventData):
    execution_id: UUID
    node_id: str
    status: str
    rows_in: int = 0
    rows_out: int = 0
    error: dict[str, Any] | None = None


class LogEvent(EventData):
    """execution.log on `logs:<execution_id>`; seq is the log row id (not stored as an event)."""

    level: str
    message: str
    node_id: str | None = None


class SchemaEvent(EventData):
    connector_id: UUID
    stream: str | None = None
    changes: list[dict[str, Any]] = []
    breaking: bool = False


class FileEvent(EventData):
    name: str
    status: str  # uploading|scanning|processing|ready|rejected
    size: int | None = None


class JobEvent(EventData):
    kind: str
    status: str
    progress: float = 0.0
    error: dict[str, Any] | None = None


class AlertEvent(EventData):
    rule_id: UUID | None = None
    severity: str
    message: str


class NotificationEvent(EventData):
    notification_id: UUID
    title: str
    body: str = ""
    kind: str  # the event type it was made from


class MetricEvent(EventData):
    """metric.system / metric.pipelines: the snapshot itself (see app/monitoring)."""


class ConnectorEvent(EventData):
    name: str
    type: str
    changed: list[str] = []


class TransformationEvent(EventData):
    name: str
    node_type: str
    changed: list[str] = []


class UserEvent(EventData):
    email: str | None = None
    role: str | None = None
    changed: list[str] = []
    session_id: UUID | None = None  # user.logged_out: the session that ended


def _types(model: type[EventData], entity: str, *verbs: str) -> dict[str, type[EventData]]:
    return {f"{entity}.{verb}": model for verb in verbs}


EVENT_TYPES: dict[str, type[EventData]] = {
    **_types(PipelineEvent, "pipeline", "created", "updated", "deleted", "version_restored"),
    **_types(
        ExecutionEvent,
        "execution",
        "queued",
        "started",
        "progress",
        "succeeded",
        "failed",
        "cancelling",
        "cancelled",
        "crashed",
        "rolled_back",
    ),
    **_types(StepEvent, "step", "started", "updated", "completed", "failed", "skipped"),
    **_types(LogEvent, "execution", "log"),
    **_types(SchemaEvent, "schema", "discovered", "changed", "drift_detected"),
    **_types(FileEvent, "file", "uploaded", "scanned", "processed", "ready", "rejected", "deleted"),
    **_types(JobEvent, "job", "queued", "started", "progress", "succeeded", "failed", "cancelled"),
    **_types(AlertEvent, "alert", "triggered", "acknowledged", "resolved", "escalated"),
    **_types(NotificationEvent, "notification", "created"),
    **_types(MetricEvent, "metric", "system", "pipelines"),
    **_types(ConnectorEvent, "connector", "created", "updated", "deleted"),
    **_types(TransformationEvent, "transformation", "created", "updated", "deleted"),
    **_types(UserEvent, "user", "created", "updated", "deleted", "logged_out"),
}


class UnknownEventType(ValueError):
    pass


def event_data(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` validated against the type's model, as JSON-ready values."""
    model = EVENT_TYPES.get(type_)
    if model is None:
        raise UnknownEventType(f"unknown event type {type_!r}: register it in actors/events.py")
    return model.model_validate(data).model_dump(mode="json", exclude_none=True)


def entity_topic(entity_type: str, entity_id: object) -> str:
    """The topic every event about an entity is stored under (and the audit trail lists)."""
    return f"{entity_type}:{entity_id}"
