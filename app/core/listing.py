"""List endpoints: limit/offset/sort/q parsed once, applied to any Tortoise queryset."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from app.core.errors import Unprocessable
from storage.rows import fetch_dicts

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

    def search(self, q: str | None) -> Q | None:
        if not q:
            return None
        query = Q()
        for field in self.searchable:
            query |= Q(**{f"{field}__icontains": q})
        return query


async def fetch_page(
    queryset: QuerySet[Any], spec: ListSpec, query: ListQuery, *fields: str
) -> tuple[list[dict[str, Any]], int]:
    """Rows as JSON-ready dicts (lists are the hot path) and the filtered total."""
    condition = spec.search(query.q)
    if condition is not None:
        queryset = queryset.filter(condition)
    rows = await fetch_dicts(
        queryset.order_by(*spec.order_by(query.sort)).offset(query.offset).limit(query.limit),
        *fields,
    )
    if len(rows) < query.limit and (rows or query.offset == 0):
        # The page holds the end of the list, so it tells the total: skip the COUNT query.
        return rows, query.offset + len(rows)
    return rows, await queryset.count()
