"""A live runner's paper venue fills market orders as soon as their bar's open is known (`opens`, `on_opens`).

Same price, quantity, fee and fill time as when the bar closes (`on_bars`); only reported earlier.
"""

from __future__ import annotations

from decimal import Decimal

from framework.execution import ExecutionModel
from framework.orders.model import Fill
from tests.brokers.conftest import MakeVenue
from tests.brokers.paper_helpers import DAY, T0, Venue, bar, flat, order

MODEL = ExecutionModel(cash=10_000.0, fees=0.001, slippage=0.01)


def fills_of(events: list) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


async def _fill_of(v: Venue, client_id: str) -> tuple:
    found = await v.broker.query(client_id)
    assert found is not None
    return (found.status, found.filled, found.avg_price, found.fees)


async def test_a_market_order_fills_at_acceptance_exactly_as_at_the_bar_close(make_venue: MakeVenue) -> None:
    at_close, at_open = await make_venue(model=MODEL), await make_venue(model=MODEL)
    for v in (at_close, at_open):
        v.feed(flat(0, 100))
        v.clock.advance_to(T0 + DAY + 1_000)  # bar 1 in progress: its first trade was at 102
    at_open.broker.opens = lambda symbol: (T0 + DAY, T0 + 2 * DAY, 102.0)
    stream = at_open.broker.events()

    await at_open.broker.submit(order("buy", "10", client_id="b"))
    early = [e async for e in _drain(stream)]
    (fill,) = fills_of(early)
    await at_close.broker.submit(order("buy", "10", client_id="b"))
    (late,) = fills_of(at_close.feed(bar(1, 102, 110, 95, 104)))

    assert (fill.price, fill.quantity, fill.fee, fill.time_ns) == (late.price, late.quantity, late.fee, late.time_ns)
    assert fill.price == Decimal("103.02")  # 102 * 1.01
    assert fill.time_ns == T0 + DAY  # the open of bar 1
    assert await _fill_of(at_open, "b") == await _fill_of(at_close, "b")
    assert fills_of(at_open.feed(bar(1, 102, 110, 95, 104))) == []  # nothing left for the close


async def test_the_bar_the_order_was_decided_on_never_fills_it_and_on_opens_fills_at_the_next(venue: Venue) -> None:
    venue.feed(flat(0, 100))  # the decision bar closed at T0 + DAY
    forming = {"X": (T0, T0 + DAY, 99.0)}  # the venue still sees bar 0 in progress (no trade of bar 1 yet)
    venue.broker.opens = forming.get
    await venue.broker.submit(order("buy", "10", client_id="b"))
    assert (await venue.broker.query("b")).filled == 0  # type: ignore[union-attr]
    forming["X"] = (T0 + DAY, T0 + 2 * DAY, 101.0)  # bar 1's first trade
    (fill,) = fills_of(venue.broker.on_opens(["X"]))
    assert (fill.client_id, fill.price, fill.time_ns) == ("b", Decimal("101"), T0 + DAY)
    assert venue.broker.on_opens(["X"]) == []  # nothing waits any more: nothing is written


async def test_orders_of_one_call_fill_sells_first_as_at_a_close(venue: Venue) -> None:
    venue.feed(flat(0, 100), flat(0, 100, symbol="Y"))
    venue.clock.advance_to(T0 + DAY + 1_000)
    venue.broker.opens = lambda symbol: (T0 + DAY, T0 + 2 * DAY, 100.0)
    stream = venue.broker.events()
    await venue.broker.submit_many(
        [
            order("buy", "10", client_id="b1"),
            order("sell", "5", symbol="Y", client_id="s1"),
            order("buy", "1", symbol="Y", client_id="b2"),
        ]
    )
    assert [f.client_id for f in fills_of([e async for e in _drain(stream)])] == ["s1", "b1", "b2"]


async def test_limit_orders_and_replays_are_left_to_the_bar_close(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    venue.clock.advance_to(T0 + DAY + 1_000)
    await venue.broker.submit(order("buy", "1", client_id="replayed"))  # no `opens`: a replay
    venue.broker.opens = lambda symbol: (T0 + DAY, T0 + 2 * DAY, 100.0)
    await venue.broker.submit(order("buy", "1", limit="101", client_id="limit"))
    assert venue.broker.on_opens(["X"]) != []  # the replayed market order waited; now its open is known
    assert (await venue.broker.query("limit")).filled == 0  # type: ignore[union-attr]
    assert [f.client_id for f in fills_of(venue.feed(flat(1, 100)))] == ["limit"]


async def _drain(stream):  # type: ignore[no-untyped-def]
    """Yield the events already published (the stream's queue), without waiting for more."""
    while stream.pending():
        yield await anext(stream)
