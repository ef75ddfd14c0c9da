"""The `Broker` seam: the paper broker and every real venue look like this to the runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Protocol, runtime_checkable

from framework.orders.model import Fill, Order, OrderUpdate

__all__ = ["Broker", "BrokerEvent"]

BrokerEvent = OrderUpdate | Fill


@runtime_checkable
class Broker(Protocol):
    """A venue that takes orders.

    `submit` sends an order identified by its `client_id`; if it raises `TransientError` (timeout,
    dropped connection, 5xx) the outcome is UNKNOWN and the caller must resolve it with
    `query(client_id)` rather than resend. `RejectedError` means the venue refused it. Order
    updates and fills arrive on `events()`; `open_orders`, `positions` and `balances` are the
    venue's view, used to reconcile after a restart.
    """

    name: str

    async def connect(self) -> None:
        """Open the connection (load markets, authenticate)."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...

    async def submit(self, order: Order) -> OrderUpdate:
        """Send `order`; return the venue's acknowledgement (accepted, or rejected with a reason)."""
        ...

    async def cancel(self, client_id: str) -> OrderUpdate:
        """Ask the venue to cancel an order; return its answer (cancel pending or cancelled)."""
        ...

    async def query(self, client_id: str) -> Order | None:
        """Return the venue's view of an order by client id, or None if it never saw it."""
        ...

    async def open_orders(self) -> list[Order]:
        """Return the venue's open orders."""
        ...

    async def positions(self) -> dict[str, Decimal]:
        """Return the net position per symbol."""
        ...

    async def balances(self) -> dict[str, Decimal]:
        """Return the cash balance per currency."""
        ...

    def events(self) -> AsyncIterator[BrokerEvent]:
        """Yield order updates and fills as the venue reports them."""
        ...
