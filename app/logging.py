"""Loguru set-up: one sink for our logs and the stdlib loggers (sanic, tortoise, arq), with
the request's correlation id on every line."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from loguru import logger

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class InterceptHandler(logging.Handler):
    """Forward stdlib records to loguru, keeping level and caller."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1
        logger.patch(lambda r: r.update(name=record.name)).opt(
            depth=depth, exception=record.exc_info
        ).log(level, _message(record))


def _message(record: logging.LogRecord) -> str:
    # Sanic's access records carry their content in extra attributes, not in the message.
    if record.name == "sanic.access":
        fields = (getattr(record, name, "") for name in ("request", "status", "byte"))
        return " ".join(str(f) for f in fields)
    return record.getMessage()


def _add_correlation_id(record: dict) -> None:
    record["extra"].setdefault("correlation_id", correlation_id.get() or "-")


TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DDTHH:mm:ss.SSSZ}</green> <level>{level: <7}</level> "
    "<cyan>{extra[correlation_id]}</cyan> {name}: <level>{message}</level>"
)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    level = level.upper()
    logger.remove()
    logger.configure(patcher=_add_correlation_id)
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True, enqueue=False)
    else:
        logger.add(sys.stderr, level=level, format=TEXT_FORMAT, colorize=sys.stderr.isatty())
    # Records below LOG_LEVEL are dropped by the stdlib before they are built.
    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
    for name in (
        "sanic.root",
        "sanic.error",
        "sanic.access",
        "sanic.server",
        "sanic.websockets",
        "tortoise",
        "arq",
        "asyncio",
    ):
        std = logging.getLogger(name)
        std.handlers = [InterceptHandler()]
        std.setLevel(level)
        std.propagate = False
