"""Orders, fills and positions: Decimal value types and the order state machine."""

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
