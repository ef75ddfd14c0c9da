"""Schemas of authentication, users, broker credentials and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from runner.api.schemas.common import Schema

__all__ = [
    "AuditEntryOut",
    "AuditPage",
    "CredentialOut",
    "CredentialSet",
    "LoginRequest",
    "LogoutRequest",
    "MeOut",
    "PasswordUpdate",
    "RefreshRequest",
    "RoleName",
    "RoleUpdate",
    "RotateOut",
    "TokenResponse",
    "UserCreate",
    "UserOut",
]

RoleName = Literal["viewer", "trader", "admin"]


class LoginRequest(Schema):
    """A username and password."""

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(Schema):
    """A refresh token to rotate."""

    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(Schema):
    """The refresh token whose family ends (the access token of the call is revoked too)."""

    refresh_token: str = Field(min_length=1, max_length=512)


class TokenResponse(Schema):
    """A new access token (JWT, short-lived) and refresh token (opaque, single use)."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    refresh_expires_at: datetime
    username: str
    role: RoleName


class MeOut(Schema):
    """Who the access token belongs to."""

    username: str
    role: RoleName
    expires_at: datetime


class UserOut(Schema):
    """A user (never its password hash)."""

    username: str
    role: RoleName
    created_at: datetime
    updated_at: datetime


class UserCreate(Schema):
    """A new user."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: RoleName = "viewer"


class RoleUpdate(Schema):
    """A user's new role."""

    role: RoleName


class PasswordUpdate(Schema):
    """A user's new password."""

    password: str = Field(min_length=1, max_length=1024)


class CredentialSet(Schema):
    """A broker API key and secret, stored encrypted and never returned."""

    api_key: str = Field(min_length=1, max_length=4096)
    secret: str = Field(min_length=1, max_length=4096)


class CredentialOut(Schema):
    """What may be shown of stored credentials: the exchange, the key encrypting them, the times."""

    exchange: str
    key_fingerprint: str
    created_at: datetime
    updated_at: datetime


class RotateOut(Schema):
    """How many stored credentials were re-encrypted with the primary master key."""

    rotated: int


class AuditEntryOut(Schema):
    """One audit log entry."""

    id: int
    time: datetime
    username: str
    action: str
    target: str
    outcome: Literal["ok", "refused", "error"]
    client: str | None
    detail: dict[str, Any]


class AuditPage(Schema):
    """Audit entries, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[AuditEntryOut]
    next_cursor: str | None
