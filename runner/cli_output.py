"""Rich rendering for the `rata` CLI: stats, trades and ranked parameter tables."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = [
    "console",
    "format_stat",
    "params_text",
    "ranked_table",
    "stats_table",
    "trades_summary",
    "trades_table",
    "window_table",
]

_PERCENT = frozenset({"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "return"})
_MONEY = frozenset({"initial_equity", "final_equity", "fees_paid", "pnl", "entry_fees", "exit_fees", "cash"})
_COUNT = frozenset({"trades", "open_trades", "combinations"})
_LABELS = {
    "start": "start",
    "end": "end",
    "initial_equity": "initial equity",
    "final_equity": "final equity",
    "total_return": "total return",
    "cagr": "CAGR",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "max_drawdown": "max drawdown",
    "win_rate": "win rate",
    "profit_factor": "profit factor",
    "exposure": "exposure",
    "trades": "closed trades",
    "open_trades": "open trades",
    "fees_paid": "fees paid",
}
STAT_ORDER = tuple(_LABELS)
_PIPE_WIDTH = 120


def console(*, stderr: bool = False) -> Console:
    """Return a console on stdout (or stderr); piped output is 120 columns wide rather than 80."""
    screen = Console(stderr=stderr, highlight=False)
    if not screen.is_terminal and "COLUMNS" not in os.environ:
        screen.width = _PIPE_WIDTH
    return screen


def format_stat(name: str, value: Any) -> str:
    """Return `value` of the statistic `name` formatted for people (percentages, money, ratios)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _time_text(str(value))
    if name in _PERCENT:
        return f"{value:.2%}"
    if name in _MONEY:
        return f"{value:,.2f}"
    if name in _COUNT or isinstance(value, int):
        return f"{int(value):,}"
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.2f}"


def _time_text(text: str) -> str:
    """Return an ISO UTC timestamp as `2013-03-02` (midnight) or `2017-04-19 09:00`, other text as is."""
    if len(text) >= 19 and text[4] == "-" and text[10] == "T":
        if text.endswith("+00:00"):
            text = text[:-6]
        text = text.removesuffix("T00:00:00").replace("T", " ")
        return text.removesuffix(":00") if len(text) == 19 else text
    return text


def params_text(values: Mapping[str, Any]) -> str:
    """Return `fast=10, slow=30` for a parameter mapping."""
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "(defaults)"


def stats_table(stats: Mapping[str, Any], title: str) -> Table:
    """Return a two-column table of the headline statistics in a fixed order."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("statistic", style="bold")
    table.add_column("value", justify="right")
    for name in STAT_ORDER:
        if name in stats:
            table.add_row(_LABELS[name], format_stat(name, stats[name]))
    return table


def trades_summary(trades: Sequence[Mapping[str, Any]], open_trades: Sequence[Mapping[str, Any]]) -> str:
    """Return one line about the closed trades (winners, average and extremes) and the open ones."""
    if not trades:
        text = "no closed trades"
    else:
        returns = [float(t["return"]) for t in trades if t.get("return") is not None]
        winners = sum(1 for r in returns if r > 0)
        text = (
            f"{len(trades)} closed trades: {winners} winners, {len(returns) - winners} losers; "
            f"average {sum(returns) / max(len(returns), 1):.2%}, best {max(returns, default=0):.2%}, "
            f"worst {min(returns, default=0):.2%}"
        )
    if open_trades:
        text += f"; {len(open_trades)} still open"
    return text


def trades_table(trades: Sequence[Mapping[str, Any]], title: str) -> Table:
    """Return a compact table of trades (closed or open): side, entry, exit, size, PnL and return."""
    symbols = {t.get("symbol") for t in trades}
    columns = {
        "symbol": "symbol",
        "direction": "side",
        "entry_time": "entry",
        "entry_price": "entry px",
        "exit_time": "exit",
        "exit_price": "exit px",
        "size": "size",
        "pnl": "pnl",
        "return": "return",
    }
    sides = {t.get("direction") for t in trades}
    common = []
    if len(symbols) == 1:
        del columns["symbol"]
        common.append(str(next(iter(symbols))))
    if len(sides) == 1:
        del columns["direction"]
        common.append(str(next(iter(sides))))
    if common:
        title = f"{title} ({', '.join(common)})"
    present = [c for c in columns if any(c in t for t in trades)]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in present:
        table.add_column(
            columns[name],
            justify="left" if name in ("symbol", "direction") else "right",
            no_wrap=True,
            min_width=10 if name.endswith("_time") else None,
        )
    for trade in trades:
        table.add_row(*(_cell(name, trade.get(name)) for name in present))
    return table


def _cell(name: str, value: Any) -> str:
    if name.endswith("_price") and isinstance(value, float):
        return f"{value:,.4f}" if value < 10 else f"{value:,.2f}"
    if name == "size" and isinstance(value, float):
        return f"{value:,.6g}"
    return format_stat(name, value)


def ranked_table(rows: Iterable[Mapping[Any, Any]], params: Sequence[str], metrics: Sequence[str], title: str) -> Table:
    """Return a table of parameter combinations (already ranked) with the chosen metric columns."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    for name in params:
        table.add_column(name, justify="right", style="cyan")
    for name in metrics:
        table.add_column(_LABELS.get(name, name), justify="right")
    for rank, row in enumerate(rows, start=1):
        table.add_row(
            str(rank),
            *(str(row[p]) for p in params),
            *(format_stat(m, row.get(m)) for m in metrics),
        )
    return table


def window_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str) -> Table:
    """Return a walk-forward table: one row per window, `train_`/`test_` stats formatted as their stat."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in columns:
        is_time = name in ("test_start", "test_end")
        table.add_column(_window_header(name), justify="right", no_wrap=is_time, min_width=10 if is_time else None)
    for row in rows:
        table.add_row(*(format_stat(_stat_name(name), row.get(name)) for name in columns))
    return table


def _window_header(column: str) -> str:
    fixed = {
        "window": "#",
        "test_start": "test from",
        "test_end": "test to",
        "test_total_return": "test return",
        "test_max_drawdown": "test max DD",
        "test_trades": "test trades",
    }
    if column in fixed:
        return fixed[column]
    prefix, _, stat = column.partition("_")
    if prefix in ("train", "test") and stat:
        return f"{prefix} {_LABELS.get(stat, stat)}"
    return column


def _stat_name(column: str) -> str:
    for prefix in ("train_", "test_"):
        if column.startswith(prefix) and column not in ("test_start", "test_end", "train_start", "train_end"):
            return column.removeprefix(prefix)
    return column
