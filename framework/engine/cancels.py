"""Cancelling orders at the venue for the order manager: never blocked by risk, and safe when answers get lost.

- An order the venue cannot have (still 'new', or waiting out a 429 before it is sent again) is
  cancelled locally, under the order's lock, so the send path, which checks the status under the
  same lock, can never send it afterwards.
- A 429 waits `retry_after` on the clock and tries again; a lost answer or a refusal (the order
  filled meanwhile) asks the venue for the order and adopts what it shows; an order the venue does
  not know (yet: its submit's outcome is being resolved) is left to that resolution.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from framework.brokers.base import Broker
from framework.brokers.errors import RateLimited, UnknownOrder
from framework.clock import Clock
from framework.engine.order_book import LiveOrderBook
from framework.engine.resolve import adopt
from framework.errors import RejectedError, TransientError
from framework.orders.model import Order, OrderStatus, OrderUpdate

__all__ = ["Canceller"]

log = logging.getLogger(__name__)


class Canceller:
    """Cancels the book's orders through `broker`; `unsent` holds the ids waiting to be sent again after a 429."""

    def __init__(
        self, book: LiveOrderBook, broker: Broker, clock: Clock, *, max_retries: int, unsent: set[str]
    ) -> None:
        self._book = book
        self._broker = broker
        self._clock = clock
        self._max_retries = max_retries
        self._unsent = unsent

    async def cancel(self, client_id: str) -> Order:
        """Cancel one order; return it after the venue's answer (as it is, when it had ended already)."""
        book = self._book
        if await book.order(client_id) is None:
            raise UnknownOrder(client_id)
        async with book.lock(client_id):
            order = book.orders[client_id]
            if not order.is_active:
                return order
            if order.status is OrderStatus.NEW or client_id in self._unsent:
                why = "cancelled before it was sent"
                update = OrderUpdate(client_id, OrderStatus.CANCELLED, reason=why, time_ns=self._clock.now_ns())
                return await book.update(update, why, locked=True) or order
        for attempt in range(self._max_retries + 1):
            try:
                ack = await self._broker.cancel(client_id)
            except RateLimited as exc:
                if attempt == self._max_retries:
                    raise
                await self._clock.sleep_until(self._clock.now_ns() + round(exc.retry_after * 1e9))
                continue
            except UnknownOrder:
                log.warning("cancel %s: the venue does not know it (yet)", client_id)
                break
            except (TransientError, RejectedError) as exc:
                log.warning("cancel %s: %s; asking the venue", client_id, exc)
                await self._adopt_venue_view(client_id)
                break
            return await book.update(ack, f"cancel acknowledged: {ack.status}") or book.orders[client_id]
        return book.orders[client_id]

    async def cancel_all(self, client_ids: Iterable[str]) -> list[Order]:
        """Cancel orders concurrently; return those the venue answered for (failures are logged)."""
        targets = list(client_ids)
        results = await asyncio.gather(*(self.cancel(cid) for cid in targets), return_exceptions=True)
        done: list[Order] = []
        for cid, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                log.error("cancel of %s failed: %s", cid, result)
            else:
                done.append(result)
        return done

    async def _adopt_venue_view(self, client_id: str) -> None:
        try:
            seen = await self._broker.query(client_id)
        except (TransientError, RejectedError) as exc:
            log.warning("query of %s after a failed cancel failed: %s", client_id, exc)
            return
        if seen is not None:
            await adopt(self._book, self._broker, seen, why="after a failed cancel")
