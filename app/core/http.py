"""Request parsing and response helpers shared by every blueprint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError
from sanic import HTTPResponse, Request

from app.core.errors import (
    BadRequest,
    NotFound,
    Unprocessable,
    UnsupportedMediaType,
    pydantic_errors,
)

ModelT = TypeVar("ModelT", bound=BaseModel)
NUL_ESCAPE = b"\\u0000"


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> HTTPResponse:
    body = orjson.dumps(data, default=_encode_extra, option=orjson.OPT_UTC_Z)
    return HTTPResponse(body, status=status, headers=headers, content_type="application/json")


def model_response(model: BaseModel, status: int = 200) -> HTTPResponse:
    return HTTPResponse(model.model_dump_json(), status=status, content_type="application/json")


def no_content() -> HTTPResponse:
    return HTTPResponse(status=204)


def _encode_extra(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, UUID):  # asyncpg's own UUID type, which orjson does not know
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def read_json(request: Request) -> Any:
    """The request body as JSON: 415 for another media type, 400 when malformed."""
    if not request.body:
        raise BadRequest("A JSON request body is required.")
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"Expected application/json, got {content_type}.")
    try:
        data = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON: {exc}") from None
    # Valid JSON, but no database text column can hold a NUL (PostgreSQL refuses it). The byte
    # test keeps the walk off the hot path.
    if NUL_ESCAPE in request.body and _contains_nul(data):
        raise BadRequest("Strings may not contain NUL characters (\\u0000).")
    return data


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def parse_body(request: Request, model: type[ModelT]) -> ModelT:
    return validate_as(model, read_json(request), prefix="")


def validate_as(model: type[ModelT], data: Any, prefix: str = "") -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Unprocessable(
            "The request is not valid.", errors=pydantic_errors(exc, prefix)
        ) from None


def parse_query(request: Request, model: type[ModelT]) -> ModelT:
    params: dict[str, Any] = {}
    for key, values in request.args.items():
        if any("\x00" in value for value in values):
            raise BadRequest(f"Query parameter {key!r} may not contain NUL characters.")
        params[key] = values[0] if len(values) == 1 else values
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        errors = [
            {"pointer": f"/query/{'/'.join(str(p) for p in e['loc'])}", "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise Unprocessable("The query parameters are not valid.", errors=errors) from None


def parse_uuid(value: str, what: str = "resource") -> UUID:
    """Path ids: a malformed UUID can never name anything, so it is a 404 like an unknown id."""
    try:
        return UUID(value)
    except (ValueError, TypeError):
        raise NotFound(f"No {what} with id {value!r}.") from None


def page(items: Iterable[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": list(items), "total": total, "limit": limit, "offset": offset}
