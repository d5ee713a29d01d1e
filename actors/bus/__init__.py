"""The event bus: one interface, in-process (embedded) and Redis (scaled) implementations."""
