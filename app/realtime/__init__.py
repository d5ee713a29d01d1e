"""The WebSocket hub at /api/v1/ws: per-worker connection registry fed by the event bus."""
