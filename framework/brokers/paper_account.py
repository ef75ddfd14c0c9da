"""One account's book at the paper venue: cash, positions, live orders and last bars, kept in its store.

`PaperAccount` is the paper venue's bookkeeping, apart from its matching rules (`paper_matching`)
and its client-facing protocol (`paper`): it executes fills under the cash policy, expires what
cannot fill, and writes every change of one venue operation (or of a group of submits) in one
transaction of its store.
Memory is a cache of the store: if a change fails, the store rolls back and the memory is
reloaded from it, so the two never disagree.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Literal

from framework.brokers.base import BrokerEvent
from framework.brokers.paper_matching import ZERO, Pricing, decimal_of, step_of
from framework.brokers.paper_store import Changeset, Mark, PaperStore, VenueOrder
from framework.clock import Clock
from framework.instruments import Instrument
from framework.orders.model import Fill, Order, OrderSide, OrderStatus, OrderUpdate
from framework.orders.state import divide, exact_arithmetic

__all__ = ["CashPolicy", "PaperAccount"]

log = logging.getLogger(__name__)

CashPolicy = Literal["partial", "reject", "allow"]


class PaperAccount:
    """The book of account `name`, over an open `PaperStore`."""

    def __init__(
        self,
        store: PaperStore,
        *,
        name: str,
        pricing: Pricing,
        cash_policy: CashPolicy,
        instruments: Mapping[str, Instrument],
        currency: str,
        clock: Clock,
    ) -> None:
        self.store = store
        self.name = name
        self.pricing = pricing
        self.cash_policy = cash_policy
        self.instruments = instruments
        self.currency = currency
        self.clock = clock
        self.balances: dict[str, Decimal] = {}
        self.positions: dict[str, Decimal] = {}
        self.marks: dict[str, Mark] = {}
        self.live: dict[str, VenueOrder] = {}
        self.by_symbol: dict[str, dict[str, VenueOrder]] = {}
        self.order_seq = 0
        self.fill_seq = 0
        self.changes = Changeset()
        self._sizes: dict[str, tuple[Decimal, Decimal]] = {}  # lot and tick size by symbol, as Decimals
        self.load()

    def load(self) -> None:
        """(Re)read the whole book from the store."""
        store = self.store
        self.balances = store.balances()
        self.positions = store.positions()
        self.marks = store.marks()
        self.order_seq = store.last_seq("orders")
        self.fill_seq = store.last_seq("fills")
        self.live = {r.order.client_id: r for r in store.live_orders()}
        self.by_symbol = {}
        for client_id, record in self.live.items():
            self.by_symbol.setdefault(record.order.symbol, {})[client_id] = record

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run one venue operation: its changes are written in one transaction, or none are.

        Money arithmetic inside is exact (`exact_arithmetic`): the venue's cash is its seed plus
        exactly the cash its fills moved, as the runner's position book computes it. Call it with
        no collected changes waiting (the broker commits its grouped submits first).
        """
        with self.collect():
            yield
        self.commit()

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Add one operation's changes to those waiting for `commit`; if it raises, drop them all and reload.

        Several operations may collect before one `commit` (the broker groups the submits that
        arrive together into one transaction); a failure of one fails them all, and the memory
        is reloaded from the store, so it never holds what the store does not.
        """
        try:
            with exact_arithmetic():
                yield
        except BaseException:
            self.discard()
            raise

    def commit(self) -> None:
        """Write the collected changes in one transaction; on failure reload the memory from the store and raise."""
        changes, self.changes = self.changes, Changeset()
        if not changes:
            return
        try:
            with self.store.transaction():
                self.store.write(changes)
        except BaseException:
            self.load()
            raise

    def discard(self) -> None:
        """Drop the collected changes and reload the memory from the store."""
        self.changes = Changeset()
        self.load()

    def order(self, client_id: str) -> VenueOrder | None:
        """Return an order by client id, live or not (committed or collected)."""
        return self.live.get(client_id) or self.changes.orders.get(client_id) or self.store.order(client_id)

    def pending(self, client_id: str) -> bool:
        """Return whether an order is live or collected (what `order` finds without asking the store)."""
        return client_id in self.live or client_id in self.changes.orders

    def next_order(self) -> tuple[int, str]:
        """Return the sequence number and venue order id of a new order."""
        self.order_seq += 1
        return self.order_seq, f"{self.name}-O{self.order_seq}"

    def add(self, record: VenueOrder) -> None:
        """Record a new order (live if it can fill)."""
        if record.live:
            self.live[record.order.client_id] = record
            self.by_symbol.setdefault(record.order.symbol, {})[record.order.client_id] = record
        self.save(record)

    def save(self, record: VenueOrder) -> None:
        """Write `record` with the current change, and forget it as live once it can no longer fill."""
        self.changes.orders[record.order.client_id] = record
        if not record.live:
            client_id = record.order.client_id
            self.live.pop(client_id, None)
            by_symbol = self.by_symbol.get(record.order.symbol)
            if by_symbol is not None:
                by_symbol.pop(client_id, None)

    def set_mark(self, mark: Mark) -> None:
        """Remember the newest bar of a symbol."""
        self.marks[mark.symbol] = self.changes.marks[mark.symbol] = mark

    def currency_of(self, symbol: str) -> str:
        """Return the currency `symbol` is traded in."""
        instrument = self.instruments.get(symbol)
        return self.currency if instrument is None else instrument.currency

    def step(self, order: Order) -> Decimal:
        """Return the quantity step of an order's instrument (or the one its quantity implies)."""
        instrument = self.instruments.get(order.symbol)
        if instrument is None:
            return step_of(order.quantity)
        return self.sizes(instrument)[0]

    def sizes(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        """Return an instrument's lot and tick size as `Decimal`s (worked out once per symbol)."""
        sizes = self._sizes.get(instrument.symbol)
        if sizes is None:
            sizes = self._sizes[instrument.symbol] = (decimal_of(instrument.qty_step), decimal_of(instrument.tick_size))
        return sizes

    def refusal(self, order: Order) -> str:
        """Return why the venue refuses `order` at submit, or an empty string."""
        instrument = self.instruments.get(order.symbol)
        if self.instruments and instrument is None:
            return f"unknown symbol {order.symbol}"
        if instrument is not None:
            step, tick = self.sizes(instrument)
            if order.quantity % step != 0:
                return f"quantity {order.quantity} is not a multiple of the lot size {step}"
            if order.limit_price is not None and order.limit_price % tick != 0:
                return f"limit price {order.limit_price} is not a multiple of the tick size {tick}"
        if self.cash_policy == "reject" and order.side is OrderSide.BUY:
            estimate = self.estimated_cost(order)
            if estimate is not None:
                currency = self.currency_of(order.symbol)
                reserved = sum(
                    (self.estimated_cost(r.order) or ZERO)
                    for r in self.live.values()
                    if r.order.side is OrderSide.BUY and self.currency_of(r.order.symbol) == currency
                )
                free = self.balances.get(currency, ZERO) - reserved
                if estimate > free:
                    return f"insufficient cash: needs about {estimate:.2f} {currency}, {free:.2f} free"
        return ""

    def estimated_cost(self, order: Order) -> Decimal | None:
        """Return what the rest of `order` would cost at its limit or the last mark (None without either)."""
        if order.limit_price is not None:
            price = order.limit_price
        elif (mark := self.marks.get(order.symbol)) is not None:
            price = self.pricing.market(order.side, mark.close)
        else:
            return None
        cost = self.pricing.cost(order.remaining, price)
        return cost if order.cash_limit is None else min(cost, order.cash_limit)

    def fill_at_open(
        self,
        records: list[VenueOrder],
        opens: Callable[[str], tuple[int, int, float] | None],
        events: list[BrokerEvent],
    ) -> None:
        """Fill market `records` at the open of their bar in progress (`opens(symbol)`) when it is theirs, sells first.

        Their bar is the first to open at or after `not_before_ns` and to close after acceptance,
        as for `PaperBroker.on_bars`; the bar an order was decided on never fills it.
        """
        for record in sorted(records, key=lambda r: (r.order.side is OrderSide.BUY, r.seq)):
            forming = opens(record.order.symbol)
            if forming is None or not record.live:
                continue
            open_ns, end_ns, price = forming
            if record.not_before_ns is not None and open_ns < record.not_before_ns:
                continue
            if end_ns <= record.accepted_ns or not math.isfinite(price) or price <= 0:
                continue
            self.execute(record, self.pricing.market(record.order.side, price), price, open_ns, events)

    def execute(
        self, record: VenueOrder, price: Decimal, slipped_from: float | None, time_ns: int, events: list[BrokerEvent]
    ) -> None:
        """Fill `record` at `price` for as much as the cash policy allows; expire what cannot fill."""
        order = record.order
        wanted = order.remaining
        quantity = wanted
        currency = self.currency_of(order.symbol)
        limited = False
        if order.side is OrderSide.BUY and order.cash_limit is not None:
            budget = order.cash_limit - (order.avg_price or ZERO) * order.filled - order.fees
            quantity = self.pricing.affordable(budget, wanted, price, slipped_from, self.step(order))
            limited = quantity < wanted
        if order.side is OrderSide.BUY and self.cash_policy != "allow":
            cash = self.balances.get(currency, ZERO)
            affordable = self.pricing.affordable(cash, quantity, price, slipped_from, self.step(order))
            if self.cash_policy == "reject" and affordable < quantity:
                affordable = ZERO
            limited = limited and affordable == quantity
            quantity = affordable
        if quantity > 0:
            self._fill(record, quantity, price, time_ns, currency, events)
        if limited:
            spent = order.cash_limit
            self.expire(record, f"cash limit {spent} reached; {wanted - quantity} not bought", events)
        elif quantity < wanted:
            short = wanted - quantity
            needed = self.pricing.cost(short, price)
            self.expire(record, f"insufficient cash for {short} more: needs {needed:.2f} {currency}", events)

    def expire(self, record: VenueOrder, reason: str, events: list[BrokerEvent]) -> None:
        """End an order that cannot fill (a cancelled order still due a late fill just ends)."""
        if record.ghost:
            record.ghost = False
        else:
            now = self.clock.now_ns()
            order = record.order = record.order.evolve(status=OrderStatus.EXPIRED, reason=reason, updated_ns=now)
            events.append(OrderUpdate(order.client_id, OrderStatus.EXPIRED, order.venue_order_id, reason, now))
        self.save(record)

    def _fill(
        self,
        record: VenueOrder,
        quantity: Decimal,
        price: Decimal,
        time_ns: int,
        currency: str,
        events: list[BrokerEvent],
    ) -> None:
        order = record.order
        self.fill_seq += 1
        fee = self.pricing.fee(quantity, price)
        fill = Fill(
            fill_id=f"{self.name}-T{self.fill_seq}",
            client_id=order.client_id,
            venue=order.venue,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=fee,
            time_ns=time_ns,
            strategy=order.strategy,
            mode=order.mode,
        )
        notional = quantity * price
        cash = self.balances[currency] = self.balances.get(currency, ZERO) - notional * order.side.sign - fee
        position = self.positions[order.symbol] = self.positions.get(order.symbol, ZERO) + quantity * order.side.sign
        filled = order.filled + quantity
        average = price if order.avg_price is None else divide(order.avg_price * order.filled + notional, filled)
        status = order.status
        if not record.ghost:
            status = OrderStatus.FILLED if filled >= order.quantity else OrderStatus.PARTIALLY_FILLED
        elif filled >= order.quantity:
            record.ghost = False
        record.order = order.evolve(
            status=status,
            filled=filled,
            avg_price=average,
            fees=order.fees + fee,
            fill_ids=order.fill_ids | {fill.fill_id},
            updated_ns=self.clock.now_ns(),
        )
        self.changes.fills.append((self.fill_seq, fill))
        self.changes.balances[currency] = cash
        self.changes.positions[order.symbol] = position
        self.save(record)
        events.append(fill)
        if record.duplicate_fills:
            log.info("paper venue fault: publishing fill %s twice", fill.fill_id)
            events.append(fill)
        if status is not OrderStatus.CANCELLED:
            events.append(OrderUpdate(order.client_id, status, order.venue_order_id, "", time_ns))
