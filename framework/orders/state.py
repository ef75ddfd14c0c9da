"""The order state machine: which venue reports and fills an order accepts, and what they do to it.

An `Order` is immutable. `apply_update` and `apply_fill` return the order a venue report or a fill
turns it into, or raise `InvalidTransition` and change nothing; the caller logs the refusal (and
reconciles when it means the venue and rata disagree).

Two kinds of event move an order:

- **Status reports** (`OrderUpdate`) move it between the lifecycle states by `TRANSITIONS`, a
  table from the order's status to the statuses it accepts a report of and what each report
  makes it. A report of the state the order is already in is a harmless duplicate.
- **Fills** carry the filled quantities. Only fills move `filled`, `avg_price` and `fees`, and
  only fills make an order partially filled or filled, because only fills carry the venue trade
  id that dedupes them. A venue report that an order is (partially) filled is therefore an
  acknowledgement: it makes a submitted order accepted, and the fills that follow do the rest.

Venue cases the table is built for:

- A report that lags what rata already knows is absorbed, not refused: `accepted` after the first
  fill keeps the order partially filled (or filled: a market order's fill often beats its ack).
- A cancel races a fill: a fill during `cancel_pending` is applied and keeps the cancel pending,
  unless it completes the order, which is then filled; a venue report that the order is still
  live while a cancel is pending means the cancel failed, so the order goes back to the live state
  its fills give.
- A late fill on a cancelled or expired order (a trade the venue made before the cancel, reported
  after it) is applied: quantities, average price and fees update, the status stays.
- A fill that takes `filled` past `quantity` is applied too (the venue's trades are facts) and
  comes back with an `OverfillAlert`, logged at error level.
- Rejection is possible from `new` (the risk manager refused it), `submitted`, `accepted` and
  `cancel_pending`, never once an order has fills.
- `new` means never sent: mark an order `submitted` *before* calling `Broker.submit`, so that a
  crash leaves it `submitted` (outcome unknown, resolved by querying the venue), and a venue
  report or fill on a `new` order is refused as impossible. A `new` order is cancelled locally,
  straight to `cancelled`; there is no venue to wait for.
- Terminal states (filled, cancelled, rejected, expired) are never left. Only fills (late or
  overfilling) still change a filled, cancelled or expired order; a rejected order takes nothing.

Fill arithmetic is exact `Decimal` (it raises `IntegrityError` rather than round a quantity or a
fee); the average price is the one division, rounded to 28 significant digits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    getcontext,
    setcontext,
)
from types import MappingProxyType, TracebackType
from typing import Final, Literal, TypeAlias

from framework.errors import IntegrityError, RejectedError
from framework.orders.model import TERMINAL_STATUSES, Fill, Order, OrderStatus, OrderUpdate

__all__ = [
    "FROM_FILLS",
    "TRANSITIONS",
    "FillResult",
    "InvalidTransition",
    "MismatchedEvent",
    "OverfillAlert",
    "apply_fill",
    "apply_update",
    "divide",
    "exact_arithmetic",
    "status_from_fills",
]

log = logging.getLogger(__name__)

S = OrderStatus

FROM_FILLS: Final = "from_fills"
"""A table outcome: the live status the order's fills give (accepted, partially filled, filled)."""

Outcome: TypeAlias = OrderStatus | Literal["from_fills"]

