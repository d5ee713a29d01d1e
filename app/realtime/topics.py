"""Which topics a user may subscribe to.

One shared workspace: every signed-in user (viewer and up) may watch shared objects —
`pipeline:<id>`, `execution:<id>`, `logs:<execution_id>`, `connector:<id>`,
`transformation:<id>` — and the live metrics. Personal topics are the caller's own:
`notifications` (short for `notifications:<own id>`) and `job:<id>` of jobs they started
(admins: any job). A topic that names an unknown object, another user's personal object, or
no known family at all is refused the same way (`forbidden_topic`), just as the REST API
answers 404 for "unknown" and "not yours" alike. `user:<id>` carries server-internal auth
events and is never subscribable.
"""

from __future__ import annotations

import time
from uuid import UUID

from tortoise.models import Model

from app.auth.principal import Principal
from storage.models import Connector, Job, Pipeline, PipelineExecution, Transformation

METRIC_TOPICS = frozenset({"metrics:system", "metrics:pipelines"})
SHARED: dict[str, type[Model]] = {
    "pipeline": Pipeline,
    "execution": PipelineExecution,
    "logs": PipelineExecution,
    "connector": Connector,
    "transformation": Transformation,
}


async def authorize(principal: Principal, topic: str) -> str | None:
    """The canonical topic name if `principal` may subscribe, else None."""
    if topic in METRIC_TOPICS:
        return topic
    if topic == "notifications":
        return f"notifications:{principal.id}"
    family, _, ident = topic.partition(":")
    try:
        object_id = UUID(ident)
    except ValueError:
        return None
    canonical = f"{family}:{object_id}"
    if family == "notifications":
        return canonical if object_id == principal.id else None
    if family == "job":
        jobs = Job.filter(id=object_id)
        if not principal.is_admin:
            jobs = jobs.filter(created_by_id=principal.id)
        return canonical if await jobs.exists() else None
    model = SHARED.get(family)
    if model is None:
        return None
    return canonical if await _exists(model, canonical, object_id) else None


# Shared objects known to exist, briefly: a reconnect storm (every client of a pipeline
# resubscribing after a deploy) then costs one query per object, not one per socket.
# Subscribing to an object deleted within the TTL is harmless: it gets no more events.
EXISTS_TTL_SECONDS = 5.0
_known: dict[str, float] = {}


async def _exists(model: type[Model], topic: str, object_id: UUID) -> bool:
    now = time.monotonic()
    if _known.get(topic, 0.0) > now:
        return True
    if not await model.filter(id=object_id).exists():
        return False
    if len(_known) > 10_000:
        _known.clear()
    _known[topic] = now + EXISTS_TTL_SECONDS
    return True
