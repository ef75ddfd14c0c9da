"""Backtests on stored bars, run for the API: one at a time, off the event loop, kept in memory.

`POST /backtests` reads the bars from PostgreSQL, runs `framework.backtest` in a worker thread
(so the runner keeps trading meanwhile; one backtest at a time, so research cannot starve it) and
keeps the result, newest `keep` of them, for its stats, trades and equity curve.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pandas as pd

from framework.backtest import BacktestResult, backtest
from framework.data.store import read_bars
from framework.errors import DataError, UnknownNameError
from framework.registry import get_strategy
from framework.strategy import resolve_params
from framework.timeframes import TIMEFRAMES
from runner.api.errors import ApiError, in_body
from runner.api.schemas import (
    BacktestEquityOut,
    BacktestEquityPoint,
    BacktestOut,
    BacktestRequest,
    BacktestTrade,
    TradesOut,
)

__all__ = ["Backtests"]

MAX_CELLS = 5_000_000
"""Bars x instruments a backtest may read (a bigger one belongs in a notebook or `rata backtest`)."""


@dataclass(frozen=True, slots=True)
class _Done:
    summary: BacktestOut
    result: BacktestResult


class Backtests:
    """Run backtests and keep the newest `keep` results."""

    def __init__(self, keep: int = 32) -> None:
        self.keep = keep
        self._done: OrderedDict[str, _Done] = OrderedDict()
        self._lock = asyncio.Lock()

    async def run(self, pool: asyncpg.Pool, body: BacktestRequest) -> BacktestOut:
        """Backtest `body.strategy` on the stored bars it names; return the summary (422 for bad input)."""
        if body.timeframe not in TIMEFRAMES:
            raise ApiError(422, "unknown_timeframe", f"timeframe must be one of {', '.join(TIMEFRAMES)}")
        if body.start is not None and body.end is not None and body.start >= body.end:
            raise ApiError(422, "invalid_range", "start must be before end")
        with in_body():
            cls = get_strategy(body.strategy)
            strategy = cls(**resolve_params(cls, dict(body.params)))
        try:
            bars = await read_bars(pool, list(body.symbols), body.timeframe, body.start, body.end, venue=body.venue)
        except UnknownNameError as exc:
            raise ApiError(422, "unknown_symbol", str(exc)) from None
        except DataError as exc:
            raise ApiError(422, "no_data", str(exc)) from None
        if len(bars) * len(bars.symbols) > MAX_CELLS:
            raise ApiError(422, "too_much_data", f"{len(bars):,} bars x {len(bars.symbols)} symbols; narrow the range")
        async with self._lock:
            result = await asyncio.to_thread(
                backtest,
                strategy,
                bars,
                fees=body.fees,
                slippage=body.slippage,
                cash=body.cash,
                fill=body.fill,
            )
        backtest_id = uuid.uuid4().hex[:16]
        summary = BacktestOut(
            id=backtest_id,
            strategy=strategy.name,
            params=dict(strategy.values),
            symbols=list(bars.symbols),
            timeframe=body.timeframe,
            bars=len(bars),
            start=bars.index[0].to_pydatetime(),
            end=bars.index[-1].to_pydatetime(),
            created_at=datetime.now(UTC),
            final_equity=_number(result.final_equity),
            stats=dict(result.stats),
        )
        self._done[backtest_id] = _Done(summary, result)
        while len(self._done) > self.keep:
            self._done.popitem(last=False)
        return summary

    def recent(self) -> list[BacktestOut]:
        """Return the kept backtests, newest first."""
        return [done.summary for done in reversed(self._done.values())]

    def get(self, backtest_id: str) -> BacktestOut:
        """Return one kept backtest (404 `unknown_backtest`)."""
        return self._get(backtest_id).summary

    def trades(self, backtest_id: str) -> TradesOut:
        """Return a backtest's trades (closed and open) in entry order."""
        table = self._get(backtest_id).result.trades
        items = [
            BacktestTrade(
                symbol=str(row["symbol"]),
                direction=row["direction"],
                status=row["status"],
                size=float(row["size"]),
                entry_time=_time(row["entry_time"]) or datetime.min.replace(tzinfo=UTC),
                entry_price=float(row["entry_price"]),
                entry_fees=float(row["entry_fees"]),
                exit_time=_time(row["exit_time"]) if row["status"] == "closed" else None,
                exit_price=_number(row["exit_price"]) if row["status"] == "closed" else None,
                exit_fees=_number(row["exit_fees"]) if row["status"] == "closed" else None,
                pnl=_number(row["pnl"]),
                trade_return=_number(row["return"]),
            )
            for row in table.to_dict(orient="records")
        ]
        return TradesOut(items=items)

    def equity(self, backtest_id: str) -> BacktestEquityOut:
        """Return a backtest's equity and drawdown after every bar."""
        result = self._get(backtest_id).result
        points = [
            BacktestEquityPoint(
                time=_time(t) or datetime.min.replace(tzinfo=UTC), equity=_number(e), drawdown=_number(d)
            )
            for t, e, d in zip(result.equity.index, result.equity.to_numpy(), result.drawdown.to_numpy(), strict=True)
        ]
        return BacktestEquityOut(items=points)

    def _get(self, backtest_id: str) -> _Done:
        done = self._done.get(backtest_id)
        if done is None:
            raise ApiError(
                404, "unknown_backtest", f"no backtest {backtest_id!r} (only the newest {self.keep} are kept)"
            )
        return done


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _time(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()
