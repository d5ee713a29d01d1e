"""Cross-cutting behaviour: request ids, CORS, OpenAPI docs, health, metrics, logging."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_request_id_is_echoed_or_generated_and_logged(client, server, editor):
    echoed = await client.get(
        "/api/v1/pipelines", headers={**editor.headers, "X-Request-ID": "trace-abc-123"}
    )
    generated = await client.get("/api/v1/health")
    refused = await client.get("/api/v1/health", headers={"X-Request-ID": "bad id; with spaces"})
    assert echoed.headers["x-request-id"] == "trace-abc-123"
    assert len(generated.headers["x-request-id"]) == 32
    assert refused.headers["x-request-id"] != "bad id; with spaces"
    assert "trace-abc-123" in server.log_path.read_text()


async def test_errors_carry_the_request_id_too(client):
    response = await client.get("/api/v1/pipelines", headers={"X-Request-ID": "unauth-1"})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "unauth-1"


async def test_json_logs_have_the_correlation_id_on_every_request_line(server_factory):
    server = await server_factory(LOG_FORMAT="json")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.get("/api/v1/health", headers={"X-Request-ID": "json-log-check"})
    records = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    mine = [r for r in records if r["record"]["extra"].get("correlation_id") == "json-log-check"]
    assert any(r["record"]["name"] == "sanic.access" for r in mine)


async def test_cors_preflight_allows_the_configured_origin_only(client):
    allowed = await client.options(
        "/api/v1/pipelines",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    other = await client.options(
        "/api/v1/pipelines",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


async def test_openapi_documents_request_and_response_models(client):
    spec = (await client.get("/docs/openapi.json")).json()
    create = spec["paths"]["/api/v1/pipelines"]["post"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.endswith("/PipelineCreate")
    assert "201" in create["responses"] and "422" in create["responses"]
    assert "PipelineOut" in spec["components"]["schemas"]
    assert "bearer" in spec["components"]["securitySchemes"]


async def test_docs_ui_is_served_without_a_cdn(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert (await client.get(f"/docs/assets/{asset}")).status_code == 200


async def test_readiness_reports_each_dependency(client):
    body = (await client.get("/api/v1/ready")).json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"


async def test_metrics_count_requests_by_route(client, editor):
    await client.get("/api/v1/pipelines", headers=editor.headers)
    text = (await client.get("/metrics")).text
    assert (
        'aggregator_http_requests_total{method="GET",route="api/v1/pipelines",status="200"}' in text
    )
