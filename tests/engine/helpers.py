"""An order manager on a real PostgreSQL and a real paper venue, on a simulated clock, fed bar by bar.

The venues here are `PaperBroker`s (or thin subclasses that add an observation or a failure a real
venue can inflict); the database is the real one the `database` fixture creates. Nothing is mocked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from framework.brokers.base import BrokerEvent
from framework.brokers.paper import PaperBroker
from framework.clock import SimulatedClock
from framework.engine.intents import OrderIntent
from framework.engine.order_manager import OrderManager
from framework.errors import TransientError
from framework.events import Bar
from framework.execution import ExecutionModel
from framework.instruments import Instrument
from framework.orders.model import Fill, Mode, Order, OrderSide, OrderType
from framework.orders.positions import PositionBook
from framework.risk import RiskManager, RiskStore

DAY = 86_400_000_000_000
T0 = 1_704_153_600_000_000_000  # 2024-01-02 00:00 UTC: bar i opens at T0 + i days
VENUE = "paper"
INSTRUMENTS = {"X": Instrument("X"), "Y": Instrument("Y", qty_step=0.001)}
FAST_RESOLVE = (0.0, 0.5, 1.0, 2.0, 4.0)


def flat(i: int, price: float, symbol: str = "X") -> Bar:
    """Return daily bar `i` of `symbol`, opening, trading and closing at `price`."""
    return Bar("SIM", symbol, "1d", T0 + i * DAY, price, price, price, price, 1000.0, price, 10)


def intent(
    side: str = "buy",
    qty: str = "10",
    *,
    symbol: str = "X",
    strategy: str = "s1",
    limit: str | None = None,
    expected: str | None = "100",
) -> OrderIntent:
    """Return an intent as the strategy engine makes it."""
    return OrderIntent(
        strategy=strategy,
        venue=VENUE,
        symbol=symbol,
        side=OrderSide(side),
        quantity=Decimal(qty),
        type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=None if limit is None else Decimal(limit),
        reason="test signal",
        expected_price=None if expected is None else Decimal(expected),
    )


def paper(directory: Path, clock: SimulatedClock, cls: type[PaperBroker] = PaperBroker, **options: Any) -> PaperBroker:
    """Return a paper venue on `directory` (a restart when it exists): 100,000 USD, no fees, no slippage."""
    return cls(
        directory,
        model=ExecutionModel(cash=100_000.0),
        instruments=list(INSTRUMENTS.values()),
        clock=clock,
        **options,
    )


def venue_orders(directory: Path, account: str = "main") -> list[str]:
    """Return the client ids of every order the paper venue on `directory` ever accepted or refused."""
    with sqlite3.connect(directory / f"{account}.sqlite3") as conn:
        return [row[0] for row in conn.execute("SELECT client_id FROM orders ORDER BY seq")]


async def stored_fills(pool: asyncpg.Pool) -> list[Fill]:
    """Return every fill in the database."""
    rows = await pool.fetch("SELECT * FROM fills ORDER BY time, fill_id")
    return [
        Fill(
            r["fill_id"],
            r["client_id"],
            r["venue"],
            r["symbol"],
            OrderSide(r["side"]),
            r["quantity"],
            r["price"],
            r["fee"],
            0,
            r["strategy"],
            Mode(r["mode"]),
        )
        for r in rows
    ]


async def status_of(pool: asyncpg.Pool, client_id: str) -> str:
    """Return the stored status of one order."""
    return str(await pool.fetchval("SELECT status FROM orders WHERE client_id = $1", client_id))


@dataclass
class Rig:
    """A manager, its paper venue, risk manager and simulated clock."""

    pool: asyncpg.Pool
    directory: Path
    clock: SimulatedClock
    broker: PaperBroker
    risk: RiskManager
    manager: OrderManager
    fills_seen: list[tuple[Fill, Decimal]] = field(default_factory=list)

    async def feed(self, i: int, price: float, symbols: Iterable[str] = ("X",)) -> list[BrokerEvent]:
        """Deliver bar `i` of `symbols` at its close, as the engine does; wait for the manager to apply its events."""
        bars = [flat(i, price, s) for s in symbols]
        self.clock.advance_to(T0 + (i + 1) * DAY)
        for b in bars:
            self.manager.on_price(b.symbol, Decimal(str(price)), self.clock.now_ns())
        events = self.broker.on_bars(bars)
        await self.manager.idle()
        return events

    async def local_positions_from_fills(self) -> dict[str, Decimal]:
        """Return the net positions the stored fills add up to."""
        return PositionBook(await stored_fills(self.pool)).net_positions()

    async def close(self) -> None:
        """Close the manager and the venue."""
        await self.manager.close()
        await self.broker.close()


async def make_rig(
    pool: asyncpg.Pool,
    directory: Path,
    *,
    clock: SimulatedClock | None = None,
    broker_cls: type[PaperBroker] = PaperBroker,
    broker_options: dict[str, Any] | None = None,
    start: bool = True,
    **manager_options: Any,
) -> Rig:
    """Return a started (by default) order manager on a paper venue in `directory`."""
    clock = clock or SimulatedClock(T0 + DAY)
    broker = paper(directory, clock, broker_cls, **(broker_options or {}))
    risk = await RiskManager.open(RiskStore(pool), clock)
    options: dict[str, Any] = {"resolve_delays_s": FAST_RESOLVE, **manager_options}
    manager = OrderManager(pool, broker, risk, clock, mode=Mode.PAPER, venue=VENUE, instruments=INSTRUMENTS, **options)
    rig = Rig(pool, directory, clock, broker, risk, manager)
    manager.add_fill_listener(lambda fill, position: rig.fills_seen.append((fill, position.quantity)))
    if start:
        report = await manager.start()
        assert report.ok, report.reason
    return rig


class ObservedBroker(PaperBroker):
    """A paper venue that records what the database held for each order at the moment it was sent."""

    def __init__(self, *args: Any, pool: asyncpg.Pool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.rows_at_send: dict[str, asyncpg.Record | None] = {}

    async def submit(self, order: Order) -> Any:
        await self._observe(order)
        return await super().submit(order)

    async def submit_many(self, orders: Sequence[Order]) -> Any:
        for order in orders:
            await self._observe(order)
        return await super().submit_many(orders)

    async def _observe(self, order: Order) -> None:
        self.rows_at_send[order.client_id] = await self.pool.fetchrow(
            "SELECT o.status, o.quantity, "
            "(SELECT count(*) FROM order_events e WHERE e.client_id = o.client_id) AS events "
            "FROM orders o WHERE o.client_id = $1",
            order.client_id,
        )


class FlakyBroker(PaperBroker):
    """A paper venue with what the fault plan cannot do: a stream that misses orders, requests lost on the way,
    queries counted, and events published as a (misbehaving) venue would. Like a remote venue, it takes
    one order per request (no `submit_many`)."""

    submit_many = None  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deaf = False
        self.lose_next_submits = 0
        self.queries: list[str] = []
        self.submits: list[str] = []

    async def submit(self, order: Order) -> Any:
        self.submits.append(order.client_id)
        if self.lose_next_submits:
            self.lose_next_submits -= 1
            raise TransientError(f"timeout: request for {order.client_id} never reached the venue")
        return await super().submit(order)

    async def query(self, client_id: str) -> Order | None:
        self.queries.append(client_id)
        return await super().query(client_id)

    def events(self) -> Any:
        return _Muted(super().events(), self)

    def publish(self, event: BrokerEvent) -> None:
        """Publish an event the venue did not cause (a venue bug, or another system's order)."""
        self._hub.publish(event)


class _Muted:
    """A subscription that drops every event while its venue is `deaf` (a venue stream that misses some)."""

    def __init__(self, inner: Any, venue: FlakyBroker) -> None:
        self._inner = inner
        self._venue = venue

    def __aiter__(self) -> AsyncIterator[BrokerEvent]:
        return self

    async def __anext__(self) -> BrokerEvent:
        while True:
            event: BrokerEvent = await self._inner.__anext__()
            if not self._venue.deaf:
                return event

    def pending(self) -> int:
        return int(self._inner.pending())

    async def aclose(self) -> None:
        await self._inner.aclose()
