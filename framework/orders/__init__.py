"""Orders, fills and positions: Decimal value types, the order state machine and position accounting."""

from framework.orders.model import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Fill,
    Mode,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    price_of,
    quantity_of,
)
from framework.orders.positions import Position, PositionBook, Totals
from framework.orders.state import (
    TRANSITIONS,
    FillResult,
    InvalidTransition,
    MismatchedEvent,
    OverfillAlert,
    apply_fill,
    apply_update,
)

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "Fill",
    "FillResult",
    "InvalidTransition",
    "MismatchedEvent",
    "Mode",
    "Order",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "OverfillAlert",
    "Position",
    "PositionBook",
    "Totals",
    "apply_fill",
    "apply_update",
    "price_of",
    "quantity_of",
]
