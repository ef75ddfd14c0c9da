"""The SMA-cross grid three ways (rata, direct vectorbt, backtesting.py) and the checks that they agree.

Used by `bench_sweep`; see its docstring for what is measured.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from framework import Bars, sweep
from framework.indicators import sma
from framework.stats import bars_per_year
from framework.vbt import vbt
from strategies.sma_cross import SmaCross

__all__ = [
    "CASH",
    "DATASET",
    "FEES",
    "STATS",
    "WINDOWS",
    "Market",
    "TieReport",
    "agreement",
    "by_combo",
    "quiet_backtesting",
    "run_rata",
    "run_vbt_expert",
    "run_vbt_readme",
    "sma_ties",
    "vbt_from_ma",
    "vbt_with_rata_smas",
]

DATASET = "GOOG"
WINDOWS = range(2, 101)
FEES = 0.002
CASH = 100_000.0
STATS = ("final_equity", "total_return", "sharpe", "max_drawdown", "trades", "win_rate")


def grid(windows: range = WINDOWS) -> dict[str, range]:
    return {"fast": windows, "slow": windows}


def run_rata(data: Bars, windows: range = WINDOWS) -> pd.DataFrame:
    """rata's sweep, as a user calls it."""
    return sweep(SmaCross, data, grid(windows), fees=FEES).table


@dataclass(frozen=True)
class Market:
    """The inputs of the direct vectorbt runs: close and open as Series, the Sharpe annualisation."""

    close: pd.Series
    open: pd.Series
    year_freq: pd.Timedelta

    @classmethod
    def of(cls, data: Bars) -> Market:
        symbol = data.symbols[0]
        # rata annualises with the bars per year observed in the data; vectorbt's default is 365 a
        # year for daily bars. Give vectorbt the same factor so that the Sharpe ratios are comparable.
        year_freq = pd.Timedelta(days=bars_per_year(data.index))
        return cls(close=data.close[symbol], open=data.open[symbol], year_freq=year_freq)


def _portfolio(market: Market, entries: pd.DataFrame, exits: pd.DataFrame) -> Any:
    return vbt.Portfolio.from_signals(
        market.close,
        entries,
        exits,
        price=market.open,
        fees=FEES,
        size=np.inf,
        size_granularity=1,
        init_cash=CASH,
        freq="1D",
        engine="rust",
    )


def vbt_from_ma(market: Market, ma: np.ndarray, windows: np.ndarray) -> pd.DataFrame:
    """Cross every fast < slow pair of the moving averages `ma` (bars x windows) and simulate them."""
    fast_i, slow_i = np.triu_indices(len(windows), k=1)
    columns = pd.MultiIndex.from_arrays([windows[fast_i], windows[slow_i]], names=["fast", "slow"])
    fast = pd.DataFrame(ma[:, fast_i], index=market.close.index, columns=columns)
    slow = pd.DataFrame(ma[:, slow_i], index=market.close.index, columns=columns)
    entries = fast.vbt.crossed_above(slow, engine="rust").shift(1, fill_value=False)
    exits = fast.vbt.crossed_below(slow, engine="rust").shift(1, fill_value=False)
    pf = _portfolio(market, entries, exits)
    returns = pf.returns().vbt.returns(freq="1D", year_freq=market.year_freq)
    trades = pf.trades.closed
    return pd.DataFrame(
        {
            "final_equity": pf.final_value(),
            "total_return": pf.total_return(),
            "sharpe": returns.sharpe_ratio(),
            "max_drawdown": returns.max_drawdown(),
            "trades": trades.count(),
            "win_rate": trades.win_rate(),
        }
    )


def run_vbt_expert(market: Market, windows: range = WINDOWS) -> pd.DataFrame:
    """Direct vectorbt as a speed-minded expert writes it: each MA once, pairs picked with numpy."""
    window_array = np.asarray(windows)
    ma = vbt.MA.run(market.close, window=window_array).ma.to_numpy()
    return vbt_from_ma(market, ma, window_array)


def run_vbt_readme(market: Market, windows: range = WINDOWS) -> pd.DataFrame:
    """Direct vectorbt as its README writes it: `run_combs`, the indicator's cross methods, pf metrics."""
    fast, slow = vbt.MA.run_combs(market.close, window=np.asarray(windows), r=2, short_names=["fast", "slow"])
    entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
    exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
    pf = _portfolio(market, entries, exits)
    trades = pf.trades.closed
    table = pd.DataFrame(
        {
            "final_equity": pf.final_value(),
            "total_return": pf.total_return(),
            "sharpe": pf.sharpe_ratio(year_freq=market.year_freq),
            "max_drawdown": pf.max_drawdown(year_freq=market.year_freq),
            "trades": trades.count(),
            "win_rate": trades.win_rate(),
        }
    )
    table.index = table.index.set_names(["fast", "slow"])
    return table


