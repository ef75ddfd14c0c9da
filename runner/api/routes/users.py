"""Users of the API (admin): list, add, remove, change role or password."""

from __future__ import annotations

from fastapi import APIRouter, Response

from framework.security import User
from runner.api.auth import Admin, audited
from runner.api.context import Ctx
from runner.api.errors import ERROR_RESPONSES
from runner.api.schemas import PasswordUpdate, RoleUpdate, UserCreate, UserOut

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"], responses=ERROR_RESPONSES)


def _out(user: User) -> UserOut:
    return UserOut(username=user.username, role=user.role.value, created_at=user.created_at, updated_at=user.updated_at)


@router.get("", summary="List the users")
async def list_users(who: Admin, ctx: Ctx) -> list[UserOut]:
    users, _, _ = ctx.store()
    return [_out(u) for u in await users.list()]


@router.post("", status_code=201, summary="Add a user (password hashed with argon2id)")
async def add_user(body: UserCreate, who: Admin, ctx: Ctx) -> UserOut:
    users, _, _ = ctx.store()
    async with audited(ctx, who, "users.add", body.username, {"role": body.role}):
        user = await users.add(body.username, body.password, body.role)
    return _out(user)


@router.delete("/{username}", status_code=204, summary="Remove a user (never the last admin)")
async def remove_user(username: str, who: Admin, ctx: Ctx) -> Response:
    users, _, _ = ctx.store()
    async with audited(ctx, who, "users.remove", username):
        await users.remove(username)
    return Response(status_code=204)


@router.put("/{username}/role", summary="Change a user's role (effective at its next token refresh)")
async def set_role(username: str, body: RoleUpdate, who: Admin, ctx: Ctx) -> UserOut:
    users, _, _ = ctx.store()
    async with audited(ctx, who, "users.role", username, {"role": body.role}):
        user = await users.set_role(username, body.role)
    return _out(user)


@router.put("/{username}/password", summary="Set a user's password (its sessions end at their next refresh)")
async def set_password(username: str, body: PasswordUpdate, who: Admin, ctx: Ctx) -> UserOut:
    users, _, _ = ctx.store()
    async with audited(ctx, who, "users.passwd", username):
        user = await users.passwd(username, body.password)
    return _out(user)
