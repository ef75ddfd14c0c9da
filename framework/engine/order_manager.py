"""`OrderManager`: intents in, orders out to one venue, and every venue event back into the book.

Wiring (the runner does this once per venue)::

    manager = OrderManager(db.pool, broker, risk, clock, mode=Mode.PAPER, venue="paper", instruments=instruments)
    manager.add_fill_listener(engine.on_fill)     # before start: reconciliation may adopt fills
    report = await manager.start()           # load, rebuild positions, reconcile with the venue
    if not report.ok: ...stop: report.reason says why...
    orders = await manager.submit_many(intents)   # all intents of one bar close
    manager.on_price(symbol, price, time_ns)      # last trades for the risk checks
    await manager.close()

The path of one order, and why it is built so:

1. The intent is committed with its client id in one statement (`OrderStore.insert_intents`: the
   id is the database's random prefix plus `order_client_seq`, drawn in the same statement) and a
   'new' event. A batch is one statement too. Committing before sending means that a crash can
   never leave an order at the venue that the database has not heard of.
2. `risk.check` (synchronous, no I/O). A refusal marks the order rejected ("risk <rule>: <reason>")
   and nothing is sent.
3. The order becomes submitted in memory (not in the database: the venue call must not wait for
   a second round trip; a crash from here leaves it 'new' in the database, and reconciliation
   asks the venue whether it got it), `crash_hook("after_intent_commit")`, `broker.submit`,
   `crash_hook("after_send")`, then the acknowledgement is recorded with an event.
4. An unknown outcome (`TransientError`: timeout, lost answer, 5xx) is recorded as submitted and
   resolved in the background by `resolve_unknown` (query with backoff, never a blind resend). A
   429 (`RateLimited`) placed nothing, so the same client id is sent again after `retry_after`; a
   `DuplicateOrder` then means an earlier try reached the venue, and it is resolved by query.

Venue events (`broker.events()`) are consumed by one background task and applied by
`LiveOrderBook` (state machine, persisted first), every event queued by then in one batch and one
statement; acknowledgements of concurrent sends are group-committed the same way (`GroupCommit`).
The broker's stream is subscribed before reconciliation so nothing published meanwhile is lost,
and consumed after it, so that events never race the adoption of orders that were in flight at a
crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from framework.brokers.base import Broker
from framework.brokers.errors import DuplicateOrder, RateLimited
from framework.clock import Clock
from framework.engine.cancels import Canceller
from framework.engine.intents import OrderIntent
from framework.engine.order_book import Alert, AlertListener, CrashHook, FillListener, LiveOrderBook
from framework.engine.order_store import OrderStore
from framework.engine.reconcile import ReconcileReport, reconcile
from framework.engine.resolve import DEFAULT_RESOLVE_DELAYS_S, resolve_unknown
from framework.engine.risk_book import LiveRiskContext
from framework.errors import RejectedError, TransientError
from framework.instruments import Instrument
from framework.orders.model import Mode, Order, OrderStatus, OrderUpdate
from framework.orders.positions import PositionBook
from framework.orders.state import apply_update
from framework.risk.gateway import RiskManager
from framework.risk.limits import GLOBAL
from framework.risk.state import StateChange

__all__ = ["OrderManager"]

log = logging.getLogger(__name__)

_PENDING_ID = "pending"
_EVENT_BATCH = 10_000  # venue events applied in one statement at most


class OrderManager:
    """Orders of one venue and mode, from intent to fills; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        risk: RiskManager,
        clock: Clock,
        *,
        mode: Mode,
        venue: str,
        instruments: Mapping[str, Instrument],
        crash_hook: CrashHook | None = None,
        resolve_delays_s: Sequence[float] = DEFAULT_RESOLVE_DELAYS_S,
        max_rate_limit_retries: int = 5,
        late_fill_lookback_s: float = 86_400.0,
    ) -> None:
        self.broker = broker
        self.venue = venue
        self.mode = mode
        self.instruments = dict(instruments)
        self.store = OrderStore(pool)
        self.book = LiveOrderBook(self.store, clock, venue=venue, mode=mode, crash_hook=crash_hook)
        self.resolve_delays_s = tuple(resolve_delays_s)
        self.late_fill_lookback_s = late_fill_lookback_s
        self._risk = risk
        self._clock = clock
        self._max_retries = max_rate_limit_retries
        self._prefix = ""
        self._started = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiting: set[str] = set()  # rate limited, waiting to be sent again: nothing at the venue
        self._canceller = Canceller(self.book, broker, clock, max_retries=max_rate_limit_retries, unsent=self._waiting)
        self._events: Any = None
        self._consumer: asyncio.Task[None] | None = None
        self._busy = False
        self.placed = 0  # orders committed by this manager (the book keeps only the newest ended ones)
        self._applied = asyncio.Event()  # set after each batch of venue events (what `idle` waits on)
        risk.add_listener(self.on_risk_state)

    # -- accessors ---------------------------------------------------------------------------

    @property
    def orders(self) -> Mapping[str, Order]:
        """Return the orders in memory by client id: the active ones and the newest ended ones (`LiveOrderBook.put`)."""
        return self.book.orders

    @property
    def positions(self) -> PositionBook:
        """Return the positions, built from every stored fill of this venue and mode."""
        return self.book.positions

    @property
    def risk_context(self) -> LiveRiskContext:
        """Return the `RiskContext` over the live book that every check reads."""
        return self.book.risk_context

    @property
    def alerts(self) -> list[Alert]:
        """Return the alerts raised so far (overfills, refused reports, events for unknown orders)."""
        return self.book.alerts

    @property
    def clock(self) -> Clock:
        """Return the injected clock."""
        return self._clock

    def open_orders(self, strategy: str | None = None) -> list[Order]:
        """Return the active orders (of `strategy`), oldest first."""
        return [o for o in self.book.orders.values() if o.is_active and strategy in (None, o.strategy)]

    def add_fill_listener(self, listener: FillListener) -> None:
        """Call `listener(fill, position)` after every new fill (committed, then applied to the positions)."""
        self.book.add_fill_listener(listener)

    def add_order_listener(self, listener: Callable[[Order | None, Order], None]) -> None:
        """Call `listener(before, after)` on every order change (synchronous: hand it over, return)."""
        self.book.add_order_listener(listener)

    def add_alert_listener(self, listener: AlertListener) -> None:
        """Call `listener(alert)` on every alert."""
        self.book.add_alert_listener(listener)

    def on_price(self, symbol: str, price: Decimal, time_ns: int) -> None:
        """Record a last trade for the risk checks (exposure, collars, staleness)."""
        self.book.risk_context.on_price(symbol, price, time_ns)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> ReconcileReport:
        """Load the book, subscribe to the venue, reconcile; start strategies only when `report.ok`."""
        if self._started:
            raise RejectedError("the order manager is started already")
        self._prefix = await self.store.client_prefix()
        active = await self.store.load_active(self.venue, self.mode)
        self.book.load(active, await self.store.load_fills(self.venue, self.mode))
        await self.broker.connect()
        track = getattr(self.broker, "track", None)
        if callable(track):  # polled brokers watch the orders the venue acknowledged; the rest are queried
            track([o for o in active if o.status not in (OrderStatus.NEW, OrderStatus.SUBMITTED)])
        self._events = self.broker.events()
        report = await reconcile(self)
        self._consumer = asyncio.create_task(self._consume(), name=f"orders-{self.venue}-events")
        self._started = True
        return report

    async def close(self, cancel_open: bool = False, *, timeout_s: float = 30.0) -> None:
        """Refuse new submits, wait (bounded) for sends and resolutions, optionally cancel, stop the event task."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await self.idle(timeout_s)
        if cancel_open:
            await self.cancel_all()
            with contextlib.suppress(TimeoutError):
                await self.idle(timeout_s)
        for task in list(self._tasks):
            if not task.done():
                log.warning("order manager closing with %s unfinished", task.get_name())
                task.cancel()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        aclose = getattr(self._events, "aclose", None)
        if callable(aclose):
            await aclose()

    async def idle(self, timeout_s: float = 30.0) -> None:
        """Return once no send or resolution is in flight and every queued venue event is applied."""
        async with asyncio.timeout(timeout_s):
            while True:
                if self._tasks:
                    await asyncio.wait(set(self._tasks))
                await asyncio.sleep(0)
                pending = getattr(self._events, "pending", None)
                queued = pending() if callable(pending) else 0
                if not self._tasks and not self._busy and not queued:
                    return
                if self._busy or queued:  # wait for the event task's next batch, without spinning
                    self._applied.clear()
                    await self._applied.wait()

    # -- submitting --------------------------------------------------------------------------

    async def submit(self, intent: OrderIntent) -> Order:
        """Commit, check and send one intent; return the order (accepted, rejected, or submitted if unknown)."""
        return (await self.submit_many((intent,)))[0]

    async def submit_many(self, intents: Iterable[OrderIntent]) -> list[Order]:
        """Commit all intents in one transaction, then check and send each (concurrently); return their orders."""
        if self._closed or not self._started:
            raise RejectedError("the order manager is closed" if self._closed else "start() the order manager first")
        batch = list(intents)
        if not batch:
            return []
        drafts = [self._draft(intent) for intent in batch]  # invalid intents refuse the batch before any write
        now = self._clock.now_ns()
        ids = await self.store.insert_intents(self._prefix, batch, venue=self.venue, mode=self.mode, time_ns=now)
        self.placed += len(ids)
        orders = [d.evolve(client_id=cid, created_ns=now, updated_ns=now) for d, cid in zip(drafts, ids, strict=True)]
        for order in orders:
            self.book.put(order)
        expected = [i.expected_price for i in batch]
        if callable(getattr(self.broker, "submit_many", None)):
            sending = self._spawn(self._send_batch(orders, expected), "send-batch")
            return list(await asyncio.shield(sending))  # a cancelled caller must not cut a send short
        sends = [
            self._spawn(self._send(o.client_id, price), f"send-{o.client_id}")
            for o, price in zip(orders, expected, strict=True)
        ]
        return list(await asyncio.shield(asyncio.gather(*sends)))

    def _draft(self, intent: OrderIntent) -> Order:
        if intent.venue != self.venue:
            raise RejectedError(f"intent for venue {intent.venue!r} sent to the order manager of {self.venue!r}")
        if self.instruments and intent.symbol not in self.instruments:
            raise RejectedError(f"{intent.symbol} is not an instrument of {self.venue}")
        return Order(
            client_id=_PENDING_ID,
            strategy=intent.strategy,
            venue=self.venue,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            type=intent.type,
            limit_price=intent.limit_price,
            mode=self.mode,
            cash_limit=intent.cash_limit,
        )

    async def _send(self, client_id: str, expected_price: Decimal | None) -> Order:
        # The lock is free unless a cancel is recording this very order, so taking it does not wait;
        # checking the status under it means an order cancelled before its turn is never sent.
        async with self.book.lock(client_id):
            order = self.book.orders[client_id]
            if order.status is not OrderStatus.NEW:
                return order
            decision = self._risk.check(order, self.book.risk_context, expected_price=expected_price)
            if not decision.accepted:
                reason = f"risk {decision.rule}: {decision.reason}"
                refused = OrderUpdate(client_id, OrderStatus.REJECTED, reason=reason, time_ns=self._clock.now_ns())
                return await self.book.update(refused, "refused by risk", locked=True) or order
            order = apply_update(order, OrderUpdate(client_id, OrderStatus.SUBMITTED, time_ns=self._clock.now_ns()))
            self.book.put(order)
        self.book.crash_point("after_intent_commit")
        return await self._deliver(order)

    async def _send_batch(self, orders: Sequence[Order], expected: Sequence[Decimal | None]) -> list[Order]:
        """Check each order, hand those risk accepts to the venue in one `submit_many` call, record all answers at once.

        For a venue that takes a batch (the paper venue: one commit for all): the orders are
        checked in turn, each counted as working before the next is checked, exactly as
        concurrent sends would; the acknowledgements and refusals are written in one statement.
        An order something else is busy with (a cancel), and every answer that is an error, take
        the one-order path (`_send`, `_deliver`) with its retries and resolution.
        """
        book, now = self.book, self._clock.now_ns()
        alone: dict[str, asyncio.Task[Order]] = {}
        records: list[tuple[OrderUpdate, str]] = []
        sending: list[Order] = []
        for order, price in zip(orders, expected, strict=True):
            cid = order.client_id
            if book.locked(cid) or book.orders[cid].status is not OrderStatus.NEW:
                alone[cid] = self._spawn(self._send(cid, price), f"send-{cid}")
                continue
            decision = self._risk.check(book.orders[cid], book.risk_context, expected_price=price)
            if not decision.accepted:
                reason = f"risk {decision.rule}: {decision.reason}"
                records.append((OrderUpdate(cid, OrderStatus.REJECTED, reason=reason, time_ns=now), "refused by risk"))
                continue
            submitted = apply_update(book.orders[cid], OrderUpdate(cid, OrderStatus.SUBMITTED, time_ns=now))
            book.put(submitted)
            sending.append(submitted)
        if sending:
            book.crash_point("after_intent_commit")
            try:
                answers: list[OrderUpdate | Exception] = await self.broker.submit_many(sending)  # type: ignore[attr-defined]
            except TransientError as exc:  # the whole batch's outcome is unknown
                answers = [exc] * len(sending)
            book.crash_point("after_send")
            for order, answer in zip(sending, answers, strict=True):
                if isinstance(answer, Exception):
                    alone[order.client_id] = self._spawn(self._deliver(order, answer), f"send-{order.client_id}")
                else:
                    records.append((answer, f"venue answered {answer.status}"))
        await book.record(records)
        finished = {cid: await task for cid, task in alone.items()}
        return [finished.get(o.client_id) or book.orders.get(o.client_id, o) for o in orders]

    async def _deliver(self, order: Order, failed: Exception | None = None) -> Order:
        """Send a submitted order, retrying 429s, and record the answer (`failed`: the first try's error, if known)."""
        client_id = order.client_id
        for attempt in range(self._max_retries + 1):
            try:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                ack = await self.broker.submit(order)
            except RateLimited as exc:
                if attempt == self._max_retries:
                    refused = OrderUpdate(client_id, OrderStatus.REJECTED, reason=f"rate limited: {exc}")
                    return await self._recorded(refused, f"rate limited {attempt + 1} times, nothing placed")
                log.warning("%s rate limited, retrying in %gs with the same client id", client_id, exc.retry_after)
                self._waiting.add(client_id)
                try:
                    await self._clock.sleep_until(self._clock.now_ns() + round(exc.retry_after * 1e9))
                finally:
                    self._waiting.discard(client_id)
                if self.book.orders[client_id].status is not OrderStatus.SUBMITTED:  # cancelled while waiting
                    return self.book.orders[client_id]
                continue
            except DuplicateOrder:
                return await self._unknown(client_id, "the venue already has this client id")
            except TransientError as exc:
                return await self._unknown(client_id, f"outcome unknown: {exc}")
            except RejectedError as exc:
                refused = OrderUpdate(client_id, OrderStatus.REJECTED, reason=str(exc), time_ns=self._clock.now_ns())
                return await self._recorded(refused, "refused by the venue")
            break
        self.book.crash_point("after_send")
        return await self._recorded(ack, f"venue answered {ack.status}")

    async def _recorded(self, update: OrderUpdate, detail: str) -> Order:
        order = await self.book.update(update, detail)
        return order if order is not None else self.book.orders[update.client_id]

    async def _unknown(self, client_id: str, why: str) -> Order:
        """Record the order as submitted with `why`, and resolve it by query in the background."""
        log.warning("order %s: %s; resolving by query", client_id, why)
        order = await self.book.persist(client_id, why)
        self._spawn(self._resolve(client_id), f"resolve-{client_id}")
        return order

    async def _resolve(self, client_id: str) -> Order | None:
        resolution = await resolve_unknown(
            self.book, self.broker, self._clock, client_id, delays_s=self.resolve_delays_s
        )
        return resolution.order

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- cancelling --------------------------------------------------------------------------

    async def cancel(self, client_id: str) -> Order:
        """Cancel an order (never blocked by risk); return the order after the venue's answer."""
        self._risk.check_cancel(client_id)
        return await self._canceller.cancel(client_id)

    async def cancel_all(self, strategy: str | None = None) -> list[Order]:
        """Cancel every open order (of `strategy`), concurrently; return the orders after the answers."""
        targets = [o.client_id for o in self.open_orders(strategy)]
        for cid in targets:
            self._risk.check_cancel(cid)
        return await self._canceller.cancel_all(targets)

    async def on_risk_state(self, change: StateChange) -> None:
        """Risk listener: cancel the scope's open orders when it is halted (the kill switch)."""
        if change.cancel_open_orders:
            log.warning("risk halted %s (%s): cancelling its open orders", change.scope, change.reason)
            await self.cancel_all(None if change.scope == GLOBAL else change.scope)

    # -- venue events ------------------------------------------------------------------------

    async def _consume(self) -> None:
        """Apply the venue's events: each time, every event queued by then, as one batch (one statement)."""
        events = self._events
        pending = getattr(events, "pending", None)
        ended = False
        while not ended:
            try:
                batch = [await anext(events)]
            except StopAsyncIteration:
                break
            while callable(pending) and pending() > 0 and len(batch) < _EVENT_BATCH:
                try:
                    batch.append(await anext(events))  # queued: returns without waiting
                except StopAsyncIteration:
                    ended = True
                    break
            self._busy = True
            try:
                await self.book.apply_events(batch)
            finally:
                self._busy = False
                self._applied.set()
        if not self._closed:
            log.error("the event stream of %s ended: no fills or order updates until a restart", self.venue)
