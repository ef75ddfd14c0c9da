"""Users of the runner API in PostgreSQL: add, list, remove, change passwords and roles, authenticate.

Passwords are hashed with argon2id (`framework.security.passwords`) in a worker thread. Logins are
rate limited per username and per client address by an in-memory `LoginRateLimiter` (why in
memory: see `framework.security.ratelimit`), checked before any hashing so a locked-out username
costs the server nothing. An unknown username is verified against a dummy hash, so the answer
takes as long, and says the same, as for a wrong password.

Changing a password or removing a user revokes the user's refresh tokens in the same transaction.
The last admin can be neither removed nor demoted: someone must be able to manage users.

With an `AuditLog`, every login attempt that reaches the password check is recorded, success or
failure, with the client address; rate-limited attempts are logged (warning) but not audited,
since an attacker controls how many there are. Other changes are audited by the caller (the API,
the `rata users` command), which knows who asked.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

import asyncpg

from framework.clock import Clock, WallClock
from framework.errors import RejectedError, UnknownNameError
from framework.events import ns_to_datetime
from framework.security.audit import AuditLog, Outcome
from framework.security.errors import AuthenticationError, LoginRateLimited
from framework.security.model import USERNAME_PATTERN, Role, User, normalise_username
from framework.security.passwords import Passwords
from framework.security.ratelimit import LoginRateLimiter
from framework.security.tokens import revoke_user_tokens

__all__ = ["UserStore"]

log = logging.getLogger(__name__)


class UserStore:
    """The `users` table; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        passwords: Passwords | None = None,
        limiter: LoginRateLimiter | None = None,
        audit: AuditLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._pool = pool
        self._clock: Clock = clock or WallClock()
        self.passwords = passwords or Passwords()
        self.limiter = limiter or LoginRateLimiter(clock=self._clock)
        self._audit = audit
        self._dummy_hash: str | None = None

    def __repr__(self) -> str:
        return f"UserStore({self.passwords!r})"

    async def add(self, username: str, password: str, role: Role | str = Role.VIEWER) -> User:
        """Create a user; raise `RejectedError` if the name is taken or the password too weak."""
        name = normalise_username(username)
        hashed = await self.passwords.hash_async(password)
        now = self._now()
        async with self._pool.acquire() as conn:
            try:
                row = await conn.fetchrow(
                    """
                    INSERT INTO users (username, password_hash, role, created_at, updated_at)
                    VALUES ($1, $2, $3, $4, $4) RETURNING *
                    """,
                    name,
                    hashed,
                    Role(role).value,
                    now,
                )
            except asyncpg.UniqueViolationError:
                raise RejectedError(f"user {name!r} already exists") from None
        assert row is not None
        return User.from_row(row)

    async def list(self) -> list[User]:
        """Return every user, by name."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM users ORDER BY username")
        return [User.from_row(r) for r in rows]

    async def get(self, username: str) -> User:
        """Return the user called `username`, or raise `UnknownNameError`."""
        name = normalise_username(username)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM users WHERE username = $1", name)
            if row is None:
                raise await self._unknown(conn, name)
        return User.from_row(row)

    async def remove(self, username: str) -> User:
        """Delete a user and its refresh tokens; refuse to remove the last admin."""
        name = normalise_username(username)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, name)
            if row["role"] == Role.ADMIN:
                await self._keep_an_admin(conn, name, "remove")
            await conn.execute("DELETE FROM users WHERE id = $1", row["id"])
        return User.from_row(row)

    async def passwd(self, username: str, password: str) -> User:
        """Set a new password and revoke the user's refresh tokens (its sessions end at their next refresh)."""
        name = normalise_username(username)
        hashed = await self.passwords.hash_async(password)
        now = self._now()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, name)
            updated = await conn.fetchrow(
                "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 RETURNING *", row["id"], hashed, now
            )
            await revoke_user_tokens(conn, row["id"], now, "password changed")
        assert updated is not None
        return User.from_row(updated)

    async def set_role(self, username: str, role: Role | str) -> User:
        """Change a user's role (effective at its next token refresh); refuse to demote the last admin."""
        name = normalise_username(username)
        new = Role(role)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, name)
            if row["role"] == Role.ADMIN and new is not Role.ADMIN:
                await self._keep_an_admin(conn, name, "demote")
            updated = await conn.fetchrow(
                "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1 RETURNING *",
                row["id"],
                new.value,
                self._now(),
            )
        assert updated is not None
        return User.from_row(updated)

    async def authenticate(self, username: str, password: str, *, client: str | None = None) -> User:
        """Return the user if `password` is right; raise `AuthenticationError` or `LoginRateLimited`.

        `client` is the caller's address (for the per-address limit and the audit).
        """
        name = username.strip().lower()[:64]
        try:
            self.limiter.check(name, client)
        except LoginRateLimited as exc:
            log.warning("login refused for %r from %s: rate limited (%s)", name, client or "?", exc.scope)
            raise
        row = None
        if USERNAME_PATTERN.match(name):
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow("SELECT * FROM users WHERE username = $1", name)
        hashed = row["password_hash"] if row is not None else await self._dummy()
        matches = await self.passwords.verify_async(hashed, password)
        if row is None or not matches:
            self.limiter.failed(name, client)
            log.info("login failed for %r from %s", name, client or "?")
            await self._record(name, Outcome.REFUSED, client, "unknown user" if row is None else "wrong password")
            raise AuthenticationError
        self.limiter.succeeded(name)
        if self.passwords.needs_rehash(hashed):
            await self._rehash(row["id"], password)
        await self._record(name, Outcome.OK, client, "")
        return User.from_row(row)

    async def _record(self, name: str, outcome: Outcome, client: str | None, reason: str) -> None:
        if self._audit is not None:
            detail = {"reason": reason} if reason else {}
            await self._audit.record(name, "login", name, outcome, client=client, detail=detail)

    async def _rehash(self, user_id: int, password: str) -> None:
        hashed = await self.passwords.hash_async(password)
        async with self._pool.acquire() as conn:
            await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, hashed)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.passwords.hash_async(secrets.token_urlsafe(24))
        return self._dummy_hash

    def _now(self) -> datetime:
        return ns_to_datetime(self._clock.now_ns())

    async def _locked(self, conn: asyncpg.Connection, name: str) -> asyncpg.Record:
        row = await conn.fetchrow("SELECT * FROM users WHERE username = $1 FOR UPDATE", name)
        if row is None:
            raise await self._unknown(conn, name)
        return row

    async def _keep_an_admin(self, conn: asyncpg.Connection, name: str, verb: str) -> None:
        admins = await conn.fetch("SELECT username FROM users WHERE role = 'admin' FOR UPDATE")
        if len(admins) <= 1:
            raise RejectedError(f"cannot {verb} {name!r}: it is the last admin; make another admin first")

    async def _unknown(self, conn: asyncpg.Connection, name: str) -> UnknownNameError:
        names = [r["username"] for r in await conn.fetch("SELECT username FROM users ORDER BY username")]
        return UnknownNameError("user", name, names)
