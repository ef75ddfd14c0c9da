"""Risk persistence in PostgreSQL: limits (`risk_limits`), the account state (`risk_state`),
refusals (`risk_refusals`), and the equity marks rebuilt from `equity_snapshots` after a restart.

Rows map to domain objects here and nowhere else; the schema lives in `migrations/003_trading.sql`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from framework.events import datetime_to_ns, ns_to_datetime
from framework.risk.limits import RiskLimits
from framework.risk.state import DAY_NS, EquityMark, TradingState

__all__ = ["Refusal", "RiskStore", "StoredState"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One order the risk manager refused, as recorded."""

    time_ns: int
    client_id: str | None
    strategy: str
    symbol: str
    rule: str
    reason: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Refusal:
        """Return the refusal of a `risk_refusals` row."""
        return cls(
            datetime_to_ns(row["time"]), row["client_id"], row["strategy"], row["symbol"], row["rule"], row["reason"]
        )


@dataclass(frozen=True, slots=True)
class StoredState:
    """The persisted account trading state, its reason, and since when it holds."""

    state: TradingState
    reason: str
    since_ns: int


class RiskStore:
    """Reads and writes the risk tables through an injected asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load_state(self) -> StoredState:
        """Return the account trading state (active if the row is missing)."""
        row = await self._pool.fetchrow("SELECT state, reason, updated_at FROM risk_state WHERE id")
        if row is None:
            return StoredState(TradingState.ACTIVE, "", 0)
        return StoredState(TradingState(row["state"]), row["reason"], datetime_to_ns(row["updated_at"]))

    async def save_state(self, state: TradingState, reason: str, time_ns: int) -> None:
        """Persist the account trading state."""
        await self._pool.execute(
            """
            INSERT INTO risk_state (id, state, reason, updated_at) VALUES (true, $1, $2, $3)
            ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason,
                updated_at = EXCLUDED.updated_at
            """,
            state.value,
            reason,
            ns_to_datetime(time_ns),
        )

    async def load_limits(self) -> dict[str, RiskLimits]:
        """Return every scope's stored limits."""
        rows = await self._pool.fetch("SELECT strategy, limits FROM risk_limits")
        return {row["strategy"]: RiskLimits.from_json(_json(row["limits"])) for row in rows}

    async def save_limits(self, scope: str, limits: RiskLimits, time_ns: int) -> None:
        """Insert or replace the limits of `scope`."""
        await self._pool.execute(
            """
            INSERT INTO risk_limits (strategy, limits, updated_at) VALUES ($1, $2::jsonb, $3)
            ON CONFLICT (strategy) DO UPDATE SET limits = EXCLUDED.limits, updated_at = EXCLUDED.updated_at
            """,
            scope,
            json.dumps(limits.to_json()),
            ns_to_datetime(time_ns),
        )

    async def delete_limits(self, scope: str) -> None:
        """Remove the limits of `scope`."""
        await self._pool.execute("DELETE FROM risk_limits WHERE strategy = $1", scope)

    async def record_refusals(self, refusals: Sequence[Refusal]) -> None:
        """Append `refusals` in one round trip."""
        if not refusals:
            return
        await self._pool.executemany(
            "INSERT INTO risk_refusals (time, client_id, strategy, symbol, rule, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [(ns_to_datetime(r.time_ns), r.client_id, r.strategy, r.symbol, r.rule, r.reason) for r in refusals],
        )

    async def refusals(
        self, *, strategy: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[Refusal]:
        """Return the latest refusals (oldest first), optionally of one strategy and since a time."""
        rows = await self._pool.fetch(
            """
            SELECT * FROM (
                SELECT id, time, client_id, strategy, symbol, rule, reason FROM risk_refusals
                WHERE ($1::text IS NULL OR strategy = $1) AND ($2::timestamptz IS NULL OR time >= $2)
                ORDER BY id DESC LIMIT $3
            ) latest ORDER BY id
            """,
            strategy,
            since,
            limit,
        )
        return [Refusal.from_row(row) for row in rows]

    async def load_marks(self, now_ns: int, since_ns: int) -> list[tuple[str, EquityMark]]:
        """Rebuild each scope's equity mark from `equity_snapshots` at `now_ns`.

        The day start is the last equity before the later of the UTC day start and `since_ns` (the
        time the account state last became active, i.e. the last release), or the first one after
        it; the peak is the highest equity since `since_ns`. Scopes with no snapshot since then
        get no mark.
        """
        baseline = max(now_ns - now_ns % DAY_NS, since_ns)
        rows = await self._pool.fetch(
            """
            SELECT s.strategy, last.equity AS last, last.time AS last_time, peak.equity AS peak,
                   coalesce(before.equity, after.equity) AS day_start
            FROM (SELECT DISTINCT strategy FROM equity_snapshots) s
            CROSS JOIN LATERAL (SELECT equity, time FROM equity_snapshots e WHERE e.strategy = s.strategy
                                AND e.time <= $3 ORDER BY time DESC LIMIT 1) last
            CROSS JOIN LATERAL (SELECT max(equity) AS equity FROM equity_snapshots e WHERE e.strategy = s.strategy
                                AND e.time >= $2 AND e.time <= $3) peak
            LEFT JOIN LATERAL (SELECT equity FROM equity_snapshots e WHERE e.strategy = s.strategy
                               AND e.time < $1 ORDER BY time DESC LIMIT 1) before ON true
            LEFT JOIN LATERAL (SELECT equity FROM equity_snapshots e WHERE e.strategy = s.strategy
                               AND e.time >= $1 ORDER BY time LIMIT 1) after ON true
            WHERE peak.equity IS NOT NULL
            """,
            ns_to_datetime(baseline),
            ns_to_datetime(since_ns),
            ns_to_datetime(now_ns),
        )
        marks: list[tuple[str, EquityMark]] = []
        for row in rows:
            last_ns = datetime_to_ns(row["last_time"])
            peak = max(row["peak"], row["day_start"], row["last"])
            marks.append((row["strategy"], EquityMark(now_ns // DAY_NS, row["day_start"], peak, row["last"], last_ns)))
        return marks


def _json(value: object) -> dict[str, object]:
    loaded = json.loads(value) if isinstance(value, str) else value
    if not isinstance(loaded, dict):
        raise TypeError(f"risk_limits.limits must be a JSON object, got {loaded!r}")
    return loaded
