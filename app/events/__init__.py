"""The audit trail: GET /api/v1/events (the outbox itself is actors/bus/outbox.py)."""
