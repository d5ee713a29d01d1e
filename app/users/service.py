from __future__ import annotations

from uuid import UUID

from tortoise.exceptions import IntegrityError

from actors.bus import outbox
from app.auth.passwords import hash_password, verify_password
from app.auth.principal import Principal
from app.auth.service import AuthService, create_user, normalise_email, record_user_event
from app.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.users.schemas import UserCreate, UserUpdate
from storage.locks import exclusive
from storage.models import RefreshTokenFamily, Role, User

ADMIN_ONLY_FIELDS = ("email", "role", "is_active")


async def get_visible_user(principal: Principal, user_id: UUID) -> User:
    """Admins see everyone; others only themselves (anyone else is a 404, not a 403)."""
    if not principal.is_admin and principal.id != user_id:
        raise NotFound(f"No user with id {user_id}.")
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


async def create(body: UserCreate, principal: Principal | None = None) -> User:
    password_hash = await hash_password(body.password)
    async with outbox.transaction() as conn:
        user = await create_user(
            normalise_email(body.email), password_hash, body.full_name, body.role, conn
        )
        await record_user_event(conn, "user.created", user, principal.id if principal else None)
    return user


async def update(auth: AuthService, principal: Principal, user_id: UUID, body: UserUpdate) -> User:
    user = await get_visible_user(principal, user_id)
    changes = body.model_dump(exclude_unset=True, exclude={"current_password"})
    if not principal.is_admin and any(f in changes for f in ADMIN_ONLY_FIELDS):
        raise Forbidden("Only administrators can change email, role or account status.")
    changing_own_password = "password" in changes and principal.id == user_id
    if changing_own_password and not await verify_password(
        user.password_hash, body.current_password or ""
    ):
        raise Unprocessable(
            "The current password is wrong.",
            errors=[{"pointer": "/current_password", "message": "wrong password"}],
        )
    changed = sorted(changes)
    async with outbox.transaction() as conn:
        await exclusive(conn, "admins")
        if await _demotes_last_admin(user, changes, conn):
            raise Conflict("The last active administrator cannot be demoted or deactivated.")
        await _apply(user, changes, conn)
        if {"role", "is_active", "password"} & changes.keys():
            # Other sessions of this user must not keep privileges they just lost (the event,
            # published after this commit, closes their sockets).
            keep = principal.session_id if principal.id == user_id else None
            await _revoke_sessions(auth, user.id, except_session=keep, conn=conn)
        await record_user_event(conn, "user.updated", user, principal.id, changed)
    auth.principals.forget_user(user.id)
    return user


async def delete(auth: AuthService, principal: Principal, user_id: UUID) -> None:
    user = await get_visible_user(principal, user_id)
    async with outbox.transaction() as conn:
        await exclusive(conn, "admins")
        if await _demotes_last_admin(user, {"is_active": False}, conn):
            raise Conflict("The last active administrator cannot be deleted.")
        await user.delete(using_db=conn)
        await record_user_event(conn, "user.deleted", user, principal.id)
    auth.principals.forget_user(user_id)


async def _demotes_last_admin(user: User, changes: dict, conn) -> bool:
    if user.role != Role.ADMIN or not user.is_active:
        return False
    demoted = changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("is_active") is False
    if not demoted:
        return False
    others = (
        await User.filter(role=Role.ADMIN, is_active=True)
        .exclude(id=user.id)
        .using_db(conn)
        .count()
    )
    return others == 0


async def _apply(user: User, changes: dict, conn) -> None:
    if "password" in changes:
        user.password_hash = await hash_password(changes.pop("password"))
        changes["password_hash"] = user.password_hash
    if "email" in changes:
        changes["email"] = normalise_email(changes["email"])
    for name, value in changes.items():
        setattr(user, name, value)
    try:
        await user.save(using_db=conn)
    except IntegrityError:
        raise Conflict(f"A user with email {user.email} already exists.") from None


async def _revoke_sessions(
    auth: AuthService, user_id: UUID, except_session: UUID | None, conn=None
) -> None:
    families = RefreshTokenFamily.filter(user_id=user_id, revoked_at=None).using_db(conn)
    if except_session is not None:
        families = families.exclude(id=except_session)
    for family_id in await families.values_list("id", flat=True):
        await auth.revoke_family(family_id, "credentials_changed", conn)
