"""The shipped strategies' numpy `signals()` equal their pandas formulations on awkward panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework import Bars, Signals
from framework.indicators import clear_cache, crossed_above, crossed_below, rolling_std, rsi, sma
from strategies.bollinger_breakout import BollingerBreakout
from strategies.rsi_reversion import RsiReversion
from tests.conftest import make_bars


def _bars(seed: int) -> Bars:
    """Return 12 instruments over 150 bars with late starts, gaps and flat stretches."""
    rng = np.random.default_rng(seed)
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (150, 12)), axis=0))
    for col in range(12):
        values[: rng.integers(0, 50), col] = np.nan
        values[rng.integers(0, 150, 5), col] = np.nan
    values[40:60, 2] = 50.0
    return make_bars({f"S{i}": values[:, i].tolist() for i in range(12)})


def _assert_same(actual: Signals, expected: Signals) -> None:
    assert actual.frames().keys() == expected.frames().keys()
    for name, frame in expected.frames().items():
        pd.testing.assert_frame_equal(actual.frames()[name], frame, check_exact=True)


@pytest.mark.parametrize(("seed", "window", "k"), [(1, 5, 1.0), (2, 20, 2.0), (3, 5, 0.5)])
def test_bollinger_signals_equal_the_pandas_formulation(seed: int, window: int, k: float) -> None:
    data = _bars(seed)
    clear_cache()
    close = data.close
    middle, width = sma(close, window), k * rolling_std(close, window)
    expected = Signals(
        entries=crossed_above(close, middle + width),
        exits=close < middle,
        short_entries=crossed_below(close, middle - width),
        short_exits=close > middle,
    )
    _assert_same(BollingerBreakout(window=window, k=k, short=True).signals(data), expected)


@pytest.mark.parametrize(("seed", "window"), [(4, 2), (5, 3), (6, 14)])
def test_rsi_reversion_signals_equal_the_pandas_formulation(seed: int, window: int) -> None:
    data = _bars(seed)
    clear_cache()
    strength = rsi(data.close, window)
    expected = Signals(
        entries=crossed_above(strength, 30.0) & (strength <= 70.0),
        exits=strength > 70.0,
        short_entries=crossed_below(strength, 70.0) & (strength >= 30.0),
        short_exits=strength < 30.0,
    )
    _assert_same(RsiReversion(window=window, lower=30.0, upper=70.0, short=True).signals(data), expected)
