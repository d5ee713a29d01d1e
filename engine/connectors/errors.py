from __future__ import annotations

from engine.connectors.base import CheckCategory, CheckError


class ConnectorError(Exception):
    """A failure a user can act on, with the category the connection test reports."""

    def __init__(self, category: CheckCategory | str, message: str, field: str | None = None):
        super().__init__(message)
        self.category = CheckCategory(category)
        self.message = message
        self.field = field

    def to_check_error(self) -> CheckError:
        return CheckError(category=self.category, message=self.message, field=self.field)
