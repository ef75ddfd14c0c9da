"""Bearer-token authentication, role checks, and the audit of every mutating call.

- `Viewer`, `Trader`, `Admin`: dependencies that verify the `Authorization: Bearer <JWT>` access
  token (HS256 only, issuer, audience and expiry checked by `TokenService`) and require at least
  that role (viewer < trader < admin). A missing or bad token is a 401; too low a role a 403,
  which is audited as a refused call when the request would have changed something.
- `audited(...)`: wrap the work of a mutating handler; one audit entry is written with the user,
  the action, the target and the outcome: ok, refused (a 4xx) or error (anything else).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from framework.errors import RejectedError
from framework.security import AccessClaims, InvalidTokenError, Outcome, Role
from runner.api.context import ApiContext, Ctx
from runner.api.errors import ApiError, as_api_error

__all__ = ["Admin", "AuditNote", "Principal", "Trader", "Viewer", "audited", "client_of", "principal", "require"]

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BEARER = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/login")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller."""

    claims: AccessClaims
    client: str | None

    @property
    def username(self) -> str:
        """Return the caller's username."""
        return self.claims.username

    @property
    def role(self) -> Role:
        """Return the caller's role (as of the token's issue)."""
        return self.claims.role


def client_of(request: Request) -> str | None:
    """Return the caller's address (for the audit and the login rate limit)."""
    return request.client.host if request.client is not None else None


def verify(ctx: ApiContext, token: str) -> AccessClaims:
    """Return the claims of a valid access token, or raise a 401 `ApiError` (the precise reason is logged)."""
    _, tokens, _ = ctx.store()
    try:
        return tokens.verify_access(token)
    except InvalidTokenError as exc:
        log.info("access token refused: %s", exc.reason)
        raise ApiError(401, "invalid_token", str(exc), headers=_CHALLENGE) from None


async def principal(
    request: Request,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Principal:
    """Dependency: the caller of a valid bearer access token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "missing_token", "send an access token: Authorization: Bearer <token>", headers=_CHALLENGE)
    return Principal(verify(ctx, credentials.credentials), client_of(request))


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """Return a dependency that admits callers with at least `role`."""

    async def dependency(request: Request, ctx: Ctx, who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role.allows(role):
            return who
        reason = f"role {who.role.value} may not do this; it needs {role.value}"
        if request.method not in SAFE_METHODS:
            await _record(ctx, who, _action(request), request.url.path, Outcome.REFUSED, {"reason": reason})
        log.warning("%s refused to %s: %s %s", reason, who.username, request.method, request.url.path)
        raise ApiError(403, "forbidden", reason)

    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Trader = Annotated[Principal, Depends(require(Role.TRADER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


def _action(request: Request) -> str:
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    return str(name) if name else f"{request.method} {request.url.path}"


@dataclass
class AuditNote:
    """What a handler adds to its audit entry while it works (the target it resolved, details)."""

    target: str
    detail: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def audited(
    ctx: ApiContext, who: Principal | str, action: str, target: str = "", detail: dict[str, Any] | None = None
) -> AsyncIterator[AuditNote]:
    """Run the body and write one audit entry: ok, refused (a 4xx refusal) or error; re-raise refusals.

    `who` is the caller, or a username for calls made without an access token (a refresh).
    """
    note = AuditNote(target, dict(detail or {}))
    try:
        yield note
    except ApiError as exc:
        outcome = Outcome.REFUSED if exc.status < 500 else Outcome.ERROR
        await _record(ctx, who, action, note.target, outcome, {**note.detail, "code": exc.code, "reason": exc.reason})
        raise
    except RejectedError as exc:
        mapped = as_api_error(exc)
        detail = {**note.detail, "code": mapped.code, "reason": mapped.reason}
        await _record(ctx, who, action, note.target, Outcome.REFUSED, detail)
        raise
    except Exception as exc:
        await _record(ctx, who, action, note.target, Outcome.ERROR, {**note.detail, "error": type(exc).__name__})
        raise
    await _record(ctx, who, action, note.target, Outcome.OK, note.detail)


def _printable(value: Any) -> Any:
    """Return `value` with NUL characters (which PostgreSQL text refuses) shown as `\\0`, at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
    if isinstance(value, dict):
        return {_printable(str(k)): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


async def _record(
    ctx: ApiContext, who: Principal | str, action: str, target: str, outcome: Outcome, detail: dict[str, Any]
) -> None:
    if ctx.audit is None:
        return
    username, client = (who, None) if isinstance(who, str) else (who.username, who.client)
    try:
        await ctx.audit.record(
            _printable(username), action, _printable(target), outcome, client=client, detail=_printable(detail)
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.error("audit entry not written (%s %s by %s, %s): %s", action, target, username, outcome, exc)
