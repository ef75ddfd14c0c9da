"""Backtest-live parity: replay history through the live runner and diff its fills with vectorbt's.

`run_parity` backtests a strategy with vectorbt, then replays the same bars through the real
runner in replay mode (`ReplayFeed` on a simulated clock, the strategy engine, the order manager
writing to PostgreSQL, the risk gateway, the paper venue) and compares what each produced:

- the fills, one row per (bar, symbol, side): time (the bar the fill happened in, labelled by its
  close as the backtest labels it), side, quantity (exact, after rounding to the lot step), price
  (relative 1e-9) and fees (1e-6);
- the final equity, to the cent (live: the capital plus the cash the stored fills moved plus the
  open positions at the last close).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pandas as pd

from framework.backtest import BacktestResult, backtest
from framework.bars import Bars
from framework.brokers.paper import PaperBroker
from framework.clock import SimulatedClock
from framework.errors import DataError
from framework.events import Bar
from framework.execution import ExecutionModel
from framework.feeds.replay import ReplayFeed
from framework.instruments import Instrument
from framework.orders.model import quantity_of
from framework.storage import apply_migrations, connect_dsn
from framework.strategy import Strategy
from framework.timeframes import TIMEFRAMES
from runner.config import FeedConfig, RunConfig, RunnerSection, StrategyConfig
from runner.service import Runner

__all__ = ["ParityResult", "run_parity", "scratch_database"]

CENT = Decimal("0.005")
INSTANCE = "parity"


@dataclass
class ParityResult:
    """What the backtest and the live replay produced, and every difference between them."""

    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    bars: int
    backtest_fills: pd.DataFrame
    live_fills: pd.DataFrame
    backtest_equity: float
    live_equity: Decimal
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether there is no difference."""
        return not self.differences


class BarsSource:
    """A `ReplaySource` over an in-memory `Bars` panel: each row's bars, emitted at their close."""

    def __init__(self, data: Bars, timeframe: str, venue: str = "SIM") -> None:
        self.data = data
        self.timeframe = timeframe
        self.venue = venue
        self.length = TIMEFRAMES[timeframe]

    async def open(self) -> list[Instrument]:
        """Return the instruments of the panel."""
        return list(self.data.instruments.values())

    async def rows(self) -> AsyncGenerator[Bar, None]:
        """Yield the bars in time order (symbols in column order within a close)."""
        data = self.data
        fields = [data.field(f).to_numpy() for f in ("open", "high", "low", "close", "volume")]
        times = data.index.as_unit("ns").asi8
        for row, close_ns in enumerate(times):
            for col, symbol in enumerate(data.symbols):
                o, h, lo, c, v = (float(f[row, col]) for f in fields)
                if np.isnan(c):
                    continue
                yield Bar(self.venue, symbol, self.timeframe, int(close_ns) - self.length, o, h, lo, c, v, np.nan, 1)


def parity_timeframe(data: Bars) -> str:
    """Return the rata timeframe of a panel ("1D" -> "1d"), or raise `DataError`."""
    label = (data.timeframe or "").strip()
    for candidate in (label, label.lower()):
        if candidate in TIMEFRAMES:
            return candidate
    raise DataError(f"parity needs bars of one of {', '.join(TIMEFRAMES)}; this data is {label or 'unlabelled'}")


