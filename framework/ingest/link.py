"""The ingestion writer's link to PostgreSQL: a pool, whether the database answers, when to retry.

Being "down" is a state with a schedule: after a failure the link waits an exponentially growing,
jittered delay before the next attempt, so a database that is away is not hammered and one that
comes back is found quickly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg

from framework.errors import ParameterError, TransientError

__all__ = ["DATABASE_DOWN", "DatabaseLink", "PoolFactory"]

log = logging.getLogger(__name__)

PoolFactory = Callable[[], Awaitable[asyncpg.Pool]]

DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    TransientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
)
"""Errors that mean "the database is unreachable or busy for now": spool and retry.

`InternalClientError` is here because asyncpg raises it on a connection left half-way through a
protocol exchange by a server that went away (seen when PostgreSQL stops during a COPY).
"""


class DatabaseLink:
    """Hold the pool and the up/down state of the database, with backoff between attempts.

    With a `connect` factory the link owns its pool: it throws the pool away when the database
    goes down and makes a new one on the next attempt (the `pool` passed in included), and
    `close` closes it. Without a factory it keeps the given pool, which reconnects by itself.
    """

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        connect: PoolFactory | None = None,
        *,
        backoff_s: tuple[float, float] = (0.05, 2.0),
        probe_timeout_s: float = 5.0,
        where: str = "the spool",
    ) -> None:
        if pool is None and connect is None:
            raise ParameterError("the database link needs a pool or a connect factory")
        self._pool = pool
        self._connect = connect
        self._backoff_min, self._backoff_max = backoff_s
        self._probe_timeout_s = probe_timeout_s
        self._where = where
        self._delay = self._backoff_min
        self._retry_at = 0.0
        self._warned = False
        self.online = False
        self.outages = 0

    @property
    def pool(self) -> asyncpg.Pool:
        """Return the current pool; raise `TransientError` while there is none (down, factory)."""
        if self._pool is None:
            raise TransientError("no database pool: the database is unreachable")
        return self._pool

    def retry_in(self) -> float:
        """Return the seconds until the next attempt is due (0 when online or due now)."""
        if self.online:
            return 0.0
        return max(0.0, self._retry_at - asyncio.get_running_loop().time())

    async def probe(self, *, now: bool = False) -> bool:
        """Return whether the database answers; while down, only try when the delay has passed (or `now`)."""
        if self.online:
            return True
        if not now and self.retry_in() > 0:
            return False
        try:
            if self._pool is None:
                assert self._connect is not None
                self._pool = await self._connect()
            async with asyncio.timeout(self._probe_timeout_s), self._pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        except DATABASE_DOWN as exc:
            self.went_down(exc)
            return False
        if self._warned:
            log.warning("database reachable again")
        self.online = True
        self._warned = False
        self._delay = self._backoff_min
        return True

    def went_down(self, exc: BaseException) -> None:
        """Record a failure: go offline, drop an owned pool, schedule the next attempt."""
        if self.online:
            self.outages += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "database unreachable (%s: %s); spooling market data to %s", type(exc).__name__, exc, self._where
            )
        self.online = False
        if self._connect is not None and self._pool is not None:
            self._pool.terminate()
            self._pool = None
        self._retry_at = asyncio.get_running_loop().time() + self._delay * random.uniform(0.5, 1.0)
        self._delay = min(self._delay * 2, self._backoff_max)

    async def close(self) -> None:
        """Close the pool if the link owns it."""
        if self._connect is not None and self._pool is not None:
            await self._pool.close()
            self._pool = None
