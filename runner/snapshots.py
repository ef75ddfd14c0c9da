"""Equity snapshots: each strategy instance's equity, cash and PnL, written every so often.

Equity is derived from the fills (the order manager's `PositionBook`) marked at the newest bar
closes: `capital + cash the fills moved + open quantity x mark`. Each snapshot also goes to the
risk manager, whose daily loss and drawdown limits act on it (per instance, and for the account as
the sum of the instances).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import asyncpg

from framework.engine.instances import InstanceSpec
from framework.events import ns_to_datetime
from framework.orders.positions import PositionBook
from framework.risk.gateway import RiskManager

__all__ = ["EquitySnapshots"]

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

    def mark(self, symbol: str, price: float | Decimal) -> None:
        """Remember the newest close of `symbol`."""
        self.marks[symbol] = price if isinstance(price, Decimal) else Decimal(repr(price))

    def equity_of(self, spec: InstanceSpec) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """Return (equity, cash, realised, unrealised) of one instance at the current marks."""
        cash, value, realised, unrealised = spec.capital, ZERO, ZERO, ZERO
        traded = {p.symbol: p for p in self.book.positions(spec.id)}  # a lookup per traded symbol, not per symbol
        for symbol in spec.symbols:
            position = traded.get(symbol)
            if position is None or position.fill_count == 0:
                continue
            cash += position.cash_flow
            realised += position.realised
            mark = self.marks.get(symbol)
            if mark is not None and position.quantity != 0:
                value += position.quantity * mark
                unrealised += position.unrealised(mark)
        return cash + value, cash, realised, unrealised

    async def flush(self, now_ns: int, *, specs: Iterable[InstanceSpec] | None = None, force: bool = False) -> None:
        """Write a snapshot of every instance when one is due (or `force`)."""
        if specs is not None:
            self._specs = list(specs)
        if not self._specs:
            return
        if not force and self._last_ns is not None and now_ns - self._last_ns < self.every_ns:
            return
        self._last_ns = now_ns
        rows = []
        total = ZERO
        for spec in self._specs:
            equity, cash, realised, unrealised = self.equity_of(spec)
            total += equity
            rows.append((spec.id, ns_to_datetime(now_ns), equity, cash, realised, unrealised))
        await self.pool.executemany(
            """
            INSERT INTO equity_snapshots (strategy, time, equity, cash, realised_pnl, unrealised_pnl)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (strategy, time) DO UPDATE SET equity = excluded.equity, cash = excluded.cash,
                realised_pnl = excluded.realised_pnl, unrealised_pnl = excluded.unrealised_pnl
            """,
            rows,
        )
        for spec_id, _, equity, *_ in rows:
            await self.risk.on_equity(spec_id, equity, now_ns)
        await self.risk.on_equity("*", total, now_ns)
