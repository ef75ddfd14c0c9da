"""Parameter sweeps: every combination of a grid simulated in one vectorised vectorbt run.

`signals()` is evaluated once per combination (it is cheap next to the simulation); the decisions
of a whole chunk of combinations are then stacked side by side and simulated by vectorbt's Rust
engine in a single call, grouped by combination. Chunks bound memory; with `dask=` they run on a
Dask cluster (a local one, or a scheduler address) and give the same table as in-process.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.backtest import execution_model
from framework.bars import Bars
from framework.errors import ParameterError, UnknownNameError
from framework.execution import ExecutionModel, FillTiming
from framework.params import ParamValue
from framework.reporting import check_metric, jsonable, progress_bar
from framework.simulate import simulate
from framework.stats import STAT_COLUMNS, portfolio_stats
from framework.strategy import DecisionArrays, Strategy

if TYPE_CHECKING:
    import holoviews as hv

__all__ = ["SweepResult", "expand_grid", "sweep"]

Combo = dict[str, ParamValue]
_CELLS_PER_CHUNK = 12_000_000
_MAX_CHUNK = 500


@dataclass(frozen=True, eq=False)
class SweepResult:
    """The table of stats of every valid combination, the skipped ones and plots."""

    strategy: type[Strategy]
    params: tuple[str, ...]
    table: pd.DataFrame
    skipped: list[tuple[Combo, str]] = field(default_factory=list)

    def best(self, metric: str = "sharpe") -> Combo:
        """Return the parameters of the combination with the highest `metric` (NaN ranks last)."""
        check_metric(metric)
        if self.table.empty:
            raise ParameterError("no valid combination in the sweep")
        ranked = self.table[metric].replace([np.inf, -np.inf], np.nan)
        row = self.table.iloc[int(np.argmax(ranked.fillna(-np.inf).to_numpy()))]
        return {p: jsonable(row[p]) for p in self.params}

    def top(self, n: int = 10, metric: str = "sharpe") -> pd.DataFrame:
        """Return the `n` best combinations by `metric`, ranked like `best` (infinite and NaN values last)."""
        check_metric(metric)
        key = self.table[metric].replace([np.inf, -np.inf], np.nan)
        order = key.sort_values(ascending=False, na_position="last", kind="stable").index
        return self.table.loc[order].head(n)

    def heatmap(self, x: str | None = None, y: str | None = None, metric: str = "sharpe") -> hv.HeatMap:
        """Return a heatmap of `metric` over two swept parameters (default: the first two)."""
        check_metric(metric)
        swept = [p for p in self.params if self.table[p].nunique() > 1] or list(self.params)
        if len(swept) < 2 and (x is None or y is None):
            raise ParameterError("a heatmap needs two swept parameters")
        x = x or swept[0]
        y = y or next(p for p in swept if p != x)
        from framework.plots import heatmap_plot

        return heatmap_plot(self.table, x, y, metric, title=f"{self.strategy.name}: {metric}")

    def to_dict(self, metric: str = "sharpe") -> dict[str, Any]:
        """Return a JSON-ready summary: best parameters and every row."""
        rows = [
            {k: jsonable(v) for k, v in row.items()}
            for row in self.table.replace([np.inf, -np.inf], np.nan).to_dict(orient="records")
        ]
        return {
            "strategy": self.strategy.name,
            "params": list(self.params),
            "combinations": len(self.table),
            "skipped": [{"params": p, "reason": r} for p, r in self.skipped],
            "metric": metric,
            "best": self.best(metric) if len(self.table) else None,
            "rows": rows,
        }

    def __repr__(self) -> str:
        return f"SweepResult({self.strategy.name}, {len(self.table)} combinations, {len(self.skipped)} skipped)"


def expand_grid(strategy_cls: type[Strategy], grid: Mapping[str, Iterable[Any]]) -> list[Combo]:
    """Return the cartesian product of `grid`, every value validated against its declaration."""
    names = list(grid)
    for name in names:
        if name not in strategy_cls.params:
            raise UnknownNameError(f"parameter of {strategy_cls.name}", name, list(strategy_cls.params))
    axes = []
    for name in names:
        values = [strategy_cls.params[name].validate(v) for v in grid[name]]
        if not values:
            raise ParameterError(f"grid for {name!r} is empty")
        axes.append(list(dict.fromkeys(values)))
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


def sweep(
    strategy: type[Strategy] | Strategy,
    data: Bars,
    grid: Mapping[str, Iterable[Any]],
    *,
    model: ExecutionModel | None = None,
    fees: float | None = None,
    slippage: float | None = None,
    cash: float | None = None,
    fill: FillTiming | None = None,
    fraction: float | None = None,
    notional: float | None = None,
    dask: bool | str | Any = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> SweepResult:
    """Backtest every combination of `grid` and return one row of stats per combination.

    `strategy` is a class (unswept parameters take their defaults) or an instance (unswept
    parameters keep its values). Combinations that the strategy refuses (e.g. fast >= slow) are
    skipped and listed in `SweepResult.skipped`, not fatal. `dask` runs the chunks on Dask: `True`
    or `"local"` starts a local cluster, a `"tcp://host:port"` address uses that scheduler, a
    `distributed.Client` is used as given.

    >>> from framework import load_dataset, sweep
    >>> from strategies.sma_cross import SmaCross
    >>> result = sweep(SmaCross, load_dataset("GOOG"), {"fast": range(5, 20, 5), "slow": [30, 50]})
    >>> len(result.table)
    6
    """
    cls = strategy if isinstance(strategy, type) else type(strategy)
    base = {} if isinstance(strategy, type) else strategy.values
    exec_model = execution_model(
        model, fees=fees, slippage=slippage, cash=cash, fill=fill, fraction=fraction, notional=notional
    )
    combos, skipped = [], []
    for combo in expand_grid(cls, grid):
        try:
            cls(**{**base, **combo})
        except ParameterError as exc:
            skipped.append((combo, str(exc)))
            continue
        combos.append(combo)
    size = chunk_size or max(1, min(_MAX_CHUNK, _CELLS_PER_CHUNK // max(1, len(data) * len(data.symbols))))
    chunks = [combos[i : i + size] for i in range(0, len(combos), size)]
    tables: list[pd.DataFrame] = []
    with progress_bar(progress, len(combos), f"sweep {cls.name}") as advance:
        if dask:
            tables = _run_on_dask(dask, cls, base, chunks, data, exec_model, advance)
        else:
            tables = _run_pipelined(cls, base, chunks, data, exec_model, advance)
    names = tuple(grid)
    columns = [*names, *STAT_COLUMNS]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    return SweepResult(strategy=cls, params=names, table=table[columns], skipped=skipped)


def run_chunk(
    cls: type[Strategy], base: Mapping[str, Any], combos: Sequence[Combo], data: Bars, model: ExecutionModel
) -> pd.DataFrame:
    """Simulate `combos` in one vectorbt call and return their stats with the parameter columns."""
    if not combos:
        return pd.DataFrame(columns=[*STAT_COLUMNS])
    decisions = [cls(**{**base, **combo}).decide_arrays(data) for combo in combos]
    return _simulate_chunk(combos, decisions, data, model)


def _simulate_chunk(
    combos: Sequence[Combo], decisions: Sequence[DecisionArrays], data: Bars, model: ExecutionModel
) -> pd.DataFrame:
    stats = portfolio_stats(simulate(decisions, data, model)).reset_index(drop=True)
    params = pd.DataFrame(list(combos))
    return pd.concat([params, stats], axis=1)


def _run_pipelined(
    cls: type[Strategy],
    base: Mapping[str, Any],
    chunks: Sequence[Sequence[Combo]],
    data: Bars,
    model: ExecutionModel,
    advance: Callable[[int], None],
) -> list[pd.DataFrame]:
    """Compute the next chunk's decisions while a worker thread simulates the previous chunk.

    vectorbt's Rust kernels release the GIL, so deciding (Python) and simulating (Rust) overlap
    on two cores; the tables are the same as a sequential run's, in the same order.
    """
    tables: list[pd.DataFrame] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rata-sweep") as worker:
        pending: Future[pd.DataFrame] | None = None
        for chunk in chunks:
            decisions = [cls(**{**base, **combo}).decide_arrays(data) for combo in chunk]
            if pending is not None:
                tables.append(pending.result())
                advance(len(tables[-1]))
            pending = worker.submit(_simulate_chunk, chunk, decisions, data, model)
        if pending is not None:
            tables.append(pending.result())
            advance(len(tables[-1]))
    return tables


def _run_on_dask(
    target: bool | str | Any,
    cls: type[Strategy],
    base: Mapping[str, Any],
    chunks: list[list[Combo]],
    data: Bars,
    model: ExecutionModel,
    advance: Callable[[int], None],
) -> list[pd.DataFrame]:
    from distributed import Client, LocalCluster, as_completed

    own: list[Any] = []
    if isinstance(target, Client):
        client = target
    elif target is True or target == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        own = [client, cluster]
    else:
        client = Client(str(target))
        own = [client]
    try:
        shared = client.scatter(data, broadcast=True)
        futures = [client.submit(run_chunk, cls, base, chunk, shared, model, pure=False) for chunk in chunks]
        order = {f.key: i for i, f in enumerate(futures)}
        results: list[pd.DataFrame | None] = [None] * len(futures)
        for future in as_completed(futures):
            table = future.result()
            results[order[future.key]] = table
            advance(len(table))
        return [t for t in results if t is not None]
    finally:
        for resource in own:
            resource.close()
