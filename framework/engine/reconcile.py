"""Reconciliation: after a (re)start, compare the database with the venue, repair what is safe, report the rest.

Run by `OrderManager.start` before any strategy starts. What it compares, and what it does:

- Every local active order, by `broker.query(client_id)`:
  - the venue has it: its fills and status are adopted (`resolve.adopt`); missing fills come from
    the broker's trade history (`fills(client_id)`, where the broker has one) or, failing that, are
    synthesized from the venue's filled quantity and average price (recorded, and alerted);
  - 'new' or 'submitted' and the venue does not show it: it is resolved by query with backoff
    (the venue may show an order late), then marked rejected: "not sent before restart" (new) or
    "venue never saw it" (submitted);
  - accepted (or later) and unknown to the venue: a failing difference.
  - A local fill the venue does not list, or filled quantities that still differ: failing.
- Orders cancelled or expired within `late_fill_lookback_s`: late fills the venue made while rata
  was down are adopted (only where the broker lists an order's fills).
- The venue's open orders: one the database does not know, or knows as ended, fails reconciliation.
- Net positions per symbol rata trades (its instruments, and any symbol it holds): the sum of local
  fills against `broker.positions()`.

Every difference is logged and recorded (`reconciliations`); repairs are informational, anything
else makes `ReconcileReport.ok` False with a human `reason`, and the caller must not start trading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from framework.engine.resolve import Adopted, adopt, resolve_unknown, venue_fills
from framework.errors import RejectedError, TransientError
from framework.orders.model import Fill, Order, OrderStatus

if TYPE_CHECKING:
    from framework.engine.order_manager import OrderManager

__all__ = ["Difference", "ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing the database and the venue disagreed on; `fails` when it was not safely repaired."""

    kind: str
    message: str
    fails: bool
    client_id: str | None = None
    symbol: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the difference as a JSON-able dict (the `reconciliations.differences` items)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The outcome of one reconciliation: start trading only when `ok`."""

    ok: bool
    differences: tuple[Difference, ...] = ()
    adopted_fills: tuple[Fill, ...] = ()
    synthesized_fills: tuple[Fill, ...] = ()
    rejected: tuple[str, ...] = ()
    checked_orders: int = 0
    local_positions: Mapping[str, Decimal] = field(default_factory=dict)
    venue_positions: Mapping[str, Decimal] = field(default_factory=dict)
    time_ns: int = 0
    id: int | None = None

    @property
    def failures(self) -> tuple[Difference, ...]:
        """Return the differences that failed the reconciliation."""
        return tuple(d for d in self.differences if d.fails)

    @property
    def reason(self) -> str:
        """Return why reconciliation failed (empty when ok)."""
        failures = self.failures
        if not failures:
            return ""
        return f"reconciliation failed ({len(failures)} differences): " + "; ".join(d.message for d in failures)


@dataclass(slots=True)
class _Findings:
    differences: list[Difference] = field(default_factory=list)
    adopted: list[Fill] = field(default_factory=list)
    synthesized: list[Fill] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def add(
        self, kind: str, message: str, *, fails: bool, client_id: str | None = None, symbol: str | None = None
    ) -> None:
        self.differences.append(Difference(kind, message, fails, client_id, symbol))
        (log.error if fails else log.warning)("reconciliation: %s: %s", kind, message)

    def adopted_from(self, cid: str, adopted: Adopted) -> None:
        self.adopted.extend(adopted.fills)
        self.synthesized.extend(adopted.synthesized)
        for fill in adopted.fills:
            self.add(
                "adopted_fill",
                f"{cid}: fill {fill.fill_id} of {fill.quantity} @ {fill.price} was missing",
                fails=False,
                client_id=cid,
            )
        if adopted.synthesized:
            self.add(
                "synthesized_fill",
                f"{cid}: the broker lists no fills; fill synthesized from the venue's order",
                fails=False,
                client_id=cid,
            )
        if adopted.status_to is not None:
            self.add(
                "adopted_status",
                f"{cid}: {adopted.status_from} locally, {adopted.status_to} at the venue",
                fails=False,
                client_id=cid,
            )
        for fill_id in adopted.unknown_local_fills:
            self.add(
                "unknown_local_fill", f"{cid}: local fill {fill_id} is unknown to the venue", fails=True, client_id=cid
            )


async def reconcile(manager: OrderManager) -> ReconcileReport:
    """Compare the manager's book with its venue, adopt what is safe, record and return the report."""
    book, broker, clock = manager.book, manager.broker, manager.clock
    now = clock.now_ns()
    found = _Findings()
    active = [o for o in book.orders.values() if o.is_active]
    await asyncio.gather(*(_order(manager, order, found) for order in active))
    await _late_fills(manager, now, found)
    try:
        await _open_orders(manager, found)
        local = book.positions.net_positions()
        venue = await broker.positions()
    except (TransientError, RejectedError) as exc:
        found.add("venue_error", f"cannot read the venue's open orders or positions: {exc}", fails=True)
        local, venue = book.positions.net_positions(), {}
    else:
        symbols = set(manager.instruments) | set(local)
        for symbol in sorted(symbols):
            mine, theirs = local.get(symbol, ZERO), venue.get(symbol, ZERO)
            if mine != theirs:
                found.add(
                    "position",
                    f"{symbol}: local fills sum to {mine}, the venue holds {theirs}",
                    fails=True,
                    symbol=symbol,
                )
        venue = {s: q for s, q in venue.items() if s in symbols}
    ok = not any(d.fails for d in found.differences)
    report = ReconcileReport(
        ok,
        tuple(found.differences),
        tuple(found.adopted),
        tuple(found.synthesized),
        tuple(found.rejected),
        len(active),
        local,
        venue,
        now,
    )
    row = await manager.store.record_reconciliation(
        time_ns=now,
        venue=manager.venue,
        mode=manager.mode,
        ok=ok,
        reason=report.reason,
        differences=[d.to_json() for d in report.differences],
    )
    if ok:
        log.info(
            "reconciliation %d of %s passed: %d orders checked, %d differences repaired",
            row,
            manager.venue,
            len(active),
            len(found.differences),
        )
    else:
        log.error("reconciliation %d of %s: %s", row, manager.venue, report.reason)
    return replace(report, id=row)


