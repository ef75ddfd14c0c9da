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

from framework.reporting import METRICS
from framework.vbt import ENGINE, vbt

pf_dispatch = vbt.portfolio.dispatch
returns_dispatch = vbt.returns.dispatch

__all__ = ["STAT_COLUMNS", "asset_arrays", "bars_per_year", "equity_arrays", "portfolio_stats", "returns_dispatch"]

STAT_COLUMNS = ("start", "end", *METRICS)


def bars_per_year(index: pd.DatetimeIndex) -> float:
    """Return how many bars a year holds in `index` (at least one bar a day's worth of span)."""
    if len(index) < 2:
        return 252.0
    years = (index[-1] - index[0]) / pd.Timedelta(days=365.25)
    return float((len(index) - 1) / years) if years > 0 else 252.0


def portfolio_stats(pf: Any) -> pd.DataFrame:
    """Return the statistics of every group of `pf`, one row per group (see `STAT_COLUMNS`).

    Equity is rebuilt from the order records with vectorbt's engine-neutral kernels
    (`vectorbt.portfolio.dispatch`, `vectorbt.returns.dispatch`) on plain arrays: the same
    computation as `Portfolio.value()`, without wrapping every intermediate (T x combinations)
    array in a DataFrame, which pandas 3 copies; on a 5,000-combination sweep that is most of the
    time.
    """
    index = pd.DatetimeIndex(pf.wrapper.index)
    ann_factor = bars_per_year(index)
    assets = asset_arrays(pf)
    value, init = equity_arrays(pf, assets)
    groups = pf.wrapper.get_columns()
    final = value[-1]
    total_return = final / init - 1
    years = max((index[-1] - index[0]) / pd.Timedelta(days=365.25), 1e-9)
    with np.errstate(invalid="ignore", divide="ignore"):
        cagr = np.where(final > 0, (final / init) ** (1 / years) - 1, -1.0)
    returns = np.ascontiguousarray(returns_dispatch.returns(value, init, engine=ENGINE))
    sharpe = returns_dispatch.sharpe_ratio(returns, ann_factor, 0.0, 1, engine=ENGINE)
    sortino = returns_dispatch.sortino_ratio(returns, ann_factor, 0.0, engine=ENGINE)
    max_dd = returns_dispatch.max_drawdown(returns, engine=ENGINE)
    n_groups = len(init)
    trades = _trade_stats(pf, n_groups)
    table = pd.DataFrame(
        {
            "start": index[0],
            "end": index[-1],
            "initial_equity": init,
            "final_equity": final,
            "total_return": total_return,
            "cagr": cagr,
            "sharpe": np.asarray(sharpe, dtype=float),
            "sortino": np.asarray(sortino, dtype=float),
            "max_drawdown": np.asarray(max_dd, dtype=float),
            **trades,
            "exposure": _exposure(pf, assets, n_groups),
            "fees_paid": _fees(pf, n_groups),
        },
        index=groups,
    )
    return table[list(STAT_COLUMNS)]


def equity_arrays(pf: Any, assets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (equity per bar and group as a T x groups array, initial equity per group)."""
    shape = pf.wrapper.shape_2d
    records = pf.order_records
    col_map = pf.orders.col_mapper.col_map
    group_lens = _group_lens(pf)
    init_cols = np.asarray(pf.get_init_cash(group_by=False), dtype=float).reshape(-1)
    if pf.cash_sharing:
        init = np.asarray(pf.init_cash, dtype=float).reshape(-1)
    else:
        init = np.add.reduceat(init_cols, np.r_[0, np.cumsum(group_lens)[:-1]])
    grouped = bool((group_lens > 1).any())
    cash_flow = pf_dispatch.cash_flow(shape, records, col_map, False, engine=ENGINE)
    if grouped:
        cash_flow = pf_dispatch.cash_flow_grouped(cash_flow, group_lens, engine=ENGINE)
        cash = pf_dispatch.cash_grouped(shape, cash_flow, group_lens, init, engine=ENGINE)
    else:
        cash = pf_dispatch.cash(cash_flow, init, engine=ENGINE)
    close = np.asarray(pf.close, dtype=float)
    if pf.fillna_close and np.isnan(close).any():
        close = np.asarray(pf.get_filled_close(), dtype=float)
    close = np.where(assets == 0, 0.0, close)
    asset_value = pf_dispatch.asset_value(close, assets, engine=ENGINE)
    if grouped:
        asset_value = pf_dispatch.asset_value_grouped(asset_value, group_lens, engine=ENGINE)
    return np.asarray(pf_dispatch.value(cash, asset_value, engine=ENGINE)), init


def _group_lens(pf: Any) -> np.ndarray:
    if pf.wrapper.grouper.group_by is None:
        return np.ones(len(pf.wrapper.columns), dtype=np.int64)
    return np.asarray(pf.wrapper.grouper.get_group_lens(), dtype=np.int64)


def asset_arrays(pf: Any) -> np.ndarray:
    """Return the position of every column at every bar (T x columns), from the order records."""
    shape = pf.wrapper.shape_2d
    flow = pf_dispatch.asset_flow(shape, pf.order_records, pf.orders.col_mapper.col_map, 2, engine=ENGINE)
    return np.asarray(pf_dispatch.assets(flow, engine=ENGINE))


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
        profit_factor = np.where(gross_loss > 0, gross_win / gross_loss, np.where(gross_win > 0, np.inf, np.nan))
    return {
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "trades": n_closed,
        "open_trades": n_open,
    }


def _exposure(pf: Any, assets: np.ndarray, n_groups: int) -> np.ndarray:
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
