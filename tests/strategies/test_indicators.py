"""What the shipped strategies draw: aligned, causal, and the very series their signals are computed from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework import Bars, Signals, Strategy, TargetWeights
from framework.indicators import crossed_above, crossed_below, pct_return, rolling_std, rsi, sma
from strategies.bollinger_breakout import BollingerBreakout
from strategies.momentum_rotation import MomentumRotation, bar_duration, rebalance_bars
from strategies.rsi_reversion import RsiReversion
from strategies.sma_cross import SmaCross

SHIPPED: list[tuple[Strategy, dict[str, bool]]] = [
    (SmaCross(fast=10, slow=30, short=True), {"fast_sma": True, "slow_sma": True}),
    (BollingerBreakout(window=20, k=2.0, short=True), {"middle_band": True, "upper_band": True, "lower_band": True}),
    (
        RsiReversion(window=14, lower=30.0, upper=70.0, short=True),
        {"rsi": False, "oversold": False, "overbought": False},
    ),
    (MomentumRotation(lookback=60, top=2, rebalance=21), {"momentum": False}),
]
IDS = [strategy.name for strategy, _ in SHIPPED]


def _frames(strategy: Strategy, data: Bars) -> dict[str, pd.DataFrame]:
    return {name: indicator.frame for name, indicator in strategy.checked_indicators(data).items()}


@pytest.mark.parametrize(("strategy", "expected"), SHIPPED, ids=IDS)
def test_indicators_are_named_placed_and_aligned_with_the_bars(strategy: Strategy, expected, stocks: Bars) -> None:
    drawn = strategy.checked_indicators(stocks)
    assert {name: indicator.overlay for name, indicator in drawn.items()} == expected
    assert list(drawn) == list(expected), "legend order is the order given"
    for indicator in drawn.values():
        assert indicator.frame.index.equals(stocks.index)
        assert indicator.frame.columns.equals(stocks.close.columns)
        assert (indicator.frame.dtypes == np.float64).all()
        assert indicator.frame.iloc[-1].notna().all(), "every indicator has a value once warmed up"


@pytest.mark.parametrize(("strategy", "expected"), SHIPPED, ids=IDS)
def test_indicators_are_causal(strategy: Strategy, expected, stocks: Bars) -> None:
    full = _frames(strategy, stocks)
    for cut in (strategy.warmup_bars() + 5, len(stocks) // 3, len(stocks) - 1):
        prefix = _frames(strategy, stocks.iloc[:cut])
        for name, frame in prefix.items():
            pd.testing.assert_frame_equal(frame, full[name].iloc[:cut], check_exact=False, rtol=1e-12, obj=name)


def test_sma_cross_draws_the_averages_it_crosses(stocks: Bars) -> None:
    strategy = SmaCross(fast=10, slow=30, short=True)
    drawn = _frames(strategy, stocks)
    assert drawn["fast_sma"] is sma(stocks.close, 10), "the memoised average signals() uses"
    assert drawn["slow_sma"] is sma(stocks.close, 30)
    decision = strategy.decide(stocks)
    assert isinstance(decision, Signals)
    warm = strategy.warmup_bars()
    up = crossed_above(drawn["fast_sma"], drawn["slow_sma"]).iloc[warm:]
    down = crossed_below(drawn["fast_sma"], drawn["slow_sma"]).iloc[warm:]
    assert decision.entries.iloc[warm:].equals(up)
    assert decision.exits.iloc[warm:].equals(down)


def test_bollinger_breakout_draws_the_bands_it_trades(stocks: Bars) -> None:
    strategy = BollingerBreakout(window=20, k=2.0, short=True)
    drawn = _frames(strategy, stocks)
    close = stocks.close
    assert drawn["middle_band"] is sma(close, 20)
    pd.testing.assert_frame_equal(drawn["upper_band"], sma(close, 20) + 2.0 * rolling_std(close, 20))
    decision = strategy.decide(stocks)
    assert isinstance(decision, Signals)
    assert decision.short_entries is not None
    warm = strategy.warmup_bars()
    assert decision.entries.iloc[warm:].equals(crossed_above(close, drawn["upper_band"]).iloc[warm:])
    assert decision.short_entries.iloc[warm:].equals(crossed_below(close, drawn["lower_band"]).iloc[warm:])
    assert decision.exits.iloc[warm:].equals((close < drawn["middle_band"]).iloc[warm:])


def test_rsi_reversion_draws_the_rsi_and_the_levels_it_compares_with(stocks: Bars) -> None:
    strategy = RsiReversion(window=14, lower=25.0, upper=75.0)
    drawn = _frames(strategy, stocks)
    assert drawn["rsi"] is rsi(stocks.close, 14)
    assert (drawn["oversold"] == 25.0).all().all()
    assert (drawn["overbought"] == 75.0).all().all()
    decision = strategy.decide(stocks)
    assert isinstance(decision, Signals)
    warm = strategy.warmup_bars()
    strength = drawn["rsi"]
    entries = crossed_above(strength, drawn["oversold"]) & (strength <= drawn["overbought"])
    assert decision.entries.iloc[warm:].equals(entries.iloc[warm:])
    assert decision.exits.iloc[warm:].equals((strength > drawn["overbought"]).iloc[warm:])


def test_momentum_rotation_draws_the_returns_it_ranks(stocks: Bars) -> None:
    strategy = MomentumRotation(lookback=60, top=2, rebalance=21)
    drawn = _frames(strategy, stocks)
    assert drawn["momentum"] is pct_return(stocks.close, 60)
    decision = strategy.decide(stocks)
    assert isinstance(decision, TargetWeights)
    due = rebalance_bars(stocks.index, 21, bar_duration(stocks))
    due[: strategy.warmup_bars()] = False
    best = drawn["momentum"].rank(axis=1, ascending=False, method="first") <= 2
    held = decision.weights[due] > 0
    assert held.equals(best[due]), "on rebalance bars, the two best drawn returns are held"