async def _order(manager: OrderManager, order: Order, found: _Findings) -> None:
    book, broker, cid = manager.book, manager.broker, order.client_id
    if order.status in (OrderStatus.NEW, OrderStatus.SUBMITTED):
        unseen = "not sent before restart" if order.status is OrderStatus.NEW else "venue never saw it"
        resolution = await resolve_unknown(
            book, broker, manager.clock, cid, delays_s=manager.resolve_delays_s, unseen_reason=unseen
        )
        if resolution.adopted is not None:
            found.adopted_from(cid, resolution.adopted)
        elif resolution.order is not None and resolution.order.status is OrderStatus.REJECTED:
            found.rejected.append(cid)
            kind = "not_sent" if order.status is OrderStatus.NEW else "never_seen"
            found.add(kind, f"{cid}: {resolution.order.reason}; marked rejected", fails=False, client_id=cid)
        seen = resolution.seen
    else:
        seen = await _query(manager, cid, found)
        if seen is None:
            found.add(
                "venue_lost_order",
                f"{cid} is {order.status} locally but unknown to the venue",
                fails=True,
                client_id=cid,
            )
            return
        found.adopted_from(cid, await adopt(book, broker, seen, why="reconciliation"))
    local = book.orders[cid]
    if seen is not None and local.filled != seen.filled:
        found.add(
            "filled_mismatch",
            f"{cid}: {local.filled} filled locally, {seen.filled} at the venue",
            fails=True,
            client_id=cid,
        )


async def _query(manager: OrderManager, client_id: str, found: _Findings) -> Order | None:
    try:
        return await manager.broker.query(client_id)
    except (TransientError, RejectedError) as exc:
        found.add("venue_error", f"cannot query {client_id}: {exc}", fails=True, client_id=client_id)
        return None


async def _late_fills(manager: OrderManager, now: int, found: _Findings) -> None:
    """Adopt fills the venue made on recently cancelled or expired orders (where the broker lists them)."""
    if not callable(getattr(manager.broker, "fills", None)):
        return
    since = now - round(manager.late_fill_lookback_s * 1e9)
    for ended in await manager.store.load_ended_since(manager.venue, manager.mode, since):
        cid = ended.client_id
        if cid not in manager.book.orders:
            manager.book.put(ended)
        fills = await venue_fills(manager.broker, cid) or []
        for fill in fills:
            if fill.fill_id not in manager.book.orders[cid].fill_ids:
                await manager.book.fill(fill, "reconciliation: late fill")
                found.adopted.append(fill)
                found.add(
                    "adopted_fill",
                    f"{cid}: late fill {fill.fill_id} on a {ended.status} order",
                    fails=False,
                    client_id=cid,
                )


async def _open_orders(manager: OrderManager, found: _Findings) -> None:
    venue_open = await manager.broker.open_orders()
    known = await manager.store.known_client_ids(o.client_id for o in venue_open)
    for seen in venue_open:
        cid = seen.client_id
        if cid not in known:
            found.add(
                "unknown_venue_order",
                f"the venue has open order {cid} ({seen.side} {seen.quantity} {seen.symbol}) unknown to the database",
                fails=True,
                client_id=cid,
                symbol=seen.symbol,
            )
            continue
        local = await manager.book.order(cid)
        if local is not None and not local.is_active:
            found.add(
                "venue_open_local_ended",
                f"the venue has {cid} open, the database has it {local.status}",
                fails=True,
                client_id=cid,
                symbol=seen.symbol,
            )
