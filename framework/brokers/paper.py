"""`PaperBroker`: a simulated venue that fills orders exactly as the vectorbt backtest does.

The paper broker is a first-class venue behind the `Broker` protocol (not a test double): the
runner trades it in replay, dev and paper modes, and the parity check compares its fills with the
backtest's. It consumes market data, keeps cash and positions for one account, persists everything
in its own store, and can inject the failures real venues inflict.

How the engine feeds it
-----------------------
Call `on_bar(bar)` (or `on_bars([...])` for every symbol's bar of one close, in one transaction)
for every closed bar of every symbol it trades, on the same clock the feed sets (the replay feed
advances a `SimulatedClock` to each bar's close). Feed a bar *before* submitting the decisions
taken on it when `fill="close"` (they fill at the newest close the venue has seen); with the
default `fill="next_open"` either order is safe, so the engine may submit first and feed after,
keeping the venue's bar processing off the decision-to-order path. With `fill_on_ticks=True`,
also call `on_tick(tick)` for every trade. `on_bar` returns the events it caused; they are also
published on `events()`, which keeps them until someone subscribes.

When and at what price orders fill (`framework.execution`; rules in `paper_matching`)
-------------------------------------------------------------------------------------
- `fill="next_open"` (default): a market order fills at the *open* of the first bar of its symbol
  that the broker receives after accepting it and that is newer than the decision bar: the bar
  must open at or after the close of the newest bar the broker had seen for the symbol when it
  accepted the order, and must close after the order was accepted (on the broker's clock). The
  second rule refuses the decision bar itself should the engine submit before feeding it; it
  needs the clock to be at or after the decision bar's close (the replay feed's `SimulatedClock`
  is; a `WallClock` in a replay of the past never lets a bar fill, loudly rather than wrongly).
  The fill's `time_ns` is the bar's open time (the backtest labels the same fill by that bar's
  close time).
- `fill="close"`: a market order fills at once, at the close of the newest bar seen for its symbol
  (the decision bar); with no bar seen yet, at the close of the next one.
- The price is slipped against the trader; the fee is `fees * quantity * price`; the quantity is
  the order's (the engine rounds it to the instrument's step; the broker refuses one that is not
  a multiple of a known instrument's `qty_step`, or a limit price off its `tick_size`).
- Limit orders rest until a bar trades through the limit (gap fills at the open), see
  `paper_matching`. All orders are good till cancelled; no volume limit applies.
- Within one `on_bars` call, sells fill before buys (each in acceptance order), as vectorbt's
  automatic call sequence frees cash before spending it.
- Ticks (`fill_on_ticks=True`): a pending market order fills at the first trade at or after both
  its acceptance and the decision bar's close, slipped; a resting limit fills at the limit on the
  first trade strictly through it (the first trade to reach a new order may fill it at a better,
  slipped, price). Live, that is the first trade *after the order arrived*, not the bar's open: it
  models the latency the backtest ignores, so leave ticks off (the default) where parity matters.

Cash (`cash_policy`)
--------------------
- `"partial"` (default): a buy the cash cannot cover fills as much as the cash affords, by
  vectorbt's own rule (`ExecutionModel.buy_quantity`, within vectorbt's 1e-9 tolerance), and the
  rest expires; nothing affordable expires it unfilled. This is what the backtest does
  (`allow_partial=True`), so paper stays equal to the backtest even when the engine's quantity is
  a hair too large, and an engine may even leave all-in sizing to the venue by over-asking.
- `"reject"`: buys are all or nothing: refused at submit when the newest close (or the limit
  price) says the free cash (cash less the cost of other open buys) cannot cover them, expired
  unfilled when the cash falls short at the fill.
- `"allow"`: every fill happens; cash may go negative (a credit line).
Sells are never limited: the account is a margin account and may go short.

An order's own `cash_limit` (buys) applies under every policy: the order fills as much as the
limit affords at the fill price (the same vectorbt rule) and then ends, expired with what it did
not buy. The engine sizes all-in entries with it, one limit per strategy sleeve.

Faults (`paper_faults.FaultPlan`, `broker.faults`): dropped answers, 5xx after acting, 429 with
Retry-After, delayed visibility, duplicate fills, late fills after an acknowledged cancel.

State: `<directory>/<account>.sqlite3` (`paper_store`), kept by the account's book
(`paper_account`) in one transaction per operation, with exact `Decimal` money: the cash is the
seed plus exactly what the fills moved. Submits are grouped: those that arrive together (the
orders of one bar close, sent concurrently) are accepted in memory and committed in one
transaction as soon as the event loop is free, and each `submit` returns only after that commit,
so an answered submit is as durable as before, at one commit per close instead of one per order
(any other operation commits the waiting submits first). An event is published on `events()` only
after the change it reports is committed. A new broker on the same directory and account carries
on: orders, fills, positions, cash, pending orders and last bars.
Client ids are unique for ever: a second submit of one raises `DuplicateOrder` and places nothing.

Example::

    broker = PaperBroker("var/paper", model=ExecutionModel(fees=0.001, slippage=0.0005), clock=clock)
    await broker.connect()
    broker.on_bar(bar_t)                           # the decision bar
    await broker.submit(order)                      # decided at bar t's close
    events = broker.on_bar(bar_t_plus_1)            # Fill at bar t+1's open, then OrderUpdate(FILLED)
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from os import PathLike
from pathlib import Path
from typing import get_args

from framework.brokers.base import BrokerEvent
from framework.brokers.errors import DuplicateOrder, RateLimited, UnknownOrder
from framework.brokers.event_hub import EventHub, Subscription
from framework.brokers.paper_account import CashPolicy, PaperAccount
from framework.brokers.paper_faults import Fault, FaultKind, FaultPlan, raise_lost_answer, raise_rate_limit
from framework.brokers.paper_matching import ZERO, Pricing, bar_close_ns, decimal_of
from framework.brokers.paper_store import Changeset, Mark, PaperStore, VenueOrder
from framework.brokers.paper_submits import SubmitGroups
from framework.clock import Clock, WallClock
from framework.errors import ParameterError, RejectedError, TransientError
from framework.events import Bar, Tick
from framework.execution import ExecutionModel
from framework.instruments import Instrument
from framework.orders.model import Fill, Order, OrderSide, OrderStatus, OrderType, OrderUpdate
from framework.orders.state import exact_arithmetic

__all__ = ["CashPolicy", "PaperBroker"]

log = logging.getLogger(__name__)


class PaperBroker:
    """A simulated venue for one account, filling by the backtest's execution model (module docstring).

    `directory` holds the venue's store (one file per `account`). `cash` (default: the model's
    cash, in `currency`) only seeds a new store; an existing one keeps its balances. `instruments`,
    when given, are the only symbols the venue trades, with their lot and tick sizes and currency;
    without them any symbol trades in `currency`.
    """

    def __init__(
        self,
        directory: str | PathLike[str],
        *,
        model: ExecutionModel | None = None,
        instruments: Iterable[Instrument] | Mapping[str, Instrument] = (),
        cash: Decimal | float | Mapping[str, Decimal | float] | None = None,
        currency: str = "USD",
        account: str = "main",
        name: str = "paper",
        clock: Clock | None = None,
        faults: FaultPlan | None = None,
        cash_policy: CashPolicy = "partial",
        fill_on_ticks: bool = False,
        durable: bool = False,
    ) -> None:
        if cash_policy not in get_args(CashPolicy):
            raise ParameterError(f"cash_policy must be one of {get_args(CashPolicy)}, got {cash_policy!r}")
        if not account or "/" in account or account.startswith("."):
            raise ParameterError(f"account must be a plain file name, got {account!r}")
        self.name = name
        self.account = account
        self.model = model or ExecutionModel()
        self.cash_policy: CashPolicy = cash_policy
        self.fill_on_ticks = fill_on_ticks
        self.faults = faults if faults is not None else FaultPlan()
        self.path = Path(directory) / f"{account}.sqlite3"
        items = instruments.values() if isinstance(instruments, Mapping) else instruments
        self._instruments = {i.symbol: i for i in items}
        self._currency = currency
        self._clock: Clock = clock if clock is not None else WallClock()
        self._pricing = Pricing.of(self.model)
        self._durable = durable
        self._seed = _initial_cash(cash, currency, self.model)
        self._hub: EventHub[BrokerEvent] = EventHub()
        self._connected = False
        self._book: PaperAccount | None = None
        self._last_trade: dict[str, tuple[int, float]] = {}
        self.opens: Callable[[str], tuple[int, int, float] | None] | None = None
        """Where the venue sees the bar in progress of a symbol: `(open_ns, end_ns, open)` (set by a live runner).

        With it, a market order under the `next_open` model fills as soon as the open of its bar is
        known (at acceptance when the bar's first trade came first), at that open, instead of when
        the bar closes: the same price and quantity, reported about a bar earlier, as a real venue
        would; an order accepted before that first trade fills when `on_opens` says the bar opened.
        Orders of one call are filled sells first, as `on_bars` does. Replays leave it None.
        """
        self._submits = SubmitGroups(self._commit_book, self._hub.publish, f"{name}/{account}")
        self._open_store()

    # -- the Broker protocol -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the venue's store (again, after `close`) and accept requests."""
        if self._book is None:
            self._open_store()
        self._hub.reopen()
        self._connected = True

    async def close(self) -> None:
        """Stop accepting requests, end the event streams and close the store."""
        self._submits.settle()
        self._connected = False
        self._hub.close()
        if self._book is not None:
            self._book.store.close()
            self._book = None

    async def submit(self, order: Order) -> OrderUpdate:
        """Place `order`; return the venue's answer: accepted, or rejected with a reason.

        Raises `RateLimited` (nothing placed), `DuplicateOrder` (the client id is taken: nothing
        placed, query it instead), or `TransientError` when an injected fault lost the answer of
        an order the venue did place.
        """
        self._require_connected()
        faults = self.faults.take("submit", order.client_id)
        raise_rate_limit(faults, "submit", order.client_id)
        book = self._require_book()
        if book.order(order.client_id) is not None:
            raise DuplicateOrder(order.client_id)
        group = self._submits.current()
        with book.collect():  # on failure the group is dropped and its other members answered
            try:
                early: list[VenueOrder] = []
                update = self._accept(order, faults, group.events, early)
                self._fill_at_open(early, group.events)
            except BaseException as exc:
                self._submits.fail(exc)
                raise
        await asyncio.shield(group.committed)
        raise_lost_answer(faults, "submit", order.client_id)
        return update

    async def submit_many(self, orders: Sequence[Order]) -> list[OrderUpdate | Exception]:
        """Place several orders in one transaction; return each one's answer, or the error `submit` would raise.

        The answers are those of `submit` order by order (accepted or rejected; `RateLimited`,
        `DuplicateOrder` or `TransientError` in its place), given once all of them are committed.
        A failed commit raises, and then none of them is placed.
        """
        self._require_connected()
        book = self._require_book()
        group = self._submits.current()
        answers: list[OrderUpdate | Exception] = []
        lost: list[tuple[int, dict[FaultKind, Fault]]] = []
        with book.collect():
            try:
                early: list[VenueOrder] = []
                stored = book.store.known([o.client_id for o in orders])  # one query for the duplicate checks
                for k, order in enumerate(orders):
                    faults = self.faults.take("submit", order.client_id)
                    try:
                        raise_rate_limit(faults, "submit", order.client_id)
                        if order.client_id in stored or book.pending(order.client_id):
                            raise DuplicateOrder(order.client_id)
                    except (RateLimited, DuplicateOrder) as exc:  # nothing placed
                        answers.append(exc)
                        continue
                    answers.append(self._accept(order, faults, group.events, early))
                    lost.append((k, faults))
                self._fill_at_open(early, group.events)
            except BaseException as exc:
                self._submits.fail(exc)
                raise
        await asyncio.shield(group.committed)
        for k, faults in lost:
            try:
                raise_lost_answer(faults, "submit", orders[k].client_id)
            except TransientError as exc:
                answers[k] = exc
        return answers

    async def cancel(self, client_id: str) -> OrderUpdate:
        """Cancel an open order; return the acknowledgement (cancelled).

        Cancelling a cancelled order acknowledges it again; an unknown one raises `UnknownOrder`,
        a filled, rejected or expired one `RejectedError`.
        """
        self._require_connected()
        faults = self.faults.take("cancel", client_id)
        raise_rate_limit(faults, "cancel", client_id)
        book = self._require_book()
        record = book.order(client_id)
        if record is None:
            raise UnknownOrder(client_id)
        order = record.order
        if not order.is_active:
            if order.status is not OrderStatus.CANCELLED:
                raise RejectedError(f"cannot cancel order {client_id!r}: it is {order.status.value}")
            update = OrderUpdate(client_id, OrderStatus.CANCELLED, order.venue_order_id, order.reason, self._now())
        else:
            with self._changing() as events:
                now = self._now()
                record.order = order.evolve(status=OrderStatus.CANCELLED, updated_ns=now)
                record.ghost = FaultKind.LATE_FILL in faults
                book.save(record)
                update = OrderUpdate(client_id, OrderStatus.CANCELLED, order.venue_order_id, "", now)
                events.append(update)
        raise_lost_answer(faults, "cancel", client_id)
        return update

    async def query(self, client_id: str) -> Order | None:
        """Return the venue's view of an order, or None if it never saw it (or does not show it yet)."""
        self._require_connected()
        self._submits.settle()
        record = self._require_book().order(client_id)
        if record is None or self._hidden(record, consume=True):
            return None
        return record.order

    async def open_orders(self) -> list[Order]:
        """Return the open orders, in acceptance order (those not visible yet left out)."""
        self._require_connected()
        self._submits.settle()
        live = self._require_book().live.values()
        return [r.order for r in live if r.order.is_active and not self._hidden(r, consume=False)]

    async def positions(self) -> dict[str, Decimal]:
        """Return the non-zero net position per symbol."""
        self._require_connected()
        self._submits.settle()
        return {symbol: qty for symbol, qty in self._require_book().positions.items() if qty != 0}

    async def balances(self) -> dict[str, Decimal]:
        """Return the cash per currency."""
        self._require_connected()
        self._submits.settle()
        return dict(self._require_book().balances)

    def events(self) -> Subscription[BrokerEvent]:
        """Return a stream of every `OrderUpdate` and `Fill`, in the order they happened.

        Per order: accepted (or rejected), then each fill followed by the status it leaves
        (partially filled, filled), or cancelled / expired. Events published before the first
        subscriber arrives are kept for it. The stream ends when the broker is closed.
        """
        return self._hub.subscribe()

    # -- venue queries beyond the protocol -------------------------------------------------------

    async def fills(self, client_id: str | None = None) -> list[Fill]:
        """Return the venue's fills (of one order), in execution order: its trade history."""
        self._require_connected()
        self._submits.settle()
        return self._require_book().store.fills(client_id)

    async def equity(self) -> dict[str, Decimal]:
        """Return cash plus positions valued at the newest price seen (trade or bar close), per currency."""
        self._require_connected()
        self._submits.settle()
        book = self._require_book()
        equity = dict(book.balances)
        for symbol, qty in book.positions.items():
            if qty == 0:
                continue
            seen = [(m.close_ns, m.close) for m in (book.marks.get(symbol),) if m is not None]
            seen += [t for t in (self._last_trade.get(symbol),) if t is not None]
            if not seen:
                raise RejectedError(f"no price seen for {symbol}: cannot value its position")
            price = max(seen)[1]
            currency = book.currency_of(symbol)
            with exact_arithmetic():
                equity[currency] = equity.get(currency, ZERO) + qty * decimal_of(price)
        return equity

    def last_bar(self, symbol: str) -> Mark | None:
        """Return the newest bar seen for `symbol` (its times and close), if any."""
        return None if self._book is None else self._book.marks.get(symbol)

    # -- market data -------------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[BrokerEvent]:
        """Take one closed bar: fill what it fills; return the events it caused (also published)."""
        return self.on_bars((bar,))

    def on_bars(self, bars: Iterable[Bar]) -> list[BrokerEvent]:
        """Take closed bars of one or more symbols in one transaction; sells fill before buys."""
        book = self._require_book()
        with self._changing() as events:
            due: list[tuple[VenueOrder, Bar, int]] = []
            for bar in bars:
                if not all(map(math.isfinite, (bar.open, bar.high, bar.low, bar.close))):
                    continue
                close_ns = bar_close_ns(bar)
                mark = book.marks.get(bar.symbol)
                if mark is None or close_ns >= mark.close_ns:
                    book.set_mark(Mark(bar.symbol, bar.open_ns, close_ns, bar.close))
                for record in book.by_symbol.get(bar.symbol, {}).values():
                    if (record.not_before_ns is None or bar.open_ns >= record.not_before_ns) and (
                        close_ns > record.accepted_ns
                    ):
                        due.append((record, bar, close_ns))
            due.sort(key=lambda d: (d[0].order.side is OrderSide.BUY, d[0].seq))
            for record, bar, close_ns in due:
                if record.live:
                    self._match_bar(record, bar, close_ns, events)
        return events

    def on_tick(self, tick: Tick) -> list[BrokerEvent]:
        """Take one trade: remember its price; with `fill_on_ticks`, fill what it fills."""
        self._last_trade[tick.symbol] = (tick.time_ns, tick.price)
        if not self.fill_on_ticks or not math.isfinite(tick.price) or tick.price <= 0:
            return []
        due = [r for r in self._require_book().by_symbol.get(tick.symbol, {}).values() if self._tick_reaches(r, tick)]
        if not due:
            return []
        with self._changing() as events:
            for record in due:
                if record.live:
                    self._match_tick(record, tick, events)
        return events

    # -- matching ----------------------------------------------------------------------------------

    def _accept(
        self,
        order: Order,
        faults: dict[FaultKind, Fault],
        events: list[BrokerEvent],
        early: list[VenueOrder] | None = None,
    ) -> OrderUpdate:
        book = self._require_book()
        now = self._now()
        seq, venue_id = book.next_order()
        reason = book.refusal(order)
        status = OrderStatus.REJECTED if reason else OrderStatus.ACCEPTED
        mark = book.marks.get(order.symbol)
        record = VenueOrder(
            order.evolve(
                status=status,
                reason=reason,
                venue_order_id=venue_id,
                filled=ZERO,
                avg_price=None,
                fees=ZERO,
                fill_ids=frozenset(),
                updated_ns=now,
            ),
            seq,
            accepted_ns=now,
            not_before_ns=None if mark is None else mark.close_ns,
            duplicate_fills=FaultKind.DUPLICATE_FILL in faults,
        )
        update = OrderUpdate(order.client_id, status, venue_id, reason, now)
        events.append(update)
        if reason:
            log.info("paper venue rejected %s: %s", order.client_id, reason)
            book.add(record)
            return update
        delay = faults.get(FaultKind.DELAY_VISIBILITY)
        if delay is not None:
            record.hidden_queries = delay.hidden_queries
            record.hidden_until_ns = now + delay.hidden_ns if delay.hidden_ns else 0
        book.add(record)
        if early is not None and self.opens is not None and order.type is OrderType.MARKET:
            early.append(record)  # filled at its bar's open if that is known already (`_fill_at_open`)
        if self.model.fill == "close" and mark is not None:
            if order.type is OrderType.MARKET:
                book.execute(record, self._pricing.market(order.side, mark.close), mark.close, mark.close_ns, events)
            else:
                self._match_limit(record, mark.close, mark.close, mark.close, mark.close_ns, mark.close_ns, events)
        return update

    def on_opens(self, symbols: Iterable[str]) -> list[BrokerEvent]:
        """Bars of `symbols` just opened (their first trade): fill the market orders that waited for that open.

        One transaction for all of them; nothing is written when no order waits. See `opens`.
        """
        if self.opens is None or self.model.fill != "next_open":
            return []
        book = self._require_book()
        waiting = [
            record
            for symbol in dict.fromkeys(symbols)
            for record in book.by_symbol.get(symbol, {}).values()
            if record.live and record.order.type is OrderType.MARKET
        ]
        if not waiting:
            return []
        with self._changing() as events:
            self._fill_at_open(waiting, events)
        return events

    def _fill_at_open(self, records: list[VenueOrder], events: list[BrokerEvent]) -> None:
        """Fill the just accepted market `records` whose bar is in progress at its open (see `opens`)."""
        if self.opens is not None and records and self.model.fill == "next_open":
            self._require_book().fill_at_open(records, self.opens, events)

    def _match_bar(self, record: VenueOrder, bar: Bar, close_ns: int, events: list[BrokerEvent]) -> None:
        order = record.order
        if order.type is OrderType.LIMIT:
            self._match_limit(record, bar.open, bar.high, bar.low, bar.open_ns, close_ns, events)
        elif self.model.fill == "next_open":
            self._require_book().execute(
                record, self._pricing.market(order.side, bar.open), bar.open, bar.open_ns, events
            )
        else:
            self._require_book().execute(
                record, self._pricing.market(order.side, bar.close), bar.close, close_ns, events
            )

    def _match_limit(
        self,
        record: VenueOrder,
        open_: float,
        high: float,
        low: float,
        open_ns: int,
        close_ns: int,
        events: list[BrokerEvent],
    ) -> None:
        order = record.order
        assert order.limit_price is not None
        price = self._pricing.limit(order.side, order.limit_price, open_, high, low)
        if price is not None:
            gapped = decimal_of(open_) * order.side.sign < order.limit_price * order.side.sign
            self._require_book().execute(record, price, None, open_ns if gapped else close_ns, events)

    def _tick_reaches(self, record: VenueOrder, tick: Tick) -> bool:
        if not record.live or tick.time_ns < record.accepted_ns:
            return False
        if record.not_before_ns is not None and tick.time_ns < record.not_before_ns:
            return False
        order = record.order
        if order.type is OrderType.MARKET:
            return self.model.fill == "next_open"
        assert order.limit_price is not None
        through = decimal_of(tick.price) * order.side.sign < order.limit_price * order.side.sign
        return through or not record.seen_print

    def _match_tick(self, record: VenueOrder, tick: Tick, events: list[BrokerEvent]) -> None:
        order = record.order
        if order.type is OrderType.MARKET:
            market = self._pricing.market(order.side, tick.price)
            self._require_book().execute(record, market, tick.price, tick.time_ns, events)
            return
        assert order.limit_price is not None
        first = not record.seen_print
        record.seen_print = True
        price = (
            self._pricing.limit(order.side, order.limit_price, tick.price, tick.price, tick.price)
            if first
            else order.limit_price
        )
        if price is None:
            self._require_book().save(record)
        else:
            self._require_book().execute(record, price, None, tick.time_ns, events)

    # -- bookkeeping -------------------------------------------------------------------------------

    def _hidden(self, record: VenueOrder, *, consume: bool) -> bool:
        """Return whether an injected visibility delay still hides `record` (counting this query)."""
        hidden = bool(record.hidden_until_ns) and self._now() < record.hidden_until_ns
        if record.hidden_queries > 0:
            hidden = True
            if consume:
                record.hidden_queries -= 1
                with self._changing():
                    self._require_book().save(record)
        return hidden

    @contextmanager
    def _changing(self) -> Iterator[list[BrokerEvent]]:
        """Run one venue operation in one transaction of the book; publish its events once committed."""
        self._submits.settle()
        events: list[BrokerEvent] = []
        with self._require_book().transaction():
            yield events
        for event in events:
            self._hub.publish(event)

    def _commit_book(self) -> None:
        self._require_book().commit()

    def _open_store(self) -> None:
        store = PaperStore(self.path, durable=self._durable)
        with store.transaction():
            if store.meta("created_ns") is None:
                store.set_meta("created_ns", str(self._clock.now_ns()))
                store.write(Changeset(balances=dict(self._seed)))
        self._book = PaperAccount(
            store,
            name=self.account,
            pricing=self._pricing,
            cash_policy=self.cash_policy,
            instruments=self._instruments,
            currency=self._currency,
            clock=self._clock,
        )

    def _require_book(self) -> PaperAccount:
        if self._book is None:
            raise TransientError(f"paper venue {self.name}/{self.account} is closed")
        return self._book

    def _require_connected(self) -> None:
        if not self._connected:
            raise TransientError(f"paper venue {self.name}/{self.account} is not connected")

    def _now(self) -> int:
        return self._clock.now_ns()


def _initial_cash(
    cash: Decimal | float | Mapping[str, Decimal | float] | None, currency: str, model: ExecutionModel
) -> dict[str, Decimal]:
    if cash is None:
        return {currency: decimal_of(model.cash)}
    if isinstance(cash, Mapping):
        return {str(c): a if isinstance(a, Decimal) else decimal_of(a) for c, a in cash.items()}
    return {currency: cash if isinstance(cash, Decimal) else decimal_of(cash)}
