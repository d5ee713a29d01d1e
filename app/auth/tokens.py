"""JWTs: HS256 pinned; iss, aud, exp and typ checked on every decode.

Access tokens are sent with every request, so one that passed every check is remembered (by
its exact text) until it expires: a repeat costs a dict lookup and an expiry check instead of
an HMAC and claim validation. Sessions are still checked on every request (PrincipalCache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import jwt

from app.settings import Settings

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_id: UUID
    role: str
    expires_at: int  # unix seconds


@dataclass(frozen=True)
class RefreshClaims:
    user_id: UUID
    family_id: UUID
    jti: str


# Verified access tokens kept per process; the cache starts over when full.
VERIFIED_TOKENS_MAX = 10_000


class TokenCodec:
    def __init__(self, settings: Settings):
        self._verified: dict[str, AccessClaims] = {}
        self._key = settings.SECRET_KEY
        self._issuer = settings.JWT_ISSUER
        self._audience = settings.JWT_AUDIENCE
        self.access_ttl = settings.ACCESS_TOKEN_TTL_SECONDS
        self.refresh_ttl = settings.REFRESH_TOKEN_TTL_SECONDS

    def _encode(self, claims: dict, typ: TokenType, ttl: int) -> str:
        now = int(time.time())
        payload = {
            **claims,
            "typ": typ,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def _decode(self, token: str, typ: TokenType) -> dict:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "typ"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        if payload.get("typ") != typ:
            raise InvalidToken(f"expected a {typ} token")
        return payload

    def issue_access(self, user_id: UUID, session_id: UUID, role: str) -> str:
        return self._encode(
            {"sub": str(user_id), "sid": str(session_id), "role": role}, "access", self.access_ttl
        )

    def issue_refresh(self, user_id: UUID, family_id: UUID, jti: str) -> str:
        return self._encode(
            {"sub": str(user_id), "fid": str(family_id), "jti": jti}, "refresh", self.refresh_ttl
        )

    def decode_access(self, token: str) -> AccessClaims:
        claims = self._verified.get(token)
        if claims is not None:
            if time.time() < claims.expires_at:
                return claims
            del self._verified[token]
        payload = self._decode(token, "access")
        try:
            claims = AccessClaims(
                UUID(payload["sub"]), UUID(payload["sid"]), payload["role"], int(payload["exp"])
            )
        except (KeyError, ValueError):
            raise InvalidToken("malformed claims") from None
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def decode_refresh(self, token: str) -> RefreshClaims:
        payload = self._decode(token, "refresh")
        try:
            return RefreshClaims(UUID(payload["sub"]), UUID(payload["fid"]), str(payload["jti"]))
        except (KeyError, ValueError):
            raise InvalidToken("malformed claims") from None
