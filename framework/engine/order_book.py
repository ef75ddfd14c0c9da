"""`LiveOrderBook`: the order manager's state, changed only through the state machine and persisted first.

Every change to an order goes through `update` (a venue's status report) or `fill` (an execution),
which apply `framework.orders.state`'s transition table, write the result to PostgreSQL, and only
then change memory: the orders by client id, the `PositionBook`, and the incrementally kept
`LiveRiskContext`. A report or fill the state machine refuses is logged and kept as an alert, and
changes nothing.

Changes to one order are serialised by a per-order lock, because the submit path (recording an
acknowledgement), the broker's event stream, an unknown-outcome resolution and a cancel may all
touch the same order at once: without the lock an older snapshot could be written after a newer
one. Fills are deduplicated twice: by (venue, fill id) in the position book, and by the order's
own fill ids under its lock (two paths racing with the same fill).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Final

import asyncpg

from framework.brokers.base import BrokerEvent
from framework.clock import Clock
from framework.engine.order_store import OrderStore
from framework.engine.risk_book import LiveRiskContext
from framework.errors import TransientError
from framework.orders.model import Fill, Mode, Order, OrderUpdate
from framework.orders.positions import Position, PositionBook
from framework.orders.state import InvalidTransition, MismatchedEvent, apply_fill, apply_update

__all__ = ["Alert", "AlertListener", "CrashHook", "FillListener", "LiveOrderBook"]

log = logging.getLogger(__name__)

FillListener = Callable[[Fill, Position], Awaitable[None] | None]
"""Called with every new fill and the position it leaves (after both are committed)."""

CrashHook = Callable[[str], None]
"""Called at the named points of the order path; tests kill the process there."""

OVERFILL: Final = "overfill"
INVALID_TRANSITION: Final = "invalid_transition"
UNKNOWN_ORDER: Final = "unknown_order"
SYNTHESIZED_FILL: Final = "synthesized_fill"
EVENT_NOT_APPLIED: Final = "event_not_applied"

_EVENT_RETRY_DELAYS_S: Final = (0.1, 0.5, 2.0, 5.0)
_DB_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TransientError)


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person must look at: an overfill, a refused venue report, an event for an unknown order."""

    kind: str
    message: str
    client_id: str | None = None
    time_ns: int = 0


AlertListener = Callable[[Alert], Awaitable[None] | None]