# fmt: off
TRANSITIONS: Mapping[OrderStatus, Mapping[OrderStatus, Outcome]] = MappingProxyType({
    S.NEW: {
        S.SUBMITTED: S.SUBMITTED,
        S.REJECTED: S.REJECTED,           # refused by risk before sending
        S.CANCELLED: S.CANCELLED,         # cancelled before it was sent
    },
    S.SUBMITTED: {
        S.SUBMITTED: S.SUBMITTED,
        S.ACCEPTED: FROM_FILLS,
        S.PARTIALLY_FILLED: FROM_FILLS,   # the venue has it; fills carry the quantities
        S.FILLED: FROM_FILLS,
        S.CANCEL_PENDING: S.CANCEL_PENDING,  # cancel requested before the ack
        S.CANCELLED: S.CANCELLED,         # IOC/FOK, or cancelled before the ack
        S.REJECTED: S.REJECTED,
        S.EXPIRED: S.EXPIRED,
    },
    S.ACCEPTED: {
        S.ACCEPTED: FROM_FILLS,
        S.PARTIALLY_FILLED: FROM_FILLS,
        S.FILLED: FROM_FILLS,
        S.CANCEL_PENDING: S.CANCEL_PENDING,
        S.CANCELLED: S.CANCELLED,         # venue-side cancel (self-trade prevention, ...)
        S.REJECTED: S.REJECTED,           # rejected after the ack (post-only crossing, margin)
        S.EXPIRED: S.EXPIRED,
    },
    S.PARTIALLY_FILLED: {
        S.ACCEPTED: FROM_FILLS,           # a stale ack: stays partially filled
        S.PARTIALLY_FILLED: FROM_FILLS,
        S.FILLED: FROM_FILLS,
        S.CANCEL_PENDING: S.CANCEL_PENDING,
        S.CANCELLED: S.CANCELLED,
        S.EXPIRED: S.EXPIRED,
    },
    S.CANCEL_PENDING: {
        S.ACCEPTED: FROM_FILLS,           # the cancel failed: back to the live state
        S.PARTIALLY_FILLED: FROM_FILLS,
        S.FILLED: FROM_FILLS,
        S.CANCEL_PENDING: S.CANCEL_PENDING,
        S.CANCELLED: S.CANCELLED,
        S.REJECTED: S.REJECTED,           # the order itself was rejected (only without fills)
        S.EXPIRED: S.EXPIRED,
    },
    S.FILLED: {
        S.ACCEPTED: S.FILLED,             # stale reports: the fills already said it all
        S.PARTIALLY_FILLED: S.FILLED,
        S.FILLED: S.FILLED,
    },
    S.CANCELLED: {
        S.ACCEPTED: S.CANCELLED,
        S.PARTIALLY_FILLED: S.CANCELLED,
        S.FILLED: S.CANCELLED,            # late fills are applied; the status stays
        S.CANCELLED: S.CANCELLED,
    },
    S.EXPIRED: {
        S.ACCEPTED: S.EXPIRED,
        S.PARTIALLY_FILLED: S.EXPIRED,
        S.FILLED: S.EXPIRED,
        S.EXPIRED: S.EXPIRED,
    },
    S.REJECTED: {
        S.REJECTED: S.REJECTED,
    },
})
"""Order status -> {reported status: the status the report gives}. Reports not listed are refused."""
# fmt: on

_FILLABLE: Final = frozenset(
    {S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.CANCEL_PENDING, S.FILLED, S.CANCELLED, S.EXPIRED}
)
_STATUS_KEPT_BY_FILLS: Final = frozenset({S.FILLED, S.CANCELLED, S.EXPIRED})

_ROUNDED: Final = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
_EXACT_TRAPS: Final = [InvalidOperation, DivisionByZero, Overflow, Inexact]


class _ExactContext(Context):
    """The context of `exact_arithmetic` (its own type, so a nested block sees it is exact already)."""


_exact_contexts = threading.local()  # one exact context per thread, reused: blocks never interleave in a thread


class _Exact:
    """`exact_arithmetic`'s context manager: the thread's exact context, the caller's restored on the way out."""

    __slots__ = ("_saved",)

    def __enter__(self) -> None:
        self._saved = getcontext()
        context: _ExactContext | None = getattr(_exact_contexts, "context", None)
        if context is None:
            context = _exact_contexts.context = _ExactContext(prec=100, rounding=ROUND_HALF_EVEN, traps=_EXACT_TRAPS)
        context.clear_flags()
        setcontext(context)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        setcontext(self._saved)
        _translate(kind, exc)


