"""GET /api/v1/ws — the WebSocket endpoint (protocol in API.md and app/realtime/protocol.py).

- Token: `Sec-WebSocket-Protocol: bearer, <access token>` (the server answers `bearer`) or
  `?token=` (redacted from the access log). Missing or invalid: accepted, then closed 4401.
  The socket is closed with 4401 when that token expires, or when its session is revoked; the
  client reconnects with a fresh token (and `since`, to miss nothing).
- Origin: a browser's Origin must be in ALLOWED_ORIGINS or be this server itself, else the
  upgrade is refused with 403. Clients that send no Origin (CLIs, services) are allowed: they
  carry a token anyway, and Origin only protects browsers from cross-site use of cookies or
  stored tokens.
- Heartbeats: the server pings every WS_PING_INTERVAL_SECONDS and drops a peer that does not
  answer within WS_PING_TIMEOUT_SECONDS (close 1011). Frames over WS_MAX_MESSAGE_BYTES close
  with 1009. More than WS_RATE_LIMIT messages/s get `rate_limited` errors.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from urllib.parse import urlsplit

from sanic import Blueprint, Request
from sanic.server.protocols import websocket_protocol
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.server import ServerProtocol

from app.auth.access import authenticate, authenticates_itself
from app.core.errors import Forbidden, Problem
from app.realtime.connection import CLOSE_UNAUTHORIZED, Connection

bp = Blueprint("realtime", url_prefix="/api/v1")


class _SubprotocolOptional(ServerProtocol):
    """websockets refuses (400) a client that offers no subprotocol when the route declares
    one; `?token=` clients offer none. Sanic builds its ServerProtocol from its module
    namespace, so this is swapped in there (this server's WebSocket routes only)."""

    def select_subprotocol(self, subprotocols):
        return super().select_subprotocol(subprotocols) if subprotocols else None


websocket_protocol.ServerProtocol = _SubprotocolOptional


@bp.on_request
async def check_origin(request: Request) -> None:
    if request.route is None or not request.route.extra.websocket:
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = request.app.ctx.settings.ALLOWED_ORIGINS
    same_origin = urlsplit(origin).netloc == request.host
    if origin not in allowed and "*" not in allowed and not same_origin:
        raise Forbidden(f"Origin {origin} is not allowed.")


def _token(request: Request) -> str | None:
    offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) == 2 and offered[0].lower() == "bearer" and offered[1]:
        return offered[1]
    return request.args.get("token")


@bp.websocket("/ws", subprotocols=["bearer"])
@authenticates_itself
async def websocket(request: Request, ws: WebsocketImplProtocol) -> None:
    services = request.app.ctx.services
    try:
        principal, claims = await authenticate(request.app, _token(request))
    except Problem as problem:
        await ws.close(CLOSE_UNAUTHORIZED, problem.detail[:120])
        return
    settings = services.settings
    conn = Connection(
        ws,
        principal,
        queue_limit=settings.WS_SEND_QUEUE,
        rate=settings.WS_RATE_LIMIT,
        burst=settings.WS_RATE_BURST,
        remote_addr=request.client_ip or "",
    )
    # The socket lives as long as the token it was opened with: then the client reconnects
    # with a fresh one, so an expired token never keeps delivering events.
    expiry = asyncio.get_running_loop().call_later(
        max(0.0, claims.expires_at - time.time()),
        conn.close,
        CLOSE_UNAUTHORIZED,
        "access token expired",
    )
    hub = services.hub
    hub.attach(conn)
    try:
        while not conn.closing:
            raw = await ws.recv()
            if raw is None:
                break
            await hub.handle(conn, raw)
    finally:
        expiry.cancel()
        hub.detach(conn)


class RedactTokens(logging.Filter):
    """Access-log lines carry the URL; a `?token=` must never reach the logs."""

    _TOKEN = re.compile(r"(token=)[^&\s]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if isinstance(request, str) and "token=" in request.lower():
            record.request = self._TOKEN.sub(r"\1[redacted]", request)
        return True


logging.getLogger("sanic.access").addFilter(RedactTokens())
