"""Schemas of backtests run on stored bars."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, StrictFloat

from runner.api.schemas.common import Schema, Time
from runner.api.schemas.strategies import ParamScalar

__all__ = ["BacktestEquityOut", "BacktestEquityPoint", "BacktestOut", "BacktestRequest", "BacktestTrade", "TradesOut"]


class BacktestRequest(Schema):
    """Backtest a strategy on stored bars (vectorbt, the execution model of `framework.execution`)."""

    strategy: str = Field(min_length=1, max_length=100)
    symbols: list[str] = Field(min_length=1, max_length=100)
    timeframe: str = Field(max_length=8)
    params: dict[str, ParamScalar] = Field(default_factory=dict)
    start: Time | None = Field(None, description="first bar open time (inclusive)")
    end: Time | None = Field(None, description="last bar open time (exclusive)")
    venue: str | None = Field(None, max_length=64)
    fees: StrictFloat = Field(0.0, ge=0, le=0.5)
    slippage: StrictFloat = Field(0.0, ge=0, le=0.5)
    cash: StrictFloat = Field(100_000.0, gt=0, le=1e15)
    fill: Literal["next_open", "close"] = "next_open"


class BacktestOut(Schema):
    """A finished backtest: what ran and its statistics."""

    id: str
    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    bars: int
    start: datetime
    end: datetime
    created_at: datetime
    final_equity: float | None
    stats: dict[str, Any]


class BacktestTrade(Schema):
    """One trade of a backtest (closed, or open and marked at the last close)."""

    symbol: str
    direction: Literal["long", "short"]
    status: Literal["open", "closed"]
    size: float
    entry_time: datetime
    entry_price: float
    entry_fees: float
    exit_time: datetime | None
    exit_price: float | None
    exit_fees: float | None
    pnl: float | None
    trade_return: float | None


class TradesOut(Schema):
    """A backtest's trades in entry order."""

    items: list[BacktestTrade]


class BacktestEquityPoint(Schema):
    """Equity and drawdown after one bar."""

    time: datetime
    equity: float | None
    drawdown: float | None


class BacktestEquityOut(Schema):
    """A backtest's equity curve."""

    items: list[BacktestEquityPoint]
