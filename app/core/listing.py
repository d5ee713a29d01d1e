"""List endpoints: limit/offset/sort/q parsed once, applied to any model's rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from tortoise.models import Model

from app.core.errors import Unprocessable
from storage.rows import Select, select_page

MAX_PAGE_SIZE = 500


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="allow")  # feature filters are read by the feature

    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=10_000_000)
    sort: str = Field("-created_at", max_length=64)
    q: str | None = Field(None, max_length=200)


class ListSpec:
    """What a resource allows: sortable fields and the fields `q` searches."""

    def __init__(self, sortable: set[str], searchable: tuple[str, ...]):
        self.sortable = sortable
        self.searchable = searchable

    def order_by(self, sort: str) -> list[str]:
        fields = []
        for part in sort.split(","):
            name = part.strip().lstrip("-+")
            if name not in self.sortable:
                raise Unprocessable(
                    f"Cannot sort by {name!r}.",
                    errors=[
                        {
                            "pointer": "/query/sort",
                            "message": f"allowed: {', '.join(sorted(self.sortable))}",
                        }
                    ],
                )
            fields.append(("-" if part.strip().startswith("-") else "") + name)
        return [*fields, "-id"] if fields and "id" not in self.sortable else fields


def given(**values: Any) -> dict[str, Any]:
    """The optional equality filters a client gave (None or "": not filtered on)."""
    return {name: value for name, value in values.items() if value is not None and value != ""}


async def fetch_page(
    model: type[Model],
    spec: ListSpec,
    query: ListQuery,
    names: tuple[str, ...],
    where: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of `model`'s rows matching `where` (equality, or `name__isnull`), as JSON-ready
    dicts (lists are the hot path), and the filtered total."""
    select = Select(
        model,
        names,
        where=where or {},
        search=spec.searchable,
        q=query.q,
        order=tuple(spec.order_by(query.sort)),
        limit=query.limit,
        offset=query.offset,
    )
    return await select_page(select)
