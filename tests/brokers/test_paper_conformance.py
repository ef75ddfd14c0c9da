"""What the paper venue reports is what the runner's order state machine and position book accept.

Each scenario drives the venue, then replays its event stream into `framework.orders.state` from
the runner's side (an order marked submitted before the call): no report or fill may be refused,
and the runner's order must end exactly as the venue's own view of it, and the cash as the fills
moved it.
"""

from __future__ import annotations

from decimal import Decimal

from framework.brokers.paper_faults import Fault, FaultKind
from framework.execution import ExecutionModel
from framework.orders.model import Fill, Order, OrderStatus
from framework.orders.state import apply_fill, apply_update
from tests.brokers.conftest import MakeVenue
from tests.brokers.paper_helpers import Venue, bar, flat, order, take


async def replay_into_state_machine(venue: Venue, sent: list[Order], n_events: int) -> dict[str, Order]:
    """Apply the venue's first `n_events` events to the runner's copies of `sent` orders."""
    local = {o.client_id: o.evolve(status=OrderStatus.SUBMITTED) for o in sent}
    for event in await take(venue.broker.events(), n_events):
        current = local[event.client_id]
        local[event.client_id] = (
            apply_fill(current, event).order if isinstance(event, Fill) else apply_update(current, event)
        )
    return local


async def assert_runner_agrees_with_venue(venue: Venue, local: dict[str, Order]) -> None:
    for client_id, mine in local.items():
        theirs = await venue.broker.query(client_id)
        assert theirs is not None
        assert (mine.status, mine.filled, mine.avg_price, mine.fees, mine.fill_ids) == (
            theirs.status,
            theirs.filled,
            theirs.avg_price,
            theirs.fees,
            theirs.fill_ids,
        ), client_id


async def test_every_lifecycle_the_venue_reports_is_accepted_by_the_state_machine(make_venue: MakeVenue) -> None:
    v = await make_venue(model=ExecutionModel(cash=2_000.0, fees=0.001, slippage=0.0005))
    sent = [
        order("buy", "5", client_id="filled"),
        order("buy", "3", limit="90.00", client_id="late"),
        order("buy", "100", client_id="cut"),  # more than the cash: partially filled, then expired
        order("sell", "2", limit="150.00", client_id="cancelled"),
        order("sell", "1", client_id="dup"),
        order("buy", "2.5", client_id="odd"),  # rejected: not a whole share
    ]
    v.feed(flat(0, 100))
    v.broker.faults.add(Fault(FaultKind.DUPLICATE_FILL, client_id="dup"))
    for o in sent:
        await v.broker.submit(o)
    await v.broker.cancel("cancelled")
    v.broker.faults.add(Fault(FaultKind.LATE_FILL))
    await v.broker.cancel("late")
    v.feed(bar(1, 101.37, 102, 88, 99))

    fills = await v.broker.fills()
    local = await replay_into_state_machine(v, sent, n_events=6 + 2 + 3 + 1 + 3 + 2)
    await assert_runner_agrees_with_venue(v, local)
    assert {c: o.status for c, o in local.items()} == {
        "filled": OrderStatus.FILLED,
        "cut": OrderStatus.EXPIRED,
        "cancelled": OrderStatus.CANCELLED,
        "late": OrderStatus.CANCELLED,
        "dup": OrderStatus.FILLED,
        "odd": OrderStatus.REJECTED,
    }
    assert local["late"].filled == 3
    moved = sum((-f.signed_quantity * f.price - f.fee for f in fills), Decimal(0))
    assert await v.broker.balances() == {"USD": Decimal("2000.0") + moved}  # exact, not rounded
