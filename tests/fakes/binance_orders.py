"""Binance spot's signed order API on the local fake exchange: accounts, orders, fills and faults.

`FakeBinanceExchange` is `FakeBinance` (public market data, unchanged) plus the signed endpoints
ccxt's `binance` calls to trade spot, so the real ccxt client places, queries and cancels orders
against it through its URL configuration:

- `POST /api/v3/order` (new order: MARKET, LIMIT, LIMIT_MAKER; `newOrderRespType` ACK, RESULT,
  FULL), `GET /api/v3/order` and `DELETE /api/v3/order` (by `orderId` or `origClientOrderId`),
  `GET /api/v3/openOrders` (one symbol or all), `GET /api/v3/account`, `GET /api/v3/myTrades`.

Security is Binance's: the `X-MBX-APIKEY` header names the account (-2014 when missing, -2015 when
unknown, HTTP 401); `signature` is the hex HMAC-SHA256, keyed with the account's secret, of
totalParams = the raw query string concatenated with the raw body, less the `signature` parameter
itself (case-insensitive; -1022 when wrong); `timestamp` is mandatory and the request is refused
(-1021) unless `timestamp < server_time + 1000 and server_time - timestamp <= recvWindow`
(`recvWindow` defaults to 5000, at most 60000).

New orders are checked like Binance does, with the very filters `exchangeInfo` publishes for the
symbol: PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, PERCENT_PRICE_BY_SIDE, NOTIONAL, MAX_NUM_ORDERS
(-1013 "Filter failure: ..."), precision (-1111), the client order id's format (-1100, the pattern
`^[.A-Z:/a-z0-9_-]{1,36}$`), a client id already used by an OPEN order (-2010 "Duplicate order
sent."; Binance allows reusing the id of an order that is no longer open), and the free balance
(-2010 "Account has insufficient balance for requested action.").

Matching: each symbol has a current price, `set_price()`'s, else the last generated trade's, else
the market's start price. A MARKET order fills in full at it; a marketable LIMIT order fills in
full at it (taker), IOC/FOK ones that are not marketable expire, and the others rest (their funds
locked) until the price crosses them (`set_price`, or a generated trade), then fill at their limit
price (maker), at most `quantity` in all when `set_price` is given one (partial fills).
Commissions are charged in the asset received, like Binance without BNB.

Faults (`inject`): answer a request without processing it (429 with Retry-After, 503), or process
it and then answer 5xx, drop the connection, or cut the body short, so a client meets the
"accepted but I never heard" cases.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.binance_order_types import (
    _CLIENT_ID,
    _EIGHT,
    _ZERO,
    FakeAccount,
    FakeFill,
    FakeOrder,
    Fault,
    Handler,
    SignedRequest,
    _ApiError,
    _decimal_param,
    _filter_failure,
    _fmt,
    _int_param,
    _now_ms,
    _on_grid,
    _required,
    _without_signature,
)
from tests.fakes.binance_server import DEFAULT_MARKETS, FakeBinance, FakeMarket, FakeTrade
from tests.fakes.binance_wire import symbol_info

__all__ = ["FakeAccount", "FakeBinanceExchange", "FakeFill", "FakeOrder", "Fault", "SignedRequest"]


class FakeBinanceExchange(FakeBinance):
    """`FakeBinance` that also trades: `async with FakeBinanceExchange(...) as server:`.

    `accounts` maps API keys to (secret, balances); `add_account` adds more. `maker_fee` and
    `taker_fee` are commission rates. See the module docstring for what is served and checked.
    """

    def __init__(
        self,
        markets: Iterable[FakeMarket] = DEFAULT_MARKETS,
        *,
        accounts: Mapping[str, tuple[str, Mapping[str, Decimal | str]]] | None = None,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        **kwargs: Any,
    ) -> None:
        super().__init__(markets, **kwargs)
        self.accounts: dict[str, FakeAccount] = {}
        for key, (secret, balances) in (accounts or {}).items():
            self.add_account(key, secret, balances)
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.orders: dict[int, FakeOrder] = {}
        self.fills: list[FakeFill] = []
        self.signed_requests: list[SignedRequest] = []
        self.faults: list[Fault] = []
        self._prices: dict[str, Decimal] = {}
        self._order_ids = itertools.count(4_000_000_001)
        self._trade_ids = itertools.count(900_000_001)
        self._cancel_ids = itertools.count(1)
        self._filters = {
            m.symbol: {f["filterType"]: f for f in symbol_info(m)["filters"]} for m in self.markets.values()
        }

    # ---------------------------------------------------------------- controls

    def add_account(self, api_key: str, secret: str, balances: Mapping[str, Decimal | str]) -> FakeAccount:
        """Open an account with free `balances` (asset -> amount)."""
        account = FakeAccount(api_key, secret, {a: [Decimal(str(v)), _ZERO] for a, v in balances.items()})
        self.accounts[api_key] = account
        return account

    def inject(self, fault: Fault) -> None:
        """Script a misbehaviour for the next matching request(s)."""
        self.faults.append(fault)

    def price(self, symbol: str) -> Decimal:
        """Return the current price of `symbol` (Binance id, e.g. BTCUSDT)."""
        if symbol in self._prices:
            return self._prices[symbol]
        trades = self._books[symbol].trades
        return trades[-1].price if trades else self.markets[symbol].start_price

    def set_price(self, symbol: str, price: Decimal | str, quantity: Decimal | str | None = None) -> list[FakeFill]:
        """Move `symbol`'s price; fill the resting orders it crosses (at most `quantity` in all). Return the fills."""
        self._prices[symbol] = Decimal(str(price))
        return self._cross(symbol, self._prices[symbol], None if quantity is None else Decimal(str(quantity)))

    def requests_to(self, method: str, path: str) -> list[SignedRequest]:
        """Return the signed requests received for `method path`, in order."""
        return [r for r in self.signed_requests if r.method == method and r.path == path]

    def order_by_client_id(self, client_id: str) -> FakeOrder | None:
        """Return the latest order with `client_id`, of any account."""
        found = [o for o in self.orders.values() if o.client_id == client_id]
        return found[-1] if found else None

    # ---------------------------------------------------------------- routes

    def _add_routes(self, app: web.Application) -> None:
        super()._add_routes(app)
        app.router.add_post("/api/v3/order", self._route(self._new_order))
        app.router.add_get("/api/v3/order", self._route(self._query_order))
        app.router.add_delete("/api/v3/order", self._route(self._cancel_order))
        app.router.add_get("/api/v3/openOrders", self._route(self._open_orders))
        app.router.add_get("/api/v3/account", self._route(self._account))
        app.router.add_get("/api/v3/myTrades", self._route(self._my_trades))

    async def _broadcast(self, symbol: str, trades: list[FakeTrade]) -> None:
        await super()._broadcast(symbol, trades)
        if trades and symbol not in self._prices:
            self._cross(symbol, trades[-1].price, None)

    def _route(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            return await self._signed(request, handler)

        return route

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.method == request.method and fault.path == request.path:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _signed(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw_query = request.rel_url.raw_query_string
        raw_body = await request.text() if request.can_read_body else ""
        params: dict[str, str] = {}
        try:
            for source in (raw_body, raw_query):  # the query string wins over the body, as on Binance
                seen: set[str] = set()
                for key, value in parse_qsl(source, keep_blank_values=True):
                    if key in seen:
                        raise _ApiError(-1101, "Duplicate values for a parameter detected.")
                    seen.add(key)
                    params[key] = value
        except _ApiError as exc:
            return self._error(exc)
        self.signed_requests.append(SignedRequest(request.method, request.path, dict(params)))
        fault = self._take_fault(request)
        if fault is not None and fault.action == "reply":
            return web.Response(status=fault.status, text=fault.body, headers=dict(fault.headers))
        try:
            account = self._authenticate(request, raw_query, raw_body, params)
            result = handler(account, params)
        except _ApiError as exc:
            return self._error(exc)
        if fault is None:
            return self._json(result)
        if fault.action == "accept_then_reply":
            return web.Response(status=fault.status, text=fault.body, headers=dict(fault.headers))
        transport = request.transport
        if fault.action == "accept_then_truncate":
            body = json.dumps(result).encode()
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
        if transport is not None:
            transport.abort()
        return web.Response(status=500)  # never delivered: the connection is gone

    def _error(self, exc: _ApiError) -> web.Response:
        return self._json({"code": exc.code, "msg": exc.msg}, exc.status)

    def _authenticate(self, request: web.Request, raw_query: str, raw_body: str, params: dict[str, str]) -> FakeAccount:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise _ApiError(-2014, "API-key format invalid.", 401)
        account = self.accounts.get(key)
        if account is None:
            raise _ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signature = params.get("signature", "")
        if not signature:
            raise _ApiError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        total = _without_signature(raw_query) + _without_signature(raw_body)
        expected = hmac.new(account.secret.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise _ApiError(-1022, "Signature for this request is not valid.")
        timestamp = _int_param(params, "timestamp")
        recv_window = _int_param(params, "recvWindow", 5000)
        if recv_window > 60_000:
            raise _ApiError(-1131, "recvWindow must be less than 60000")
        server_ms = _now_ms()
        if timestamp >= server_ms + 1000:
            raise _ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server_ms - timestamp > recv_window:
            raise _ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return account

    # ---------------------------------------------------------------- endpoints

    def _market(self, params: Mapping[str, str]) -> FakeMarket:
        symbol = _required(params, "symbol")
        market = self.markets.get(symbol)
        if market is None:
            raise _ApiError(-1121, "Invalid symbol.")
        return market

    def _new_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        market = self._market(params)
        side = _required(params, "side")
        if side not in ("BUY", "SELL"):
            raise _ApiError(-1117, "Invalid side.")
        kind = _required(params, "type")
        if kind not in ("MARKET", "LIMIT", "LIMIT_MAKER"):
            raise _ApiError(-1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"fake{next(self._cancel_ids):018d}"
        if not _CLIENT_ID.match(client_id):
            raise _ApiError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        current = self.price(market.symbol)
        tif = params.get("timeInForce")
        if kind == "LIMIT":
            if tif is None:
                raise _ApiError(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
            if tif not in ("GTC", "IOC", "FOK"):
                raise _ApiError(-1115, "Invalid timeInForce.")
        elif tif is not None:
            raise _ApiError(-1106, "Parameter 'timeInForce' sent when not required.")
        if kind == "MARKET":
            if "price" in params:
                raise _ApiError(-1106, "Parameter 'price' sent when not required.")
            price = _ZERO
            if "quantity" in params:
                quantity = _decimal_param(params, "quantity")
            elif "quoteOrderQty" in params:
                step = market.step_size
                quantity = (_decimal_param(params, "quoteOrderQty") / current / step).to_integral_value(
                    ROUND_DOWN
                ) * step
            else:
                raise _ApiError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        else:
            quantity = _decimal_param(params, "quantity", required=True)
            price = _decimal_param(params, "price", required=True)
        self._check_filters(account, market, side, kind, quantity, price, current)
        if any(o.is_open and o.account is account and o.client_id == client_id for o in self.orders.values()):
            raise _ApiError(-2010, "Duplicate order sent.")
        crosses = kind == "MARKET" or (price >= current if side == "BUY" else price <= current)
        if kind == "LIMIT_MAKER" and crosses:
            raise _ApiError(-2010, "Order would immediately match and take.")
        needed = quantity * (price if kind != "MARKET" else current) if side == "BUY" else quantity
        asset = market.quote if side == "BUY" else market.base
        if account.free(asset) < needed:
            raise _ApiError(-2010, "Account has insufficient balance for requested action.")

        now = _now_ms()
        order = FakeOrder(
            next(self._order_ids),
            account,
            market,
            client_id,
            side,
            kind,
            tif or "GTC",
            quantity,
            price,
            now,
            update_ms=now,
        )
        self.orders[order.order_id] = order
        fills: list[FakeFill] = []
        if kind == "MARKET":
            fills.append(self._execute(order, current, quantity, maker=False))
        else:
            account.move(asset, free=-needed, locked=needed)
            if crosses:
                fills.append(self._execute(order, current, quantity, maker=False))
            elif tif in ("IOC", "FOK"):
                self._close(order, "EXPIRED")
        ack = {
            "symbol": market.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": client_id,
            "transactTime": now,
        }
        resp_type = params.get("newOrderRespType") or ("FULL" if kind in ("MARKET", "LIMIT") else "ACK")
        if resp_type == "ACK":
            return ack
        result = {
            **ack,
            "price": _fmt(price),
            "origQty": _fmt(quantity),
            "executedQty": _fmt(order.executed),
            "origQuoteOrderQty": _fmt(_ZERO),
            "cummulativeQuoteQty": _fmt(order.quote),
            "status": order.status,
            "timeInForce": order.time_in_force,
            "type": kind,
            "side": side,
            "workingTime": now,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if resp_type == "FULL":
            result["fills"] = [f.order_fill() for f in fills]
        return result

    def _check_filters(
        self,
        account: FakeAccount,
        market: FakeMarket,
        side: str,
        kind: str,
        quantity: Decimal,
        price: Decimal,
        current: Decimal,
    ) -> None:
        filters = self._filters[market.symbol]
        for name, value in (("quantity", quantity), ("price", price)):
            exponent = value.normalize().as_tuple().exponent
            if isinstance(exponent, int) and exponent < -8:
                raise _ApiError(-1111, f"Parameter '{name}' has too much precision.")
        if quantity <= 0 or (kind != "MARKET" and price <= 0):
            raise _ApiError(-1013, "Price * QTY is zero or less.")
        lot = filters["LOT_SIZE"]
        if not _on_grid(quantity, lot["minQty"], lot["maxQty"], lot["stepSize"]):
            raise _filter_failure("LOT_SIZE")
        if kind == "MARKET":
            mlot = filters["MARKET_LOT_SIZE"]
            if not _on_grid(quantity, mlot["minQty"], mlot["maxQty"], mlot["stepSize"]):
                raise _filter_failure("MARKET_LOT_SIZE")
        else:
            pf = filters["PRICE_FILTER"]
            if not _on_grid(price, pf["minPrice"], pf["maxPrice"], pf["tickSize"]):
                raise _filter_failure("PRICE_FILTER")
            pp = filters["PERCENT_PRICE_BY_SIDE"]
            up, down = (
                ("bidMultiplierUp", "bidMultiplierDown") if side == "BUY" else ("askMultiplierUp", "askMultiplierDown")
            )
            if not current * Decimal(pp[down]) <= price <= current * Decimal(pp[up]):
                raise _filter_failure("PERCENT_PRICE_BY_SIDE")
        notional_filter = filters["NOTIONAL"]
        notional = quantity * (current if kind == "MARKET" else price)
        if (kind != "MARKET" or notional_filter["applyMinToMarket"]) and notional < Decimal(
            notional_filter["minNotional"]
        ):
            raise _filter_failure("NOTIONAL")
        if (kind != "MARKET" or notional_filter["applyMaxToMarket"]) and notional > Decimal(
            notional_filter["maxNotional"]
        ):
            raise _filter_failure("NOTIONAL")
        open_here = sum(1 for o in self.orders.values() if o.is_open and o.account is account and o.market is market)
        if open_here >= filters["MAX_NUM_ORDERS"]["maxNumOrders"]:
            raise _filter_failure("MAX_NUM_ORDERS")

    def _find(self, account: FakeAccount, params: Mapping[str, str], market: FakeMarket) -> FakeOrder | None:
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise _ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order_id:
            order = self.orders.get(_int_param(params, "orderId"))
            if order is None or order.account is not account or order.market is not market:
                return None
            return order if not client_id or order.client_id == client_id else None
        found = [
            o for o in self.orders.values() if o.account is account and o.market is market and o.client_id == client_id
        ]
        return found[-1] if found else None

    def _query_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find(account, params, self._market(params))
        if order is None:
            raise _ApiError(-2013, "Order does not exist.")
        return order.rest()

    def _cancel_order(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        order = self._find(account, params, self._market(params))
        if order is None or not order.is_open:
            raise _ApiError(-2011, "Unknown order sent.")
        self._close(order, "CANCELED")
        rest = order.rest()
        return {
            "symbol": order.market.symbol,
            "origClientOrderId": order.client_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": params.get("newClientOrderId") or f"cancel{next(self._cancel_ids):016d}",
            "transactTime": order.update_ms,
            **{k: rest[k] for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status")},
            **{k: rest[k] for k in ("timeInForce", "type", "side", "selfTradePreventionMode")},
        }

    def _open_orders(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        market = self._market(params) if "symbol" in params else None
        return [
            o.rest()
            for o in self.orders.values()
            if o.is_open and o.account is account and (market is None or o.market is market)
        ]

    def _account(self, account: FakeAccount, params: dict[str, str]) -> dict[str, Any]:
        omit_zero = params.get("omitZeroBalances", "false").lower() == "true"
        rows = [
            {"asset": asset, "free": _fmt(free), "locked": _fmt(locked)}
            for asset, (free, locked) in sorted(account.balances.items())
            if not (omit_zero and free == 0 and locked == 0)
        ]
        maker, taker = (int(self.maker_fee * 10_000), int(self.taker_fee * 10_000))
        return {
            "makerCommission": maker,
            "takerCommission": taker,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": _fmt(self.maker_fee),
                "taker": _fmt(self.taker_fee),
                "buyer": _fmt(_ZERO),
                "seller": _fmt(_ZERO),
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": _now_ms(),
            "accountType": "SPOT",
            "balances": rows,
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    def _my_trades(self, account: FakeAccount, params: dict[str, str]) -> list[dict[str, Any]]:
        market = self._market(params)
        limit = _int_param(params, "limit", 500)
        if not 1 <= limit <= 1000:
            raise _ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        order_id = _int_param(params, "orderId", 0) if "orderId" in params else None
        from_id = _int_param(params, "fromId", 0) if "fromId" in params else None
        start = _int_param(params, "startTime", 0) if "startTime" in params else None
        end = _int_param(params, "endTime", 0) if "endTime" in params else None
        rows = [
            f
            for f in self.fills
            if f.order.account is account
            and f.order.market is market
            and (order_id is None or f.order.order_id == order_id)
            and (from_id is None or f.trade_id >= from_id)
            and (start is None or f.time_ms >= start)
            and (end is None or f.time_ms <= end)
        ]
        return [f.my_trade() for f in rows[:limit]]

    # ---------------------------------------------------------------- matching

    def _cross(self, symbol: str, price: Decimal, liquidity: Decimal | None) -> list[FakeFill]:
        fills = []
        for order in [o for o in self.orders.values() if o.market.symbol == symbol and o.is_open]:
            if order.type == "MARKET" or (order.price < price if order.side == "BUY" else order.price > price):
                continue
            qty = order.remaining if liquidity is None else min(order.remaining, liquidity)
            if qty <= 0:
                break
            fills.append(self._execute(order, order.price, qty, maker=True))
            if liquidity is not None:
                liquidity -= qty
        return fills

    def _execute(self, order: FakeOrder, price: Decimal, qty: Decimal, *, maker: bool) -> FakeFill:
        market, account = order.market, order.account
        rate = self.maker_fee if maker else self.taker_fee
        if order.side == "BUY":
            commission = (qty * rate).quantize(_EIGHT)
            if order.type == "MARKET":
                account.move(market.quote, free=-qty * price)
            else:
                account.move(market.quote, free=qty * (order.price - price), locked=-qty * order.price)
            account.move(market.base, free=qty - commission)
            asset = market.base
        else:
            commission = (qty * price * rate).quantize(_EIGHT)
            if order.type == "MARKET":
                account.move(market.base, free=-qty)
            else:
                account.move(market.base, locked=-qty)
            account.move(market.quote, free=qty * price - commission)
            asset = market.quote
        now = _now_ms()
        fill = FakeFill(next(self._trade_ids), order, price, qty, commission, asset, now, maker)
        self.fills.append(fill)
        order.executed += qty
        order.quote += qty * price
        order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
        order.update_ms = now
        return fill

    def _close(self, order: FakeOrder, status: str) -> None:
        """Cancel or expire an open order, releasing the funds still locked by it."""
        market, account = order.market, order.account
        if order.type != "MARKET":
            if order.side == "BUY":
                amount = order.remaining * order.price
                account.move(market.quote, free=amount, locked=-amount)
            else:
                account.move(market.base, free=order.remaining, locked=-order.remaining)
        order.status = status
        order.update_ms = _now_ms()
