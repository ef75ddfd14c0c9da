"""The paper venue's event stream: every update and fill, in the order they happened, none lost."""

from __future__ import annotations

from framework.orders.model import OrderStatus, OrderUpdate
from tests.brokers.paper_helpers import Venue, flat, kinds, order, take


async def test_stream_reports_each_order_in_order_across_submits_bars_and_cancels(venue: Venue) -> None:
    stream = venue.broker.events()
    venue.feed(flat(0, 100), flat(0, 10, symbol="Y"))
    await venue.broker.submit(order("buy", "2", client_id="a"))
    await venue.broker.submit(order("buy", "1.5", symbol="Y", client_id="b"))
    await venue.broker.submit(order("buy", "1", limit="50.00", client_id="c"))
    await venue.broker.submit(order("buy", "0.5", client_id="odd"))
    await venue.broker.cancel("c")
    venue.feed(flat(1, 100), flat(1, 10, symbol="Y"))

    events = await take(stream, 9)
    assert kinds(events) == [
        "accepted:a",
        "accepted:b",
        "accepted:c",
        "rejected:odd",
        "cancelled:c",
        "fill:a",
        "filled:a",
        "fill:b",
        "filled:b",
    ]
    rejected = events[3]
    assert isinstance(rejected, OrderUpdate)
    assert "lot size" in rejected.reason


async def test_events_before_anyone_listens_are_kept_for_the_first_subscriber(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("buy", "1", client_id="early"))
    venue.feed(flat(1, 100))
    assert kinds(await take(venue.broker.events(), 3)) == ["accepted:early", "fill:early", "filled:early"]


async def test_every_subscriber_sees_every_event(venue: Venue) -> None:
    first, second = venue.broker.events(), venue.broker.events()
    await venue.broker.submit(order(client_id="both"))
    assert await take(first, 1) == await take(second, 1)


async def test_on_bar_returns_the_events_it_published(venue: Venue) -> None:
    stream = venue.broker.events()
    venue.feed(flat(0, 100))
    ack = await venue.broker.submit(order(client_id="x"))
    returned = venue.feed(flat(1, 100))
    assert await take(stream, 3) == [ack, *returned]


async def test_closing_the_broker_ends_the_stream_after_its_queued_events(venue: Venue) -> None:
    stream = venue.broker.events()
    await venue.broker.submit(order(client_id="last"))
    await venue.broker.close()
    seen = [event async for event in stream]
    assert [(e.client_id, e.status) for e in seen if isinstance(e, OrderUpdate)] == [("last", OrderStatus.ACCEPTED)]
    await venue.broker.connect()  # the fixture closes it again
