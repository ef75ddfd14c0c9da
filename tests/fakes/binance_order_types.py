"""Value types and request parsing of the fake Binance order API (see `tests.fakes.binance_orders`)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from tests.fakes.binance_server import FakeMarket

_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_ZERO = Decimal(0)
_EIGHT = Decimal("0.00000001")
_INTERNAL_ERROR = '{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'
_OPEN = ("NEW", "PARTIALLY_FILLED")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


class _ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _filter_failure(name: str) -> _ApiError:
    return _ApiError(-1013, f"Filter failure: {name}")


@dataclass(slots=True)
class FakeAccount:
    """A spot account: its key pair and balances (asset -> [free, locked])."""

    api_key: str
    secret: str
    balances: dict[str, list[Decimal]] = field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [_ZERO, _ZERO])[0]

    def locked(self, asset: str) -> Decimal:
        return self.balances.get(asset, [_ZERO, _ZERO])[1]

    def move(self, asset: str, free: Decimal = _ZERO, locked: Decimal = _ZERO) -> None:
        row = self.balances.setdefault(asset, [_ZERO, _ZERO])
        row[0] += free
        row[1] += locked


@dataclass(slots=True)
class FakeOrder:
    """An order as the fake exchange keeps it."""

    order_id: int
    account: FakeAccount
    market: FakeMarket
    client_id: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    time_ms: int
    status: str = "NEW"
    executed: Decimal = _ZERO
    quote: Decimal = _ZERO
    update_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed

    def rest(self) -> dict[str, Any]:
        """Return the order as `GET /api/v3/order` and `openOrders` show it."""
        return {
            "symbol": self.market.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.quantity),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(_ZERO),
            "icebergQty": _fmt(_ZERO),
            "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms,
            "isWorking": True,
            "workingTime": self.time_ms,
            "origQuoteOrderQty": _fmt(_ZERO),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass(frozen=True, slots=True)
class FakeFill:
    """One execution of an order (a row of `myTrades`)."""

    trade_id: int
    order: FakeOrder
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    maker: bool

    def my_trade(self) -> dict[str, Any]:
        return {
            "symbol": self.order.market.symbol,
            "id": self.trade_id,
            "orderId": self.order.order_id,
            "orderListId": -1,
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "quoteQty": _fmt(self.price * self.qty),
            "commission": _fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time_ms,
            "isBuyer": self.order.side == "BUY",
            "isMaker": self.maker,
            "isBestMatch": True,
        }

    def order_fill(self) -> dict[str, Any]:
        return {
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "commission": _fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.trade_id,
        }


FaultAction = Literal["reply", "accept_then_reply", "accept_then_drop", "accept_then_truncate"]


@dataclass(slots=True)
class Fault:
    """A scripted misbehaviour for the next `times` requests to `method path`.

    `reply`: answer `status`/`body`/`headers` without processing the request. `accept_then_reply`:
    process it, then answer `status`/`body` instead of the result. `accept_then_drop`: process it,
    then close the connection without answering. `accept_then_truncate`: process it, then send the
    headers and half the body and close the connection.
    """

    method: str
    path: str
    action: FaultAction
    status: int = 500
    body: str = _INTERNAL_ERROR
    headers: Mapping[str, str] = field(default_factory=dict)
    times: int = 1

    @classmethod
    def rate_limited(cls, method: str, path: str, retry_after_s: int = 1, *, status: int = 429) -> Fault:
        """Return a Binance 429 (or 418 ban) with `Retry-After`, refusing the request unprocessed."""
        body = json.dumps(
            {
                "code": -1003,
                "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                "Please use WebSocket Streams for live updates to avoid polling the API.",
            }
        )
        return cls(method, path, "reply", status, body, {"Retry-After": str(retry_after_s)})


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request that reached a signed endpoint: method, path and its parameters (query and body)."""

    method: str
    path: str
    params: dict[str, str]


Handler = Callable[[FakeAccount, dict[str, str]], Any]


def _without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if not part.startswith("signature=")) if raw else ""


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _int_param(params: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise _ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return default
    if not raw.lstrip("-").isdigit():
        raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def _decimal_param(params: Mapping[str, str], name: str, *, required: bool = True) -> Decimal:
    raw = _required(params, name) if required else params.get(name, "0")
    if not _NUMBER.match(raw):
        raise _ApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
        )
    try:
        return Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def _on_grid(value: Decimal, minimum: str, maximum: str, step: str) -> bool:
    """Return whether `value` passes a Binance range-and-step filter (a zero bound or step is not checked)."""
    low, high, tick = Decimal(minimum), Decimal(maximum), Decimal(step)
    if low > 0 and value < low:
        return False
    if high > 0 and value > high:
        return False
    return tick == 0 or (value - low) % tick == 0
