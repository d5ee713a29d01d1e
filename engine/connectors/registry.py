"""Connector types by name. Modules are imported on first use so that a missing optional
driver only affects its own type."""

from __future__ import annotations

import importlib
from functools import cache

from engine.connectors.base import Connector

_CONNECTOR_CLASSES: dict[str, str] = {
    "postgres": "engine.connectors.postgres:PostgresConnector",
    "mysql": "engine.connectors.mysql:MySQLConnector",
    "sqlite": "engine.connectors.sqlite:SQLiteConnector",
    "http_api": "engine.connectors.http_api:HttpApiConnector",
    "file": "engine.connectors.file:FileConnector",
    "dataset": "engine.connectors.dataset:DatasetConnector",
}


class UnknownConnectorType(KeyError):
    pass


def connector_type_names() -> list[str]:
    return list(_CONNECTOR_CLASSES)


@cache
def get_connector(type_name: str) -> Connector:
    try:
        target = _CONNECTOR_CLASSES[type_name]
    except KeyError:
        raise UnknownConnectorType(type_name) from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def all_connectors() -> list[Connector]:
    return [get_connector(name) for name in _CONNECTOR_CLASSES]
