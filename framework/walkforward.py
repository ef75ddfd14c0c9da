"""Walk-forward optimisation: choose parameters in-sample, judge them out-of-sample, stitch the results.

The data is cut into consecutive windows. On each *train* window every combination of the grid is
backtested (one vectorised sweep) and the best by `metric` is kept; those parameters are then
traded on the following *test* window, which they have never seen. Rolling windows slide the train
window along; anchored windows always train from the first bar. The test windows' equity curves
are chained into one out-of-sample curve: what the procedure would really have earned.

Each test window starts flat, with the equity the previous test window ended with; its signals are
computed with the `warmup` bars before it, so the first test bar is already a valid decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.backtest import execution_model
from framework.bars import Bars
from framework.errors import ParameterError
from framework.execution import ExecutionModel, FillTiming
from framework.reporting import check_metric, jsonable, progress_bar
from framework.simulate import simulate
from framework.stats import bars_per_year, portfolio_stats, returns_dispatch
from framework.strategy import Decision, Signals, Strategy, TargetWeights
from framework.sweep import sweep
from framework.vbt import ENGINE

if TYPE_CHECKING:
    import holoviews as hv

__all__ = ["WalkForwardResult", "walk_forward", "window_bounds"]


@dataclass(frozen=True, eq=False)
class WalkForwardResult:
    """Per-window choices and out-of-sample stats, and the stitched out-of-sample equity."""

    strategy: type[Strategy]
    metric: str
    windows: pd.DataFrame
    equity: pd.Series
    stats: dict[str, Any]

    def plot(self) -> hv.Layout:
        """Return the stitched out-of-sample equity with its drawdown, test windows shaded."""
        from framework.plots import equity_plot

        drawdown = self.equity / self.equity.cummax() - 1
        spans = [(row.test_start, row.test_end) for row in self.windows.itertuples()]
        return equity_plot(
            self.equity, drawdown, title=f"{self.strategy.name}: walk-forward out-of-sample equity", spans=spans
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary: stitched stats and one row per window."""
        return {
            "strategy": self.strategy.name,
            "metric": self.metric,
            "stats": self.stats,
            "windows": [{k: jsonable(v) for k, v in row.items()} for row in self.windows.to_dict(orient="records")],
        }

    def __repr__(self) -> str:
        return (
            f"WalkForwardResult({self.strategy.name}, {len(self.windows)} windows, "
            f"out-of-sample total_return={self.stats['total_return']:.2%}, sharpe={self.stats['sharpe']:.2f})"
        )


def window_bounds(n: int, train: int, test: int, *, anchored: bool = False) -> list[tuple[int, int, int, int]]:
    """Return (train_start, train_end, test_start, test_end) row bounds, ends exclusive."""
    if train < 2 or test < 1:
        raise ParameterError(f"train must be at least 2 bars and test at least 1, got train={train}, test={test}")
    if train + test > n:
        raise ParameterError(f"train ({train}) + test ({test}) bars exceed the {n} bars of data")
    bounds = []
    start = 0
    while start + train < n:
        test_start = start + train
        test_end = min(test_start + test, n)
        bounds.append((0 if anchored else start, test_start, test_start, test_end))
        start += test
    return bounds


