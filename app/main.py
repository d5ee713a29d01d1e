"""The Sanic application factory: `sanic app.main:create_app --factory`."""

from __future__ import annotations

import asyncio
import gc
from itertools import count
from pathlib import Path

from loguru import logger
from sanic import Sanic
from sanic_ext import Extend
from sanic_ext.extensions.http.extension import HTTPExtension
from sanic_ext.extensions.openapi.extension import OpenAPIExtension

from app.auth.access import undeclared_routes
from app.auth.routes import bp as auth_bp
from app.builder.routes import bp as builder_bp
from app.configurations.routes import bp as configurations_bp
from app.connectors.routes import bp as connectors_bp
from app.core.errors import register_error_handlers
from app.core.middleware import register_middleware
from app.datasets.routes import bp as datasets_bp
from app.events.routes import bp as events_bp
from app.executions.routes import bp as executions_bp
from app.health.routes import bp as health_bp
from app.health.routes import metrics_bp
from app.jobs.routes import bp as jobs_bp
from app.logging import configure_logging
from app.mappings.routes import bp as mappings_bp
from app.monitoring.routes import bench_bp
from app.monitoring.routes import bp as monitoring_bp
from app.notifications.routes import bp as notifications_bp
from app.pipelines.routes import bp as pipelines_bp
from app.realtime.routes import bp as realtime_bp
from app.schema.routes import bp as schema_bp
from app.services import build_services
from app.settings import Settings, get_settings
from app.settings_api.routes import bp as settings_bp
from app.templates.routes import bp as templates_bp
from app.templates.service import seed_builtin_templates
from app.transformations.routes import bp as transformations_bp
from app.users.routes import bp as users_bp
from engine.pipeline.priority import start_data_plane
from storage.db import close_db, init_db

GC_YOUNG_THRESHOLD = 20_000
STATIC_DIR = Path(__file__).parent / "static"
BLUEPRINTS = (
    auth_bp,
    users_bp,
    pipelines_bp,
    executions_bp,
    builder_bp,
    templates_bp,
    datasets_bp,
    connectors_bp,
    transformations_bp,
    health_bp,
    metrics_bp,
    jobs_bp,
    notifications_bp,
    events_bp,
    monitoring_bp,
    realtime_bp,
    configurations_bp,
    schema_bp,
    mappings_bp,
    settings_bp,
)
_app_numbers = count()


def create_app(settings: Settings | None = None) -> Sanic:
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    name = "aggregator" if not Sanic.test_mode else f"aggregator{next(_app_numbers)}"
    app = Sanic(name, configure_logging=False)
    app.ctx.settings = settings
    _configure(app, settings)
    register_error_handlers(app)
    register_middleware(app)
    blueprints = (*BLUEPRINTS, bench_bp) if settings.BENCH_HOOKS else BLUEPRINTS
    for blueprint in blueprints:
        app.blueprint(blueprint.copy(blueprint.name) if Sanic.test_mode else blueprint)
    app.static("/docs/assets", STATIC_DIR / "swagger-ui", name="docs_assets")
    _register_lifecycle(app, settings)
    return app


def _configure(app: Sanic, settings: Settings) -> None:
    app.config.update(
        REQUEST_MAX_SIZE=settings.MAX_BODY_BYTES,
        WEBSOCKET_MAX_SIZE=settings.WS_MAX_MESSAGE_BYTES,
        WEBSOCKET_PING_INTERVAL=settings.WS_PING_INTERVAL_SECONDS,
        WEBSOCKET_PING_TIMEOUT=settings.WS_PING_TIMEOUT_SECONDS,
        REQUEST_TIMEOUT=30,
        RESPONSE_TIMEOUT=60,
        KEEP_ALIVE_TIMEOUT=30,
        ACCESS_LOG=settings.ACCESS_LOG,
        FALLBACK_ERROR_FORMAT="json",
        OAS_UI_REDOC=False,
        OAS_UI_DEFAULT="swagger",
        OAS_PATH_TO_SWAGGER_HTML=str(STATIC_DIR / "swagger.html"),
        OAS_URL_PREFIX="/docs",
        OAS_AUTODOC=False,
        CORS_ORIGINS=",".join(settings.ALLOWED_ORIGINS) if settings.ALLOWED_ORIGINS else "",
        CORS_ALLOW_HEADERS="authorization,content-type,if-match,x-request-id",
        CORS_EXPOSE_HEADERS="x-request-id,etag,retry-after",
        CORS_MAX_AGE=600,
        HEALTH=False,
    )
    # Only what we use: OpenAPI, and HTTP (CORS, automatic OPTIONS/HEAD). The built-in
    # dependency injection would dispatch a signal on every request for nothing.
    Extend(app, built_in_extensions=False, extensions=[OpenAPIExtension, HTTPExtension])
    app.ext.openapi.describe(
        "Data Aggregator API",
        version="1.0.0",
        description="Connect sources, build pipelines visually, run and watch them live.",
    )
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")


def _register_lifecycle(app: Sanic, settings: Settings) -> None:
    @app.before_server_start
    async def start(app: Sanic) -> None:
        missing = undeclared_routes(app)
        if missing:
            raise RuntimeError(f"routes without an access rule: {missing}")
        await init_db(settings.database_url)
        app.ctx.services = await build_services(settings)
        await seed_builtin_templates()
        await asyncio.to_thread(start_data_plane)
        logger.info(
            "ready: database={} mode={}",
            settings.database_url.split("://")[0],
            "scaled" if settings.scaled else "embedded",
        )

    @app.after_server_start
    async def freeze_startup_objects(app: Sanic) -> None:
        # Everything built at start-up lives as long as the process. Moving it out of the
        # collector's reach turns 100-200 ms full-collection pauses into a few milliseconds.
        gc.freeze()
        # A list page allocates a few thousand containers; at the default threshold (700) the
        # young generation is collected several times per request and its survivors promoted
        # into costlier collections.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    @app.after_server_stop
    async def stop(app: Sanic) -> None:
        services = getattr(app.ctx, "services", None)
        if services is not None:
            await services.close()
        await close_db()
