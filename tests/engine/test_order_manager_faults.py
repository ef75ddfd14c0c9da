"""Every venue failure the paper venue can inflict, through the order manager: no order lost, none doubled."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from framework.brokers.paper_faults import Fault, FaultKind
from framework.clock import SimulatedClock
from framework.orders.model import Fill, Mode, Order, OrderSide, OrderStatus, OrderUpdate
from framework.storage import Database
from tests.engine.conftest import MakeRig
from tests.engine.helpers import DAY, T0, VENUE, FlakyBroker, Rig, intent, status_of, stored_fills, venue_orders

S = OrderStatus


async def flaky(make_oms: MakeRig) -> tuple[Rig, FlakyBroker]:
    rig = await make_oms(broker_cls=FlakyBroker)
    assert isinstance(rig.broker, FlakyBroker)
    await rig.feed(0, 100)
    return rig, rig.broker


async def test_dropped_answer_after_accept_is_resolved_by_query_and_never_resent(
    make_oms: MakeRig, database: Database
) -> None:
    rig, broker = await flaky(make_oms)
    broker.faults.add(Fault(FaultKind.DROP_RESPONSE))
    broker.deaf = True  # the order's stream events never arrive: only a query can resolve it
    order = await rig.manager.submit(intent("buy", "4"))
    assert order.status is S.SUBMITTED  # outcome unknown: recorded as such, not resent
    await rig.manager.idle()

    assert broker.submits == [order.client_id]
    assert order.client_id in broker.queries
    assert rig.manager.orders[order.client_id].status is S.ACCEPTED
    assert venue_orders(rig.directory) == [order.client_id]
    history = [e.status for e in await rig.manager.store.events(order.client_id)]
    assert history == ["new", "submitted", "accepted"]

    broker.deaf = False
    await rig.feed(1, 100)
    assert await status_of(database.pool, order.client_id) == "filled"
    assert await broker.positions() == rig.manager.positions.net_positions() == {"X": Decimal(4)}


async def test_dropped_answer_whose_events_arrive_is_resolved_once(oms: Rig, database: Database) -> None:
    await oms.feed(0, 100)
    oms.broker.faults.add(Fault(FaultKind.DROP_RESPONSE))
    order = await oms.manager.submit(intent("buy", "4"))
    await oms.manager.idle()
    assert oms.manager.orders[order.client_id].status is S.ACCEPTED
    await oms.feed(1, 100)
    assert len(await stored_fills(database.pool)) == 1
    assert venue_orders(oms.directory) == [order.client_id]


async def test_server_error_after_accept_is_resolved_by_query(make_oms: MakeRig) -> None:
    rig, broker = await flaky(make_oms)
    broker.faults.add(Fault(FaultKind.SERVER_ERROR, status=502))
    broker.deaf = True
    order = await rig.manager.submit(intent("buy", "2"))
    assert order.status is S.SUBMITTED
    await rig.manager.idle()
    assert rig.manager.orders[order.client_id].status is S.ACCEPTED
    events = await rig.manager.store.events(order.client_id)
    assert "HTTP 502" in events[1].detail
    assert venue_orders(rig.directory) == [order.client_id]


async def test_rate_limit_waits_retry_after_and_resends_the_same_client_id(oms: Rig) -> None:
    await oms.feed(0, 100)
    oms.broker.faults.add(Fault(FaultKind.RATE_LIMIT, retry_after=2.5))
    before = oms.clock.now_ns()
    order = await oms.manager.submit(intent("buy", "1"))
    assert order.status is S.ACCEPTED
    assert oms.broker.faults.kinds_fired() == [FaultKind.RATE_LIMIT]
    assert [f.client_id for f in oms.broker.faults.fired] == [order.client_id]
    assert oms.clock.now_ns() - before >= 2_500_000_000  # waited on the (simulated) clock
    assert venue_orders(oms.directory) == [order.client_id]


async def test_rate_limited_until_the_retries_run_out_is_rejected_with_nothing_placed(make_oms: MakeRig) -> None:
    rig = await make_oms(max_rate_limit_retries=2)
    rig.broker.faults.add(Fault(FaultKind.RATE_LIMIT, retry_after=1, times=3))
    order = await rig.manager.submit(intent("buy", "1"))
    assert order.status is S.REJECTED
    assert "rate limited" in order.reason
    assert venue_orders(rig.directory) == []


async def test_delayed_visibility_is_waited_out_by_repeated_queries(make_oms: MakeRig) -> None:
    rig, broker = await flaky(make_oms)
    broker.faults.add(Fault(FaultKind.DROP_RESPONSE))
    broker.faults.add(Fault(FaultKind.DELAY_VISIBILITY, hidden_queries=2))
    broker.deaf = True
    order = await rig.manager.submit(intent("buy", "3"))
    await rig.manager.idle()
    assert broker.queries.count(order.client_id) == 3  # hidden twice, then found
    assert rig.manager.orders[order.client_id].status is S.ACCEPTED
    assert venue_orders(rig.directory) == [order.client_id]


async def test_delayed_visibility_by_time_on_the_clock(make_oms: MakeRig) -> None:
    rig, broker = await flaky(make_oms)
    broker.faults.add(Fault(FaultKind.SERVER_ERROR))
    broker.faults.add(Fault(FaultKind.DELAY_VISIBILITY, hidden_queries=0, hidden_ns=1_200_000_000))
    broker.deaf = True
    order = await rig.manager.submit(intent("buy", "3"))
    await rig.manager.idle()
    assert rig.manager.orders[order.client_id].status is S.ACCEPTED
    assert broker.queries.count(order.client_id) >= 2


async def test_a_request_the_venue_never_saw_is_rejected_after_the_last_query(make_oms: MakeRig) -> None:
    rig, broker = await flaky(make_oms)
    broker.lose_next_submits = 1
    order = await rig.manager.submit(intent("buy", "3"))
    assert order.status is S.SUBMITTED
    await rig.manager.idle()
    final = rig.manager.orders[order.client_id]
    assert final.status is S.REJECTED
    assert final.reason.startswith("venue never saw it")
    assert venue_orders(rig.directory) == []
    assert rig.manager.risk_context.open_orders(None) == 0


async def test_duplicate_fill_is_applied_once(oms: Rig, database: Database) -> None:
    await oms.feed(0, 100)
    oms.broker.faults.add(Fault(FaultKind.DUPLICATE_FILL))
    order = await oms.manager.submit(intent("buy", "4"))
    events = await oms.feed(1, 100)
    assert sum(isinstance(e, Fill) for e in events) == 2  # published twice with one fill id
    assert len(await stored_fills(database.pool)) == 1
    assert oms.manager.orders[order.client_id].filled == Decimal(4)
    assert oms.manager.positions.net_positions() == {"X": Decimal(4)}
    assert len(oms.fills_seen) == 1
    assert oms.manager.alerts == []


async def test_fill_after_an_acknowledged_cancel_is_applied(oms: Rig, database: Database) -> None:
    await oms.feed(0, 100)
    order = await oms.manager.submit(intent("buy", "5"))
    oms.broker.faults.add(Fault(FaultKind.LATE_FILL))
    cancelled = await oms.manager.cancel(order.client_id)
    assert cancelled.status is S.CANCELLED
    await oms.feed(1, 100)
    late = oms.manager.orders[order.client_id]
    assert (late.status, late.filled) == (S.CANCELLED, Decimal(5))
    assert await status_of(database.pool, order.client_id) == "cancelled"
    assert len(await stored_fills(database.pool)) == 1
    assert oms.manager.positions.net_positions() == await oms.broker.positions() == {"X": Decimal(5)}
    history = await oms.manager.store.events(order.client_id)
    assert history[-1].detail.startswith("late fill")


async def test_an_invalid_transition_is_refused_logged_and_never_applied(make_oms: MakeRig, database: Database) -> None:
    rig, broker = await flaky(make_oms)
    order = await rig.manager.submit(intent("buy", "1"))
    await rig.feed(1, 100)
    assert rig.manager.orders[order.client_id].status is S.FILLED
    broker.publish(OrderUpdate(order.client_id, S.CANCELLED, reason="venue bug"))
    await rig.manager.idle()
    assert rig.manager.orders[order.client_id].status is S.FILLED
    assert await status_of(database.pool, order.client_id) == "filled"
    assert [a.kind for a in rig.manager.alerts] == ["invalid_transition"]
    assert "filled -> cancelled refused" in rig.manager.alerts[0].message


async def test_a_fill_on_a_risk_rejected_order_is_refused(make_oms: MakeRig, database: Database) -> None:
    rig, broker = await flaky(make_oms)
    await rig.risk.kill("no trading")
    order = await rig.manager.submit(intent("buy", "1"))
    assert order.status is S.REJECTED
    broker.publish(_fill(order.client_id, "bogus-1", "1"))
    await rig.manager.idle()
    assert await stored_fills(database.pool) == []
    assert rig.manager.positions.net_positions() == {}
    assert [a.kind for a in rig.manager.alerts] == ["invalid_transition"]


async def test_an_overfill_is_applied_and_alerted(make_oms: MakeRig, database: Database) -> None:
    rig, broker = await flaky(make_oms)
    alerts: list[str] = []
    rig.manager.add_alert_listener(lambda alert: alerts.append(alert.kind))
    order = await rig.manager.submit(intent("buy", "2"))
    await rig.feed(1, 100)
    broker.publish(_fill(order.client_id, "extra-1", "1"))
    await rig.manager.idle()
    assert rig.manager.orders[order.client_id].filled == Decimal(3)
    assert len(await stored_fills(database.pool)) == 2
    assert alerts == ["overfill"]
    assert "overfilled by 1" in rig.manager.alerts[0].message


async def test_an_event_for_an_order_nobody_knows_is_alerted(make_oms: MakeRig) -> None:
    rig, broker = await flaky(make_oms)
    broker.publish(_fill("stranger", "x-1", "1"))
    await rig.manager.idle()
    assert [a.kind for a in rig.manager.alerts] == ["unknown_order"]
    assert rig.manager.positions.net_positions() == {}


def _fill(client_id: str, fill_id: str, qty: str) -> Fill:
    return Fill(fill_id, client_id, VENUE, "X", OrderSide.BUY, Decimal(qty), Decimal(100), time_ns=T0 + 3 * DAY)


class GatedClock(SimulatedClock):
    """A simulated clock whose sleeps wait until the test lets them end (to act while an order waits)."""

    def __init__(self, start_ns: int) -> None:
        super().__init__(start_ns)
        self.sleeping = asyncio.Event()
        self.wake = asyncio.Event()

    async def sleep_until(self, when_ns: int) -> None:
        self.sleeping.set()
        await self.wake.wait()
        self.advance_to(when_ns)


async def test_an_order_cancelled_while_it_waits_out_a_429_is_never_sent(make_oms: MakeRig, database: Database) -> None:
    clock = GatedClock(T0 + DAY)
    rig = await make_oms(clock=clock)
    rig.broker.faults.add(Fault(FaultKind.RATE_LIMIT, retry_after=5))
    sending = asyncio.create_task(rig.manager.submit(intent("buy", "1")))
    await clock.sleeping.wait()
    [cid] = rig.manager.orders
    cancelled = await rig.manager.cancel(cid)
    assert cancelled.status is S.CANCELLED
    clock.wake.set()
    assert (await sending).status is S.CANCELLED
    assert venue_orders(rig.directory) == []
    assert await status_of(database.pool, cid) == "cancelled"


async def test_a_client_id_the_venue_already_has_is_resolved_by_query(make_oms: MakeRig, database: Database) -> None:
    rig = await make_oms()
    first = await rig.manager.submit(intent("buy", "1"))
    prefix = await database.pool.fetchval("SELECT prefix FROM order_client_prefix")
    taken = f"{prefix}{int(first.client_id.removeprefix(prefix)) + 1}"  # the id the next intent will get
    await rig.broker.submit(Order(taken, "s1", VENUE, "X", OrderSide.BUY, Decimal(1), mode=Mode.PAPER))
    second = await rig.manager.submit(intent("buy", "1"))
    assert second.client_id == taken
    await rig.manager.idle()
    assert rig.manager.orders[taken].status is S.ACCEPTED
    assert venue_orders(rig.directory) == [first.client_id, taken]
    assert "already has this client id" in (await rig.manager.store.events(taken))[1].detail


async def test_ended_orders_leave_memory_and_a_late_fill_on_an_evicted_one_is_still_applied(
    oms: Rig, database: Database
) -> None:
    oms.manager.book.keep_ended = 1  # only the newest ended order stays in memory
    await oms.feed(0, 100)
    order = await oms.manager.submit(intent("buy", "5"))
    oms.broker.faults.add(Fault(FaultKind.LATE_FILL))
    assert (await oms.manager.cancel(order.client_id)).status is S.CANCELLED
    other = await oms.manager.submit(intent("buy", "1"))
    await oms.manager.cancel(other.client_id)
    assert order.client_id not in oms.manager.orders  # evicted: the other one ended after it
    await oms.feed(1, 100)  # the late fill of the evicted order: loaded back from the database, applied
    late = oms.manager.orders[order.client_id]
    assert (late.status, late.filled) == (S.CANCELLED, Decimal(5))
    assert len(await stored_fills(database.pool)) == 1
    assert oms.manager.positions.net_positions() == await oms.broker.positions() == {"X": Decimal(5)}
    assert oms.manager.placed == 2
