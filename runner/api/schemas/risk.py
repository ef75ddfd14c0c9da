"""Schemas of risk limits, trading states, the kill switch and refusals."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, StrictFloat, StrictInt

from runner.api.schemas.common import DecimalIn, Reason, Schema

__all__ = [
    "KillRequest",
    "RateLimitBody",
    "RefusalOut",
    "ReleaseRequest",
    "RiskEventOut",
    "RiskLimitsBody",
    "RiskLimitsOut",
    "RiskStateOut",
    "ScopeStateOut",
    "StateRequest",
]

StateName = Literal["active", "reducing", "halted"]


class RateLimitBody(Schema):
    """At most `orders` orders in any window of `per_seconds` seconds."""

    orders: StrictInt = Field(ge=1, le=1_000_000)
    per_seconds: StrictFloat = Field(gt=0, le=86_400)


class RiskLimitsBody(Schema):
    """The limits of one scope (see `framework.risk.limits.RiskLimits`); omitted or null means no limit."""

    max_order_qty: DecimalIn | None = None
    max_order_notional: DecimalIn | None = None
    max_position_qty: DecimalIn | None = None
    max_position_notional: DecimalIn | None = None
    max_gross_exposure: DecimalIn | None = None
    max_open_orders: StrictInt | None = Field(None, ge=0, le=1_000_000)
    rate_limit: RateLimitBody | None = None
    price_collar: DecimalIn | None = None
    stale_after_s: StrictFloat | None = Field(None, gt=0, le=86_400 * 365)
    daily_loss_reduce: DecimalIn | None = None
    daily_loss_halt: DecimalIn | None = None
    max_drawdown: DecimalIn | None = None


class RiskLimitsOut(Schema):
    """The limits of a scope (`*` is the account)."""

    scope: str
    limits: RiskLimitsBody


class ScopeStateOut(Schema):
    """The trading state of one scope and why."""

    scope: str
    state: StateName
    reason: str


class RiskStateOut(Schema):
    """The account's trading state, and every scope that is not active."""

    state: StateName
    reason: str
    scopes: list[ScopeStateOut]


class KillRequest(Schema):
    """Why the kill switch is pressed (halts the account and cancels every open order)."""

    reason: Reason


class ReleaseRequest(Schema):
    """Why trading may resume; with `strategy`, only that strategy is released."""

    reason: Reason
    strategy: str | None = Field(None, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StateRequest(Schema):
    """Put the account in a trading state by hand (e.g. reducing-only to wind down)."""

    state: StateName
    reason: Reason


class RefusalOut(Schema):
    """One order the risk manager refused, with its rule."""

    time: datetime
    client_id: str | None
    strategy: str
    symbol: str
    rule: str
    reason: str


class RiskEventOut(Schema):
    """A trading-state change (WebSocket channel `risk`), or a limits change (`kind` "limits")."""

    kind: Literal["state", "limits"]
    scope: str
    state: StateName | None = None
    previous: StateName | None = None
    reason: str = ""
    time: datetime | None = None
    limits: RiskLimitsBody | None = None