class LiveOrderBook:
    """Orders by client id, positions and risk aggregates of one venue and mode; see the module docstring."""

    def __init__(
        self, store: OrderStore, clock: Clock, *, venue: str, mode: Mode, crash_hook: CrashHook | None = None
    ) -> None:
        self.store = store
        self.venue = venue
        self.mode = mode
        self.orders: dict[str, Order] = {}
        self.positions = PositionBook()
        self.risk_context = LiveRiskContext()
        self.alerts: list[Alert] = []
        self._clock = clock
        self._crash_hook = crash_hook
        self._locks: dict[str, asyncio.Lock] = {}
        self._fill_listeners: list[FillListener] = []
        self._alert_listeners: list[AlertListener] = []
        self._order_listeners: list[Callable[[Order | None, Order], None]] = []

    def load(self, orders: Iterable[Order], fills: Iterable[Fill]) -> None:
        """Start from stored state: the active orders and every fill (positions are rebuilt from them)."""
        for fill in fills:
            position = self.positions.apply(fill)
            if position is not None:
                self.risk_context.set_position(position.strategy, position.symbol, position.quantity)
        for order in orders:
            self.put(order)

    def add_fill_listener(self, listener: FillListener) -> None:
        """Call `listener(fill, position)` after every new fill is committed and applied."""
        self._fill_listeners.append(listener)

    def add_alert_listener(self, listener: AlertListener) -> None:
        """Call `listener(alert)` on every alert."""
        self._alert_listeners.append(listener)

    def add_order_listener(self, listener: Callable[[Order | None, Order], None]) -> None:
        """Call `listener(before, after)` synchronously on every change of an order in memory.

        It runs inside the order path: it must only hand the change over (e.g. to a queue).
        """
        self._order_listeners.append(listener)

    def crash_point(self, name: str) -> None:
        """Call the crash hook at `name` (tests kill the process there)."""
        if self._crash_hook is not None:
            self._crash_hook(name)

    def put(self, order: Order) -> None:
        """Replace an order in memory (no write: callers persist first) and keep the working counts."""
        before = self.orders.get(order.client_id)
        self.orders[order.client_id] = order
        self.risk_context.order_changed(before, order)
        for listener in self._order_listeners:
            listener(before, order)

    async def order(self, client_id: str) -> Order | None:
        """Return the order, loading it from the database when it is not in memory (e.g. ended before a restart)."""
        order = self.orders.get(client_id)
        if order is None:
            order = await self.store.load_order(client_id)
            if order is not None and order.venue == self.venue and client_id not in self.orders:
                self.put(order)
        return self.orders.get(client_id)

    def lock(self, client_id: str) -> asyncio.Lock:
        """Return the lock that serialises changes to one order."""
        lock = self._locks.get(client_id)
        if lock is None:
            lock = self._locks[client_id] = asyncio.Lock()
        return lock

    async def persist(self, client_id: str, detail: str) -> Order:
        """Write the order's current in-memory state with an event row (e.g. submitted, outcome unknown)."""
        async with self.lock(client_id):
            order = self.orders[client_id]
            await self.store.save(order, detail, self._clock.now_ns())
            return order

    async def update(self, update: OrderUpdate, detail: str = "", *, locked: bool = False) -> Order | None:
        """Apply a status report; persist and return the order it gives (unchanged if refused or a duplicate).

        `locked`: the caller holds the order's lock already (it checked the order's status under it).
        """
        order = await self.order(update.client_id)
        if order is None:
            await self.alert(UNKNOWN_ORDER, f"{update.status} report for unknown order {update.client_id}")
            return None
        if locked:
            return await self._update(update, detail)
        async with self.lock(update.client_id):
            return await self._update(update, detail)

    async def _update(self, update: OrderUpdate, detail: str) -> Order:
        order = self.orders[update.client_id]
        try:
            new = apply_update(order, update)
        except InvalidTransition as exc:
            await self.alert(INVALID_TRANSITION, f"venue report refused: {exc}", order.client_id)
            return order
        if new is order:
            return order
        await self.store.save(new, detail or update.reason or f"venue reports {update.status}", self._now())
        self.put(new)
        return new

    async def fill(self, fill: Fill, detail: str = "") -> Order | None:
        """Apply a fill once: persist fill, order and event together, then the position; return the order.

        A fill already applied returns the order unchanged; a refused fill raises an alert.
        """
        if self.positions.seen(fill):
            return self.orders.get(fill.client_id)
        order = await self.order(fill.client_id)
        if order is None:
            await self.alert(UNKNOWN_ORDER, f"fill {fill.fill_id} for unknown order {fill.client_id}", fill.client_id)
            return None
        async with self.lock(fill.client_id):
            order = self.orders[fill.client_id]
            fill = replace(fill, strategy=fill.strategy or order.strategy, mode=order.mode)
            try:
                result = apply_fill(order, fill)
            except (InvalidTransition, MismatchedEvent) as exc:
                await self.alert(INVALID_TRANSITION, f"fill refused: {exc}", order.client_id)
                return order
            if result.is_duplicate:
                return order
            why = detail or ("late fill" if result.late else "fill")
            stored = await self.store.save_fill(fill, result.order, f"{why} {fill.fill_id}", self._now())
            if not stored:
                log.error("fill %s of %s was stored already but not applied here", fill.fill_id, fill.client_id)
                return order
            self.crash_point("after_fill_commit")
            self.put(result.order)
        position = self.positions.apply(fill)
        if position is None:  # applied by a racing path between the check above and here
            return result.order
        self.risk_context.set_position(position.strategy, position.symbol, position.quantity)
        if result.overfill is not None:
            alert = result.overfill
            await self.alert(
                OVERFILL,
                f"order {alert.client_id} overfilled by {alert.excess} (filled {alert.filled} of {alert.quantity}) "
                f"after fill {alert.fill_id}",
                alert.client_id,
            )
        for listener in self._fill_listeners:
            await _call(listener, fill, position)
        return result.order

    async def apply_event(self, event: BrokerEvent) -> None:
        """Apply one venue event; retry (on real time, not the clock) while the database cannot take it.

        Memory changes only after a write succeeded, so applying the same event again is safe.
        """
        for delay in (0.0, *_EVENT_RETRY_DELAYS_S):
            await asyncio.sleep(delay)
            try:
                if isinstance(event, Fill):
                    await self.fill(event)
                else:
                    await self.update(event, event.reason or f"venue reports {event.status}")
                return
            except _DB_ERRORS as exc:
                log.warning("venue event %r not recorded (%s); retrying", event, exc)
            except Exception:
                log.exception("venue event %r could not be applied", event)
                break
        await self.alert(EVENT_NOT_APPLIED, f"venue event {event!r} not applied: reconcile", event.client_id)

    async def alert(self, kind: str, message: str, client_id: str | None = None) -> Alert:
        """Log `message` at error level, keep it in `alerts` and pass it to the alert listeners."""
        alert = Alert(kind, message, client_id, self._now())
        log.error("ALERT %s: %s", kind, message)
        self.alerts.append(alert)
        for listener in self._alert_listeners:
            await _call(listener, alert)
        return alert

    def _now(self) -> int:
        return self._clock.now_ns()


async def _call(listener: Callable[..., Awaitable[None] | None], *args: object) -> None:
    """Call a listener (plain or async); its failure is logged, never breaks the order path."""
    try:
        result = listener(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("listener %r failed", listener)
