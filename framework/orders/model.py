"""The order and fill model: value types with `Decimal` money, and the order lifecycle's states.

Quantities and prices in orders, fills and positions are `Decimal`s rounded to the instrument's
quantity step and tick size, validated at construction: no NaN, no negative size. Orders are
immutable; a state change produces a new `Order` (see `framework.orders.state`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from framework.errors import RejectedError
from framework.instruments import Instrument

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Fill",
    "Mode",
    "Order",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "price_of",
    "quantity_of",
]

ZERO = Decimal(0)


class OrderSide(StrEnum):
    """Buy or sell."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """Return +1 for a buy, -1 for a sell."""
        return 1 if self is OrderSide.BUY else -1


class OrderType(StrEnum):
    """Market or limit."""

    MARKET = "market"
    LIMIT = "limit"


class Mode(StrEnum):
    """The runner mode an order was placed in (recorded on every order and fill)."""

    BACKTEST = "backtest"
    REPLAY = "replay"
    DEV = "dev"
    PAPER = "paper"
    LIVE = "live"


class OrderStatus(StrEnum):
    """Where an order is in its lifecycle."""

    NEW = "new"  # intent committed locally, not yet sent
    SUBMITTED = "submitted"  # sent; the venue has not answered yet (or the answer was lost)
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCEL_PENDING = "cancel_pending"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})
ACTIVE_STATUSES = frozenset(set(OrderStatus) - TERMINAL_STATUSES)


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, float) and not math.isfinite(value):
        raise RejectedError(f"{what} must be finite, got {value}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise RejectedError(f"{what} is not a number: {value!r}") from exc
    if not number.is_finite():
        raise RejectedError(f"{what} must be finite, got {value}")
    return number


def quantity_of(value: Any, instrument: Instrument) -> Decimal:
    """Return a positive quantity rounded down to the instrument's step, or raise `RejectedError`."""
    qty = _decimal(value, "quantity")
    step = Decimal(str(instrument.qty_step))
    rounded = (qty / step).to_integral_value(rounding=ROUND_DOWN) * step
    if rounded <= 0:
        raise RejectedError(f"quantity {value} of {instrument.symbol} is not positive after rounding to {step}")
    return rounded.quantize(_exponent(step))


