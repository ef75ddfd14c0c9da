"""Real orders on any exchange ccxt supports, behind the `Broker` protocol.

`CcxtBroker` places, cancels and queries orders with ccxt's async client (its rate limiter on),
identified by rata's own client order id, and reports what happens to them on `events()`:

- `submit` sends the order once. The venue's refusal raises `RejectedError` with its message; an
  unanswered request (timeout, dropped connection, 5xx, a body cut short, 429) raises
  `TransientError`, and then the outcome is UNKNOWN: the broker refuses to send that client id
  again until `query(client_id)` has said whether the venue has it. An accepted order returns
  `accepted`; its fills and later states arrive on `events()`.
- `query(client_id)` asks the venue for the order by client id (ccxt's `fetch_order` with the
  venue's client-id parameter). Venues want the symbol with it: the broker knows it for the orders
  it sent, tracked or listed, else it tries the `symbols` it was given, in turn.
- `events()` is fed by polling, every `poll_interval_s` of event-loop time, the open orders of
  the symbols with live orders, the final state of those that left the list, and the trades of
  orders whose filled quantity grew (`fetch_order_trades`). ccxt.pro's user-data streams are not
  used: Binance spot's now needs its WebSocket API session, and polling is the one path that
  works the same on every venue. Fills come first, each once per venue trade id; a status is
  reported once the fills behind it have been (so `filled` never precedes the fills); a state
  never goes backwards, and a cancel's own answer is not repeated on the stream.
- 429 and 418 answers block every request for the `Retry-After` the venue gave (`RateLimited`,
  raised without sending), so a rate-limited runner does not earn itself a ban.
- A client id the venue already holds is refused with `DuplicateOrder` (query it instead); a
  cancel of an order the venue does not hold open raises `UnknownOrder`.

Quantities and prices are rounded with the market's precision (`amount_to_precision`,
`price_to_precision`) before sending; `instrument(symbol)` gives the same tick and step to the
sizing code, so in practice nothing is rounded here. `sandbox=True` switches ccxt to the venue's
test URLs (`set_sandbox_mode`); URL overrides in `config["urls"]["api"]` then apply on top of
them. Quirks of a venue (Binance's client-id pattern, its costly symbol-less open-orders call, its
wallet calls at start-up) live in `framework.brokers.venues`.

Example (in the runner, live mode):

    creds = credentials_from_env("binance")
    broker = CcxtBroker("binance", api_key=creds.api_key, secret=creds.secret, symbols=["BTC/USDT"])
    await broker.connect()
    update = await broker.submit(order)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import ccxt

from framework.brokers.base import BrokerEvent
from framework.brokers.ccxt_mapping import (
    TRANSPORT_ERRORS,
    decimal_or_none,
    order_from_ccxt,
    order_status,
    str_or_none,
    translate_error,
)
from framework.brokers.ccxt_tracking import TrackedOrder
from framework.brokers.credentials import credentials_from_env
from framework.brokers.errors import DuplicateOrder, RateLimited, UnknownOrder
from framework.brokers.venues import broker_venue_for, merged_config
from framework.clock import Clock, WallClock
from framework.data.backfill import instrument_from_market, make_exchange
from framework.errors import RejectedError, TransientError, UnknownNameError
from framework.instruments import Instrument
from framework.orders.model import Fill, Mode, Order, OrderStatus, OrderType, OrderUpdate

__all__ = ["CcxtBroker"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_NS = 1_000_000_000


class CcxtBroker:
    """A ccxt exchange account as a `Broker`; see the module docstring."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        sandbox: bool = False,
        config: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        symbols: Sequence[str] = (),
        mode: Mode = Mode.LIVE,
        poll_interval_s: float | None = 1.0,
        name: str | None = None,
    ) -> None:
        if not api_key or not secret:
            raise RejectedError(f"{exchange_id}: an API key and secret are needed to trade")
        if poll_interval_s is not None and not (math.isfinite(poll_interval_s) and poll_interval_s > 0):
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        self.name = name or exchange_id
        self.mode = mode
        self._clock: Clock = clock or WallClock()
        self._symbols = list(dict.fromkeys(symbols))
        self._poll_interval_s = poll_interval_s
        self._venue = broker_venue_for(exchange_id)
        settings = merged_config(self._venue.config(self._symbols), config or {})
        self._exchange: Any = make_exchange(exchange_id, config={**settings, "apiKey": api_key, "secret": secret})
        if sandbox:
            try:
                self._exchange.set_sandbox_mode(True)
            except ccxt.NotSupported as exc:
                raise RejectedError(f"{exchange_id} has no sandbox/testnet: {exc}") from exc
            overrides = settings.get("urls", {}).get("api")
            if isinstance(overrides, Mapping) and isinstance(self._exchange.urls.get("api"), dict):
                self._exchange.urls["api"].update(overrides)
        self._watch_rate_limits()
        self._blocked_until_ns = 0
        self._retry_after_s: float | None = None
        self._tracked: dict[str, TrackedOrder] = {}
        self._done: dict[str, Order] = {}
        self._symbol_of: dict[str, str] = {}
        self._unresolved: dict[str, Order] = {}
        self._instruments: dict[str, Instrument] = {}
        self._queue: asyncio.Queue[BrokerEvent] = asyncio.Queue()
        self._poller: asyncio.Task[None] | None = None
        self._connected = False

    @classmethod
    def from_env(cls, exchange_id: str, environ: Mapping[str, str] | None = None, **kwargs: Any) -> CcxtBroker:
        """Return a broker with the API key and secret from `RATA_<EXCHANGE>_API_KEY` / `_SECRET`."""
        creds = credentials_from_env(exchange_id, environ)
        return cls(exchange_id, api_key=creds.api_key, secret=creds.secret, **kwargs)

    def __repr__(self) -> str:
        return f"CcxtBroker({self.name!r}, sandbox={self.sandbox}, symbols={self._symbols!r})"

    @property
    def sandbox(self) -> bool:
        """Return whether ccxt is in sandbox (testnet) mode."""
        return bool(getattr(self._exchange, "isSandboxModeEnabled", False))

    @property
    def api_urls(self) -> dict[str, Any]:
        """Return the REST endpoints ccxt is using (live, sandbox, or overridden)."""
        api = self._exchange.urls.get("api")
        return dict(api) if isinstance(api, Mapping) else {"rest": api}

    # ---------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Load markets, check the symbols exist and the credentials work, start polling."""
        if self._connected:
            return
        await self._call("load markets", self._exchange.load_markets)
        unknown = [s for s in self._symbols if s not in self._exchange.markets]
        if unknown:
            raise UnknownNameError(f"{self.name} symbol", unknown[0], sorted(self._exchange.markets)[:20])
        await self._call("authenticate (fetch balance)", self._exchange.fetch_balance)
        self._connected = True
        if self._poll_interval_s is not None and self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever(self._poll_interval_s), name=f"{self.name}-poller")
            self._poller.add_done_callback(self._poller_done)

    async def close(self) -> None:
        """Stop polling and close ccxt's HTTP session."""
        self._connected = False
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self._exchange.close()

    def instrument(self, symbol: str) -> Instrument:
        """Return `symbol`'s instrument with the venue's tick size and quantity step (after `connect`)."""
        if symbol not in self._instruments:
            self._instruments[symbol] = instrument_from_market(self._exchange, self._market(symbol), self.name)
        return self._instruments[symbol]

    def track(self, orders: Iterable[Order]) -> None:
        """Remember orders placed before (e.g. loaded after a restart): their symbols, and poll the live ones."""
        for order in orders:
            self._symbol_of[order.client_id] = order.symbol
            if order.is_active and order.client_id not in self._tracked:
                self._tracked[order.client_id] = TrackedOrder(order, order.symbol, order.status, Decimal(0))

    # ---------------------------------------------------------------- orders

    async def submit(self, order: Order) -> OrderUpdate:
        """Send `order` once; see the module docstring for what each outcome means."""
        cid = order.client_id
        self._require_connected()
        self._venue.check_client_id(cid)
        if cid in self._unresolved:
            raise RejectedError(f"{cid}: an earlier submit's outcome is unknown; query({cid!r}) before sending again")
        if cid in self._tracked or cid in self._done:
            raise DuplicateOrder(cid)
        symbol = order.symbol
        self._market(symbol)
        what = f"{self.name} submit {cid}"
        try:
            amount = self._exchange.amount_to_precision(symbol, str(order.quantity))
            price = None
            if order.type is OrderType.LIMIT:
                price = self._exchange.price_to_precision(symbol, str(order.limit_price))
        except ccxt.BaseError as exc:
            raise RejectedError(f"{what}: {exc}") from exc
        if Decimal(amount) != order.quantity or (price is not None and Decimal(price) != order.limit_price):
            log.warning("%s: rounded to the market's precision: %s @ %s", what, amount, price)
        params = self._venue.submit_params(cid)
        try:
            raw = await self._call(
                what, self._exchange.create_order, symbol, order.type.value, order.side.value, amount, price, params
            )
        except TransientError:
            self._unresolved[cid] = order
            raise
        except RejectedError as exc:
            if self._venue.is_duplicate(exc.__cause__):
                raise DuplicateOrder(cid) from exc
            raise
        self._symbol_of[cid] = symbol
        if order_status(raw) is OrderStatus.REJECTED:
            raise RejectedError(f"{what}: the venue answered with a rejected order {raw.get('id')}")
        sent = order.evolve(
            quantity=Decimal(amount),
            limit_price=Decimal(price) if price is not None else None,
            status=OrderStatus.ACCEPTED,
            venue_order_id=str(raw.get("id")) if raw.get("id") is not None else None,
        )
        tracked = TrackedOrder(sent, symbol, OrderStatus.ACCEPTED, Decimal(0))
        self._tracked[cid] = tracked
        await self._observe_after(what, tracked, raw, raw.get("trades") or None)
        log.info("%s accepted as %s", what, sent.venue_order_id)
        return OrderUpdate(cid, OrderStatus.ACCEPTED, sent.venue_order_id, time_ns=self._clock.now_ns())

    async def cancel(self, client_id: str) -> OrderUpdate:
        """Ask the venue to cancel; return cancelled (or cancel pending where the venue cancels later)."""
        self._require_connected()
        symbol = self._symbol_of.get(client_id)
        if symbol is None:
            raise RejectedError(f"{self.name} cancel {client_id}: unknown order (query, track or list it first)")
        tracked = self._tracked.get(client_id)
        known = tracked.order if tracked else self._done.get(client_id)
        venue_id = known.venue_order_id if known else None
        if tracked is not None:
            tracked.cancelling = True
        try:
            raw = await self._call(
                f"{self.name} cancel {client_id}",
                self._exchange.cancel_order,
                venue_id or "",
                symbol,
                self._venue.by_client_id(client_id),
                passthrough=(ccxt.OrderNotFound,),
            )
        except ccxt.OrderNotFound as exc:
            raise UnknownOrder(client_id) from exc
        finally:
            if tracked is not None:
                tracked.cancelling = False
        status = OrderStatus.CANCELLED if raw.get("status") in ("canceled", "cancelled") else OrderStatus.CANCEL_PENDING
        if tracked is not None:
            tracked.status = status
            await self._observe_after(f"{self.name} cancel {client_id}", tracked, raw, None)
        return OrderUpdate(client_id, status, venue_id or str_or_none(raw.get("id")), time_ns=self._clock.now_ns())

    async def query(self, client_id: str, symbol: str | None = None) -> Order | None:
        """Return the venue's view of an order by client id, or None if the venue has no such order."""
        self._require_connected()
        known = symbol or self._symbol_of.get(client_id)
        candidates = [known] if known else self._symbols
        if not candidates:
            raise RejectedError(f"{self.name} query {client_id}: symbol unknown; pass symbols= or track() the order")
        for candidate in candidates:
            raw = await self._fetch(client_id, candidate)
            if raw is None:
                continue
            sent = self._unresolved.pop(client_id, None)
            self._symbol_of[client_id] = candidate
            tracked, done = self._tracked.get(client_id), self._done.get(client_id)
            order = self._order_from(raw, client_id, candidate, tracked.order if tracked else done or sent)
            if tracked is None and done is None and (order.is_active or order.filled > 0):
                self._tracked[client_id] = TrackedOrder(order, candidate, order.status, Decimal(0))
            return order
        self._unresolved.pop(client_id, None)
        return None

    async def open_orders(self) -> list[Order]:
        """Return the open orders: every symbol's where the venue lists them at once, else the watched ones."""
        self._require_connected()
        rows = await self._list_open(self._watched_symbols(), everything=True)
        orders = []
        for raw in rows:
            cid, symbol = str_or_none(raw.get("clientOrderId")), str_or_none(raw.get("symbol"))
            if cid is None or symbol is None:
                log.warning("%s lists an open order without client id or symbol: %s", self.name, raw.get("id"))
                continue
            self._symbol_of.setdefault(cid, symbol)
            tracked = self._tracked.get(cid)
            orders.append(self._order_from(raw, cid, symbol, tracked.order if tracked else self._done.get(cid)))
        return orders

    async def positions(self) -> dict[str, Decimal]:
        """Return the net position per watched symbol: the base balance on spot, the signed contracts on derivatives."""
        self._require_connected()
        markets = [self._market(s) for s in self._watched_symbols()]
        result: dict[str, Decimal] = {}
        spot = [m for m in markets if m.get("spot")]
        if spot:
            totals = (await self._call(f"{self.name} balances", self._exchange.fetch_balance)).get("total") or {}
            for market in spot:
                amount = decimal_or_none(totals.get(market["base"]))
                if amount:
                    result[market["symbol"]] = amount
        contracts = [m["symbol"] for m in markets if m.get("contract")]
        if contracts and self._exchange.has.get("fetchPositions"):
            rows = await self._call(f"{self.name} positions", self._exchange.fetch_positions, contracts)
            for row in rows:
                size = (decimal_or_none(row.get("contracts")) or Decimal(0)) * (
                    decimal_or_none(row.get("contractSize")) or Decimal(1)
                )
                if size:
                    result[str(row["symbol"])] = -size if row.get("side") == "short" else size
        return result

    async def balances(self) -> dict[str, Decimal]:
        """Return the total (free + locked) balance of every currency the account holds."""
        self._require_connected()
        totals = (await self._call(f"{self.name} balances", self._exchange.fetch_balance)).get("total") or {}
        result = {}
        for code, value in totals.items():
            amount = decimal_or_none(value)
            if amount:
                result[str(code)] = amount
        return result

    async def fills(self, client_id: str) -> list[Fill]:
        """Return the venue's fills of one order (its trades, ids as on `events()`), for reconciliation; [] if none."""
        order = await self.query(client_id)
        if order is None or order.filled <= 0:
            return []
        symbol = self._symbol_of[client_id]
        probe = TrackedOrder(order, symbol, order.status, Decimal(0))
        trades = await self._order_trades(probe, order)
        return probe.new_fills(trades, order, self._market(symbol), self._clock.now_ns(), None)

    async def events(self) -> AsyncIterator[BrokerEvent]:
        """Yield fills and order updates as polling (or a submit's own answer) finds them."""
        while True:
            yield await self._queue.get()

    async def poll(self) -> int:
        """Look at every live order once; queue what changed on `events()`. Return how many events were queued."""
        for cid in [cid for cid, tracked in self._tracked.items() if not tracked.live]:
            self._done[cid] = self._tracked.pop(cid).order
        live = list(self._tracked.values())
        if not live:
            return 0
        rows = await self._list_open(sorted({t.symbol for t in live}), everything=False)
        listed = {str(r.get("clientOrderId")): r for r in rows}
        queued = 0
        for tracked in live:
            try:
                raw = listed.get(tracked.order.client_id)
                if raw is None:
                    raw = await self._fetch(tracked.order.client_id, tracked.symbol)
                if raw is not None:
                    queued += await self._observe(tracked, raw, None)
            except RateLimited:
                raise
            except (TransientError, RejectedError) as exc:  # one order's trouble must not starve the others
                log.warning("%s poll of %s failed: %s", self.name, tracked.order.client_id, exc)
        return queued

    # ---------------------------------------------------------------- internals

    async def _poll_forever(self, interval_s: float) -> None:
        """Poll on event-loop time: the pace is the venue's rate limit, not the (maybe simulated) clock."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll()
            except TransientError as exc:
                log.warning("%s poll failed, retrying: %s", self.name, exc)
            except RejectedError as exc:
                log.error("%s poll refused: %s", self.name, exc)

    def _poller_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s poller died; no more order events", self.name, exc_info=task.exception())

    async def _observe_after(
        self, what: str, tracked: TrackedOrder, raw: Mapping[str, Any], trades: list[Any] | None
    ) -> None:
        """Observe a submit's or cancel's own answer; what cannot be fetched now is left to the poller."""
        try:
            await self._observe(tracked, raw, trades)
        except (TransientError, RejectedError) as exc:
            log.warning("%s succeeded, its fills will follow: %s", what, exc)

    async def _observe(self, tracked: TrackedOrder, raw: Mapping[str, Any], trades: list[Any] | None) -> int:
        """Queue the fills and the state change `raw` shows for `tracked`; return how many events."""
        order = self._order_from(raw, tracked.order.client_id, tracked.symbol, tracked.order)
        if not tracked.accepts(order):
            return 0
        tracked.adopt(order)  # first: if fetching its fills fails, the poller still knows they are due
        queued = 0
        if order.filled > tracked.booked:
            if trades is None:
                trades = await self._order_trades(tracked, order)
            market = self._market(tracked.symbol)
            for fill in tracked.new_fills(trades, order, market, self._clock.now_ns(), raw.get("timestamp")):
                self._queue.put_nowait(fill)
                queued += 1
        update = tracked.advance(order, self._clock.now_ns())
        if update is not None:
            self._queue.put_nowait(update)
            queued += 1
        return queued

    async def _order_trades(self, tracked: TrackedOrder, order: Order) -> list[Any]:
        venue_id, symbol = order.venue_order_id, tracked.symbol
        what = f"{self.name} trades of {order.client_id}"
        if venue_id and self._exchange.has.get("fetchOrderTrades"):
            return list(await self._call(what, self._exchange.fetch_order_trades, venue_id, symbol))
        since = order.created_ns // 1_000_000 if order.created_ns else None
        trades = await self._call(what, self._exchange.fetch_my_trades, symbol, since)
        return [t for t in trades if venue_id is not None and str(t.get("order")) == venue_id]

    async def _fetch(self, client_id: str, symbol: str) -> Mapping[str, Any] | None:
        """Return the venue's order with `client_id` on `symbol`, None when it has none."""
        try:
            return await self._call(
                f"{self.name} query {client_id}",
                self._exchange.fetch_order,
                "",
                symbol,
                self._venue.by_client_id(client_id),
                passthrough=(ccxt.OrderNotFound,),
            )
        except ccxt.OrderNotFound:
            return None

    async def _list_open(self, symbols: Sequence[str], *, everything: bool) -> list[Any]:
        """List open orders: of every symbol when `everything` and the venue can, else of `symbols`."""
        venue, what = self._venue, f"{self.name} open orders"
        threshold = venue.all_symbols_open_orders_above
        one_call = (everything and (venue.lists_all_open_orders or not symbols)) or (
            threshold is not None and len(symbols) > threshold
        )
        if one_call:
            return list(await self._call(what, self._exchange.fetch_open_orders))
        rows: list[Any] = []
        for symbol in symbols:
            rows.extend(await self._call(f"{what} of {symbol}", self._exchange.fetch_open_orders, symbol))
        return rows

    async def _call(
        self,
        what: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> T:
        """Call ccxt unless a rate limit is in force; translate what it raises into rata's errors."""
        now = self._clock.now_ns()
        if now < self._blocked_until_ns:
            wait = (self._blocked_until_ns - now) / _NS
            raise RateLimited(f"{what}: not sent, {self.name} asked to wait {wait:.1f}s more", retry_after=wait)
        try:
            return await fn(*args)
        except passthrough:
            raise
        except TRANSPORT_ERRORS as exc:
            error = translate_error(exc, what, self._retry_after_s)
            self._retry_after_s = None
            raise error from exc

    def _watch_rate_limits(self) -> None:
        """Note `Retry-After` on 429/418 answers: ccxt reads the body only, the header is the venue's instruction."""
        original = self._exchange.on_rest_response

        def on_rest_response(code: int, reason: str, url: str, method: str, headers: Any, body: str, *rest: Any) -> Any:
            if code in (418, 429):
                retry = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
                seconds = float(retry) if retry is not None and str(retry).isdigit() else 1.0
                self._retry_after_s = seconds
                self._blocked_until_ns = max(self._blocked_until_ns, self._clock.now_ns() + int(seconds * _NS))
                log.warning("%s answered %s: pausing requests for %gs", self.name, code, seconds)
            return original(code, reason, url, method, headers, body, *rest)

        self._exchange.on_rest_response = on_rest_response

    def _order_from(self, raw: Mapping[str, Any], client_id: str, symbol: str, template: Order | None) -> Order:
        return order_from_ccxt(
            raw,
            client_id=client_id,
            venue=self.name,
            symbol=str(raw.get("symbol") or symbol),
            template=template,
            mode=self.mode,
            now_ns=self._clock.now_ns(),
        )

    def _market(self, symbol: str) -> Any:
        markets = self._exchange.markets or {}
        if symbol not in markets:
            raise UnknownNameError(f"{self.name} symbol", symbol, sorted(markets)[:20])
        return markets[symbol]

    def _watched_symbols(self) -> list[str]:
        return list(dict.fromkeys([*self._symbols, *(t.symbol for t in self._tracked.values() if t.live)]))

    def _require_connected(self) -> None:
        if not self._connected:
            raise TransientError(f"{self.name} broker is not connected")
