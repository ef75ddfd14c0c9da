"""What `CcxtBroker` remembers of each live order, and how it turns the venue's views into events.

The venue is polled, and answers can arrive out of order (a poll's view of an order may be older
than the cancel that just came back), so a `TrackedOrder` only moves forward: an older view (less
filled, or updated earlier) is ignored, a reported state is never reported again or undone, and a
status is reported only once the fills behind it have been, each fill once per venue trade id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from framework.brokers.ccxt_mapping import fill_from_trade
from framework.orders.model import TERMINAL_STATUSES, Fill, Order, OrderStatus, OrderUpdate

__all__ = ["MAX_FILL_WAITS", "TrackedOrder"]

log = logging.getLogger(__name__)

MAX_FILL_WAITS: Final = 10
"""Looks at an order whose fills the venue does not show after which its status is reported anyway."""

_NOT_AFTER: Final = {
    OrderStatus.ACCEPTED: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCEL_PENDING}),
    OrderStatus.PARTIALLY_FILLED: frozenset({OrderStatus.CANCEL_PENDING}),
}
"""Statuses that a given status must not follow: the venue's view was older than what was reported."""


@dataclass(slots=True)
class TrackedOrder:
    """A live order: its latest view, the last status reported, and the fills reported."""

    order: Order
    symbol: str
    status: OrderStatus
    booked: Decimal
    fees: Decimal = Decimal(0)
    fill_ids: set[str] = field(default_factory=set)
    cancelling: bool = False
    fill_waits: int = 0
    fee_warned: bool = False

    @property
    def live(self) -> bool:
        """Return whether the order can still change, or has fills not reported yet."""
        if self.status not in TERMINAL_STATUSES:
            return True
        return self.booked < self.order.filled and self.fill_waits < MAX_FILL_WAITS

    def accepts(self, seen: Order) -> bool:
        """Return whether `seen` is at least as recent as the latest view."""
        if seen.filled < self.order.filled:
            return False
        return not (seen.updated_ns and self.order.updated_ns and seen.updated_ns < self.order.updated_ns)

    def adopt(self, seen: Order) -> None:
        """Take `seen` as the latest view (with the fees and fill ids reported so far)."""
        self.order = seen.evolve(fees=self.fees, fill_ids=frozenset(self.fill_ids))

    def new_fills(
        self,
        trades: Iterable[Mapping[str, Any]],
        seen: Order,
        market: Mapping[str, Any],
        now_ns: int,
        fallback_ms: Any,
    ) -> list[Fill]:
        """Return the fills among `trades` not reported yet, and count them as reported."""
        base, quote = str(market.get("base")), str(market.get("quote"))
        fills = []
        for trade in trades:
            made = fill_from_trade(
                trade,
                order=seen,
                base=base,
                quote=quote,
                fallback_ms=fallback_ms if isinstance(fallback_ms, int) else None,
                now_ns=now_ns,
            )
            if made is None:
                continue
            fill, fee_known = made
            if fill.fill_id in self.fill_ids:
                continue
            if not fee_known and not self.fee_warned:
                self.fee_warned = True
                log.warning(
                    "%s: fee of fill %s is in neither %s nor %s; booked without fee",
                    seen.client_id,
                    fill.fill_id,
                    base,
                    quote,
                )
            self.fill_ids.add(fill.fill_id)
            self.booked += fill.quantity
            self.fees += fill.fee
            fills.append(fill)
        return fills

    def advance(self, seen: Order, now_ns: int) -> OrderUpdate | None:
        """Adopt `seen` as the latest view; return the status update to report, if any."""
        self.adopt(seen)
        if self.cancelling:
            return None
        if self.booked < seen.filled:
            self.fill_waits += 1
            if self.fill_waits < MAX_FILL_WAITS:
                return None
            if self.fill_waits == MAX_FILL_WAITS:
                log.error(
                    "%s: the venue reports %s filled but shows fills for %s only; reporting %s anyway",
                    seen.client_id,
                    seen.filled,
                    self.booked,
                    seen.status.value,
                )
        new, old = seen.status, self.status
        if old in TERMINAL_STATUSES or new is old or old in _NOT_AFTER.get(new, frozenset()):
            return None
        self.status = new
        return OrderUpdate(seen.client_id, new, seen.venue_order_id, time_ns=seen.updated_ns or now_ns)
