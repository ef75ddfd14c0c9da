"""Schemas of strategy classes (with their parameter declarations) and strategy instances."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from runner.api.schemas.common import DecimalIn, Money, Schema

__all__ = ["InstanceCreate", "InstanceOut", "ParamDecl", "ParamsUpdate", "StrategyClassOut"]

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