def _bt_strategy() -> type:
    from backtesting import Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class BtSmaCross(Strategy):
        """backtesting.py's classic SmaCross, long only: buy on the upward cross, close on the way down."""

        n1 = 10
        n2 = 20

        def init(self) -> None:
            close = self.data.Close
            self.sma1 = self.I(SMA, close, self.n1)
            self.sma2 = self.I(SMA, close, self.n2)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()

    return BtSmaCross


@contextmanager
def quiet_backtesting() -> Iterator[Any]:
    """Yield a `Backtest` on GOOG with its per-run tqdm bar disabled and its warnings silenced."""
    import backtesting.backtesting as bt_module
    from backtesting import Backtest
    from backtesting.test import GOOG

    original = bt_module._tqdm
    bt_module._tqdm = functools.partial(original, disable=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield Backtest(
                GOOG, _bt_strategy(), cash=CASH, commission=FEES, trade_on_close=False, exclusive_orders=True
            )
    finally:
        bt_module._tqdm = original


# ---------------------------------------------------------------- agreement


def by_combo(table: pd.DataFrame) -> pd.DataFrame:
    """Return `table` indexed by (fast, slow) as plain ints, whichever way it was indexed."""
    if {"fast", "slow"} <= set(table.columns):
        table = table.set_index(["fast", "slow"])
    table.index = pd.MultiIndex.from_arrays(
        [table.index.get_level_values(0).astype(int), table.index.get_level_values(1).astype(int)],
        names=["fast", "slow"],
    )
    return table


def agreement(rata: pd.DataFrame, other: pd.DataFrame) -> dict[str, np.ndarray]:
    """Return, per stat, a boolean per combination (rata's order): does `other` agree (np.isclose)?"""
    other = other.reindex(rata.index)
    return {stat: np.isclose(rata[stat].to_numpy(float), other[stat].to_numpy(float), equal_nan=True) for stat in STATS}


@dataclass
class TieReport:
    tie_combos: set[tuple[int, int]]  # fast - slow has opposite signs in pandas and vectorbt-rust on some bar
    largest_gap: float
    exact_ties: set[tuple[int, int]]  # rata's (pandas) fast and slow SMA are exactly equal on some bar


def sma_ties(data: Bars, windows: range) -> TieReport:
    """Find pairs whose fast - slow SMA difference has opposite signs in pandas and vectorbt-rust.

    Such a sign flip can only come from rounding: the two averages are mathematically equal (or
    equal to within a few ulps) on that bar, and the cross lands one bar earlier or later.
    """
    close = data.close
    window_array = np.asarray(windows)
    ma_pandas = np.column_stack([sma(close, int(w)).to_numpy()[:, 0] for w in window_array])
    ma_vbt = vbt.MA.run(close.iloc[:, 0], window=window_array).ma.to_numpy()
    fast_i, slow_i = np.triu_indices(len(window_array), k=1)
    gap_pandas = ma_pandas[:, fast_i] - ma_pandas[:, slow_i]
    gap_vbt = ma_vbt[:, fast_i] - ma_vbt[:, slow_i]
    flips = np.isfinite(gap_pandas) & np.isfinite(gap_vbt) & (np.sign(gap_pandas) != np.sign(gap_vbt))
    cols = np.flatnonzero(flips.any(axis=0))
    price = close.to_numpy()[:, [0]]
    gap = np.maximum(np.abs(gap_pandas), np.abs(gap_vbt))
    largest = float(np.max(np.where(flips, gap, 0.0) / price)) if flips.any() else 0.0

    def pairs(columns: np.ndarray) -> set[tuple[int, int]]:
        return {(int(window_array[fast_i[c]]), int(window_array[slow_i[c]])) for c in columns}

    exact = np.flatnonzero((gap_pandas == 0).any(axis=0))
    return TieReport(tie_combos=pairs(cols), largest_gap=largest, exact_ties=pairs(exact))


def vbt_with_rata_smas(data: Bars, windows: range) -> pd.DataFrame:
    """The expert vectorbt pipeline fed rata's (pandas) SMAs instead of vectorbt's."""
    window_array = np.asarray(windows)
    ma = np.column_stack([sma(data.close, int(w)).to_numpy()[:, 0] for w in window_array])
    return vbt_from_ma(Market.of(data), ma, window_array)
