"""The paper venue fills by the backtest's execution model: next open (or close), slippage, fees, cash."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework.brokers.base import Broker
from framework.brokers.errors import DuplicateOrder
from framework.errors import TransientError
from framework.execution import ExecutionModel
from framework.orders.model import Fill, OrderStatus, OrderUpdate
from tests.brokers.conftest import MakeVenue
from tests.brokers.paper_helpers import DAY, T0, Venue, bar, flat, kinds, order


def fills_of(events: list) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


async def test_paper_broker_satisfies_the_broker_protocol(venue: Venue) -> None:
    assert isinstance(venue.broker, Broker)


async def test_market_order_fills_at_next_open_with_slippage_and_fees_to_the_cent(make_venue: MakeVenue) -> None:
    # The same scenario as tests/framework/test_execution_semantics.py computes through vectorbt.
    v = await make_venue(model=ExecutionModel(cash=10_000.0, fees=0.001, slippage=0.01))
    v.feed(bar(0, 100, 100, 100, 100))
    v.feed(bar(1, 100, 150, 100, 150))  # decision bar: buy 49 at its close
    ack = await v.broker.submit(order("buy", "49", client_id="entry"))
    assert ack.status is OrderStatus.ACCEPTED
    assert await v.broker.positions() == {}

    events = v.feed(bar(2, 200, 205, 195, 205))
    (buy,) = fills_of(events)
    assert buy.price == Decimal("202.00")  # 200 * 1.01
    assert buy.fee == Decimal("9.898")  # 49 * 202 * 0.001
    assert buy.time_ns == T0 + 2 * DAY  # the open of bar 2
    assert kinds(events) == ["fill:entry", "filled:entry"]

    v.feed(bar(3, 210, 215, 205, 215))
    await v.broker.submit(order("sell", "49", client_id="exit"))
    (sell,) = fills_of(v.feed(bar(4, 220, 225, 215, 225)))
    assert sell.price == Decimal("217.80")  # 220 * 0.99
    assert sell.fee == Decimal("10.6722")
    assert await v.broker.balances() == {"USD": Decimal("10753.6298")}  # the backtest's 10,753.6298
    assert await v.broker.positions() == {}
    filled = await v.broker.query("exit")
    assert filled is not None
    assert (filled.status, filled.filled, filled.avg_price, filled.fees) == (
        OrderStatus.FILLED,
        Decimal(49),
        Decimal("217.80"),
        Decimal("10.6722"),
    )


async def test_fill_close_fills_at_once_at_the_decision_bars_close(make_venue: MakeVenue) -> None:
    v = await make_venue(model=ExecutionModel(cash=10_000.0, fill="close", slippage=0.01))
    v.feed(bar(1, 100, 150, 100, 150))
    stream = v.broker.events()
    await v.broker.submit(order("buy", "66", client_id="a"))

    fills = await v.broker.fills("a")
    assert [(f.price, f.time_ns) for f in fills] == [(Decimal("151.50"), T0 + 2 * DAY)]  # bar 1's close time
    assert kinds([await anext(stream) for _ in range(3)]) == ["accepted:a", "fill:a", "filled:a"]
    v.feed(bar(2, 200, 210, 190, 205))
    assert await v.broker.positions() == {"X": Decimal(66)}


async def test_fill_close_without_a_bar_seen_fills_at_the_next_close(make_venue: MakeVenue) -> None:
    v = await make_venue(model=ExecutionModel(cash=10_000.0, fill="close"))
    await v.broker.submit(order("buy", "10", client_id="a"))
    assert await v.broker.fills() == []
    (fill,) = fills_of(v.feed(bar(0, 100, 110, 90, 105)))
    assert fill.price == Decimal("105.0")


async def test_an_order_never_fills_on_the_bar_it_was_decided_on(venue: Venue) -> None:
    # The engine got the order in before feeding bar 1 to the broker (clock already at its close).
    venue.feed(flat(0, 100))
    venue.clock.advance_to(T0 + 2 * DAY)
    await venue.broker.submit(order("buy", "1", client_id="a"))
    assert venue.broker.on_bar(flat(1, 111)) == []
    (fill,) = fills_of(venue.feed(flat(2, 122)))
    assert fill.price == Decimal("122.0")


async def test_a_late_bar_older_than_the_decision_does_not_fill(venue: Venue) -> None:
    venue.feed(flat(5, 100))
    await venue.broker.submit(order("buy", "1", client_id="a"))
    assert venue.broker.on_bar(flat(4, 90)) == []  # delivered late, opened before the decision
    assert fills_of(venue.feed(flat(6, 101)))[0].price == Decimal("101.0")


async def test_each_symbol_fills_on_its_own_next_bar(venue: Venue) -> None:
    venue.feed(flat(0, 100), flat(0, 50, symbol="Y"))
    await venue.broker.submit(order("buy", "1", client_id="x"))
    await venue.broker.submit(order("buy", "2.5", symbol="Y", client_id="y"))
    assert kinds(venue.feed(flat(1, 101))) == ["fill:x", "filled:x"]
    assert kinds(venue.feed(flat(2, 55, symbol="Y"))) == ["fill:y", "filled:y"]
    assert await venue.broker.positions() == {"X": Decimal(1), "Y": Decimal("2.500")}


async def test_within_one_close_sells_fill_before_buys(venue: Venue) -> None:
    venue.feed(flat(0, 100), flat(0, 100, symbol="Y"))
    await venue.broker.submit(order("buy", "10", client_id="b1"))
    await venue.broker.submit(order("sell", "5", symbol="Y", client_id="s1"))
    await venue.broker.submit(order("buy", "1", symbol="Y", client_id="b2"))
    events = venue.feed(flat(1, 100), flat(1, 100, symbol="Y"))
    assert [e.client_id for e in fills_of(events)] == ["s1", "b1", "b2"]


async def test_limit_buy_fills_only_when_a_bar_trades_through_the_limit(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("buy", "10", limit="95.00", client_id="lim"))
    assert venue.feed(bar(1, 100, 101, 96, 97)) == []  # never reached
    assert venue.feed(bar(2, 97, 98, 95, 96)) == []  # touched, not traded through
    (fill,) = fills_of(venue.feed(bar(3, 97, 98, 94, 96)))
    assert fill.price == Decimal("95.00")
    assert fill.time_ns == T0 + 4 * DAY  # filled inside the bar: known at its close


async def test_limit_order_that_the_open_gaps_through_fills_at_the_slipped_open(make_venue: MakeVenue) -> None:
    v = await make_venue(model=ExecutionModel(cash=10_000.0, slippage=0.01))
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "10", limit="95.00", client_id="gap"))
    await v.broker.submit(order("buy", "10", limit="90.50", client_id="capped"))
    await v.broker.submit(order("sell", "5", limit="105.00", client_id="short"))
    events = v.feed(bar(1, 90, 92, 88, 91))
    prices = {f.client_id: f.price for f in fills_of(events)}
    assert prices == {"gap": Decimal("90.90"), "capped": Decimal("90.50")}  # 90 * 1.01, but never above the limit
    assert all(f.time_ns == T0 + DAY for f in fills_of(events))  # at the open
    (sell,) = fills_of(v.feed(bar(2, 110, 112, 108, 111)))
    assert sell.price == Decimal("108.90")  # 110 * 0.99, above the 105 limit


async def test_limit_sell_fills_at_the_limit_when_the_high_trades_through(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("sell", "3", limit="104.00", client_id="s"))
    assert venue.feed(bar(1, 100, 104, 99, 101)) == []
    (fill,) = fills_of(venue.feed(bar(2, 101, 104.5, 100, 102)))
    assert fill.price == Decimal("104.00")
    assert await venue.broker.positions() == {"X": Decimal(-3)}


async def test_limit_order_marketable_at_the_decision_close_fills_at_once_with_fill_close(
    make_venue: MakeVenue,
) -> None:
    v = await make_venue(model=ExecutionModel(cash=10_000.0, fill="close"))
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "1", limit="101.00", client_id="now"))
    await v.broker.submit(order("buy", "1", limit="99.00", client_id="later"))
    assert [f.client_id for f in await v.broker.fills()] == ["now"]
    assert kinds(v.feed(bar(1, 100, 100, 98, 99))) == ["fill:later", "filled:later"]


async def test_buy_larger_than_the_cash_fills_what_vectorbt_would_and_expires_the_rest(
    make_venue: MakeVenue,
) -> None:
    v = await make_venue(model=ExecutionModel(cash=1_000.0, fees=0.001))
    v.feed(flat(0, 30))
    await v.broker.submit(order("buy", "100", client_id="big"))
    events = v.feed(flat(1, 30))
    assert kinds(events) == ["fill:big", "partially_filled:big", "expired:big"]
    (fill,) = fills_of(events)
    assert fill.quantity == Decimal(ExecutionModel(fees=0.001).buy_quantity(1_000.0, 30.0, 1.0)) == 33
    assert (await v.broker.balances())["USD"] == Decimal("1000.0") - 33 * 30 - Decimal("0.99")
    expired = await v.broker.query("big")
    assert expired is not None
    assert (expired.status, expired.filled) == (OrderStatus.EXPIRED, Decimal(33))
    assert "insufficient cash" in expired.reason


async def test_cash_that_exactly_fits_buys_everything(make_venue: MakeVenue) -> None:
    v = await make_venue(model=ExecutionModel(cash=1_000.0))
    v.feed(flat(0, 100, symbol="Y"))
    await v.broker.submit(order("buy", "10.000", symbol="Y", client_id="fit"))
    v.feed(flat(1, 100, symbol="Y"))
    assert await v.broker.balances() == {"USD": Decimal(0)}
    assert await v.broker.positions() == {"Y": Decimal("10.000")}


async def test_reject_policy_refuses_at_submit_what_the_free_cash_cannot_cover(make_venue: MakeVenue) -> None:
    v = await make_venue(model=ExecutionModel(cash=1_000.0), cash_policy="reject")
    v.feed(flat(0, 100))
    assert (await v.broker.submit(order("buy", "6", client_id="a"))).status is OrderStatus.ACCEPTED
    refused = await v.broker.submit(order("buy", "5", client_id="b"))  # 600 reserved, 400 free
    assert refused.status is OrderStatus.REJECTED
    assert "insufficient cash" in refused.reason
    events = v.feed(flat(1, 180))  # the price rose: the 6 no longer fit; all or nothing
    assert kinds(events) == ["expired:a"]
    assert await v.broker.balances() == {"USD": Decimal("1000.0")}


async def test_allow_policy_lets_cash_go_negative(make_venue: MakeVenue) -> None:
    v = await make_venue(model=ExecutionModel(cash=1_000.0), cash_policy="allow")
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "20"))
    v.feed(flat(1, 100))
    assert await v.broker.balances() == {"USD": Decimal("-1000.0")}


async def test_sells_are_never_limited_and_may_go_short(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("sell", "500"))
    venue.feed(flat(1, 100))
    assert await venue.broker.positions() == {"X": Decimal(-500)}
    assert await venue.broker.balances() == {"USD": Decimal("60000.0")}
    assert await venue.broker.equity() == {"USD": Decimal("10000.0")}


async def test_venue_refuses_odd_lots_off_tick_limits_and_unknown_symbols(venue: Venue) -> None:
    odd = await venue.broker.submit(order("buy", "1.5", client_id="odd"))
    assert odd.status is OrderStatus.REJECTED
    assert "lot size" in odd.reason
    off_tick = await venue.broker.submit(order("buy", "1", limit="10.005", client_id="tick"))
    assert "tick size" in off_tick.reason
    unknown = await venue.broker.submit(order("buy", "1", symbol="ZZZ", client_id="zzz"))
    assert "unknown symbol" in unknown.reason
    rejected = await venue.broker.query("odd")
    assert rejected is not None
    assert rejected.status is OrderStatus.REJECTED
    with pytest.raises(DuplicateOrder):
        await venue.broker.submit(order("buy", "1", client_id="odd"))
    assert await venue.broker.open_orders() == []


async def test_second_submit_of_a_client_id_is_refused_and_places_nothing(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("buy", "1", client_id="once"))
    with pytest.raises(DuplicateOrder) as refused:
        await venue.broker.submit(order("buy", "7", client_id="once"))
    assert refused.value.client_id == "once"
    assert [o.quantity for o in await venue.broker.open_orders()] == [Decimal(1)]
    venue.feed(flat(1, 100))
    assert await venue.broker.positions() == {"X": Decimal(1)}


async def test_cancel_removes_a_pending_order_and_is_idempotent(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("buy", "1", client_id="c"))
    first = await venue.broker.cancel("c")
    again = await venue.broker.cancel("c")
    assert first.status is again.status is OrderStatus.CANCELLED
    assert venue.feed(flat(1, 100)) == []
    assert await venue.broker.open_orders() == []


async def test_cancel_of_a_filled_or_unknown_order_is_refused(venue: Venue) -> None:
    from framework.brokers.errors import UnknownOrder
    from framework.errors import RejectedError

    venue.feed(flat(0, 100))
    await venue.broker.submit(order("buy", "1", client_id="f"))
    venue.feed(flat(1, 100))
    with pytest.raises(RejectedError, match="filled"):
        await venue.broker.cancel("f")
    with pytest.raises(UnknownOrder):
        await venue.broker.cancel("nope")


async def test_requests_before_connect_are_transient_failures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    v = Venue(tmp_path)
    with pytest.raises(TransientError, match="not connected"):
        await v.broker.submit(order())
    await v.broker.connect()
    assert isinstance(await v.broker.submit(order()), OrderUpdate)
    await v.broker.close()


async def test_ticks_fill_market_orders_at_the_first_trade_after_acceptance(make_venue: MakeVenue) -> None:
    v = await make_venue(fill_on_ticks=True, model=ExecutionModel(cash=10_000.0, slippage=0.001))
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "2", client_id="t"))
    (fill,) = fills_of(v.tick(T0 + DAY + 5, 100.5))
    assert (fill.price, fill.time_ns) == (Decimal("100.6005"), T0 + DAY + 5)
    assert v.feed(bar(1, 100.4, 101, 99, 100)) == []  # already filled: the bar does not fill it again


async def test_ticks_fill_a_resting_limit_at_the_limit_when_they_trade_through(make_venue: MakeVenue) -> None:
    v = await make_venue(fill_on_ticks=True)
    v.feed(flat(0, 100))
    await v.broker.submit(order("buy", "2", limit="99.00", client_id="l"))
    assert v.tick(T0 + DAY + 1, 99.5) == []
    assert v.tick(T0 + DAY + 2, 99.0) == []  # a touch
    (fill,) = fills_of(v.tick(T0 + DAY + 3, 98.2))
    assert fill.price == Decimal("99.00")


async def test_ticks_are_ignored_for_fills_by_default(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("buy", "1"))
    assert venue.tick(T0 + DAY + 1, 100.5) == []
    assert fills_of(venue.feed(bar(1, 100.2, 101, 99, 100)))[0].price == Decimal("100.2")
