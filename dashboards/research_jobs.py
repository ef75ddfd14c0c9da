"""The research explorer's work, free of widgets: turn form input into framework calls and run them.

Every function here takes plain values (what the widgets hold) and either returns a framework
object or raises a `RejectedError` whose message the page shows as it is. The page runs
`run_backtest` and `run_sweep` in a worker thread, so they also compute the lazily cached parts of
the results the views need (stats, trades, equity) while the page shows its loading indicator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from framework import BacktestResult, Bars, ExecutionModel, ParameterError, Strategy, SweepResult
from framework import backtest as framework_backtest
from framework import sweep as framework_sweep
from framework.data import load_dataset
from framework.execution import FillTiming
from framework.settings import Settings
from framework.timeframes import TIMEFRAMES

__all__ = [
    "MAX_COMBINATIONS",
    "DataChoice",
    "build_grid",
    "build_model",
    "build_strategy",
    "check_choice",
    "load_data",
    "run_backtest",
    "run_sweep",
]

MAX_COMBINATIONS = 20_000
Source = Literal["dataset", "stored"]


@dataclass(frozen=True, slots=True)
class DataChoice:
    """Where the bars come from: a shipped dataset, or bars stored in PostgreSQL by the runner."""

    source: Source = "dataset"
    dataset: str = "GOOG"
    symbols: str = ""
    timeframe: str = "1m"
    start: str = ""
    end: str = ""

    @property
    def label(self) -> str:
        """Return a short description for status lines."""
        if self.source == "dataset":
            return self.dataset.upper()
        span = f" {self.start or '...'} to {self.end or '...'}" if self.start or self.end else ""
        return f"stored {self.timeframe} bars of {self.symbols}{span}"


def _symbols(text: str) -> list[str]:
    return [s.strip() for s in text.replace(";", ",").split(",") if s.strip()]


def _timestamp(text: str, what: str) -> pd.Timestamp | None:
    if not text.strip():
        return None
    try:
        stamp = pd.Timestamp(text.strip())
    except ValueError:
        raise ParameterError(
            f"{what} {text!r} is not a date or time (use e.g. 2026-11-01 or 2026-11-01 12:00)"
        ) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def check_choice(choice: DataChoice) -> None:
    """Raise `ParameterError` when `choice` cannot name any bars (before any work starts)."""
    if choice.source == "dataset":
        return
    if not _symbols(choice.symbols):
        raise ParameterError("stored bars: enter at least one symbol (e.g. BTC/USDT)")
    if choice.timeframe not in TIMEFRAMES:
        raise ParameterError(f"stored bars: timeframe must be one of {', '.join(TIMEFRAMES)}")
    start, end = _timestamp(choice.start, "start"), _timestamp(choice.end, "end")
    if start is not None and end is not None and start >= end:
        raise ParameterError(f"stored bars: start ({choice.start}) must be before end ({choice.end})")


def load_data(choice: DataChoice, settings: Callable[[], Settings] | None = None) -> Bars:
    """Return the bars `choice` names: a shipped dataset, or stored bars read from the database."""
    check_choice(choice)
    if choice.source == "dataset":
        return load_dataset(choice.dataset)
    from framework.data import load_bars
    from framework.settings import load_settings

    start, end = _timestamp(choice.start, "start"), _timestamp(choice.end, "end")
    return load_bars(
        _symbols(choice.symbols),
        choice.timeframe,
        start.to_pydatetime() if start is not None else None,
        end.to_pydatetime() if end is not None else None,
        settings=(settings or load_settings)(),
    )


def build_strategy(cls: type[Strategy], values: Mapping[str, Any]) -> Strategy:
    """Return `cls` with the form's `values`, or raise `ParameterError` naming the bad one."""
    for name, value in values.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ParameterError(f"parameter {name!r} is empty: enter a value")
    return cls(**values)


def build_model(fill: str, fees: float | None, slippage: float | None, cash: float | None) -> ExecutionModel:
    """Return the execution model of the form's settings (validated by `ExecutionModel`)."""
    for name, value in (("fees", fees), ("slippage", slippage), ("cash", cash)):
        if value is None:
            raise ParameterError(f"{name} is empty: enter a value")
    if fill not in ("next_open", "close"):
        raise ParameterError(f"fill must be 'next_open' or 'close', got {fill!r}")
    timing: FillTiming = "next_open" if fill == "next_open" else "close"
    return ExecutionModel(fill=timing, fees=float(fees or 0), slippage=float(slippage or 0), cash=float(cash or 0))


def build_grid(
    cls: type[Strategy],
    axes: Sequence[Any],
    fixed: Mapping[str, Any],
    *,
    limit: int = MAX_COMBINATIONS,
) -> dict[str, list[Any]]:
    """Return the sweep grid: each ticked axis expanded within its declared bounds, the rest fixed.

    `axes` are `dashboards.widgets.GridAxis` values; `fixed` holds the parameter form's values,
    used for every parameter that is not swept. Raises `ParameterError` for an empty or reversed
    range, a value out of bounds, or more than `limit` combinations.
    """
    if not axes:
        raise ParameterError("tick at least one parameter to sweep")
    grid: dict[str, list[Any]] = {}
    for axis in axes:
        declared = cls.params[axis.name]
        if axis.every_value:
            grid[axis.name] = declared.grid()
            continue
        for label, value in (("from", axis.start), ("to", axis.stop), ("step", axis.step)):
            if value is None:
                raise ParameterError(f"sweep {axis.name}: {label} is empty: enter a value")
        if axis.start > axis.stop:
            raise ParameterError(f"sweep {axis.name}: from ({axis.start}) is above to ({axis.stop})")
        for label, value in (("from", axis.start), ("to", axis.stop)):
            try:
                declared.validate(value)
            except ParameterError as exc:
                raise ParameterError(f"sweep {axis.name}: {label} {exc}") from None
        grid[axis.name] = declared.grid(axis.start, axis.stop, axis.step)
    for name, value in fixed.items():
        if name not in grid:
            if value is None:
                raise ParameterError(f"parameter {name!r} is empty: enter a value")
            grid[name] = [cls.params[name].validate(value)]
    count = math.prod(len(values) for values in grid.values())
    if count > limit:
        raise ParameterError(
            f"the grid has {count:,} combinations; the dashboard runs at most {limit:,} "
            "(narrow the ranges, or use `rata sweep` or a notebook)"
        )
    return grid


def run_backtest(strategy: Strategy, bars: Bars, model: ExecutionModel) -> BacktestResult:
    """Backtest and compute everything the page shows (so the page thread only renders)."""
    result = framework_backtest(strategy, bars, model=model)
    _ = result.stats, result.trades, result.drawdown
    return result


def run_sweep(cls: type[Strategy], bars: Bars, grid: Mapping[str, list[Any]], model: ExecutionModel) -> SweepResult:
    """Sweep `grid`; raise `ParameterError` when the strategy refused every combination."""
    result = framework_sweep(cls, bars, grid, model=model)
    if result.table.empty:
        example = result.skipped[0][1] if result.skipped else "empty grid"
        raise ParameterError(f"no valid combination: {cls.name} refused all {len(result.skipped)} (e.g. {example})")
    return result
