"""Notifications: events turned into per-user notifications (in-app over WebSocket, email)
according to each user's preferences."""
