"""Backtest one strategy on a panel of bars with vectorbt, under rata's execution model."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from framework.bars import Bars
from framework.execution import ExecutionModel, FillTiming
from framework.reporting import jsonable
from framework.simulate import simulate
from framework.stats import portfolio_stats
from framework.strategy import Decision, Strategy

if TYPE_CHECKING:
    import holoviews as hv

__all__ = ["BacktestResult", "backtest", "execution_model"]

_DIRECTIONS = {0: "long", 1: "short"}
_STATUS = {0: "open", 1: "closed"}


def execution_model(
    model: ExecutionModel | None = None,
    *,
    fees: float | None = None,
    slippage: float | None = None,
    cash: float | None = None,
    fill: FillTiming | None = None,
    fraction: float | None = None,
    notional: float | None = None,
) -> ExecutionModel:
    """Return `model` (default: `ExecutionModel()`) with the given fields overridden."""
    base = model or ExecutionModel()
    changes = {
        k: v
        for k, v in {
            "fees": fees,
            "slippage": slippage,
            "cash": cash,
            "fill": fill,
            "fraction": fraction,
            "notional": notional,
        }.items()
        if v is not None
    }
    return base.with_(**changes) if changes else base


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """The outcome of `backtest`: stats, trades, fills, equity and drawdown, and plots.

    Times in `trades` and `fills` are the labels (close times) of the bars in which the fills
    happened; with `fill="next_open"` that bar's open is the fill price.
    """

    strategy: Strategy
    data: Bars
    model: ExecutionModel
    decision: Decision
    portfolio: Any = field(repr=False)

    @cached_property
    def stats(self) -> dict[str, Any]:
        """Return total return, CAGR, Sharpe, Sortino, max drawdown, win rate, profit factor..."""
        row = portfolio_stats(self.portfolio).iloc[0]
        return {str(k): jsonable(v) for k, v in row.items()}

    @cached_property
    def equity(self) -> pd.Series:
        """Return the strategy's equity (cash plus positions marked at each close)."""
        value = self.portfolio.value()
        series = value.iloc[:, 0] if isinstance(value, pd.DataFrame) else value
        return pd.Series(series.to_numpy(), index=self.data.index, name="equity")

    @cached_property
    def drawdown(self) -> pd.Series:
        """Return the drawdown from the running peak of equity, as a negative fraction."""
        peak = self.equity.cummax()
        return (self.equity / peak - 1).rename("drawdown")

    @cached_property
    def trades(self) -> pd.DataFrame:
        """Return one row per trade (closed and still open), in entry order."""
        records = self.portfolio.get_trades(group_by=False).values
        symbols = np.asarray(self.data.symbols)
        index = self.data.index
        k = len(symbols)
        table = pd.DataFrame(
            {
                "symbol": symbols[records["col"] % k],
                "direction": [_DIRECTIONS[d] for d in records["direction"]],
                "status": [_STATUS[s] for s in records["status"]],
                "size": records["size"],
                "entry_time": index[records["entry_idx"]],
                "entry_price": records["entry_price"],
                "entry_fees": records["entry_fees"],
                "exit_time": index[records["exit_idx"]],
                "exit_price": records["exit_price"],
                "exit_fees": records["exit_fees"],
                "pnl": records["pnl"],
                "return": records["return"],
            }
        )
        open_rows = table["status"] == "open"
        table.loc[open_rows, "exit_time"] = pd.NaT
        return table.sort_values(["entry_time", "symbol"], kind="stable").reset_index(drop=True)

    @cached_property
    def fills(self) -> pd.DataFrame:
        """Return every fill: time, symbol, side, quantity, price (with slippage) and fees."""
        records = self.portfolio.get_orders(group_by=False).values
        symbols = np.asarray(self.data.symbols)
        table = pd.DataFrame(
            {
                "time": self.data.index[records["idx"]],
                "symbol": symbols[records["col"] % len(symbols)],
                "side": np.where(records["side"] == 0, "buy", "sell"),
                "quantity": records["size"],
                "price": records["price"],
                "fees": records["fees"],
            }
        )
        return table.sort_values(["time", "symbol"], kind="stable").reset_index(drop=True)

    @property
    def final_equity(self) -> float:
        """Return the equity after the last bar, open positions marked to market."""
        return float(self.equity.iloc[-1])

    def plot_equity(self) -> hv.Layout:
        """Return the equity curve with its drawdown below."""
        from framework.plots import equity_plot

        return equity_plot(self.equity, self.drawdown, title=f"{self.strategy!r} equity")

    def plot_price(self, symbol: str | None = None) -> hv.Overlay:
        """Return the price of `symbol` (default: the first) with entry and exit markers."""
        from framework.plots import price_plot

        symbol = symbol or self.data.symbols[0]
        return price_plot(self.data.close[symbol], self.trades, title=f"{symbol}: {self.strategy.name} trades")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary: stats, closed trades and open trades."""
        trades = self.trades
        closed = trades[trades["status"] == "closed"]
        still_open = trades[trades["status"] == "open"]
        return {
            "strategy": self.strategy.name,
            "params": self.strategy.values,
            "symbols": self.data.symbols,
            "execution": {
                "fill": self.model.fill,
                "fees": self.model.fees,
                "slippage": self.model.slippage,
                "cash": self.model.cash,
                "fraction": self.model.fraction,
                "notional": self.model.notional,
            },
            **{k: v for k, v in self.stats.items() if k not in ("trades", "open_trades")},
            "trade_count": self.stats["trades"],
            "open_trade_count": self.stats["open_trades"],
            "trades": _records(closed.drop(columns=["status"])),
            "open_trades": _records(still_open.drop(columns=["status", "exit_time", "exit_price", "exit_fees"])),
        }

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"BacktestResult({self.strategy!r}, {len(self.data)} bars x {len(self.data.symbols)} instruments, "
            f"total_return={s['total_return']:.2%}, sharpe={s['sharpe']:.2f}, "
            f"max_drawdown={s['max_drawdown']:.2%}, trades={s['trades']})"
        )


def backtest(
    strategy: Strategy,
    data: Bars,
    *,
    model: ExecutionModel | None = None,
    fees: float | None = None,
    slippage: float | None = None,
    cash: float | None = None,
    fill: FillTiming | None = None,
    fraction: float | None = None,
    notional: float | None = None,
) -> BacktestResult:
    """Backtest `strategy` on `data` and return its trades, equity, stats and plots.

    `signals()` is called once over the whole history; the decisions are simulated by vectorbt's
    Rust engine under the execution model (see `framework.execution`): by default a decision at
    bar t's close fills at bar t+1's open, no fees or slippage, 100,000 of cash split equally
    among the instruments, all of a sleeve's cash on each entry, quantities rounded down to each
    instrument's step.

    Warning: the result is only as honest as `signals()` is causal; run `check_lookahead` on any
    new strategy.

    >>> from framework import backtest, load_dataset
    >>> from strategies.sma_cross import SmaCross
    >>> result = backtest(SmaCross(fast=10, slow=30), load_dataset("GOOG"), fees=0.001)
    >>> result.stats["trades"] > 0
    True
    """
    exec_model = execution_model(
        model, fees=fees, slippage=slippage, cash=cash, fill=fill, fraction=fraction, notional=notional
    )
    decision = strategy.decide(data)
    portfolio = simulate([decision], data, exec_model)
    return BacktestResult(strategy=strategy, data=data, model=exec_model, decision=decision, portfolio=portfolio)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): jsonable(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
