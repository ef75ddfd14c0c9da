"""Access tokens (JWT, HS256, short-lived) and refresh tokens (opaque, stored hashed, rotated).

Access tokens are JWTs signed with HS256 and nothing else: the algorithm is pinned on decoding, so
`alg=none`, another HMAC size or an asymmetric algorithm is refused before any claim is read.
Issuer, audience, expiry, not-before, issue time, subject and `jti` are required and checked.
Expiry is checked against the injected clock (PyJWT's own checks read the wall clock, which a
replay runner or a test does not run on), with a few seconds of leeway for clock skew.

Refresh tokens are 256-bit random strings; the database keeps only their SHA-256 (a stolen table
yields no usable token; a fast hash suffices for random input). Each belongs to a family started
at login. A refresh revokes the presented token and issues the next one of the family; presenting
a revoked token again (a stolen token used after its owner already refreshed, or the other way
round) revokes the whole family, so both parties are logged out. A token presented on behalf of
another user than its owner is refused and its family revoked too: it has leaked.

Access tokens cannot be recalled once issued, except within this process (`revoke_access`, for
logout); they live `access_ttl_s` (10 minutes by default), and a refresh re-reads the user's
current role, so a demotion or removal takes effect within that time.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import jwt

from framework.clock import Clock, WallClock
from framework.events import ns_to_datetime
from framework.security.errors import InvalidTokenError
from framework.security.keys import SigningKey
from framework.security.model import Role, User
from framework.settings import Settings

__all__ = ["ALGORITHM", "AccessClaims", "TokenPair", "TokenService", "revoke_user_tokens"]

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
_REQUIRED = ["iss", "aud", "sub", "exp", "iat", "nbf", "jti"]
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: int
    username: str
    role: Role
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True, repr=False)
class TokenPair:
    """What a login or a refresh returns. The repr shows neither token."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_at: datetime
    user: User
    token_type: str = "bearer"

    def __repr__(self) -> str:
        user, ttl = self.user.username, self.expires_in
        return f"TokenPair(user={user!r}, access=<hidden>, refresh=<hidden>, expires_in={ttl})"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def revoke_user_tokens(conn: asyncpg.Connection, user_id: int, at: datetime, reason: str) -> int:
    """Revoke every live refresh token of a user (inside the caller's transaction); return how many."""
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        at,
        reason,
    )
    return int(status.split()[-1])


