"""Turn strategy decisions into one vectorbt simulation (Rust engine), for one or many combinations.

`simulate` is the single bridge between rata's execution model and vectorbt: the backtest runs it
with one decision set, a sweep with thousands, stacked side by side as columns
(combination x instrument) and grouped by combination, so every combination is simulated in one
vectorised call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from framework.bars import Bars
from framework.errors import DataError, StrategyError
from framework.execution import ExecutionModel
from framework.strategy import Decision, DecisionArrays
from framework.vbt import ENGINE, vbt

__all__ = ["bar_frequency", "simulate"]

_SIGNAL_NAMES = ("entries", "exits", "short_entries", "short_exits")


def bar_frequency(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Return the typical spacing of `index` (its median step), the bar's nominal duration."""
    if len(index) < 2:
        return pd.Timedelta(days=1)
    steps = np.diff(index.as_unit("ns").asi8)
    return pd.Timedelta(int(np.median(steps)), unit="ns")


def _stack(frames: Sequence[np.ndarray | None], shape: tuple[int, int], dtype: Any) -> np.ndarray:
    """Place the frames side by side in one column-major array (vectorbt walks it column by column)."""
    fill = False if dtype is bool else np.nan
    out = np.full((shape[0], shape[1] * len(frames)), fill, dtype=dtype, order="F")
    for i, frame in enumerate(frames):
        if frame is not None:
            out[:, i * shape[1] : (i + 1) * shape[1]] = frame
    return out


def _tile(values: np.ndarray, n: int) -> np.ndarray:
    if values.shape[1] == 1:
        return values
    out = np.empty((values.shape[0], values.shape[1] * n), dtype=values.dtype, order="F")
    for i in range(n):
        out[:, i * values.shape[1] : (i + 1) * values.shape[1]] = values
    return out


def _shift_down(values: np.ndarray, fill: Any) -> np.ndarray:
    shifted = np.empty_like(values, order="F")
    shifted[0] = fill
    shifted[1:] = values[:-1]
    return shifted


def simulate(
    decisions: Sequence[Decision | DecisionArrays],
    data: Bars,
    model: ExecutionModel,
) -> Any:
    """Simulate every decision set on `data` in one vectorbt run and return the Portfolio.

    Columns are a MultiIndex (combo, symbol), grouped by combo (the position of the decision set
    in `decisions`) when there are several instruments; with one instrument each column is its
    own combination and no grouping is needed.
    """
    if not decisions:
        raise StrategyError("nothing to simulate")
    if len(data) < 2:
        raise DataError("at least two bars are needed to backtest")
    checked = [DecisionArrays.of(d) for d in decisions]
    kinds = {d.kind for d in checked}
    if len(kinds) > 1:
        raise StrategyError("cannot mix Signals and TargetWeights in one simulation")
    n, shape = len(decisions), data.close.shape
    columns = pd.MultiIndex.from_arrays(
        [np.repeat(np.arange(n), shape[1]), np.tile(data.symbols, n)], names=["combo", "symbol"]
    )
    close_values = data.close.to_numpy()
    wide_close = np.empty((shape[0], shape[1] * n), order="F")
    wide_close[:] = np.tile(close_values, n) if shape[1] > 1 else close_values
    close = pd.DataFrame(wide_close, index=data.index, columns=columns, copy=False)
    fill_price = data.open if model.fill == "next_open" else data.close
    price = _tile(np.asfortranarray(fill_price.to_numpy()), n)
    unique_steps = {data.instruments[s].qty_step for s in data.symbols}
    steps: Any = (
        unique_steps.pop()
        if len(unique_steps) == 1
        else np.tile([data.instruments[s].qty_step for s in data.symbols], n)
    )
    common: dict[str, Any] = {
        "price": price,
        "fees": model.fees,
        "slippage": model.slippage,
        "size_granularity": steps,
        "group_by": "combo" if shape[1] > 1 else None,
        "freq": bar_frequency(data.index),
        "engine": ENGINE,
    }
    shift = model.fill == "next_open"
    if kinds == {"signals"}:
        allows_short = any(d.allows_short for d in checked)
        arrays = {}
        for name in _SIGNAL_NAMES if allows_short else _SIGNAL_NAMES[:2]:
            stacked = _stack([d.arrays.get(name) for d in checked], shape, bool)
            arrays[name] = _shift_down(stacked, False) if shift else stacked
        sizing = model.signal_sizing(allows_short)
        if sizing["size_type"] == "value":
            sizing["val_price"] = price
        return vbt.Portfolio.from_signals(
            close,
            **arrays,
            **sizing,
            init_cash=model.cash / shape[1],
            cash_sharing=False,
            **common,
        )
    weights = _stack([d.arrays["weights"] for d in checked], shape, float)
    # Target quantities are sized at the decision bar's close (the last price known when the
    # decision is taken, as the live engine must) and filled at the next open.
    decision_close = _tile(np.asfortranarray(close_values), n)
    if shift:
        decision_close = _shift_down(decision_close, np.nan)
        decision_close[0] = price[0]
    return vbt.Portfolio.from_orders(
        close,
        size=_shift_down(weights, np.nan) if shift else weights,
        size_type="targetpercent",
        val_price=decision_close,
        init_cash=model.cash,
        cash_sharing=True,
        call_seq="auto",
        **common,
    )
