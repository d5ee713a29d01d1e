"""RFC 9457 problem+json errors and the handlers that turn every failure into one."""

from __future__ import annotations

from typing import Any

import orjson
from loguru import logger
from pydantic import ValidationError as PydanticValidationError
from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error the client can act on. Raise it anywhere below a handler."""

    status = 400
    title = "Bad Request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        status: int | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title


class BadRequest(Problem):
    status, title = 400, "Bad Request"


class Unauthorized(Problem):
    status, title = 401, "Unauthorized"


class Forbidden(Problem):
    status, title = 403, "Forbidden"


class NotFound(Problem):
    status, title = 404, "Not Found"


class Conflict(Problem):
    status, title = 409, "Conflict"


class PayloadTooLarge(Problem):
    status, title = 413, "Payload Too Large"


class UnsupportedMediaType(Problem):
    status, title = 415, "Unsupported Media Type"


class Unprocessable(Problem):
    status, title = 422, "Unprocessable Content"


class TooManyRequests(Problem):
    status, title = 429, "Too Many Requests"


class ServiceUnavailable(Problem):
    status, title = 503, "Service Unavailable"


def problem_response(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    body: dict[str, Any] = {
        "type": f"https://errors.data-aggregator.dev/{status}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return HTTPResponse(
        orjson.dumps(body), status=status, headers=headers, content_type=PROBLEM_JSON
    )


def pointer_from_loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return prefix + ("/" + "/".join(parts) if parts else "")


def pydantic_errors(exc: PydanticValidationError, prefix: str = "") -> list[dict[str, str]]:
    return [
        {"pointer": pointer_from_loc(err["loc"], prefix), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def register_error_handlers(app: Sanic) -> None:
    @app.exception(Problem)
    async def _problem(request: Request, exc: Problem) -> HTTPResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.errors, exc.headers)

    @app.exception(SanicException)
    async def _sanic(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 500) or 500
        if status >= 500:
            logger.opt(exception=exc).error("server error")
        title = {
            404: "Not Found",
            405: "Method Not Allowed",
            413: "Payload Too Large",
            408: "Request Timeout",
        }.get(status, "Error")
        detail = str(exc) if status < 500 else "The server could not complete the request."
        headers = dict(getattr(exc, "headers", {}) or {})
        return problem_response(status, title, detail, headers=headers)

    @app.exception(Exception)
    async def _unexpected(request: Request, exc: Exception) -> HTTPResponse:
        logger.opt(exception=exc).error("unhandled error")
        return problem_response(
            500, "Internal Server Error", "The server could not complete the request."
        )
