"""OpenAPI documentation for a route in one decorator, from the same pydantic models the
handler validates with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sanic_ext import openapi
from sanic_ext.extensions.openapi.definitions import RequestBody, Response

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM = {
    "application/problem+json": {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
}


def _content(model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return {"application/json": openapi.Component(model)}
    return {"application/json": model}


def doc(
    *,
    tag: str,
    summary: str,
    body: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    query: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    secured: bool = True,
    description: str | None = None,
) -> Callable[[F], F]:
    responses: list[Response] = []
    if status == 204 or response is None:
        responses.append(Response({}, status=status, description="Success"))
    else:
        responses.append(Response(_content(response), status=status, description="Success"))
    codes = set(errors) | ({401, 403} if secured else set())
    if body is not None:
        codes |= {400, 413, 415, 422}
    for code in sorted(codes):
        responses.append(Response(PROBLEM, status=code, description="Problem"))
    parameters = _query_parameters(query) if query else None
    return openapi.definition(
        tag=tag,
        summary=summary,
        description=description,
        body=RequestBody(_content(body), required=True) if body is not None else None,
        response=responses,
        parameter=parameters,
        secured={"bearer": []} if secured else None,
    )


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title",)}
        if "anyOf" in prop:  # Optional[...] → the non-null branch
            branches = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
            prop.update(branches[0] if branches else {"type": "string"})
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": prop,
            }
        )
    return params