class _Nested:
    """`exact_arithmetic` inside an exact block: the context is exact already; only translate the error."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        _translate(kind, exc)


_NESTED: Final = _Nested()


def _translate(kind: type[BaseException] | None, exc: BaseException | None) -> None:
    if kind is not None and issubclass(kind, Inexact):
        raise IntegrityError("Decimal arithmetic on orders or positions would round") from exc


def exact_arithmetic() -> AbstractContextManager[None]:
    """Run `Decimal` arithmetic that must not round; raise `IntegrityError` if it would.

    Money is added and multiplied here with 100 significant digits, far beyond any real quantity
    or price, and with rounding trapped, so a sum of fills is the exact sum or an error. A block
    inside another one keeps the outer block's context (entering it costs next to nothing), so a
    caller may wrap a whole batch in one block around the per-operation ones. Keep the block to
    synchronous code: a task created inside it would inherit the exact context.
    """
    return _NESTED if type(getcontext()) is _ExactContext else _Exact()


def divide(numerator: Decimal, denominator: Decimal) -> Decimal:
    """Return `numerator / denominator` rounded to 28 significant digits (for average prices)."""
    return _ROUNDED.divide(numerator, denominator)


class InvalidTransition(RejectedError):
    """A status report or fill the order's state refuses; the order is left unchanged."""

    def __init__(self, client_id: str, from_status: OrderStatus, to_status: OrderStatus, detail: str = "") -> None:
        self.client_id = client_id
        self.from_status = from_status
        self.to_status = to_status
        self.detail = detail
        message = f"order {client_id}: {from_status} -> {to_status} refused"
        super().__init__(f"{message}: {detail}" if detail else message)


class MismatchedEvent(RejectedError, ValueError):
    """An update or fill routed to the wrong order (client id, venue, symbol, side or strategy differ)."""


@dataclass(frozen=True, slots=True)
class OverfillAlert:
    """A fill took an order's filled quantity past its quantity: applied, but someone must look."""

    client_id: str
    fill_id: str
    quantity: Decimal
    filled: Decimal

    @property
    def excess(self) -> Decimal:
        """Return how much more was filled than ordered."""
        return self.filled - self.quantity


@dataclass(frozen=True, slots=True)
class FillResult:
    """What `apply_fill` did: the order after the fill, and whether the fill was new, late or an overfill.

    `late` means the order was already filled, cancelled or expired when the fill arrived.
    """

    order: Order
    is_new: bool
    late: bool = False
    overfill: OverfillAlert | None = None

    @property
    def is_duplicate(self) -> bool:
        """Return whether the fill's trade id was already applied (the order is unchanged)."""
        return not self.is_new

    @property
    def overfilled(self) -> bool:
        """Return whether this fill left the order filled beyond its quantity."""
        return self.overfill is not None


def status_from_fills(order: Order) -> OrderStatus:
    """Return the live status an order's fills give: accepted, partially filled or filled."""
    if order.filled >= order.quantity:
        return S.FILLED
    return S.PARTIALLY_FILLED if order.filled > 0 else S.ACCEPTED


def apply_update(order: Order, update: OrderUpdate) -> Order:
    """Return `order` after the venue's status report `update`, by `TRANSITIONS`.

    Return the same object when the report changes nothing (a duplicate or a stale report that
    carries nothing new). Record the venue order id the first time one arrives, and the report's
    reason when it changes the status. Raise `InvalidTransition` for a report the order's status
    does not accept, and for a rejection of an order that has fills.
    """
    if update.client_id != order.client_id:
        raise MismatchedEvent(f"update for order {update.client_id} applied to order {order.client_id}")
    outcome = TRANSITIONS[order.status].get(update.status)
    if outcome is None:
        raise InvalidTransition(order.client_id, order.status, update.status, update.reason)
    if outcome is S.REJECTED and order.filled > 0:
        raise InvalidTransition(order.client_id, order.status, update.status, f"it has fills ({order.filled})")
    status = outcome if isinstance(outcome, OrderStatus) else status_from_fills(order)
    changes: dict[str, object] = {}
    if status is not order.status:
        changes["status"] = status
        if update.reason:
            changes["reason"] = update.reason
    if order.venue_order_id is None and update.venue_order_id:
        changes["venue_order_id"] = update.venue_order_id
    if not changes:
        return order
    return order.evolve(**changes, updated_ns=max(order.updated_ns, update.time_ns))


