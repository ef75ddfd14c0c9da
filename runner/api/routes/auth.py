"""Login (rate limited), refresh-token rotation, logout, and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from framework.security import InvalidTokenError, TokenPair
from runner.api.auth import Viewer, audited, client_of
from runner.api.context import Ctx
from runner.api.errors import ERROR_RESPONSES, ApiError
from runner.api.schemas import LoginRequest, LogoutRequest, MeOut, RefreshRequest, TokenResponse

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)
_OPTIONAL_BEARER = HTTPBearer(auto_error=False, description="optional: the caller's (possibly expired) access token")


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        refresh_expires_at=pair.refresh_expires_at,
        username=pair.user.username,
        role=pair.user.role.value,
    )


@router.post("/login", summary="Exchange a username and password for an access and a refresh token")
async def login(body: LoginRequest, request: Request, ctx: Ctx) -> TokenResponse:
    users, tokens, _ = ctx.store()
    user = await users.authenticate(body.username, body.password, client=client_of(request))
    return _tokens(await tokens.issue(user))


@router.post("/refresh", summary="Rotate a refresh token: the old one is revoked, a new pair returned")
async def refresh(
    body: RefreshRequest,
    ctx: Ctx,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_OPTIONAL_BEARER)],
) -> TokenResponse:
    _, tokens, _ = ctx.store()
    claimed: str | None = None
    if bearer is not None:
        try:
            claimed = tokens.verify_access(bearer.credentials).username
        except InvalidTokenError:
            claimed = None  # an expired access token is the usual reason to refresh
    async with audited(ctx, claimed or "anonymous", "auth.refresh") as note:
        try:
            pair = await tokens.refresh(body.refresh_token, username=claimed)
        except InvalidTokenError as exc:
            note.detail["why"] = exc.reason
            raise ApiError(401, "invalid_token", str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        note.target = pair.user.username
    return _tokens(pair)


@router.post("/logout", status_code=204, summary="End a session: revoke its refresh tokens and this access token")
async def logout(body: LogoutRequest, who: Viewer, ctx: Ctx) -> Response:
    _, tokens, _ = ctx.store()
    async with audited(ctx, who, "auth.logout", who.username) as note:
        try:
            await tokens.revoke(body.refresh_token, username=who.username)
        except InvalidTokenError as exc:
            note.detail["why"] = exc.reason
            raise ApiError(401, "invalid_token", str(exc)) from None
        tokens.revoke_access(who.claims)
    return Response(status_code=204)


@router.get("/me", summary="The caller's username, role and token expiry")
async def me(who: Viewer) -> MeOut:
    return MeOut(username=who.username, role=who.role.value, expires_at=who.claims.expires_at)