def price_of(value: Any, instrument: Instrument) -> Decimal:
    """Return a positive price rounded to the instrument's tick, or raise `RejectedError`."""
    price = _decimal(value, "price")
    tick = Decimal(str(instrument.tick_size))
    rounded = (price / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick
    if rounded <= 0:
        raise RejectedError(f"price {value} of {instrument.symbol} is not positive after rounding to {tick}")
    return rounded.quantize(_exponent(tick))


def _exponent(step: Decimal) -> Decimal:
    """Return the quantum with the step's decimal places (whole numbers for steps of 1 or more)."""
    normal = step.normalize()
    exponent = normal.as_tuple().exponent
    return Decimal(1).scaleb(exponent) if isinstance(exponent, int) and exponent < 0 else Decimal(1)


@dataclass(frozen=True, slots=True)
class Order:
    """One order, as the runner knows it. `client_id` is rata's own, unique, id for it.

    `cash_limit` (buys) caps what the order may spend, fees included: the venue fills as much of
    `quantity` as the limit affords at the fill price and ends the order there, like Binance's
    `quoteOrderQty`. The engine sizes all-in entries this way, because it cannot know the next
    bar's open when it decides; the paper venue then cuts the quantity exactly as vectorbt's
    all-in entry does.
    """

    client_id: str
    strategy: str
    venue: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    mode: Mode = Mode.PAPER
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = ZERO
    avg_price: Decimal | None = None
    fees: Decimal = ZERO
    venue_order_id: str | None = None
    created_ns: int = 0
    updated_ns: int = 0
    reason: str = ""
    fill_ids: frozenset[str] = field(default_factory=frozenset)
    cash_limit: Decimal | None = None

    def __post_init__(self) -> None:
        if self.cash_limit is not None and (
            not isinstance(self.cash_limit, Decimal) or not self.cash_limit.is_finite() or self.cash_limit <= 0
        ):
            raise RejectedError(f"cash limit must be a positive Decimal, got {self.cash_limit!r}")
        if not self.client_id:
            raise RejectedError("an order needs a client id")
        if not isinstance(self.quantity, Decimal) or not self.quantity.is_finite() or self.quantity <= 0:
            raise RejectedError(f"order quantity must be a positive Decimal, got {self.quantity!r}")
        if self.type is OrderType.LIMIT and (self.limit_price is None or self.limit_price <= 0):
            raise RejectedError("a limit order needs a positive limit price")
        if self.filled < 0:
            raise RejectedError("filled quantity cannot be negative")

    @property
    def remaining(self) -> Decimal:
        """Return the quantity not filled yet (never negative)."""
        return max(self.quantity - self.filled, ZERO)

    @property
    def is_active(self) -> bool:
        """Return whether the order can still fill or be cancelled."""
        return self.status in ACTIVE_STATUSES

    @property
    def signed_quantity(self) -> Decimal:
        """Return the quantity with the side's sign (+ buy, - sell)."""
        return self.quantity * self.side.sign

    def evolve(self, **changes: Any) -> Order:
        """Return a copy with `changes`, validated like a new order.

        The order path evolves every order several times (submitted, accepted, each fill), so this
        writes the new order's slots directly (`_copy_order`, through the slot descriptors) instead
        of going through `dataclasses.replace` and `__init__`, and re-runs `__post_init__` only
        when a field it checks changes (`_ORDER_CHECKED`): the checks read nothing else and `self`
        passed them, so a copy that changes only other fields (status, fees, average price, fill
        ids, times, ...) would pass them again.
        """
        new = _copy_order(self)
        for name, value in changes.items():
            setter = _ORDER_SLOT_SETTER.get(name)
            if setter is None:
                raise TypeError(f"Order has no field {name!r}")
            setter(new, value)
        if not _ORDER_CHECKED.isdisjoint(changes):
            new.__post_init__()
        return new


_ORDER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Order))
_ORDER_SLOT_SETTER: dict[str, Callable[[Order, Any], None]] = {
    name: Order.__dict__[name].__set__ for name in _ORDER_FIELDS
}
"""Each field's slot descriptor setter: it writes the slot of a new, frozen, `Order` directly."""


def _slot_copier(cls: type, names: tuple[str, ...]) -> Callable[[Any], Any]:
    """Return a function that copies an instance of the slotted `cls` field by field, unrolled.

    Generated like the `__init__` of `dataclasses` (one line per field): a loop over the fields
    costs twice as much, and the order path copies every order six times.
    """
    setters = {f"_set_{name}": cls.__dict__[name].__set__ for name in names}
    lines = [f"    _set_{name}(new, source.{name})" for name in names]
    source = "def copy(source):\n    new = _new(_cls)\n" + "\n".join(lines) + "\n    return new\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec(source, namespace)  # the source is built above from the dataclass's own field names
    copier: Callable[[Any], Any] = namespace["copy"]
    return copier


_copy_order: Callable[[Order], Order] = _slot_copier(Order, _ORDER_FIELDS)
_ORDER_CHECKED = frozenset({"client_id", "quantity", "type", "limit_price", "filled", "cash_limit"})
"""The fields `Order.__post_init__` validates (keep in step with it)."""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of (part of) an order. `fill_id` is the venue's trade id: fills dedupe on it."""

    fill_id: str
    client_id: str
    venue: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal = ZERO
    time_ns: int = 0
    strategy: str = ""
    mode: Mode = Mode.PAPER

    def __post_init__(self) -> None:
        for name, value in (("quantity", self.quantity), ("price", self.price)):
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise RejectedError(f"fill {name} must be a positive Decimal, got {value!r}")
        if not isinstance(self.fee, Decimal) or not self.fee.is_finite():
            raise RejectedError(f"fill fee must be a finite Decimal, got {self.fee!r}")

    @property
    def signed_quantity(self) -> Decimal:
        """Return the quantity with the side's sign (+ buy, - sell)."""
        return self.quantity * self.side.sign

    @property
    def notional(self) -> Decimal:
        """Return quantity times price."""
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A venue's report on an order: a new status, and optionally why and its venue id."""

    client_id: str
    status: OrderStatus
    venue_order_id: str | None = None
    reason: str = ""
    time_ns: int = 0
