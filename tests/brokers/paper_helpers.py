"""A paper venue on a simulated clock, fed bar by bar the way the engine feeds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

from framework.brokers.base import BrokerEvent
from framework.brokers.paper import PaperBroker
from framework.clock import SimulatedClock
from framework.events import Bar, Tick
from framework.execution import ExecutionModel
from framework.instruments import Instrument
from framework.orders.model import Fill, Order, OrderSide, OrderType

DAY = 86_400_000_000_000
T0 = 1_704_153_600_000_000_000  # 2024-01-02 00:00 UTC: bar i opens at T0 + i days

_ids = count(1)


def bar(i: int, open_: float, high: float, low: float, close: float, *, symbol: str = "X") -> Bar:
    """Return daily bar number `i` of `symbol` (opening at T0 + i days)."""
    return Bar("SIM", symbol, "1d", T0 + i * DAY, open_, high, low, close, 1000.0, close, 10)


def flat(i: int, price: float, *, symbol: str = "X") -> Bar:
    """Return a bar that opens, trades and closes at `price`."""
    return bar(i, price, price, price, price, symbol=symbol)


def order(
    side: str = "buy",
    quantity: str | Decimal = "10",
    *,
    symbol: str = "X",
    limit: str | None = None,
    client_id: str | None = None,
) -> Order:
    """Return an order as the engine sends it."""
    return Order(
        client_id=client_id or f"c-{next(_ids)}",
        strategy="test",
        venue="paper",
        symbol=symbol,
        side=OrderSide(side),
        quantity=Decimal(quantity),
        type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=None if limit is None else Decimal(limit),
    )


@dataclass
class Venue:
    """A paper broker and its simulated clock; `feed` advances the clock to the bar's close first."""

    directory: Path
    clock: SimulatedClock = field(default_factory=lambda: SimulatedClock(T0))
    options: dict[str, Any] = field(default_factory=dict)
    broker: PaperBroker = field(init=False)

    def __post_init__(self) -> None:
        self.broker = self.open()

    def open(self, **changes: Any) -> PaperBroker:
        """Return a new broker on the same directory (a restart), with `changes` to the options."""
        options = {
            "model": ExecutionModel(cash=10_000.0),
            "instruments": [Instrument("X"), Instrument("Y", qty_step=0.001)],
            "clock": self.clock,
            **self.options,
            **changes,
        }
        return PaperBroker(self.directory, **options)

    def feed(self, *bars: Bar) -> list[BrokerEvent]:
        """Deliver closed bars (all of one close) as the engine does: clock to their close, then the broker."""
        self.clock.advance_to(max(b.open_ns for b in bars) + DAY)
        return self.broker.on_bars(bars)

    def tick(self, time_ns: int, price: float, *, symbol: str = "X") -> list[BrokerEvent]:
        """Deliver one trade at `time_ns` (the clock follows it)."""
        self.clock.advance_to(time_ns)
        return self.broker.on_tick(Tick("SIM", symbol, time_ns, str(time_ns), price, 1.0))


async def take(stream: AsyncIterator[BrokerEvent], n: int) -> list[BrokerEvent]:
    """Return the next `n` events of a stream (failing instead of hanging if they never come)."""
    return [await asyncio.wait_for(anext(stream), timeout=10) for _ in range(n)]


def kinds(events: Iterable[BrokerEvent]) -> list[str]:
    """Return a compact trace: `fill:<client>` or `<status>:<client>` per event."""
    return [f"fill:{e.client_id}" if isinstance(e, Fill) else f"{e.status.value}:{e.client_id}" for e in events]