class TokenService:
    """Issue, verify, rotate and revoke tokens; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: SigningKey,
        *,
        issuer: str = "rata",
        audience: str = "rata-api",
        access_ttl_s: int = 600,
        refresh_ttl_s: int = 14 * 86_400,
        leeway_s: int = 5,
        clock: Clock | None = None,
    ) -> None:
        self._pool = pool
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.leeway_s = leeway_s
        self._clock: Clock = clock or WallClock()
        self._revoked_jti: dict[str, int] = {}

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings, clock: Clock | None = None) -> TokenService:
        """Return a service with the key, issuer, audience and lifetimes of `settings`."""
        return cls(
            pool,
            SigningKey.from_settings(settings),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl_s=settings.access_token_ttl_s,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"TokenService(issuer={self.issuer!r}, audience={self.audience!r}, key={self._key!r})"

    # ---------------------------------------------------------------- access tokens

    def issue_access(self, user: User) -> tuple[str, AccessClaims]:
        """Return a signed access token for `user` and its claims."""
        now = self._clock.now_ns() // _NS
        jti = uuid.uuid4().hex
        exp = now + self.access_ttl_s
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.username,
            "uid": user.id,
            "role": user.role.value,
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
        }
        token = jwt.encode(payload, self._key.value, algorithm=ALGORITHM)
        claims = AccessClaims(
            user.id, user.username, user.role, jti, ns_to_datetime(now * _NS), ns_to_datetime(exp * _NS)
        )
        return token, claims

    def verify_access(self, token: str) -> AccessClaims:
        """Return the claims of a valid access token, or raise `InvalidTokenError` saying why (in `reason`)."""
        payload = self._decode(token)
        now = self._clock.now_ns() // _NS
        exp, nbf, iat = payload["exp"], payload["nbf"], payload["iat"]
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in (exp, nbf, iat)):
            raise InvalidTokenError("exp, nbf and iat must be integer timestamps")
        if exp <= now - self.leeway_s:
            raise InvalidTokenError("expired")
        if nbf > now + self.leeway_s or iat > now + self.leeway_s:
            raise InvalidTokenError("not valid yet")
        if payload.get("typ") != "access":
            raise InvalidTokenError("not an access token")
        try:
            role = Role(payload["role"])
            user_id = int(payload["uid"])
            username = str(payload["sub"])
        except (KeyError, ValueError, TypeError):
            raise InvalidTokenError("bad role, uid or sub claim") from None
        jti = str(payload["jti"])
        if jti in self._revoked_jti:
            raise InvalidTokenError("revoked")
        return AccessClaims(user_id, username, role, jti, ns_to_datetime(iat * _NS), ns_to_datetime(exp * _NS))

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise InvalidTokenError("malformed") from None
        if alg != ALGORITHM:
            raise InvalidTokenError(f"algorithm {str(alg)[:20]!r} is not accepted")
        options: Any = {"require": _REQUIRED, "verify_exp": False, "verify_iat": False, "verify_nbf": False}
        try:
            return jwt.decode(
                token,
                self._key.value,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options=options,
            )
        except jwt.InvalidAudienceError:
            raise InvalidTokenError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"missing claim {exc.claim}") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"undecodable ({type(exc).__name__})") from None

    def revoke_access(self, claims: AccessClaims) -> None:
        """Refuse this access token from now on in this process (logout); forgotten once it expires."""
        now = self._clock.now_ns() // _NS
        self._revoked_jti = {j: exp for j, exp in self._revoked_jti.items() if exp > now - self.leeway_s}
        self._revoked_jti[claims.jti] = int(claims.expires_at.timestamp())

    # ---------------------------------------------------------------- refresh tokens

    async def issue(self, user: User) -> TokenPair:
        """Return an access token and the first refresh token of a new family (after a login)."""
        async with self._pool.acquire() as conn:
            return await self._issue(conn, user, uuid.uuid4(), self._now())

    async def refresh(self, refresh_token: str, *, username: str | None = None) -> TokenPair:
        """Rotate `refresh_token`: revoke it and return a new pair for its owner, with the owner's current role.

        `username`, when given, is who the caller claims to be; a token of anyone else is refused.
        Raises `InvalidTokenError` for an unknown, expired, revoked (family revoked) or foreign token.
        """
        now = self._now()
        problem = ""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._locked_row(conn, refresh_token)
            if row is None:
                problem = "unknown refresh token"
            elif username is not None and row["username"] != username:
                problem = "another user's refresh token"
                await self._revoke_family(conn, row["family"], now, "presented by another user")
            elif row["revoked_at"] is not None:
                problem = f"reuse of a refresh token revoked ({row['revoked_reason']}); family revoked"
                await self._revoke_family(conn, row["family"], now, "reuse detected")
            elif row["expires_at"] <= now:
                problem = "expired refresh token"
            else:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = 'rotated' WHERE id = $1",
                    row["id"],
                    now,
                )
                owner = User(row["user_id"], row["username"], Role(row["role"]), row["created_at"], row["updated_at"])
                return await self._issue(conn, owner, row["family"], now)
        who = row["username"] if row is not None else "?"
        log.warning("refresh refused: %s (owner %s, claimed by %s)", problem, who, username or "-")
        raise InvalidTokenError(problem)

    async def revoke(self, refresh_token: str, *, username: str | None = None) -> None:
        """Revoke the family of `refresh_token` (logout); refuse a token of another user than `username`."""
        now = self._now()
        problem = ""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._locked_row(conn, refresh_token)
            if row is None:
                problem = "unknown refresh token"
            else:
                foreign = username is not None and row["username"] != username
                reason = "presented by another user" if foreign else "logout"
                await self._revoke_family(conn, row["family"], now, reason)
                if foreign:
                    problem = "another user's refresh token"
        if problem:
            log.warning("refresh token revocation refused: %s (claimed by %s)", problem, username or "-")
            raise InvalidTokenError(problem)

    async def revoke_user(self, user_id: int, reason: str = "revoked") -> int:
        """Revoke every live refresh token of a user; return how many."""
        async with self._pool.acquire() as conn:
            return await revoke_user_tokens(conn, user_id, self._now(), reason)

    async def prune(self) -> int:
        """Delete refresh tokens that expired (they can no longer be used nor reused); return how many."""
        async with self._pool.acquire() as conn:
            status = await conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= $1", self._now())
        return int(status.split()[-1])

    def _now(self) -> datetime:
        return ns_to_datetime(self._clock.now_ns())

    async def _locked_row(self, conn: asyncpg.Connection, token: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            """
            SELECT t.id, t.family, t.user_id, t.expires_at, t.revoked_at, t.revoked_reason,
                   u.username, u.role, u.created_at, u.updated_at
            FROM refresh_tokens t JOIN users u ON u.id = t.user_id
            WHERE t.token_hash = $1 FOR UPDATE OF t
            """,
            _digest(token),
        )

    async def _revoke_family(self, conn: asyncpg.Connection, family: uuid.UUID, at: datetime, reason: str) -> None:
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = $3 WHERE family = $1 AND revoked_at IS NULL",
            family,
            at,
            reason,
        )

    async def _issue(self, conn: asyncpg.Connection, user: User, family: uuid.UUID, now: datetime) -> TokenPair:
        access, _ = self.issue_access(user)
        refresh = secrets.token_urlsafe(32)
        expires = ns_to_datetime(self._clock.now_ns() + self.refresh_ttl_s * _NS)
        await conn.execute(
            """
            INSERT INTO refresh_tokens (id, family, user_id, token_hash, issued_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            uuid.uuid4(),
            family,
            user.id,
            _digest(refresh),
            now,
            expires,
        )
        return TokenPair(access, refresh, self.access_ttl_s, expires, user)
