"""Request-scoped middleware: correlation id, access control, metrics."""

from __future__ import annotations

import re
import time
import uuid

from sanic import HTTPResponse, Request, Sanic

from app.auth.access import enforce_access
from app.logging import correlation_id
from app.observability.metrics import observe_request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def assign_request_id(request: Request) -> None:
    incoming = request.headers.get("x-request-id", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request.ctx.request_id = request_id
    request.ctx.started = time.perf_counter()
    correlation_id.set(request_id)


async def finish_response(request: Request, response: HTTPResponse) -> None:
    request_id = getattr(request.ctx, "request_id", None)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    started = getattr(request.ctx, "started", None)
    if started is not None and request.route is not None:
        observe_request(
            request.method, request.route.path, response.status, time.perf_counter() - started
        )


def register_middleware(app: Sanic) -> None:
    app.on_request(assign_request_id, priority=100)
    app.on_request(enforce_access, priority=90)
    app.on_response(finish_response)
