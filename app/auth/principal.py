"""Who is calling: resolved once per request from the access token, cached briefly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from storage.models import RefreshTokenFamily, Role, User


@dataclass(frozen=True)
class Principal:
    id: UUID
    email: str
    role: Role
    session_id: UUID

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class PrincipalCache:
    """Checks that the user still exists and is active and that the session is not revoked.

    Entries live `ttl` seconds so a hot API does not hit the database per request; changes
    made in this process are dropped at once, other processes see them within `ttl`.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 10_000):
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[tuple[UUID, UUID], tuple[float, Principal | None]] = {}

    async def get(self, user_id: UUID, session_id: UUID) -> Principal | None:
        key = (user_id, session_id)
        hit = self._entries.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await self._load(user_id, session_id)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (now + self._ttl, principal)
        return principal

    def forget_user(self, user_id: UUID) -> None:
        for key in [k for k in self._entries if k[0] == user_id]:
            del self._entries[key]

    @staticmethod
    async def _load(user_id: UUID, session_id: UUID) -> Principal | None:
        user = await User.get_or_none(id=user_id, is_active=True).only("id", "email", "role")
        if user is None:
            return None
        live = await RefreshTokenFamily.filter(
            id=session_id, user_id=user_id, revoked_at=None
        ).exists()
        if not live:
            return None
        return Principal(user.id, user.email, Role(user.role), session_id)
