"""Domain objects to API schemas, in one place: orders, fills, positions, instances, market data, risk."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from framework.engine.instances import InstanceSpec
from framework.events import Bar, Tick, ns_to_datetime
from framework.instruments import Instrument
from framework.orders.model import Fill, Order
from framework.orders.positions import Position
from framework.risk.limits import RiskLimits
from framework.risk.state import StateChange
from framework.timeframes import timeframe_ns
from runner.api.schemas import (
    BarOut,
    FillOut,
    InstanceOut,
    InstrumentOut,
    OrderOut,
    PositionOut,
    RiskEventOut,
    RiskLimitsBody,
    TickOut,
)

__all__ = [
    "bar_out",
    "fill_out",
    "instance_out",
    "instrument_out",
    "limits_body",
    "maybe_time",
    "order_out",
    "position_out",
    "risk_event",
    "tick_out",
]


def maybe_time(ns: int | None) -> datetime | None:
    """Return the datetime of `ns`, or None for 0/None (a time never set)."""
    return ns_to_datetime(ns) if ns else None


def order_out(order: Order) -> OrderOut:
    """Return the API view of an order."""
    return OrderOut(
        client_id=order.client_id,
        strategy=order.strategy,
        venue=order.venue,
        symbol=order.symbol,
        side=order.side.value,
        type=order.type.value,
        quantity=order.quantity,
        limit_price=order.limit_price,
        status=order.status.value,
        filled=order.filled,
        avg_price=order.avg_price,
        fees=order.fees,
        venue_order_id=order.venue_order_id,
        reason=order.reason,
        mode=order.mode.value,
        created_at=maybe_time(order.created_ns),
        updated_at=maybe_time(order.updated_ns),
    )


def fill_out(fill: Fill) -> FillOut:
    """Return the API view of a fill."""
    return FillOut(
        fill_id=fill.fill_id,
        client_id=fill.client_id,
        venue=fill.venue,
        strategy=fill.strategy,
        symbol=fill.symbol,
        side=fill.side.value,
        quantity=fill.quantity,
        price=fill.price,
        fee=fill.fee,
        mode=fill.mode.value,
        time=ns_to_datetime(fill.time_ns),
    )


def position_out(position: Position, mark: Decimal | None) -> PositionOut:
    """Return the API view of a position, marked at `mark` when there is one."""
    return PositionOut(
        strategy=position.strategy,
        symbol=position.symbol,
        side=position.side,
        quantity=position.quantity,
        avg_price=position.avg_price,
        mark=mark,
        realised=position.realised,
        unrealised=position.unrealised(mark) if mark is not None else (Decimal(0) if position.is_flat else None),
        fees=position.fees,
        fill_count=position.fill_count,
        updated_at=maybe_time(position.updated_ns),
    )


def instance_out(spec: InstanceSpec, decisions: int = 0, last_decision_ns: int = 0) -> InstanceOut:
    """Return the API view of a strategy instance."""
    return InstanceOut(
        id=spec.id,
        strategy=spec.strategy,
        params=dict(spec.params),
        venue=spec.venue,
        symbols=list(spec.symbols),
        timeframe=spec.timeframe,
        capital=spec.capital,
        state=spec.state.value,
        last_error=spec.last_error,
        decisions=decisions,
        last_decision_at=maybe_time(last_decision_ns),
    )


def instrument_out(instrument: Instrument, *, tradable: bool, stored: bool) -> InstrumentOut:
    """Return the API view of an instrument."""
    return InstrumentOut(
        venue=instrument.venue,
        symbol=instrument.symbol,
        asset_class=instrument.asset_class,
        currency=instrument.currency,
        tick_size=Decimal(repr(instrument.tick_size)),
        qty_step=Decimal(repr(instrument.qty_step)),
        tradable=tradable,
        stored=stored,
    )


def _finite(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def bar_out(bar: Bar) -> BarOut:
    """Return the API view of a bar."""
    return BarOut(
        venue=bar.venue,
        symbol=bar.symbol,
        timeframe=bar.timeframe,
        time=ns_to_datetime(bar.open_ns),
        close_time=ns_to_datetime(bar.open_ns + timeframe_ns(bar.timeframe)),
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        vwap=_finite(bar.vwap),
        trades=bar.trades,
    )


def tick_out(tick: Tick) -> TickOut:
    """Return the API view of a tick."""
    return TickOut(
        venue=tick.venue,
        symbol=tick.symbol,
        time=ns_to_datetime(tick.time_ns),
        trade_id=tick.trade_id,
        price=tick.price,
        size=tick.size,
        side=tick.side,
    )


def limits_body(limits: RiskLimits) -> RiskLimitsBody:
    """Return the API view of a scope's limits (unset limits are null)."""
    values: dict[str, Any] = dict(limits.to_json())
    return RiskLimitsBody.model_validate(values)


def risk_event(change: StateChange) -> RiskEventOut:
    """Return the WebSocket view of a trading-state change."""
    return RiskEventOut(
        kind="state",
        scope=change.scope,
        state=change.state.value,
        previous=change.previous.value,
        reason=change.reason,
        time=maybe_time(change.time_ns),
    )