def apply_fill(order: Order, fill: Fill) -> FillResult:
    """Return `order` after `fill`, with whether the fill was new, late or an overfill.

    A fill whose trade id (`fill_id`) the order has seen is a duplicate: the order comes back
    unchanged with `is_new=False`. A new fill adds its quantity to `filled`, its fee to `fees`,
    and moves `avg_price` to the quantity-weighted average of all fills. A fill on a cancelled,
    expired or filled order is applied and marked `late`; one that leaves `filled` above
    `quantity` is applied, flagged with an `OverfillAlert` and logged at error level. Raise
    `InvalidTransition` for a fill on a `new` or `rejected` order, and `MismatchedEvent` for a
    fill of another order.
    """
    _check_fill_matches(order, fill)
    if order.status not in _FILLABLE:
        with exact_arithmetic():
            would_fill = order.filled + fill.quantity
        would_be = S.FILLED if would_fill >= order.quantity else S.PARTIALLY_FILLED
        detail = f"fill {fill.fill_id} on a {order.status} order"
        raise InvalidTransition(order.client_id, order.status, would_be, detail)
    if fill.fill_id in order.fill_ids:
        return FillResult(order, is_new=False)
    with exact_arithmetic():
        filled = order.filled + fill.quantity
        notional = (order.avg_price or Decimal(0)) * order.filled + fill.quantity * fill.price
        fees = order.fees + fill.fee
    if order.status in _STATUS_KEPT_BY_FILLS:
        status = order.status
    elif filled >= order.quantity:
        status = S.FILLED
    else:
        status = S.CANCEL_PENDING if order.status is S.CANCEL_PENDING else S.PARTIALLY_FILLED
    new = order.evolve(
        status=status,
        filled=filled,
        avg_price=divide(notional, filled),
        fees=fees,
        fill_ids=order.fill_ids | {fill.fill_id},
        updated_ns=max(order.updated_ns, fill.time_ns),
    )
    late = order.status in TERMINAL_STATUSES
    if late and order.status is not S.FILLED:
        log.warning("late fill %s applied to %s order %s", fill.fill_id, order.status, order.client_id)
    overfill = None
    if filled > order.quantity:
        overfill = OverfillAlert(order.client_id, fill.fill_id, order.quantity, filled)
        log.error(
            "OVERFILL of order %s (%s %s %s): filled %s of %s after fill %s",
            order.client_id,
            order.side,
            order.symbol,
            order.venue,
            filled,
            order.quantity,
            fill.fill_id,
        )
    return FillResult(new, is_new=True, late=late, overfill=overfill)


def _check_fill_matches(order: Order, fill: Fill) -> None:
    if (
        fill.client_id == order.client_id
        and fill.venue == order.venue
        and fill.symbol == order.symbol
        and fill.side == order.side
        and (not fill.strategy or fill.strategy == order.strategy)
    ):
        return
    mismatches = [
        f"{name} {theirs!r} != {ours!r}"
        for name, theirs, ours in (
            ("client id", fill.client_id, order.client_id),
            ("venue", fill.venue, order.venue),
            ("symbol", fill.symbol, order.symbol),
            ("side", fill.side, order.side),
        )
        if theirs != ours
    ]
    if fill.strategy and fill.strategy != order.strategy:
        mismatches.append(f"strategy {fill.strategy!r} != {order.strategy!r}")
    if mismatches:
        detail = ", ".join(mismatches)
        raise MismatchedEvent(f"fill {fill.fill_id} does not belong to order {order.client_id}: {detail}")
