"""Schemas of strategy classes (with their parameter declarations) and strategy instances."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from runner.api.schemas.common import DecimalIn, Money, Schema

__all__ = [
    "IndicatorSeries",
    "IndicatorsOut",
    "InstanceCreate",
    "InstanceOut",
    "ParamDecl",
    "ParamsUpdate",
    "StrategyClassOut",
]

ParamScalar = bool | int | float | str


class ParamDecl(Schema):
    """One declared parameter: its type, default and bounds or choices (what REST validates against)."""

    name: str
    type: str
    default: ParamScalar | None
    bounds: list[float] | None
    choices: list[ParamScalar] | None
    doc: str | None


class StrategyClassOut(Schema):
    """A strategy class that instances can be created from."""

    name: str
    class_name: str
    summary: str
    doc: str
    params: list[ParamDecl]


class InstanceCreate(Schema):
    """A new strategy instance: a class, parameter values, a universe, a timeframe and capital."""

    id: str = Field(min_length=1, max_length=63, description="letters, digits, '_', '.' or '-'")
    strategy: str = Field(min_length=1, max_length=100)
    symbols: list[str] = Field(min_length=1, max_length=1000)
    params: dict[str, ParamScalar] = Field(default_factory=dict, description="defaults fill the rest")
    timeframe: str = Field("1m", max_length=8)
    capital: DecimalIn = Field(Decimal(100_000), description="positive")
    state: Literal["stopped", "running", "paused"] = "stopped"


class InstanceOut(Schema):
    """A strategy instance with its state, last error and decision count in this run."""

    id: str
    strategy: str
    params: dict[str, Any]
    venue: str
    symbols: list[str]
    timeframe: str
    capital: Money
    state: Literal["stopped", "running", "paused", "disabled"]
    last_error: str | None
    decisions: int
    last_decision_at: datetime | None


class ParamsUpdate(Schema):
    """Parameters to change (the others keep their values), validated by the class's declarations."""

    params: dict[str, ParamScalar] = Field(min_length=1)


class IndicatorSeries(Schema):
    """One indicator a strategy draws, bar by bar (null where it has no value yet)."""

    name: str = Field(description="the strategy's name for it, e.g. fast_sma, upper_band, rsi, oversold")
    overlay: bool = Field(description="drawn over the price (true) or in a pane of its own under it (false)")
    values: list[float | None] = Field(description="one value per entry of `times`")


class IndicatorsOut(Schema):
    """A strategy instance's indicators on one instrument over its newest bars: the series `signals()` uses."""

    instance: str
    strategy: str
    symbol: str
    timeframe: str = Field(description="the instance's timeframe: one value per bar of it")
    source: Literal["engine", "stored", "stored+engine"] = Field(
        description=(
            "engine: the live engine's rolling panel (what its decisions saw); stored: stored bars; "
            "stored+engine: stored bars before the engine panel's rows"
        )
    )
    times: list[datetime] = Field(description="open time of each bar (as `time` of /bars), oldest first")
    indicators: list[IndicatorSeries] = Field(description="in the strategy's legend order (empty: it draws nothing)")
