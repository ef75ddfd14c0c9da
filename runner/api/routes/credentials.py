"""Broker API credentials (admin): stored encrypted; the API never returns them, only who and when."""

from __future__ import annotations

from fastapi import APIRouter, Response

from framework.security import ApiCredentials, CredentialStore, StoredCredential
from runner.api.auth import Admin, audited
from runner.api.context import Ctx
from runner.api.errors import ERROR_RESPONSES, ApiError
from runner.api.schemas import CredentialOut, CredentialSet, RotateOut

__all__ = ["router"]

router = APIRouter(prefix="/credentials", tags=["credentials"], responses=ERROR_RESPONSES)


def _store(ctx: Ctx) -> CredentialStore:
    if ctx.credentials is None:
        raise ApiError(503, "starting", "the service is starting")
    return ctx.credentials


def _out(stored: StoredCredential) -> CredentialOut:
    return CredentialOut(
        exchange=stored.exchange,
        key_fingerprint=stored.key_fingerprint,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


@router.get("", summary="List the exchanges with stored credentials (never the keys)")
async def list_credentials(who: Admin, ctx: Ctx) -> list[CredentialOut]:
    return [_out(c) for c in await _store(ctx).list()]


@router.put("/{exchange}", summary="Store (encrypted) an exchange's API key and secret")
async def set_credentials(exchange: str, body: CredentialSet, who: Admin, ctx: Ctx) -> CredentialOut:
    async with audited(ctx, who, "credentials.set", exchange):
        stored = await _store(ctx).set(exchange, ApiCredentials(body.api_key, body.secret))
    return _out(stored)


@router.delete("/{exchange}", status_code=204, summary="Delete an exchange's stored credentials")
async def remove_credentials(exchange: str, who: Admin, ctx: Ctx) -> Response:
    async with audited(ctx, who, "credentials.remove", exchange):
        if not await _store(ctx).remove(exchange):
            raise ApiError(404, "unknown_exchange", f"no credentials stored for {exchange!r}")
    return Response(status_code=204)


@router.post("/rotate-key", summary="Re-encrypt every stored credential with the primary master key")
async def rotate_key(who: Admin, ctx: Ctx) -> RotateOut:
    async with audited(ctx, who, "credentials.rotate_key"):
        rotated = await _store(ctx).rotate()
    return RotateOut(rotated=rotated)
