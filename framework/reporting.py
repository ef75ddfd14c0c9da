"""Small helpers shared by result objects: JSON-ready values, metric names and progress bars."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from framework.errors import UnknownNameError

__all__ = ["METRICS", "check_metric", "jsonable", "progress_bar"]

# Every statistic of `framework.stats` that results can be ranked by (all but start and end).
METRICS = (
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


def jsonable(value: Any) -> Any:
    """Return `value` as a plain JSON-ready scalar (timestamps as ISO strings, non-finite as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_metric(metric: str) -> None:
    """Raise `UnknownNameError` unless `metric` is a statistic results can be ranked by."""
    if metric not in METRICS:
        raise UnknownNameError("metric", metric, list(METRICS))


@contextmanager
def progress_bar(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callback driving a rich progress bar (a no-op when disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
