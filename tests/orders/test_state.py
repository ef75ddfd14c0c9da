"""The order state machine, scenario by scenario, with hand-computed Decimals."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from framework.errors import IntegrityError, RejectedError
from framework.orders import (
    TRANSITIONS,
    Fill,
    InvalidTransition,
    MismatchedEvent,
    Order,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    apply_fill,
    apply_update,
)

S = OrderStatus
D = Decimal

# Every (order status, reported status) pair, written out by hand: the status the report gives,
# or "-" where it is refused. N new, S submitted, A accepted, P partially filled, F filled,
# CP cancel pending, C cancelled, R rejected, E expired. The "cancel_pending+fills" row is an order
# whose cancel is pending after a partial fill.
CODES = {"N": S.NEW, "S": S.SUBMITTED, "A": S.ACCEPTED, "P": S.PARTIALLY_FILLED, "F": S.FILLED}
CODES |= {"CP": S.CANCEL_PENDING, "C": S.CANCELLED, "R": S.REJECTED, "E": S.EXPIRED}
GRID = """
report:               N   S   A   P   F   CP  C   R   E
new                   -   S   -   -   -   -   C   R   -
submitted             -   S   A   A   A   CP  C   R   E
accepted              -   -   A   A   A   CP  C   R   E
partially_filled      -   -   P   P   P   CP  C   -   E
filled                -   -   F   F   F   -   -   -   -
cancel_pending        -   -   A   A   A   CP  C   R   E
cancel_pending+fills  -   -   P   P   P   CP  C   -   E
cancelled             -   -   C   C   C   -   C   -   -
rejected              -   -   -   -   -   -   -   R   -
expired               -   -   E   E   E   -   -   -   E
"""


def _grid() -> list[tuple[str, OrderStatus, OrderStatus | None]]:
    header, *rows = (line.split() for line in GRID.strip().splitlines())
    reports = [CODES[code] for code in header[1:]]
    return [
        (row[0], reported, None if cell == "-" else CODES[cell])
        for row in rows
        for reported, cell in zip(reports, row[1:], strict=True)
    ]


def new_order(quantity: str = "10", side: OrderSide = OrderSide.BUY) -> Order:
    return Order("c1", "sma", "SIM", "AAA", side, D(quantity))


def fill(fill_id: str, quantity: str, price: str, fee: str = "0", side: OrderSide = OrderSide.BUY) -> Fill:
    return Fill(fill_id, "c1", "SIM", "AAA", side, D(quantity), D(price), D(fee), strategy="sma")


def update(status: OrderStatus, venue_id: str | None = None, reason: str = "", time_ns: int = 0) -> OrderUpdate:
    return OrderUpdate("c1", status, venue_id, reason, time_ns)


def order_in(state: str) -> Order:
    """Return an order brought to `state` (a GRID row name) by real events."""
    order = new_order()
    steps: dict[str, list[OrderUpdate | Fill]] = {
        "new": [],
        "submitted": [update(S.SUBMITTED)],
        "accepted": [update(S.SUBMITTED), update(S.ACCEPTED)],
        "partially_filled": [update(S.SUBMITTED), update(S.ACCEPTED), fill("t1", "4", "100")],
        "filled": [update(S.SUBMITTED), update(S.ACCEPTED), fill("t1", "10", "100")],
        "cancel_pending": [update(S.SUBMITTED), update(S.ACCEPTED), update(S.CANCEL_PENDING)],
        "cancel_pending+fills": [
            update(S.SUBMITTED),
            update(S.ACCEPTED),
            fill("t1", "4", "100"),
            update(S.CANCEL_PENDING),
        ],
        "cancelled": [update(S.SUBMITTED), update(S.ACCEPTED), update(S.CANCELLED)],
        "rejected": [update(S.SUBMITTED), update(S.REJECTED)],
        "expired": [update(S.SUBMITTED), update(S.ACCEPTED), update(S.EXPIRED)],
    }
    for event in steps[state]:
        order = apply_fill(order, event).order if isinstance(event, Fill) else apply_update(order, event)
    assert order.status is OrderStatus(state.split("+")[0])
    return order


@pytest.mark.parametrize(("state", "reported", "expected"), _grid(), ids=lambda v: str(v))
def test_every_status_report_in_every_state(state: str, reported: OrderStatus, expected: OrderStatus | None) -> None:
    order = order_in(state)
    if expected is None:
        with pytest.raises(InvalidTransition) as refused:
            apply_update(order, update(reported, venue_id="v9"))
        assert (refused.value.client_id, refused.value.from_status, refused.value.to_status) == (
            "c1",
            order.status,
            reported,
        )
        assert isinstance(refused.value, RejectedError)
    else:
        after = apply_update(order, update(reported))
        assert after.status is expected
        assert (after.filled, after.avg_price, after.fees, after.fill_ids) == (
            order.filled,
            order.avg_price,
            order.fees,
            order.fill_ids,
        )


def test_the_grid_and_the_table_cover_every_status() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert len(_grid()) == 10 * len(OrderStatus)
    with pytest.raises(TypeError):
        TRANSITIONS[S.NEW] = {}  # type: ignore[index]


def test_a_duplicate_report_returns_the_same_order() -> None:
    accepted = order_in("accepted")
    assert apply_update(accepted, update(S.ACCEPTED)) is accepted
    cancelled = order_in("cancelled")
    assert apply_update(cancelled, update(S.CANCELLED)) is cancelled


def test_the_venue_order_id_is_recorded_once_and_the_reason_with_the_status() -> None:
    order = apply_update(new_order(), update(S.SUBMITTED, time_ns=5))
    accepted = apply_update(order, update(S.ACCEPTED, venue_id="v1", time_ns=7))
    assert (accepted.venue_order_id, accepted.updated_ns) == ("v1", 7)
    assert apply_update(accepted, update(S.ACCEPTED, venue_id="v2")).venue_order_id == "v1"
    rejected = apply_update(order, update(S.REJECTED, reason="insufficient margin", time_ns=3))
    assert (rejected.status, rejected.reason, rejected.updated_ns) == (S.REJECTED, "insufficient margin", 5)


def test_a_rejection_after_a_fill_is_refused_and_names_why() -> None:
    order = order_in("cancel_pending+fills")
    with pytest.raises(InvalidTransition, match="has fills"):
        apply_update(order, update(S.REJECTED))


def test_partial_fills_accumulate_quantity_fees_and_a_weighted_average_price() -> None:
    order = order_in("accepted")
    first = apply_fill(order, fill("t1", "4", "100", fee="0.1"))
    assert first.is_new
    assert not first.late
    assert not first.overfilled
    assert (first.order.status, first.order.filled, first.order.avg_price) == (S.PARTIALLY_FILLED, D(4), D(100))
    second = apply_fill(first.order, fill("t2", "6", "101.5", fee="0.15", side=OrderSide.BUY))
    done = second.order
    assert (done.status, done.filled, done.avg_price, done.fees) == (S.FILLED, D(10), D("100.9"), D("0.25"))
    assert done.fill_ids == {"t1", "t2"}
    assert done.remaining == 0


def test_an_average_price_that_does_not_terminate_is_rounded_to_28_digits() -> None:
    order = apply_fill(order_in("accepted"), fill("t1", "1", "100")).order
    order = apply_fill(order, fill("t2", "2", "101")).order
    assert order.avg_price == D("100.6666666666666666666666667")


def test_a_duplicate_fill_is_ignored() -> None:
    order = apply_fill(order_in("accepted"), fill("t1", "4", "100", fee="0.1")).order
    again = apply_fill(order, fill("t1", "4", "100", fee="0.1"))
    assert again.is_duplicate
    assert again.order is order
    assert (again.order.filled, again.order.fees) == (D(4), D("0.1"))


def test_a_fill_before_the_ack_then_the_late_ack_keeps_the_order_filled() -> None:
    order = order_in("submitted")
    filled = apply_fill(order, fill("t1", "10", "100")).order
    assert filled.status is S.FILLED
    acked = apply_update(filled, update(S.ACCEPTED, venue_id="v1"))
    assert (acked.status, acked.venue_order_id, acked.filled) == (S.FILLED, "v1", D(10))


def test_a_partial_fill_before_the_ack_stays_partially_filled_after_it() -> None:
    order = apply_fill(order_in("submitted"), fill("t1", "3", "100")).order
    assert apply_update(order, update(S.ACCEPTED)).status is S.PARTIALLY_FILLED


def test_a_fill_racing_a_cancel_keeps_it_pending_and_a_completing_fill_wins() -> None:
    pending = order_in("cancel_pending")
    partial = apply_fill(pending, fill("t1", "4", "100")).order
    assert (partial.status, partial.filled) == (S.CANCEL_PENDING, D(4))
    done = apply_fill(partial, fill("t2", "6", "100")).order
    assert done.status is S.FILLED
    with pytest.raises(InvalidTransition):
        apply_update(done, update(S.CANCELLED))


def test_a_failed_cancel_returns_the_order_to_its_live_state() -> None:
    partial = apply_fill(order_in("cancel_pending"), fill("t1", "4", "100")).order
    assert apply_update(partial, update(S.ACCEPTED)).status is S.PARTIALLY_FILLED


def test_a_late_fill_after_a_cancel_is_applied_and_the_order_stays_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    order = apply_fill(order_in("accepted"), fill("t1", "4", "100")).order
    cancelled = apply_update(order, update(S.CANCELLED))
    with caplog.at_level(logging.WARNING, logger="framework.orders.state"):
        late = apply_fill(cancelled, fill("t2", "2", "103", fee="0.02"))
    assert late.is_new
    assert late.late
    assert not late.overfilled
    assert (late.order.status, late.order.filled, late.order.avg_price, late.order.fees) == (
        S.CANCELLED,
        D(6),
        D(101),
        D("0.02"),
    )
    assert "late fill t2" in caplog.text


def test_a_late_fill_on_an_expired_order_is_applied() -> None:
    late = apply_fill(order_in("expired"), fill("t1", "10", "100"))
    assert (late.order.status, late.order.filled, late.late) == (S.EXPIRED, D(10), True)


def test_an_overfill_is_applied_flagged_and_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    order = apply_fill(order_in("accepted"), fill("t1", "8", "100")).order
    with caplog.at_level(logging.ERROR, logger="framework.orders.state"):
        result = apply_fill(order, fill("t2", "5", "100"))
    assert result.overfill is not None
    assert (result.overfill.quantity, result.overfill.filled, result.overfill.excess) == (D(10), D(13), D(3))
    assert (result.order.status, result.order.filled, result.order.remaining) == (S.FILLED, D(13), D(0))
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "OVERFILL of order c1" in caplog.text
    again = apply_fill(result.order, fill("t3", "1", "100"))
    assert again.overfilled
    assert again.late
    assert again.order.filled == D(14)


@pytest.mark.parametrize("state", ["new", "rejected"])
def test_a_fill_on_an_order_never_at_the_venue_is_refused(state: str) -> None:
    order = order_in(state)
    with pytest.raises(InvalidTransition, match=f"fill t1 on a {state} order") as refused:
        apply_fill(order, fill("t1", "4", "100"))
    assert (refused.value.from_status, refused.value.to_status) == (S(state), S.PARTIALLY_FILLED)


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"client_id": "c2"}, "client id"),
        ({"symbol": "BBB"}, "symbol"),
        ({"side": OrderSide.SELL}, "side"),
        ({"venue": "OTHER"}, "venue"),
        ({"strategy": "other"}, "strategy"),
    ],
)
def test_a_fill_of_another_order_is_refused(changed: dict[str, object], message: str) -> None:
    base = {
        "fill_id": "t1",
        "client_id": "c1",
        "venue": "SIM",
        "symbol": "AAA",
        "side": OrderSide.BUY,
        "quantity": D(1),
        "price": D(100),
        "strategy": "sma",
    }
    wrong = Fill(**{**base, **changed})  # type: ignore[arg-type]
    with pytest.raises(MismatchedEvent, match=message):
        apply_fill(order_in("accepted"), wrong)


def test_a_fill_without_a_strategy_is_accepted_for_its_order() -> None:
    anonymous = Fill("t1", "c1", "SIM", "AAA", OrderSide.BUY, D(1), D(100))
    assert apply_fill(order_in("accepted"), anonymous).order.filled == D(1)


def test_an_update_of_another_order_is_refused() -> None:
    with pytest.raises(MismatchedEvent):
        apply_update(new_order(), OrderUpdate("c2", S.SUBMITTED))


def test_arithmetic_that_would_round_raises_instead_of_losing_quantity() -> None:
    huge = Order("c1", "sma", "SIM", "AAA", OrderSide.BUY, D("1e90"), status=S.ACCEPTED)
    order = apply_fill(huge, fill("t1", "1e89", "1")).order
    with pytest.raises(IntegrityError, match="would round"):
        apply_fill(order, fill("t2", "1e-20", "1"))