def walk_forward(
    strategy: type[Strategy] | Strategy,
    data: Bars,
    grid: Mapping[str, Iterable[Any]],
    *,
    train: int,
    test: int,
    anchored: bool = False,
    metric: str = "sharpe",
    model: ExecutionModel | None = None,
    fees: float | None = None,
    slippage: float | None = None,
    cash: float | None = None,
    fill: FillTiming | None = None,
    fraction: float | None = None,
    notional: float | None = None,
    dask: bool | str | Any = None,
    progress: bool = False,
) -> WalkForwardResult:
    """Run a walk-forward optimisation of `strategy` over `grid` (see the module docstring).

    `train` and `test` are window lengths in bars. Returns the chosen parameters and out-of-sample
    stats of every test window, and the stitched out-of-sample equity with its stats.

    >>> from framework import load_dataset, walk_forward
    >>> from strategies.sma_cross import SmaCross
    >>> wf = walk_forward(SmaCross, load_dataset("GOOG"), {"fast": [5, 10], "slow": [30, 60]}, train=500, test=250)
    >>> len(wf.windows)
    7
    """
    check_metric(metric)
    cls = strategy if isinstance(strategy, type) else type(strategy)
    base = {} if isinstance(strategy, type) else strategy.values
    exec_model = execution_model(
        model, fees=fees, slippage=slippage, cash=cash, fill=fill, fraction=fraction, notional=notional
    )
    bounds = window_bounds(len(data), train, test, anchored=anchored)
    rows: list[dict[str, Any]] = []
    curves: list[pd.Series] = []
    equity_now = exec_model.cash
    with progress_bar(progress, len(bounds), f"walk-forward {cls.name}") as advance:
        for number, (train_start, train_end, test_start, test_end) in enumerate(bounds):
            train_data = data.iloc[train_start:train_end]
            swept = sweep(cls(**base), train_data, grid, model=exec_model, dask=dask)
            best = swept.best(metric)
            train_score = swept.table.loc[(swept.table[list(best)] == pd.Series(best)).all(axis=1), metric].iloc[0]
            chosen = cls(**{**base, **best})
            window_model = exec_model.with_(cash=equity_now)
            result_stats, curve = _out_of_sample(chosen, data, test_start, test_end, window_model)
            equity_now = float(curve.iloc[-1])
            curves.append(curve)
            rows.append(
                {
                    "window": number,
                    "train_start": data.index[train_start],
                    "train_end": data.index[train_end - 1],
                    "test_start": data.index[test_start],
                    "test_end": data.index[test_end - 1],
                    **best,
                    f"train_{metric}": train_score,
                    **{f"test_{k}": v for k, v in result_stats.items() if k not in ("start", "end")},
                }
            )
            advance(1)
    equity = pd.concat(curves).rename("equity")
    return WalkForwardResult(
        strategy=cls,
        metric=metric,
        windows=pd.DataFrame(rows),
        equity=equity,
        stats=equity_stats(equity, exec_model.cash, trades=int(sum(r["test_trades"] for r in rows))),
    )


def _out_of_sample(
    strategy: Strategy, data: Bars, test_start: int, test_end: int, model: ExecutionModel
) -> tuple[dict[str, Any], pd.Series]:
    warmup = strategy.warmup_bars()
    context_start = max(0, test_start - warmup - 1)
    decision = strategy.decide(data.iloc[context_start:test_end])
    offset = test_start - context_start
    test_data = data.iloc[test_start:test_end]
    if len(test_data) < 2:
        raise ParameterError("each test window needs at least two bars")
    portfolio = simulate([_tail(decision, offset)], test_data, model)
    stats = {str(k): v for k, v in portfolio_stats(portfolio).iloc[0].items()}
    value = portfolio.value()
    series = value.iloc[:, 0] if isinstance(value, pd.DataFrame) else value
    return stats, pd.Series(series.to_numpy(), index=test_data.index)


def _tail(decision: Decision, offset: int) -> Decision:
    if isinstance(decision, Signals):
        return Signals(**{name: frame.iloc[offset:] for name, frame in decision.frames().items()})
    if isinstance(decision, TargetWeights):
        return TargetWeights(decision.weights.iloc[offset:])
    raise ParameterError(f"unknown decision type {type(decision).__name__}")


def equity_stats(equity: pd.Series, initial: float, *, trades: int | None = None) -> dict[str, Any]:
    """Return total return, CAGR, Sharpe, Sortino and max drawdown of an equity curve."""
    index = pd.DatetimeIndex(equity.index)
    values = equity.to_numpy(dtype=float).reshape(-1, 1)
    returns = np.ascontiguousarray(returns_dispatch.returns(values, np.array([initial]), engine=ENGINE))
    ann = bars_per_year(index)
    years = max((index[-1] - index[0]) / pd.Timedelta(days=365.25), 1e-9)
    final = float(values[-1, 0])
    out: dict[str, Any] = {
        "start": index[0].isoformat(),
        "end": index[-1].isoformat(),
        "initial_equity": initial,
        "final_equity": final,
        "total_return": final / initial - 1,
        "cagr": (final / initial) ** (1 / years) - 1 if final > 0 else -1.0,
        "sharpe": float(returns_dispatch.sharpe_ratio(returns, ann, 0.0, 1, engine=ENGINE)[0]),
        "sortino": float(returns_dispatch.sortino_ratio(returns, ann, 0.0, engine=ENGINE)[0]),
        "max_drawdown": float(returns_dispatch.max_drawdown(returns, engine=ENGINE)[0]),
    }
    if trades is not None:
        out["trades"] = trades
    return out
