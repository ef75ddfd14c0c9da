"""Equity snapshots: each strategy instance's equity, cash and PnL, written every so often.

Equity is derived from the fills (the order manager's `PositionBook`) marked at the newest bar
closes: `capital + cash the fills moved + open quantity x mark`. Each snapshot also goes to the
risk manager, whose daily loss and drawdown limits act on it (per instance, and for the account as
the sum of the instances).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal

import asyncpg

from framework.engine.instances import InstanceSpec
from framework.events import ns_to_datetime
from framework.orders.positions import PositionBook
from framework.orders.state import exact_arithmetic
from framework.risk.gateway import RiskManager

__all__ = ["EquitySnapshots"]

log = logging.getLogger(__name__)

ZERO = Decimal(0)


class EquitySnapshots:
    """Write equity snapshots at most every `every_ns` of clock time."""

    def __init__(self, pool: asyncpg.Pool, book: PositionBook, risk: RiskManager, every_ns: int) -> None:
        self.pool = pool
        self.book = book
        self.risk = risk
        self.every_ns = every_ns
        self.marks: dict[str, Decimal] = {}
        self._last_ns: int | None = None
        self._specs: list[InstanceSpec] = []
        self._universes: dict[tuple[str, ...], frozenset[str]] = {}
        self._writes: set[asyncio.Task[None]] = set()

    def mark(self, symbol: str, price: float | Decimal) -> None:
        """Remember the newest close of `symbol`."""
        self.marks[symbol] = price if isinstance(price, Decimal) else Decimal(repr(price))

    def equity_of(self, spec: InstanceSpec) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """Return (equity, cash, realised, unrealised) of one instance at the current marks.

        One pass over the instance's positions in one exact-arithmetic block (sums of fills are
        exact, so their order does not matter): 40 instances holding 14,000 positions take ~6 ms,
        where a lookup per universe symbol and a block per operation took 34 ms at every snapshot.
        """
        universe = self._universes.get(spec.symbols)
        if universe is None:
            universe = self._universes[spec.symbols] = frozenset(spec.symbols)
        marks = self.marks
        cash, value, realised, unrealised = spec.capital, ZERO, ZERO, ZERO
        with exact_arithmetic():
            for position in self.book.held(spec.id):
                if position.fill_count == 0 or position.symbol not in universe:
                    continue
                cash += position.realised - position.cost_basis
                realised += position.realised
                mark = marks.get(position.symbol) if position.quantity else None
                if mark is not None:
                    worth = position.quantity * mark
                    value += worth
                    unrealised += worth - position.cost_basis
            return cash + value, cash, realised, unrealised

    async def flush(self, now_ns: int, *, specs: Iterable[InstanceSpec] | None = None, force: bool = False) -> None:
        """Take a snapshot of every instance when one is due (or `force`).

        The equities are computed and handed to the risk manager at once (its loss limits act
        before the next decision); the rows are written in the background, because this runs on a
        bar close's path and a PostgreSQL round trip there delays that close's orders. `force`
        (the runner's shutdown) waits for every write.
        """
        if specs is not None:
            self._specs = list(specs)
        due = force or self._last_ns is None or now_ns - self._last_ns >= self.every_ns
        if self._specs and due:
            self._last_ns = now_ns
            rows: list[tuple[str, object, Decimal, Decimal, Decimal, Decimal]] = []
            total = ZERO
            for spec in self._specs:
                equity, cash, realised, unrealised = self.equity_of(spec)
                total += equity
                rows.append((spec.id, ns_to_datetime(now_ns), equity, cash, realised, unrealised))
            for spec_id, _, equity, *_ in rows:
                await self.risk.on_equity(spec_id, equity, now_ns)
            await self.risk.on_equity("*", total, now_ns)
            task = asyncio.create_task(self._write(rows), name="rata-equity-snapshot")
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        if force and self._writes:
            await asyncio.gather(*self._writes)

    async def _write(self, rows: Sequence[tuple[object, ...]]) -> None:
        try:
            await self.pool.executemany(
                """
                INSERT INTO equity_snapshots (strategy, time, equity, cash, realised_pnl, unrealised_pnl)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (strategy, time) DO UPDATE SET equity = excluded.equity, cash = excluded.cash,
                    realised_pnl = excluded.realised_pnl, unrealised_pnl = excluded.unrealised_pnl
                """,
                rows,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # the next snapshot writes again
            log.error("equity snapshot of %d instances not written: %s", len(rows), exc)
