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

Writes are grouped (`GroupCommit`, `apply_events`): the acknowledgements of a close's orders, and
the venue events that queued up while the book was busy (a bar's fills), go to PostgreSQL in one
statement per batch instead of one round trip each. The rules hold per batch: nothing changes in
memory (orders, then positions) before the batch is committed, a fill the database already holds
is never applied twice (the batch is refused as a whole and its events are applied one by one),
and an order's events are applied in the order the venue published them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

import asyncpg

from framework.brokers.base import BrokerEvent
from framework.clock import Clock
from framework.engine.group_commit import GroupCommit
from framework.engine.order_store import OrderChange, OrderStore
from framework.engine.risk_book import LiveRiskContext
from framework.errors import TransientError
from framework.orders.model import Fill, Mode, Order, OrderUpdate
from framework.orders.positions import Position, PositionBook
from framework.orders.state import (
    FillResult,
    InvalidTransition,
    MismatchedEvent,
    apply_fill,
    apply_update,
    exact_arithmetic,
)

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


class _BatchNotWritten(Exception):
    """A batch of changes could not be planned or written; nothing of it was applied (the cause says why)."""


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
        self,
        store: OrderStore,
        clock: Clock,
        *,
        venue: str,
        mode: Mode,
        crash_hook: CrashHook | None = None,
        keep_ended: int = 20_000,
    ) -> None:
        self.store = store
        self.keep_ended = keep_ended
        self._ended: OrderedDict[str, None] = OrderedDict()  # ended orders in memory, oldest first
        self.journal = GroupCommit(store)
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
        """Replace an order in memory (no write: callers persist first) and keep the working counts.

        Ended orders stay in memory only for the newest `keep_ended` of them: a runner placing
        thousands of orders a minute would otherwise grow without bound. An event for an order
        evicted so is still applied (`order()` loads it back from the database, as after a restart).
        """
        client_id = order.client_id
        before = self.orders.get(client_id)
        self.orders[client_id] = order
        self.risk_context.order_changed(before, order)
        for listener in self._order_listeners:
            listener(before, order)
        if not order.is_active:
            self._ended[client_id] = None
            self._ended.move_to_end(client_id)
            while len(self._ended) > self.keep_ended:
                oldest, _ = self._ended.popitem(last=False)
                kept = self.orders.get(oldest)
                if kept is not None and not kept.is_active and not self.locked(oldest):
                    del self.orders[oldest]

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

    def locked(self, client_id: str) -> bool:
        """Return whether something holds the order's lock (without making a lock for it, as `lock` would)."""
        lock = self._locks.get(client_id)
        return lock is not None and lock.locked()

    def _forget_lock(self, client_id: str, lock: asyncio.Lock) -> None:
        """Drop the lock of an ended order nobody holds or waits for (a later change makes a new one).

        Without this the locks of every order ever placed stay in memory, and in the collector's walks.
        """
        order = self.orders.get(client_id)
        ended = order is not None and not order.is_active
        if ended and not lock.locked() and not lock._waiters and self._locks.get(client_id) is lock:
            del self._locks[client_id]

    async def persist(self, client_id: str, detail: str) -> Order:
        """Write the order's current in-memory state with an event row (e.g. submitted, outcome unknown)."""
        async with self.lock(client_id):
            order = self.orders[client_id]
            await self.journal.write(OrderChange(order, detail, self._clock.now_ns()))
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
        why = detail or update.reason or f"venue reports {update.status}"
        await self.journal.write(OrderChange(new, why, self._now()))
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
            fill = _owned(fill, order)
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
        await self._after_fill(fill, result)
        return result.order

    async def _after_fill(self, fill: Fill, result: FillResult) -> None:
        """Apply a committed fill to the positions and risk aggregates; alert an overfill; tell the listeners."""
        position = self.positions.apply(fill)
        if position is None:  # applied by a racing path meanwhile
            return
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

    async def apply_events(self, events: Sequence[BrokerEvent]) -> None:
        """Apply venue events in order, writing all they change in one statement (see the module docstring).

        The orders they touch are locked for the batch. Anything unusual (a fill the database
        holds already, a database error, an event that raises) sends the batch down the one by one
        path of `apply_event`, with its retries; memory changes only after a commit, so that is safe.
        """
        if len(events) <= 1:
            for event in events:
                await self.apply_event(event)
            return
        try:
            await self._apply_batch(events, {})
        except _BatchNotWritten as exc:
            log.warning("%d venue events not written as one batch (%s): one by one", len(events), exc.__cause__)
            for event in events:
                await self.apply_event(event)

    async def _apply_batch(self, events: Sequence[BrokerEvent], details: dict[int, str]) -> None:
        """Plan, write (one statement) and apply `events` under their orders' locks; `details` by `id(event)`.

        Raises `_BatchNotWritten` (nothing applied) when planning or writing failed.
        """
        for client_id in dict.fromkeys(e.client_id for e in events):
            if client_id not in self.orders:
                await self.order(client_id)  # ended before a restart: from the database
        applied: list[tuple[Fill, FillResult]] = []
        alerts: list[tuple[str, str, str]] = []
        held: list[tuple[str, asyncio.Lock]] = []  # in client id order; plain acquire/release: a batch takes thousands
        try:
            for client_id in sorted({e.client_id for e in events if e.client_id in self.orders}):
                lock = self.lock(client_id)
                await lock.acquire()
                held.append((client_id, lock))
            try:
                with exact_arithmetic():  # one exact context for the batch's fill arithmetic
                    changes = self._plan(events, details, applied, alerts)
                await self.store.write_changes(changes)
            except Exception as exc:
                raise _BatchNotWritten from exc
            if applied:
                self.crash_point("after_fill_commit")
            for change in changes:
                self._put_committed(change.order)
        finally:
            for client_id, lock in reversed(held):
                lock.release()
                self._forget_lock(client_id, lock)
        for kind, message, client_id in alerts:
            await self.alert(kind, message, client_id)
        for fill, result in applied:
            await self._after_fill(fill, result)

    async def record(self, updates: Sequence[tuple[OrderUpdate, str]]) -> None:
        """Apply status reports of the order path (acknowledgements, refusals, each with its detail) in one statement.

        Like `apply_events`; if the batch cannot be written at once, each goes through `update`.
        """
        if not updates:
            return
        details = {id(u): detail for u, detail in updates}
        try:
            await self._apply_batch([u for u, _ in updates], details)
        except _BatchNotWritten as exc:
            log.warning("%d order updates not written as one batch (%s): one by one", len(updates), exc.__cause__)
            for update, detail in updates:
                await self.update(update, detail)

    def _put_committed(self, order: Order) -> None:
        """`put` a committed change; a listener that raises is logged (the change stands: it is committed)."""
        try:
            self.put(order)
        except Exception:
            log.exception("an order listener failed on %s", order.client_id)

    def _plan(
        self,
        events: Sequence[BrokerEvent],
        details: dict[int, str],
        applied: list[tuple[Fill, FillResult]],
        alerts: list[tuple[str, str, str]],
    ) -> list[OrderChange]:
        """Return the changes `events` make, in order, against a scratch copy of the orders they touch."""
        now = self._now()
        scratch: dict[str, Order] = {}
        changes: list[OrderChange] = []
        for event in events:
            client_id = event.client_id
            order = scratch.get(client_id) or self.orders.get(client_id)
            if isinstance(event, Fill):
                if order is None:
                    alerts.append((UNKNOWN_ORDER, f"fill {event.fill_id} for unknown order {client_id}", client_id))
                    continue
                if self.positions.seen(event):
                    continue
                fill = _owned(event, order)
                try:
                    result = apply_fill(order, fill)
                except (InvalidTransition, MismatchedEvent) as exc:
                    alerts.append((INVALID_TRANSITION, f"fill refused: {exc}", client_id))
                    continue
                if result.is_duplicate:
                    continue
                why = "late fill" if result.late else "fill"
                changes.append(OrderChange(result.order, f"{why} {fill.fill_id}", now, fill))
                applied.append((fill, result))
                scratch[client_id] = result.order
                continue
            if order is None:
                alerts.append((UNKNOWN_ORDER, f"{event.status} report for unknown order {client_id}", client_id))
                continue
            try:
                new = apply_update(order, event)
            except InvalidTransition as exc:
                alerts.append((INVALID_TRANSITION, f"venue report refused: {exc}", client_id))
                continue
            if new is not order:
                detail = details.get(id(event)) or event.reason or f"venue reports {event.status}"
                changes.append(OrderChange(new, detail, now))
                scratch[client_id] = new
        return changes

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


def _owned(fill: Fill, order: Order) -> Fill:
    """Return `fill` with its order's strategy (when the venue left it out) and mode."""
    if fill.strategy and fill.mode is order.mode:
        return fill  # the venue said it all already: no copy
    return replace(fill, strategy=fill.strategy or order.strategy, mode=order.mode)


async def _call(listener: Callable[..., Awaitable[None] | None], *args: object) -> None:
    """Call a listener (plain or async); its failure is logged, never breaks the order path."""
    try:
        result = listener(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("listener %r failed", listener)
