"""Risk limits: what one scope (the whole account, or one strategy) may do.

Every limit is optional; `None` means no limit. One `RiskLimits` is kept per scope: `GLOBAL`
("*") for the account as a whole and one per strategy name, and both apply to every order (the
stricter one refuses first). Limits are frozen values; change them at run time by replacing them
(`RiskManager.set_limits`). They serialise to and from the JSON stored in `risk_limits.limits`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from framework.errors import ParameterError

__all__ = ["GLOBAL", "RateLimit", "RiskLimits"]

GLOBAL = "*"
"""The scope name of the account-wide limits and trading state (`risk_limits.strategy = '*'`)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `orders` orders in any sliding window of `per_seconds` seconds."""

    orders: int
    per_seconds: float

    def __post_init__(self) -> None:
        if isinstance(self.orders, bool) or not isinstance(self.orders, int) or self.orders < 1:
            raise ParameterError(f"rate_limit.orders must be a whole number >= 1, got {self.orders!r}")
        if not (isinstance(self.per_seconds, int | float) and math.isfinite(self.per_seconds) and self.per_seconds > 0):
            raise ParameterError(f"rate_limit.per_seconds must be a positive number, got {self.per_seconds!r}")

    @property
    def window_ns(self) -> int:
        """Return the window length in nanoseconds."""
        return round(self.per_seconds * 1_000_000_000)


_CAPS = ("max_order_qty", "max_order_notional", "max_position_qty", "max_position_notional", "max_gross_exposure")
_POSITIVE = ("price_collar", "daily_loss_reduce", "daily_loss_halt", "max_drawdown")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits of one scope. Quantities are in instrument units; notionals and losses in money.

    - `max_order_qty`, `max_order_notional`: the size of one order (notional = quantity times the
      limit price, or the expected fill price or last trade for a market order).
    - `max_position_qty`, `max_position_notional`: the absolute position per instrument after the
      order fills (the account's net position for `GLOBAL`, the strategy's own otherwise).
    - `max_gross_exposure`: the sum over instruments of |position x last price| after the order.
    - `max_open_orders`: working orders, counting the new one.
    - `rate_limit`: orders accepted per sliding window.
    - `price_collar`: the largest fraction a limit price (or the expected fill price of a market
      order) may deviate from the last trade, e.g. 0.05 for 5% (fat-finger protection).
    - `stale_after_s`: refuse orders on an instrument whose last trade is older than this.
    - `daily_loss_reduce`, `daily_loss_halt`: a loss (realised + unrealised, from the equity at the
      UTC day start) that moves the scope to reducing-only, and a larger one that halts it.
    - `max_drawdown`: a fall from the equity peak, as a fraction of the peak, that halts the scope.

    Caps are inclusive (an order exactly at `max_order_qty` is accepted) and may be 0 (nothing
    allowed). Loss and drawdown limits trigger when reached.
    """

    max_order_qty: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_qty: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_open_orders: int | None = None
    rate_limit: RateLimit | None = None
    price_collar: Decimal | None = None
    stale_after_s: float | None = None
    daily_loss_reduce: Decimal | None = None
    daily_loss_halt: Decimal | None = None
    max_drawdown: Decimal | None = None

    def __post_init__(self) -> None:
        for name in _CAPS:
            value = getattr(self, name)
            if value is not None and not (_is_decimal(value) and value >= 0):
                raise ParameterError(f"{name} must be a Decimal >= 0 or None, got {value!r}")
        for name in _POSITIVE:
            value = getattr(self, name)
            if value is not None and not (_is_decimal(value) and value > 0):
                raise ParameterError(f"{name} must be a Decimal > 0 or None, got {value!r}")
        count = self.max_open_orders
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ParameterError(f"max_open_orders must be a whole number >= 0 or None, got {count!r}")
        stale = self.stale_after_s
        if stale is not None and not (isinstance(stale, int | float) and math.isfinite(stale) and stale > 0):
            raise ParameterError(f"stale_after_s must be a positive number of seconds or None, got {stale!r}")
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise ParameterError(f"rate_limit must be a RateLimit or None, got {self.rate_limit!r}")
        if self.max_drawdown is not None and self.max_drawdown >= 1:
            raise ParameterError(f"max_drawdown is a fraction of the peak below 1, got {self.max_drawdown}")
        reduce, halt = self.daily_loss_reduce, self.daily_loss_halt
        if reduce is not None and halt is not None and halt < reduce:
            raise ParameterError(f"daily_loss_halt ({halt}) must not be below daily_loss_reduce ({reduce})")

    @property
    def stale_after_ns(self) -> int | None:
        """Return `stale_after_s` in nanoseconds."""
        return None if self.stale_after_s is None else round(self.stale_after_s * 1_000_000_000)

    def evolve(self, **changes: Any) -> RiskLimits:
        """Return a copy with `changes` (validated like new limits); pass None to lift a limit."""
        try:
            return replace(self, **changes)
        except TypeError as exc:
            raise ParameterError(f"unknown risk limit in {sorted(changes)}: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        """Return the set limits as JSON-ready values (Decimals as strings; unset limits omitted)."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            out[name] = str(value) if isinstance(value, Decimal) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RiskLimits:
        """Return limits from `to_json`'s form (or a REST body); unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"unknown risk limit(s) {unknown}; valid: {sorted(known)}")
        values: dict[str, Any] = {}
        for name, raw in data.items():
            if raw is None:
                values[name] = None
            elif name == "rate_limit":
                values[name] = _rate_limit(raw)
            elif name == "max_open_orders":
                values[name] = _whole(name, raw)
            elif name == "stale_after_s":
                values[name] = _seconds(name, raw)
            else:
                values[name] = _to_decimal(name, raw)
        return cls(**values)


def _is_decimal(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def _to_decimal(name: str, raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise ParameterError(f"{name} must be a number, got {raw!r}")
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
    except InvalidOperation as exc:
        raise ParameterError(f"{name} must be a number, got {raw!r}") from exc
    if not value.is_finite():
        raise ParameterError(f"{name} must be finite, got {raw!r}")
    return value


def _whole(name: str, raw: Any) -> int:
    value = _to_decimal(name, raw)
    if value != value.to_integral_value():
        raise ParameterError(f"{name} must be a whole number, got {raw!r}")
    return int(value)


def _seconds(name: str, raw: Any) -> float:
    return float(_to_decimal(name, raw))


def _rate_limit(raw: Any) -> RateLimit:
    if isinstance(raw, RateLimit):
        return raw
    if not isinstance(raw, Mapping) or set(raw) != {"orders", "per_seconds"}:
        raise ParameterError(f"rate_limit must be {{'orders': N, 'per_seconds': T}}, got {raw!r}")
    return RateLimit(_whole("rate_limit.orders", raw["orders"]), _seconds("rate_limit.per_seconds", raw["per_seconds"]))
