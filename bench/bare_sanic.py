"""The framework's ceiling for bench/api.py: a bare Sanic app, one process, no middleware,
no database, access log off (Sanic's default).

    GET  /api/v1/pipelines  our GET /api/v1/pipelines?limit=100 response, parsed once from
                            --list-body and held in memory as Python objects, answered with
                            Sanic's own `json()` (what any Sanic endpoint returning data does)
    GET  /api/v1/pipelines/encoded
                            the exact bytes of that response, served from memory: no work at
                            all but HTTP (a stricter ceiling than any endpoint with data)
    POST /api/v1/pipelines  parses the JSON body (orjson, as we do) and answers 201 with a
                            pipeline-shaped JSON object, like our create

    .venv/bin/python bench/bare_sanic.py --port 8100 --list-body list.json
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sanic import HTTPResponse, Request, Sanic, json


def create_app(list_body: bytes) -> Sanic:
    app = Sanic("bare", configure_logging=False)
    list_page = orjson.loads(list_body)

    @app.get("/api/v1/pipelines")
    async def list_pipelines(request: Request) -> HTTPResponse:
        return json(list_page)

    @app.get("/api/v1/pipelines/encoded")
    async def list_pipelines_encoded(request: Request) -> HTTPResponse:
        return HTTPResponse(list_body, content_type="application/json")

    @app.post("/api/v1/pipelines")
    async def create_pipeline(request: Request) -> HTTPResponse:
        body = orjson.loads(request.body)
        now = datetime.now(UTC)
        created = {
            "id": uuid.uuid4(),
            "name": body["name"],
            "description": body.get("description", ""),
            "schedule": body.get("schedule"),
            "status": body.get("status", "active"),
            "schema_policy": body.get("schema_policy", "evolve"),
            "version": 1,
            "owner_id": None,
            "created_at": now,
            "updated_at": now,
            "visual_definition": body.get("visual_definition", {}),
            "execution_graph": {},
        }
        return HTTPResponse(
            orjson.dumps(created, option=orjson.OPT_UTC_Z),
            status=201,
            content_type="application/json",
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--list-body", type=Path, required=True)
    args = parser.parse_args()
    app = create_app(args.list_body.read_bytes())
    app.run(host=args.host, port=args.port, single_process=True, access_log=False)


if __name__ == "__main__":
    main()
