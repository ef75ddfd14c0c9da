"""Every injected fault does what a real venue's failure does, and is visible to the test."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework.brokers.errors import DuplicateOrder, RateLimited
from framework.brokers.paper_faults import Fault, FaultKind, FaultPlan
from framework.errors import ParameterError, TransientError
from framework.orders.model import Fill, OrderStatus
from tests.brokers.conftest import MakeVenue
from tests.brokers.paper_helpers import DAY, T0, Venue, flat, kinds, order, take


async def test_dropped_answer_raises_transient_but_the_order_exists_and_fills_once(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    venue.broker.faults.add(Fault(FaultKind.DROP_RESPONSE))
    with pytest.raises(TransientError) as lost:
        await venue.broker.submit(order("buy", "3", client_id="lost"))
    assert not isinstance(lost.value, RateLimited)
    assert venue.broker.faults.kinds_fired() == [FaultKind.DROP_RESPONSE]

    known = await venue.broker.query("lost")  # the caller resolves the unknown outcome by client id
    assert known is not None
    assert known.status is OrderStatus.ACCEPTED
    with pytest.raises(DuplicateOrder):  # a blind resend places nothing
        await venue.broker.submit(order("buy", "3", client_id="lost"))
    venue.feed(flat(1, 100))
    assert await venue.broker.positions() == {"X": Decimal(3)}


async def test_server_error_after_accepting_raises_transient_and_the_order_exists(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    venue.broker.faults.add(Fault(FaultKind.SERVER_ERROR, status=502))
    with pytest.raises(TransientError, match="HTTP 502"):
        await venue.broker.submit(order("buy", "1", client_id="five-oh-two"))
    assert [o.client_id for o in await venue.broker.open_orders()] == ["five-oh-two"]


async def test_server_error_on_cancel_still_cancels(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    await venue.broker.submit(order("buy", "1", client_id="c"))
    venue.broker.faults.add(Fault(FaultKind.SERVER_ERROR, operation="cancel"))
    with pytest.raises(TransientError):
        await venue.broker.cancel("c")
    cancelled = await venue.broker.query("c")
    assert cancelled is not None
    assert cancelled.status is OrderStatus.CANCELLED
    assert (await venue.broker.cancel("c")).status is OrderStatus.CANCELLED  # the retry is acknowledged


async def test_rate_limit_carries_retry_after_and_places_nothing(venue: Venue) -> None:
    venue.broker.faults.add(Fault(FaultKind.RATE_LIMIT, retry_after=2.5))
    with pytest.raises(RateLimited) as limited:
        await venue.broker.submit(order("buy", "1", client_id="slow"))
    assert isinstance(limited.value, TransientError)
    assert limited.value.retry_after == 2.5
    assert await venue.broker.query("slow") is None
    assert (await venue.broker.submit(order("buy", "1", client_id="slow"))).status is OrderStatus.ACCEPTED


async def test_rate_limited_cancel_leaves_the_order_open(venue: Venue) -> None:
    await venue.broker.submit(order("buy", "1", client_id="c"))
    venue.broker.faults.add(Fault(FaultKind.RATE_LIMIT, operation="cancel"))
    with pytest.raises(RateLimited):
        await venue.broker.cancel("c")
    assert [o.client_id for o in await venue.broker.open_orders()] == ["c"]


async def test_delayed_visibility_hides_an_accepted_order_for_some_queries(venue: Venue) -> None:
    venue.broker.faults.add(Fault(FaultKind.DELAY_VISIBILITY, hidden_queries=2))
    ack = await venue.broker.submit(order("buy", "1", client_id="shy"))
    assert ack.status is OrderStatus.ACCEPTED
    assert await venue.broker.open_orders() == []
    assert await venue.broker.query("shy") is None
    assert await venue.broker.query("shy") is None
    shown = await venue.broker.query("shy")
    assert shown is not None
    assert shown.status is OrderStatus.ACCEPTED
    assert [o.client_id for o in await venue.broker.open_orders()] == ["shy"]


async def test_delayed_visibility_by_time_on_the_brokers_clock(venue: Venue) -> None:
    venue.broker.faults.add(Fault(FaultKind.DELAY_VISIBILITY, hidden_queries=0, hidden_ns=5_000_000_000))
    await venue.broker.submit(order("buy", "1", client_id="shy"))
    assert await venue.broker.query("shy") is None
    venue.clock.advance_to(venue.clock.now_ns() + 4_999_999_999)
    assert await venue.broker.query("shy") is None
    venue.clock.advance_to(venue.clock.now_ns() + 1)
    assert await venue.broker.query("shy") is not None


async def test_hidden_order_resent_by_a_confused_caller_is_refused_as_a_duplicate(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    venue.broker.faults.add(Fault(FaultKind.DELAY_VISIBILITY, hidden_queries=5))
    venue.broker.faults.add(Fault(FaultKind.DROP_RESPONSE))
    with pytest.raises(TransientError):
        await venue.broker.submit(order("buy", "1", client_id="ghost"))
    assert await venue.broker.query("ghost") is None  # looks like it never arrived...
    with pytest.raises(DuplicateOrder):  # ...but a resend is refused
        await venue.broker.submit(order("buy", "1", client_id="ghost"))
    venue.feed(flat(1, 100))
    assert await venue.broker.positions() == {"X": Decimal(1)}


async def test_duplicate_fill_is_published_twice_with_one_fill_id_and_counted_once(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    stream = venue.broker.events()
    venue.broker.faults.add(Fault(FaultKind.DUPLICATE_FILL, client_id="dup"))
    await venue.broker.submit(order("buy", "4", client_id="dup"))
    venue.feed(flat(1, 100))

    events = await take(stream, 4)
    assert kinds(events) == ["accepted:dup", "fill:dup", "fill:dup", "filled:dup"]
    assert events[1] == events[2]
    assert isinstance(events[1], Fill)
    assert len(await venue.broker.fills("dup")) == 1
    assert await venue.broker.positions() == {"X": Decimal(4)}


async def test_late_fill_arrives_after_the_cancel_was_acknowledged(venue: Venue) -> None:
    venue.feed(flat(0, 100))
    stream = venue.broker.events()
    await venue.broker.submit(order("buy", "2", client_id="late"))
    venue.broker.faults.add(Fault(FaultKind.LATE_FILL))
    ack = await venue.broker.cancel("late")
    assert ack.status is OrderStatus.CANCELLED
    assert await venue.broker.open_orders() == []

    events = venue.feed(flat(1, 105))
    assert kinds(events) == ["fill:late"]  # a fill, and no status change: it stays cancelled
    assert kinds(await take(stream, 3)) == ["accepted:late", "cancelled:late", "fill:late"]
    seen = await venue.broker.query("late")
    assert seen is not None
    assert (seen.status, seen.filled, seen.avg_price) == (OrderStatus.CANCELLED, Decimal(2), Decimal("105.0"))
    assert await venue.broker.positions() == {"X": Decimal(2)}
    assert venue.feed(flat(2, 110)) == []  # once


async def test_scheduled_fault_fires_on_the_nth_call_only(venue: Venue) -> None:
    venue.broker.faults.add(Fault(FaultKind.SERVER_ERROR, call=2))
    await venue.broker.submit(order(client_id="first"))
    with pytest.raises(TransientError):
        await venue.broker.submit(order(client_id="second"))
    await venue.broker.submit(order(client_id="third"))
    fired = venue.broker.faults.fired
    assert [(f.kind, f.client_id, f.call) for f in fired] == [(FaultKind.SERVER_ERROR, "second", 2)]
    assert venue.broker.faults.pending == []


async def test_fault_plan_given_at_construction_with_repeats_and_targets(make_venue: MakeVenue) -> None:
    plan = FaultPlan(
        [Fault(FaultKind.RATE_LIMIT, times=2), Fault(FaultKind.DROP_RESPONSE, client_id="x", times=None)], seed=1
    )
    v = await make_venue(faults=plan)
    for _ in range(2):
        with pytest.raises(RateLimited):
            await v.broker.submit(order(client_id="a"))
    await v.broker.submit(order(client_id="a"))
    with pytest.raises(TransientError):
        await v.broker.submit(order(client_id="x"))
    assert plan.kinds_fired() == [FaultKind.RATE_LIMIT, FaultKind.RATE_LIMIT, FaultKind.DROP_RESPONSE]


async def test_random_faults_are_reproducible_from_the_seed(make_venue: MakeVenue) -> None:
    async def failures(seed: int) -> list[int]:
        v = await make_venue(faults=FaultPlan([Fault(FaultKind.SERVER_ERROR, times=None, probability=0.3)], seed=seed))
        failed = []
        for i in range(40):
            try:
                await v.broker.submit(order(client_id=f"s{seed}-{i}"))
            except TransientError:
                failed.append(i)
        return failed

    first, again = await failures(7), await failures(7)
    assert first == again
    assert 0 < len(first) < 40


def test_faults_refuse_impossible_combinations() -> None:
    with pytest.raises(ParameterError):
        Fault(FaultKind.LATE_FILL, operation="submit")
    with pytest.raises(ParameterError):
        Fault(FaultKind.DUPLICATE_FILL, operation="cancel")
    with pytest.raises(ParameterError):
        Fault(FaultKind.SERVER_ERROR, status=429)
    assert Fault(FaultKind.LATE_FILL).operation == "cancel"


async def test_faults_leave_no_trace_in_time_assertions(venue: Venue) -> None:
    # Fault timing runs on the injected clock only: the order is hidden until T0 + 1 day + 1ns.
    venue.broker.faults.add(Fault(FaultKind.DELAY_VISIBILITY, hidden_queries=0, hidden_ns=DAY + 1))
    await venue.broker.submit(order(client_id="h"))
    venue.clock.advance_to(T0 + DAY)
    assert await venue.broker.open_orders() == []
    venue.clock.advance_to(T0 + DAY + 1)
    assert len(await venue.broker.open_orders()) == 1
