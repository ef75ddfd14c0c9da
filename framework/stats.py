"""Performance statistics per combination, computed with vectorbt's Rust-dispatched kernels.

`portfolio_stats` returns one row per group (combination) of a simulated portfolio; a backtest has
one row, a sweep thousands. Ratios are annualised with the number of bars per year *observed in
the data* (about 252 for daily stocks, 365 for daily crypto, 6,000 for hourly forex), so no
calendar has to be assumed.

Profit factor and win rate are computed here from the trade records with numpy: vectorbt's own
versions are Numba-only and cost seconds of JIT compilation in a fresh process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from framework.simulate import bar_frequency

__all__ = ["STAT_COLUMNS", "bars_per_year", "portfolio_stats"]

STAT_COLUMNS = (
    "start",
    "end",
    "initial_equity",
    "final_equity",
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "exposure",
    "trades",
    "open_trades",
    "fees_paid",
)


def bars_per_year(index: pd.DatetimeIndex) -> float:
    """Return how many bars a year holds in `index` (at least one bar a day's worth of span)."""
    if len(index) < 2:
        return 252.0
    years = (index[-1] - index[0]) / pd.Timedelta(days=365.25)
    return float((len(index) - 1) / years) if years > 0 else 252.0


def portfolio_stats(pf: Any) -> pd.DataFrame:
    """Return the statistics of every group of `pf`, one row per group (see `STAT_COLUMNS`)."""
    index = pd.DatetimeIndex(pf.wrapper.index)
    freq = bar_frequency(index)
    year_freq = freq * bars_per_year(index)
    value = pf.value()
    value = value.to_frame() if isinstance(value, pd.Series) else value
    groups = value.columns
    init = np.asarray(pf.init_cash, dtype=float).reshape(-1)
    final = value.iloc[-1].to_numpy()
    total_return = final / init - 1
    years = max((index[-1] - index[0]) / pd.Timedelta(days=365.25), 1e-9)
    with np.errstate(invalid="ignore", divide="ignore"):
        cagr = np.where(final > 0, (final / init) ** (1 / years) - 1, -1.0)
    returns = value.pct_change().fillna(0.0)
    acc = returns.vbt.returns(freq=freq, year_freq=year_freq)
    sharpe = np.asarray(acc.sharpe_ratio(), dtype=float).reshape(-1)
    sortino = np.asarray(acc.sortino_ratio(), dtype=float).reshape(-1)
    max_dd = np.asarray(value.vbt.drawdown().min(), dtype=float).reshape(-1)
    trades = _trade_stats(pf, len(groups))
    exposure = _exposure(pf, len(groups))
    fees = _fees(pf, len(groups))
    table = pd.DataFrame(
        {
            "start": index[0],
            "end": index[-1],
            "initial_equity": init,
            "final_equity": final,
            "total_return": total_return,
            "cagr": cagr,
            "sharpe": sharpe,
            "sortino": sortino,
            "max_drawdown": max_dd,
            **trades,
            "exposure": exposure,
            "fees_paid": fees,
        },
        index=groups,
    )
    return table[list(STAT_COLUMNS)]


def _group_of_column(pf: Any) -> np.ndarray:
    grouper = pf.wrapper.grouper
    if grouper.group_by is None:
        return np.arange(len(pf.wrapper.columns))
    return np.asarray(grouper.get_groups(), dtype=np.int64)


def _trade_stats(pf: Any, n_groups: int) -> dict[str, np.ndarray]:
    records = pf.get_trades(group_by=False).values
    group = _group_of_column(pf)[records["col"]]
    closed = records["status"] == 1
    pnl = records["pnl"]
    n_closed = np.bincount(group[closed], minlength=n_groups)
    n_open = np.bincount(group[~closed], minlength=n_groups)
    wins = np.bincount(group[closed & (pnl > 0)], minlength=n_groups)
    gross_win = np.bincount(group[closed & (pnl > 0)], weights=pnl[closed & (pnl > 0)], minlength=n_groups)
    gross_loss = -np.bincount(group[closed & (pnl < 0)], weights=pnl[closed & (pnl < 0)], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(n_closed > 0, wins / np.maximum(n_closed, 1), np.nan)
        profit_factor = np.where(
            gross_loss > 0, gross_win / gross_loss, np.where(gross_win > 0, np.inf, np.nan)
        )
    return {
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "trades": n_closed,
        "open_trades": n_open,
    }


def _exposure(pf: Any, n_groups: int) -> np.ndarray:
    assets = np.asarray(pf.assets())
    assets = assets.reshape(len(pf.wrapper.index), -1)
    group = _group_of_column(pf)
    width = assets.shape[1] // max(n_groups, 1)
    if width * n_groups == assets.shape[1] and np.array_equal(group, np.repeat(np.arange(n_groups), width)):
        holding = (assets.reshape(assets.shape[0], n_groups, width) != 0).any(axis=2)
    else:
        holding = np.column_stack([(assets[:, group == g] != 0).any(axis=1) for g in range(n_groups)])
    return np.asarray(holding.mean(axis=0), dtype=float)


def _fees(pf: Any, n_groups: int) -> np.ndarray:
    orders = pf.get_orders(group_by=False).values
    group = _group_of_column(pf)[orders["col"]]
    return np.asarray(np.bincount(group, weights=orders["fees"], minlength=n_groups), dtype=float)