async def scratch_database(admin_dsn: str) -> tuple[str, str]:
    """Create an empty database for one run on the server of `admin_dsn`; return (name, dsn)."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"rata_parity_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin_dsn)
    return name, urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop a scratch database."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_parity(
    strategy: Strategy,
    data: Bars,
    model: ExecutionModel,
    *,
    dsn: str,
    workdir: Path,
    migrate: bool = True,
) -> ParityResult:
    """Backtest `strategy` on `data` and replay it through the live runner (database at `dsn`)."""
    timeframe = parity_timeframe(data)
    result = backtest(strategy, data, model=model)
    pool = await connect_dsn(dsn, min_size=1, max_size=4)
    try:
        if migrate:
            await apply_migrations(pool)
        clock = SimulatedClock(int(data.index[0].value) - 2 * TIMEFRAMES[timeframe])
        feed = ReplayFeed(BarsSource(data, timeframe), speed=None, clock=clock, name="parity")
        broker = PaperBroker(
            workdir / f"paper-{uuid.uuid4().hex[:8]}",
            model=model,
            instruments=data.instruments.values(),
            cash=model.cash,
            clock=clock,
        )
        config = RunConfig(
            runner=RunnerSection(
                mode="replay", cash=model.cash, fees=model.fees, slippage=model.slippage, fill=model.fill
            ),
            feed=FeedConfig(kind="replay", timeframe=timeframe),
            strategies=[
                StrategyConfig(
                    id=INSTANCE,
                    strategy=strategy.name,
                    params=dict(strategy.values),
                    symbols=list(data.symbols),
                    timeframe=timeframe,
                    capital=model.cash,
                )
            ],
        )
        runner = Runner(
            config.check(),
            pool,
            feed,
            broker,
            clock,
            instruments=list(data.instruments.values()),
            venue_timeframe=timeframe,
        )
        report = await runner.start()
        if not report.ok:
            raise DataError(f"parity replay could not start: {report.reason}")
        await runner.run()
        live = await _live_fills(pool, TIMEFRAMES[timeframe] if model.fill == "next_open" else 0)
    finally:
        await pool.close()
    return _compare(strategy, data, result, live)


async def _live_fills(pool: asyncpg.Pool, shift_ns: int) -> pd.DataFrame:
    rows = await pool.fetch(
        "SELECT time, symbol, side, quantity, price, fee FROM fills WHERE strategy = $1 ORDER BY time, symbol, side",
        INSTANCE,
    )
    table = pd.DataFrame(
        {
            "time": pd.to_datetime([r["time"] for r in rows], utc=True) + pd.Timedelta(shift_ns, unit="ns"),
            "symbol": [r["symbol"] for r in rows],
            "side": [r["side"] for r in rows],
            "quantity": [Decimal(r["quantity"]) for r in rows],
            "cash": [
                -Decimal(r["quantity"]) * Decimal(r["price"]) * (1 if r["side"] == "buy" else -1) - Decimal(r["fee"])
                for r in rows
            ],
            "notional": [Decimal(r["quantity"]) * Decimal(r["price"]) for r in rows],
            "fees": [Decimal(r["fee"]) for r in rows],
        }
    )
    return table


def _aggregate(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame(columns=["time", "symbol", "side", "quantity", "price", "fees"])
    grouped = table.groupby(["time", "symbol", "side"], sort=True, as_index=False).agg(
        quantity=("quantity", "sum"), notional=("notional", "sum"), fees=("fees", "sum")
    )
    grouped["price"] = [float(n) / float(q) for n, q in zip(grouped["notional"], grouped["quantity"], strict=True)]
    return grouped[["time", "symbol", "side", "quantity", "price", "fees"]].reset_index(drop=True)


def _compare(strategy: Strategy, data: Bars, result: BacktestResult, live: pd.DataFrame) -> ParityResult:
    expected = result.fills.copy()
    quantities = [
        quantity_of(q, data.instruments[s]) for s, q in zip(expected["symbol"], expected["quantity"], strict=True)
    ]
    notionals = [Decimal(repr(float(p))) * q for p, q in zip(expected["price"], quantities, strict=True)]
    fees = [Decimal(repr(float(f))) for f in expected["fees"]]
    expected["quantity"] = pd.Series(quantities, index=expected.index, dtype=object)
    expected["notional"] = pd.Series(notionals, index=expected.index, dtype=object)
    expected["fees"] = pd.Series(fees, index=expected.index, dtype=object)
    want, got = _aggregate(expected), _aggregate(live)
    differences: list[str] = []
    for i in range(max(len(want), len(got))):
        if i >= len(want) or i >= len(got):
            extra = got.iloc[i] if i >= len(want) else want.iloc[i]
            which = "live only" if i >= len(want) else "backtest only"
            differences.append(f"fill {i}: {which}: {_describe(extra)}")
            break
        a, b = want.iloc[i], got.iloc[i]
        problems = _row_problems(a, b)
        if problems:
            differences.append(f"fill {i}: backtest {_describe(a)} vs live {_describe(b)}: {problems}")
            break
    last = data.close.ffill().iloc[-1]
    cash = Decimal(repr(result.model.cash)) + sum(live["cash"], Decimal(0))
    value = Decimal(0)
    for symbol in data.symbols:
        held = sum(
            (
                q if s == "buy" else -q
                for q, s, sym in zip(live["quantity"], live["side"], live["symbol"], strict=True)
                if sym == symbol
            ),
            Decimal(0),
        )
        value += held * Decimal(repr(float(last[symbol])))
    live_equity = cash + value
    if abs(live_equity - Decimal(repr(result.final_equity))) > CENT:
        differences.append(f"final equity: backtest {result.final_equity:.2f} vs live {live_equity:.2f}")
    return ParityResult(
        strategy=strategy.name,
        params=dict(strategy.values),
        symbols=list(data.symbols),
        bars=len(data),
        backtest_fills=want,
        live_fills=got,
        backtest_equity=result.final_equity,
        live_equity=live_equity,
        differences=differences,
    )


def _row_problems(a: pd.Series, b: pd.Series) -> str:
    problems = []
    for name in ("time", "symbol", "side", "quantity"):
        if a[name] != b[name]:
            problems.append(name)
    if not np.isclose(float(a["price"]), float(b["price"]), rtol=1e-9, atol=0):
        problems.append("price")
    if abs(Decimal(a["fees"]) - Decimal(b["fees"])) > Decimal("1e-6"):
        problems.append("fees")
    return ", ".join(problems)


def _describe(row: pd.Series) -> str:
    return (
        f"{row['time']:%Y-%m-%d %H:%M:%S} {row['side']} {row['quantity']} {row['symbol']} @ {float(row['price']):.6f}"
    )
