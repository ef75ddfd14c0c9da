"""Resolving orders whose fate is unknown, by asking the venue by client id, and adopting what it shows.

A submit that timed out, lost its answer or got a 5xx may or may not have placed the order, so it
is never sent again blindly: `resolve_unknown` queries the venue with backoff on the injected clock
(a venue may show a new order only after a delay) and adopts the order once it appears, or marks it
rejected when the venue still has not shown it after the last attempt. `adopt` brings a local order
to the venue's view: fills first (from the broker's trade history when it has one, else one
synthesized fill covering what the venue reports filled beyond the local fills), then the status.
Fills before status matters: a cancelled order's fills then apply as ordinary fills, not late ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from framework.brokers.base import Broker
from framework.clock import Clock
from framework.engine.order_book import SYNTHESIZED_FILL, LiveOrderBook
from framework.errors import RejectedError, TransientError
from framework.orders.model import Fill, Order, OrderStatus, OrderUpdate
from framework.orders.state import divide

__all__ = ["DEFAULT_RESOLVE_DELAYS_S", "Adopted", "Resolution", "adopt", "resolve_unknown", "venue_fills"]

log = logging.getLogger(__name__)

DEFAULT_RESOLVE_DELAYS_S: Final = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits before each query of an order whose outcome is unknown (about 30 s in all)."""

_UNSENT: Final = frozenset({OrderStatus.NEW, OrderStatus.SUBMITTED})


@dataclass(slots=True)
class Adopted:
    """What adopting the venue's view of one order changed."""

    fills: list[Fill] = field(default_factory=list)
    synthesized: list[Fill] = field(default_factory=list)
    unknown_local_fills: list[str] = field(default_factory=list)
    status_from: OrderStatus | None = None
    status_to: OrderStatus | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """How an order of unknown outcome ended: the order, and what was adopted if the venue showed it."""

    order: Order | None
    adopted: Adopted | None = None
    seen: Order | None = None
    queries: int = 0


async def venue_fills(broker: Broker, client_id: str) -> list[Fill] | None:
    """Return the venue's fills of an order, or None when the broker cannot list an order's fills."""
    fills: Any = getattr(broker, "fills", None)
    if not callable(fills):
        return None
    return list(await fills(client_id))


async def adopt(book: LiveOrderBook, broker: Broker, seen: Order, *, why: str) -> Adopted:
    """Bring the local order to the venue's view `seen`: its missing fills, then its status."""
    cid = seen.client_id
    result = Adopted()
    local = book.orders[cid]
    before = local.status
    if local.status is OrderStatus.NEW:  # sent just before a crash: the venue has it
        await book.update(OrderUpdate(cid, OrderStatus.SUBMITTED, time_ns=local.updated_ns), f"{why}: sent")
        local = book.orders[cid]
    fills = await venue_fills(broker, cid) if seen.filled > 0 or local.fill_ids else []
    if fills is None:
        fills = _synthesized(local, seen)
        result.synthesized.extend(fills)
    else:
        venue_ids = {f.fill_id for f in fills}
        result.unknown_local_fills.extend(sorted(local.fill_ids - venue_ids))
    for fill in fills:
        if fill.fill_id in book.orders[cid].fill_ids:
            continue
        await book.fill(fill, f"{why}: adopted fill")
        result.fills.append(fill)
    for fill in result.synthesized:
        await book.alert(
            SYNTHESIZED_FILL,
            f"order {cid}: the venue reports {seen.filled} filled, {local.filled} known; booked fill "
            f"{fill.fill_id} of {fill.quantity} @ {fill.price} synthesized from the venue's order",
            cid,
        )
    update = OrderUpdate(cid, seen.status, seen.venue_order_id, seen.reason, seen.updated_ns)
    after = await book.update(update, f"{why}: venue shows {seen.status}")
    if after is not None and after.status is not before:
        result.status_from, result.status_to = before, after.status
    return result


def _synthesized(local: Order, seen: Order) -> list[Fill]:
    """Return one fill for what the venue reports filled beyond the local fills (deterministic id)."""
    missing = seen.filled - local.filled
    if missing <= 0 or seen.avg_price is None:
        return []
    value = seen.avg_price * seen.filled - (local.avg_price or Decimal(0)) * local.filled
    price = divide(value, missing) if value > 0 else seen.avg_price
    fee = max(seen.fees - local.fees, Decimal(0))
    fill_id = f"{local.client_id}-recon-{seen.filled.normalize():f}"
    return [
        Fill(
            fill_id,
            local.client_id,
            local.venue,
            local.symbol,
            local.side,
            missing,
            price,
            fee,
            seen.updated_ns,
            local.strategy,
            local.mode,
        )
    ]


async def resolve_unknown(
    book: LiveOrderBook,
    broker: Broker,
    clock: Clock,
    client_id: str,
    *,
    delays_s: Sequence[float] = DEFAULT_RESOLVE_DELAYS_S,
    unseen_reason: str = "venue never saw it",
) -> Resolution:
    """Query the venue for an order of unknown outcome until it shows it; adopt it, or reject it after the last try.

    Stops early when something else (the event stream) already moved the order on.
    """
    for attempt, delay in enumerate(delays_s, start=1):
        if delay > 0:
            await clock.sleep_until(clock.now_ns() + round(delay * 1e9))
        order = book.orders.get(client_id)
        if order is None or order.status not in _UNSENT:
            return Resolution(order, queries=attempt - 1)
        try:
            seen = await broker.query(client_id)
        except TransientError as exc:
            log.warning("query %d of %s failed: %s", attempt, client_id, exc)
            continue
        except RejectedError as exc:
            log.warning("query %d of %s refused: %s", attempt, client_id, exc)
            continue
        if seen is not None:
            log.info("order %s of unknown outcome found at the venue: %s", client_id, seen.status)
            adopted = await adopt(book, broker, seen, why=f"resolved by query {attempt}")
            return Resolution(book.orders.get(client_id), adopted, seen, attempt)
    order = book.orders.get(client_id)
    if order is None or order.status not in _UNSENT:
        return Resolution(order, queries=len(delays_s))
    reason = f"{unseen_reason} (not found after {len(delays_s)} queries)"
    log.warning("order %s rejected: %s", client_id, reason)
    rejected = OrderUpdate(client_id, OrderStatus.REJECTED, reason=reason, time_ns=clock.now_ns())
    return Resolution(await book.update(rejected, reason), queries=len(delays_s))
