"""Parity: decisions replayed through the paper venue fill exactly as the vectorbt backtest filled them.

The replay does what the live engine does: at each bar close it first feeds the closed bars to the
venue, then submits the decisions taken at that close. The quantities are the backtest's own (the
engine's sizing is not under test here), except in the venue-sizing scenario, where the engine
over-asks and the venue's cash rule must cut each buy to vectorbt's all-in quantity by itself.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from framework import Bars, ExecutionModel, Instrument, backtest
from framework.backtest import BacktestResult
from framework.brokers.paper import PaperBroker
from framework.clock import SimulatedClock
from framework.events import Bar
from framework.execution import FillTiming
from framework.orders.model import Order, OrderSide
from strategies.sma_cross import SmaCross

DAY = 86_400_000_000_000
CENT = 0.005


def panel(n: int = 80, seed: int = 3) -> Bars:
    """Return two trending, mean-reverting daily series with gaps between close and next open."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-03", periods=n, freq="1D", tz="UTC")
    frames = {}
    for k, symbol in enumerate(("X", "Y")):
        t = np.arange(n)
        close = 100 * (1 + 0.15 * np.sin(t / (5 + 2 * k))) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.006, n))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
        frames[symbol] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": 1e3}, index=index
        )
    return Bars.from_frames(frames, instruments=[Instrument("X"), Instrument("Y", qty_step=0.001)], timeframe="1d")


def bars_at(data: Bars, row: int) -> list[Bar]:
    """Return the closed bars of one row of the panel as the feed delivers them."""
    close_ns = int(data.index[row].value)
    out = []
    for symbol in data.symbols:
        o, h, lo, c = (float(getattr(data, f)[symbol].iloc[row]) for f in ("open", "high", "low", "close"))
        out.append(Bar("SIM", symbol, "1d", close_ns - DAY, o, h, lo, c, 1e3, c, 1))
    return out


def quantity(data: Bars, symbol: str, value: float) -> Decimal:
    step = Decimal(repr(data.instruments[symbol].qty_step))
    return (Decimal(repr(float(value))) / step).to_integral_value() * step


def paper_fills_table(fills: list[Any], model: ExecutionModel) -> pd.DataFrame:
    """Return the paper fills in the backtest's table layout (times as the bars' close labels)."""
    shift = DAY if model.fill == "next_open" else 0
    table = pd.DataFrame(
        {
            "time": pd.to_datetime([f.time_ns + shift for f in fills], utc=True),
            "symbol": [f.symbol for f in fills],
            "side": [f.side.value for f in fills],
            "quantity": [f.quantity for f in fills],
            "price": [float(f.price) for f in fills],
            "fees": [float(f.fee) for f in fills],
        }
    )
    return table.sort_values(["time", "symbol"], kind="stable").reset_index(drop=True)


async def replay(
    result: BacktestResult, directory: Path, *, venue_sizing: bool = False, submit_first: bool = False
) -> PaperBroker:
    """Replay the backtest's decisions through a fresh paper venue; return it (connected).

    At each close the bars go to the venue before the decisions, or after them (`submit_first`).
    """
    data, model = result.data, result.model
    lag = 1 if model.fill == "next_open" else 0
    decided: dict[int, list[Any]] = defaultdict(list)
    rows = {time: row for row, time in enumerate(data.index)}
    fills: list[Any] = list(result.fills.itertuples())
    for fill in fills:
        decided[rows[fill.time] - lag].append(fill)
    clock = SimulatedClock()
    broker = PaperBroker(directory, model=model, instruments=data.instruments.values(), clock=clock)
    await broker.connect()
    for row in range(len(data)):
        clock.advance_to(int(data.index[row].value))
        if not submit_first:
            broker.on_bars(bars_at(data, row))
        for n, fill in enumerate(decided.get(row, [])):
            qty = quantity(data, fill.symbol, fill.quantity)
            if venue_sizing and fill.side == "buy":
                cash = float((await broker.balances())["USD"])
                qty = quantity(data, fill.symbol, np.floor(1.5 * cash / float(data.close[fill.symbol].iloc[row])))
            await broker.submit(
                Order(
                    client_id=f"{row}-{n}",
                    strategy="parity",
                    venue="paper",
                    symbol=fill.symbol,
                    side=OrderSide(fill.side),
                    quantity=qty,
                )
            )
        if submit_first:
            broker.on_bars(bars_at(data, row))
    return broker


def assert_same_fills(paper: pd.DataFrame, backtest_fills: pd.DataFrame, data: Bars) -> None:
    assert len(paper) == len(backtest_fills) > 0
    assert paper["time"].tolist() == backtest_fills["time"].tolist()
    assert paper["symbol"].tolist() == backtest_fills["symbol"].tolist()
    assert paper["side"].tolist() == backtest_fills["side"].tolist()
    expected_qty = [
        quantity(data, s, q) for s, q in zip(backtest_fills["symbol"], backtest_fills["quantity"], strict=True)
    ]
    assert paper["quantity"].tolist() == expected_qty
    np.testing.assert_allclose(paper["price"], backtest_fills["price"], rtol=1e-12)
    np.testing.assert_allclose(paper["fees"], backtest_fills["fees"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("fill", "submit_first"), [("next_open", False), ("next_open", True), ("close", False)], ids=str
)
async def test_paper_fills_equal_the_backtest_fills_and_final_cash_to_the_cent(
    tmp_path: Path, fill: FillTiming, submit_first: bool
) -> None:
    data = panel()
    result = backtest(SmaCross(fast=3, slow=8, short=True), data, fees=0.001, slippage=0.0005, fill=fill)
    assert len(result.fills) >= 8
    assert set(result.fills["side"]) == {"buy", "sell"}

    broker = await replay(result, tmp_path, submit_first=submit_first)
    paper = paper_fills_table(await broker.fills(), result.model)
    assert_same_fills(paper, result.fills, data)

    cash = float((await broker.balances())["USD"])
    assert cash == pytest.approx(float(result.portfolio.cash().iloc[-1]), abs=CENT)
    equity = float((await broker.equity())["USD"])
    assert equity == pytest.approx(result.final_equity, abs=CENT)
    positions = await broker.positions()
    expected = result.portfolio.assets().iloc[-1]
    for symbol in data.symbols:
        assert float(positions.get(symbol, 0)) == pytest.approx(float(expected[(0, symbol)]), abs=1e-9)
    await broker.close()


async def test_venue_cash_rule_reproduces_vectorbts_all_in_sizing(tmp_path: Path) -> None:
    # The engine cannot know the next open when it decides; it over-asks, and the venue cuts each
    # buy to what the cash affords at the fill price, exactly as vectorbt's size=inf entry does.
    data = panel(n=120, seed=11).select(["Y"])
    result = backtest(SmaCross(fast=3, slow=8), data, fees=0.002, slippage=0.001)
    assert (result.fills["side"] == "buy").sum() >= 2

    broker = await replay(result, tmp_path, venue_sizing=True)
    paper = paper_fills_table(await broker.fills(), result.model)
    assert_same_fills(paper, result.fills, data)
    assert float((await broker.equity())["USD"]) == pytest.approx(result.final_equity, abs=CENT)
    await broker.close()
