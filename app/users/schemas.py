from __future__ import annotations

from pydantic import EmailStr, Field

from app.auth.schemas import PatchModel, StrictModel
from app.core.listing import ListQuery
from storage.models import Role


class UserCreate(StrictModel):
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=8, max_length=256)
    full_name: str = Field("", max_length=200)
    role: Role = Role.VIEWER


class UserUpdate(PatchModel):
    """Anyone may change their own name and password; only admins change email, role, status."""

    full_name: str | None = Field(None, max_length=200)
    password: str | None = Field(None, min_length=8, max_length=256)
    current_password: str | None = Field(None, max_length=256)
    email: EmailStr | None = Field(None, max_length=320)
    role: Role | None = None
    is_active: bool | None = None


class UserListQuery(ListQuery):
    role: Role | None = None
    is_active: bool | None = None
