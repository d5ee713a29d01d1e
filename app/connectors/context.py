"""The one place that turns settings into the `ConnectorContext` every connector runs with:
DATA_DIR, and the SSRF policy of engine.connectors.network.

The policy is made of
- the deployment's defaults: loopback is reachable in embedded mode and outside production
  (one machine, one team), refused in scaled production unless CONNECTOR_ALLOW_LOOPBACK;
  CONNECTOR_ALLOWED_NETWORKS / CONNECTOR_DENIED_NETWORKS from the environment;
- what an admin set through `PUT /api/v1/settings/network` (the `platform_settings` row
  "network"): more allowed / denied networks, and a loopback override;
- the platform's own DATABASE_URL and REDIS_URL endpoints, which are always forbidden.

The admin part lives in the database so that every worker and node sees it: each process
re-reads it at most every `POLICY_TTL_SECONDS` (a change made through this process applies
at once). Connectors ask for the policy on each connection, so a running pipeline picks up a
change at its next connection.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from app.settings import Settings
from engine.connectors.base import CheckCategory, ConnectorContext
from engine.connectors.errors import ConnectorError
from engine.connectors.network import NetworkPolicy, forbidden_endpoints_from_urls, guard
from engine.connectors.sqlite import FORBIDDEN_PATHS as FORBIDDEN_SQLITE_PATHS
from storage.db import transaction
from storage.models import PlatformSetting

NETWORK_SETTINGS_KEY = "network"
POLICY_TTL_SECONDS = 5.0
MAX_NETWORKS = 200


class NetworkSettings(BaseModel):
    """What an admin sets; added to the deployment's own lists."""

    allowed_networks: list[str] = Field(default_factory=list, max_length=MAX_NETWORKS)
    denied_networks: list[str] = Field(default_factory=list, max_length=MAX_NETWORKS)
    # None: the deployment default (see module docs).
    allow_loopback: bool | None = None

    @field_validator("allowed_networks", "denied_networks")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        return normalised_networks(values)


def normalised_networks(values: list[str]) -> list[str]:
    """CIDRs as they apply ("10.1.2.3/8" → "10.0.0.0/8"), without duplicates; ValueError
    names the first value that is not a network."""
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (CIDR)") from None
    return list(dict.fromkeys(networks))


def default_allow_loopback(settings: Settings) -> bool:
    if settings.CONNECTOR_ALLOW_LOOPBACK is not None:
        return settings.CONNECTOR_ALLOW_LOOPBACK
    return not settings.scaled or not settings.is_production


def effective_policy(settings: Settings, admin: NetworkSettings) -> NetworkPolicy:
    allow_loopback = (
        admin.allow_loopback
        if admin.allow_loopback is not None
        else default_allow_loopback(settings)
    )
    return NetworkPolicy(
        allow_loopback=allow_loopback,
        allowed_networks=[*settings.CONNECTOR_ALLOWED_NETWORKS, *admin.allowed_networks],
        denied_networks=[*settings.CONNECTOR_DENIED_NETWORKS, *admin.denied_networks],
        forbidden_endpoints=forbidden_endpoints_from_urls(
            settings.DATABASE_URL, settings.REDIS_URL
        ),
    )


async def load_network_settings() -> tuple[NetworkSettings, PlatformSetting | None]:
    row = await PlatformSetting.get_or_none(key=NETWORK_SETTINGS_KEY)
    return NetworkSettings.model_validate(row.value if row else {}), row


async def save_network_settings(value: NetworkSettings, user_id: UUID | None) -> PlatformSetting:
    # In our transaction (update_or_create's own would not be safe to cancel; see transaction).
    async with transaction() as conn:
        row, _ = await PlatformSetting.update_or_create(
            key=NETWORK_SETTINGS_KEY,
            defaults={"value": value.model_dump(mode="json"), "updated_by": user_id},
            using_db=conn,
        )
    return row


class NetworkPolicySource:
    """This process's view of the policy: the deployment defaults plus the admin settings,
    re-read from the database when older than `POLICY_TTL_SECONDS`."""

    def __init__(self, settings: Settings, ttl_seconds: float = POLICY_TTL_SECONDS):
        self.settings = settings
        self.ttl_seconds = ttl_seconds
        self._policy: NetworkPolicy | None = None
        self._loaded_at = 0.0

    async def policy(self) -> NetworkPolicy:
        if self._policy is None or time.monotonic() - self._loaded_at > self.ttl_seconds:
            try:
                admin, _ = await load_network_settings()
            except Exception as exc:
                if self._policy is not None:
                    return self._policy  # the database blinked: keep the last known policy
                # Refuse rather than guess: the admin's denied networks must not be skipped.
                raise ConnectorError(
                    CheckCategory.PERMISSION, f"The network policy could not be loaded: {exc}"
                ) from exc
            self.set(admin)
        assert self._policy is not None
        return self._policy

    def set(self, admin: NetworkSettings) -> NetworkPolicy:
        """Apply admin settings now (this process); others follow within the TTL."""
        self._policy = effective_policy(self.settings, admin)
        self._loaded_at = time.monotonic()
        return self._policy

    async def guard(self, host: str, port: int) -> str:
        return await guard(host, port, await self.policy())


_SOURCES: dict[int, NetworkPolicySource] = {}


def policy_source(settings: Settings) -> NetworkPolicySource:
    """One source per settings object, shared by everything in the process that connects."""
    return _SOURCES.setdefault(id(settings), NetworkPolicySource(settings))


def connector_context(settings: Settings, **extra: Any) -> ConnectorContext:
    """The context connectors run with: DATA_DIR, the SSRF guard under the current policy, and
    the platform's own SQLite file out of the sqlite connector's reach."""
    url = settings.database_url
    if url.startswith("sqlite://"):
        extra.setdefault(FORBIDDEN_SQLITE_PATHS, [url.removeprefix("sqlite://").split("?")[0]])
    return ConnectorContext(
        data_dir=settings.DATA_DIR, network_guard=policy_source(settings).guard, extra=extra
    )
