"""Request-scoped middleware: correlation id, access control, metrics."""

from __future__ import annotations

import itertools
import re
import secrets
import time

from sanic import HTTPResponse, Request, Sanic

from app.auth.access import enforce_access
from app.logging import correlation_id
from app.observability.metrics import observe_request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Generated ids: 32 hex digits, a random per-process half and a counter. Unique across
# processes and restarts like uuid4, without a getrandom() call on every request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


async def assign_request_id(request: Request) -> None:
    incoming = request.headers.get("x-request-id", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
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
