"""Research commands of the `rata` CLI: parameter sweeps, walk-forward and the look-ahead check.

`runner.cli` registers these functions on the `rata` app; they import `framework` lazily.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from runner.cli_output import console, params_text, ranked_table, stats_table, window_table
from runner.cli_support import (
    ArgumentError,
    CashOpt,
    DataOpt,
    DatasetOpt,
    FeesOpt,
    FillOpt,
    GridOpt,
    JsonOpt,
    MetricOpt,
    SetOpt,
    SlippageOpt,
    StrategyArg,
    SymbolOpt,
    TimeframeOpt,
    build_strategy,
    emit_json,
    execution,
    fail,
    jsonable,
    load_bars,
    parse_grid,
    parse_set,
)

__all__ = ["lookahead", "sweep", "walk_forward"]

DaskOpt = Annotated[
    str | None,
    typer.Option(help="Run on Dask: `local` for a local cluster, or a scheduler address tcp://host:port."),
]
_SHOWN_METRICS = ("sharpe", "total_return", "cagr", "max_drawdown", "win_rate", "trades")


def _with_metric(metric: str) -> list[str]:
    return [metric, *(m for m in _SHOWN_METRICS if m != metric)]


def sweep(
    strategy: StrategyArg,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    timeframe: TimeframeOpt = None,
    grid: GridOpt = None,
    set_: SetOpt = None,
    fees: FeesOpt = None,
    slippage: SlippageOpt = None,
    cash: CashOpt = None,
    fill: FillOpt = None,
    metric: MetricOpt = "sharpe",
    top: Annotated[int, typer.Option(min=1, help="How many of the best combinations to list.")] = 10,
    dask: DaskOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Backtest every combination of a parameter grid and rank them by a metric.

    With --json, print `rows` (every valid combination, best first), `best` and `skipped`.
    """
    from framework import get_strategy
    from framework.reporting import check_metric
    from framework.sweep import sweep as run_sweep

    cls = get_strategy(strategy)
    fixed = parse_set(cls, set_)
    axes = parse_grid(cls, grid, fixed)
    check_metric(metric)
    model = execution(fees=fees, slippage=slippage, cash=cash, fill=fill)
    bars, source = load_bars(dataset, data, symbol, timeframe)
    full_grid: dict[str, list[Any]] = {**axes, **{name: [value] for name, value in fixed.items()}}
    result = run_sweep(cls, bars, full_grid, model=model, dask=dask, progress=not as_json)
    if result.table.empty:
        example = result.skipped[0][1] if result.skipped else "empty grid"
        raise ArgumentError(f"no valid combination: {cls.name} refused all {len(result.skipped)} (e.g. {example})")
    ranked = result.top(len(result.table), metric)
    best = result.best(metric)
    if as_json:
        emit_json(
            {
                "strategy": cls.name,
                "dataset": source,
                "grid": axes,
                "fixed": fixed,
                "metric": metric,
                "combinations": len(ranked),
                "best": best,
                "rows": ranked.to_dict(orient="records"),
                "skipped": [{"params": p, "reason": r} for p, r in result.skipped],
            }
        )
        return
    out = console()
    if fixed:
        out.print(f"fixed: {params_text(fixed)}")
    title = f"{cls.name} on {source}: top {min(top, len(ranked))} of {len(ranked)} by {metric}"
    out.print(ranked_table(ranked.head(top).to_dict(orient="records"), list(axes), _with_metric(metric), title))
    if result.skipped:
        reason = result.skipped[0][1]
        out.print(f"{len(result.skipped)} combinations skipped by the strategy (e.g. {reason})")
    out.print(f"best by {metric}: {params_text({k: best[k] for k in axes})} (in-sample)")


def walk_forward(
    strategy: StrategyArg,
    train: Annotated[int, typer.Option(min=2, help="Bars in each training (in-sample) window.", show_default=False)],
    test: Annotated[int, typer.Option(min=2, help="Bars in each test (out-of-sample) window.", show_default=False)],
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    timeframe: TimeframeOpt = None,
    grid: GridOpt = None,
    anchored: Annotated[bool, typer.Option(help="Grow the training window from the start, not rolling.")] = False,
    set_: SetOpt = None,
    fees: FeesOpt = None,
    slippage: SlippageOpt = None,
    cash: CashOpt = None,
    fill: FillOpt = None,
    metric: MetricOpt = "sharpe",
    dask: DaskOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Optimise on each training window, trade the best parameters on the next test window.

    The test windows are chained into one out-of-sample equity curve: what the procedure earns.
    """
    from framework import get_strategy
    from framework.reporting import check_metric
    from framework.walkforward import walk_forward as run_walk_forward

    cls = get_strategy(strategy)
    fixed = parse_set(cls, set_)
    axes = parse_grid(cls, grid, fixed)
    check_metric(metric)
    model = execution(fees=fees, slippage=slippage, cash=cash, fill=fill)
    bars, source = load_bars(dataset, data, symbol, timeframe)
    full_grid: dict[str, list[Any]] = {**axes, **{name: [value] for name, value in fixed.items()}}
    result = run_walk_forward(
        cls,
        bars,
        full_grid,
        train=train,
        test=test,
        anchored=anchored,
        metric=metric,
        model=model,
        dask=dask,
        progress=not as_json,
    )
    if as_json:
        emit_json({"dataset": source, "grid": axes, "fixed": fixed, **result.to_dict()})
        return
    shown = [
        "window",
        "test_start",
        "test_end",
        *axes,
        f"train_{metric}",
        f"test_{metric}",
        "test_total_return",
        "test_max_drawdown",
        "test_trades",
    ]
    columns = [c for c in dict.fromkeys(shown) if c in result.windows.columns]
    title = (
        f"{cls.name} on {source}: {len(result.windows)} windows, "
        f"{'anchored' if anchored else 'rolling'} train {train} / test {test} bars, best by {metric}"
    )
    out = console()
    out.print(window_table(jsonable(result.windows[columns].to_dict(orient="records")), columns, title))
    out.print(stats_table(jsonable(result.stats), "out-of-sample statistics (test windows chained)"))


def lookahead(
    strategy: StrategyArg,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    timeframe: TimeframeOpt = None,
    set_: SetOpt = None,
    cuts: Annotated[int, typer.Option(min=1, help="How many truncated prefixes to recompute the signals on.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the signals on truncated histories; exit 1 if any past signal changes."""
    from framework import LookaheadError, get_strategy
    from framework.lookahead import check_lookahead

    cls = get_strategy(strategy)
    instance = build_strategy(cls, parse_set(cls, set_))
    bars, source = load_bars(dataset, data, symbol, timeframe)
    try:
        report = check_lookahead(instance, bars, cuts=cuts)
    except LookaheadError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"dataset": source, **report.to_dict()})
    elif report.ok:
        typer.echo(f"{instance!r} on {source}: ok, no look-ahead and no history dependence ({len(report.cuts)} cuts)")
    else:
        count = len(report.problems)
        typer.echo(f"{instance!r} on {source}: FAILED, {count} problem{'s' if count != 1 else ''}; first:")
        typer.echo(f"  {report.problems[0].detail}")
    if not report.ok:
        raise typer.Exit(1)
