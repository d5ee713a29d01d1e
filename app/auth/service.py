"""Registration, login, refresh rotation with reuse detection, logout."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from tortoise.exceptions import IntegrityError

from actors.bus import outbox
from actors.bus.outbox import record_event
from app.auth.passwords import hash_password, verify_password
from app.auth.principal import Principal, PrincipalCache
from app.auth.ratelimit import RateLimiter
from app.auth.schemas import LoginRequest, RegisterRequest, TokenPair, UserOut
from app.auth.tokens import InvalidToken, TokenCodec
from app.core.errors import Conflict, Forbidden, TooManyRequests, Unauthorized
from storage.locks import exclusive
from storage.models import RefreshTokenFamily, Role, User


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass
class AuthService:
    tokens: TokenCodec
    principals: PrincipalCache
    login_limiter: RateLimiter
    allow_self_registration: bool

    async def register(self, body: RegisterRequest) -> User:
        """The first user becomes admin; after that only if self-registration is on."""
        password_hash = await hash_password(body.password)
        async with outbox.transaction() as conn:
            await exclusive(conn, "first-user")
            is_first = not await User.all().using_db(conn).exists()
            if not is_first and not self.allow_self_registration:
                raise Forbidden(
                    "Self-registration is disabled; ask an administrator for an account."
                )
            user = await create_user(
                normalise_email(body.email),
                password_hash,
                body.full_name,
                Role.ADMIN if is_first else Role.VIEWER,
                conn,
            )
            await record_user_event(conn, "user.created", user, user.id)
        return user

    async def login(self, body: LoginRequest, client_ip: str) -> TokenPair:
        email = normalise_email(body.email)
        # Per account and address, and (looser) per address to slow credential stuffing.
        per_account = self.login_limiter.limit
        for key, limit in (
            (f"login:{client_ip}:{email}", per_account),
            (f"login-ip:{client_ip}", per_account * 5),
        ):
            retry_after = await self.login_limiter.hit(key, limit)
            if retry_after is not None:
                raise TooManyRequests(
                    "Too many login attempts; try again later.",
                    headers={"Retry-After": str(retry_after)},
                )
        user = await User.get_or_none(email=email)
        if not await verify_password(user.password_hash if user else None, body.password):
            raise Unauthorized("Wrong email or password.")
        if not user.is_active:
            raise Unauthorized("This account is deactivated.")
        await self.login_limiter.reset(f"login:{client_ip}:{email}")
        user.last_login_at = datetime.now(UTC)
        await user.save(update_fields=["last_login_at"])
        family = await RefreshTokenFamily.create(
            user=user,
            current_jti=_new_jti(),
            expires_at=datetime.now(UTC) + timedelta(seconds=self.tokens.refresh_ttl),
        )
        return self._token_pair(user, family.id, family.current_jti)

    async def refresh(self, refresh_token: str) -> TokenPair:
        try:
            claims = self.tokens.decode_refresh(refresh_token)
        except InvalidToken as exc:
            raise Unauthorized(f"Invalid refresh token: {exc}.") from None
        family = await RefreshTokenFamily.get_or_none(id=claims.family_id, user_id=claims.user_id)
        if family is None or family.revoked_at is not None or family.expires_at < datetime.now(UTC):
            raise Unauthorized("The session has ended; log in again.")
        new_jti = _new_jti()
        rotated = await RefreshTokenFamily.filter(
            id=family.id, current_jti=claims.jti, revoked_at=None
        ).update(current_jti=new_jti, rotated_at=datetime.now(UTC))
        if not rotated:
            await self.revoke_family(family.id, "reuse")
            raise Unauthorized("This refresh token was already used; the session is revoked.")
        user = await User.get_or_none(id=claims.user_id, is_active=True)
        if user is None:
            raise Unauthorized("This account no longer exists or is deactivated.")
        return self._token_pair(user, family.id, new_jti)

    async def logout(self, principal: Principal) -> None:
        # The event makes every process close this session's sockets.
        async with outbox.transaction() as conn:
            await self.revoke_family(principal.session_id, "logout", conn)
            data = {"session_id": principal.session_id}
            await record_event(conn, "user.logged_out", "user", principal.id, data, principal.id)
        self.principals.forget_user(principal.id)

    async def revoke_family(self, family_id: UUID, reason: str, conn=None) -> None:
        await (
            RefreshTokenFamily.filter(id=family_id, revoked_at=None)
            .using_db(conn)
            .update(revoked_at=datetime.now(UTC), revoked_reason=reason)
        )

    async def revoke_all_sessions(self, user_id: UUID, reason: str) -> None:
        await RefreshTokenFamily.filter(user_id=user_id, revoked_at=None).update(
            revoked_at=datetime.now(UTC), revoked_reason=reason
        )
        self.principals.forget_user(user_id)

    def _token_pair(self, user: User, family_id: UUID, jti: str) -> TokenPair:
        return TokenPair(
            access_token=self.tokens.issue_access(user.id, family_id, str(user.role)),
            refresh_token=self.tokens.issue_refresh(user.id, family_id, jti),
            expires_in=self.tokens.access_ttl,
            user=UserOut.model_validate(user),
        )


async def create_user(
    email: str, password_hash: str, full_name: str, role: Role, conn=None
) -> User:
    try:
        return await User.create(
            id=uuid4(),
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            role=role,
            using_db=conn,
        )
    except IntegrityError:
        raise Conflict(f"A user with email {email} already exists.") from None


def _new_jti() -> str:
    return secrets.token_urlsafe(24)


async def record_user_event(
    conn, type_: str, user: User, actor_id: UUID | None, changed=()
) -> None:
    """Audit event about an account; on topic user:<id> it also tells every process's
    WebSocket hub to re-check that user's sockets."""
    data = {"email": user.email, "role": str(user.role), "changed": list(changed)}
    await record_event(conn, type_, "user", user.id, data, actor_id)
