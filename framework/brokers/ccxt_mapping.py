"""Translate ccxt's unified order, trade and error structures into rata's orders, fills and errors.

ccxt is untyped: its structures arrive here as `Mapping[str, Any]` with floats for amounts and
prices, and leave as `Order`s and `Fill`s with `Decimal`s (through `str(float)`, which gives back
the venue's decimal string for any amount a venue sends). Its exceptions become rata's tree:

- `ccxt.OperationFailed` (every `NetworkError`: `RequestTimeout`, `ExchangeNotAvailable`, which
  ccxt raises for 5xx answers and dropped connections, `DDoSProtection`, `RateLimitExceeded`,
  `InvalidNonce`; and `BadResponse`), a bare `ccxt.BaseError`, an `OSError` or a timeout ->
  `TransientError`: for a submit, the outcome is UNKNOWN. 429/418 become `RateLimited`.
- an `ExchangeError` ccxt raised for a broken HTTP exchange (`aiohttp.ClientError` as its cause:
  a response cut short) -> `TransientError` too: the venue may have acted on the request.
- every other `ccxt.ExchangeError` (`InsufficientFunds`, `InvalidOrder`, `BadSymbol`,
  `OrderNotFound`, `AuthenticationError`, `BadRequest`, ...) -> `RejectedError` with the venue's
  message: the venue answered and refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import aiohttp
import ccxt

from framework.brokers.errors import RateLimited
from framework.errors import RataError, RejectedError, TransientError
from framework.orders.model import Fill, Mode, Order, OrderSide, OrderStatus, OrderType

__all__ = [
    "TRANSPORT_ERRORS",
    "decimal_or_none",
    "fee_in_quote",
    "fill_from_trade",
    "order_from_ccxt",
    "order_status",
    "str_or_none",
    "translate_error",
]

_STATUSES: Final = {
    "open": OrderStatus.ACCEPTED,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "canceling": OrderStatus.CANCEL_PENDING,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}
_MS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class _NoTemplate:
    venue_order_id: str | None = None
    created_ns: int = 0


_NO_TEMPLATE: Final = _NoTemplate()

TRANSPORT_ERRORS: Final = (ccxt.BaseError, OSError, asyncio.TimeoutError)
"""What a ccxt call can raise that `translate_error` maps."""


def decimal_or_none(value: Any) -> Decimal | None:
    """Return a ccxt number (float, int or numeric string) as a `Decimal`, None when absent or not finite."""
    if value is None or value == "":
        return None
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return number if number.is_finite() else None


def str_or_none(value: Any) -> str | None:
    """Return a ccxt id as a string, None when absent."""
    return None if value is None else str(value)


def order_status(raw: Mapping[str, Any]) -> OrderStatus:
    """Return rata's status of a ccxt order: `open` is accepted, or partially filled once anything filled."""
    status = _STATUSES.get(str(raw.get("status")), OrderStatus.ACCEPTED)
    filled = decimal_or_none(raw.get("filled")) or Decimal(0)
    if status is OrderStatus.ACCEPTED and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def fee_in_quote(fee: Mapping[str, Any] | None, *, price: Decimal, base: str, quote: str) -> Decimal | None:
    """Return a ccxt fee in the quote currency (a base-currency fee valued at `price`), None if in another currency."""
    if not fee:
        return Decimal(0)
    cost = decimal_or_none(fee.get("cost"))
    if cost is None or cost == 0:
        return Decimal(0)
    currency = fee.get("currency")
    if currency == quote:
        return cost
    if currency == base:
        return cost * price
    return None


def order_from_ccxt(
    raw: Mapping[str, Any],
    *,
    client_id: str,
    venue: str,
    symbol: str,
    template: Order | None,
    mode: Mode,
    now_ns: int,
) -> Order:
    """Return the venue's view of an order as an `Order` (strategy, and anything the venue omits, from `template`)."""
    side = OrderSide(str(raw.get("side") or (template.side if template else "buy")).lower())
    quantity = decimal_or_none(raw.get("amount"))
    if quantity is None or quantity <= 0:
        if template is None:
            raise RejectedError(f"{venue} order {client_id} has no quantity: {raw.get('info')!r}")
        quantity = template.quantity
    price = decimal_or_none(raw.get("price"))
    kind = str(raw.get("type") or "").lower()
    limit = kind.startswith("limit") or (not kind and template is not None and template.type is OrderType.LIMIT)
    limit_price = price if limit and price is not None and price > 0 else None
    filled = decimal_or_none(raw.get("filled")) or Decimal(0)
    average = decimal_or_none(raw.get("average"))
    fallback = template or _NO_TEMPLATE
    created_ms = raw.get("timestamp")
    updated_ms = raw.get("lastUpdateTimestamp") or created_ms
    return Order(
        client_id=client_id,
        strategy=template.strategy if template else "",
        venue=venue,
        symbol=symbol,
        side=side,
        quantity=quantity,
        type=OrderType.LIMIT if limit_price is not None else OrderType.MARKET,
        limit_price=limit_price,
        mode=template.mode if template else mode,
        status=order_status(raw),
        filled=filled,
        avg_price=average if average is not None and average > 0 else None,
        fees=template.fees if template else Decimal(0),
        fill_ids=template.fill_ids if template else frozenset(),
        venue_order_id=str(raw["id"]) if raw.get("id") is not None else fallback.venue_order_id,
        created_ns=int(created_ms) * _MS if isinstance(created_ms, int) else (fallback.created_ns or now_ns),
        updated_ns=int(updated_ms) * _MS if isinstance(updated_ms, int) else now_ns,
    )


def fill_from_trade(
    trade: Mapping[str, Any],
    *,
    order: Order,
    base: str,
    quote: str,
    fallback_ms: int | None,
    now_ns: int,
) -> tuple[Fill, bool] | None:
    """Return a ccxt trade of `order` as a `Fill`, and whether its fee was converted to the quote currency.

    None when the trade has no id, quantity or price (nothing to deduplicate or book). A fee in a
    third currency (BNB on Binance) cannot be valued here: the fill then carries no fee and the
    flag is False, so the caller can say so.
    """
    trade_id, qty, price = trade.get("id"), decimal_or_none(trade.get("amount")), decimal_or_none(trade.get("price"))
    if trade_id is None or qty is None or price is None or qty <= 0 or price <= 0:
        return None
    fee = fee_in_quote(trade.get("fee"), price=price, base=base, quote=quote)
    fees: Iterable[Mapping[str, Any]] = trade.get("fees") or ()
    if trade.get("fee") is None and fees:
        parts = [fee_in_quote(f, price=price, base=base, quote=quote) for f in fees]
        fee = None if any(p is None for p in parts) else sum((p for p in parts if p is not None), Decimal(0))
    stamp = trade.get("timestamp") if isinstance(trade.get("timestamp"), int) else fallback_ms
    fill = Fill(
        fill_id=str(trade_id),
        client_id=order.client_id,
        venue=order.venue,
        symbol=order.symbol,
        side=order.side,
        quantity=qty,
        price=price,
        fee=fee if fee is not None else Decimal(0),
        time_ns=int(stamp) * _MS if stamp is not None else now_ns,
        strategy=order.strategy,
        mode=order.mode,
    )
    return fill, fee is not None


def translate_error(exc: BaseException, what: str, retry_after_s: float | None = None) -> RataError:
    """Return the rata error for a failed ccxt call (`what` names the call in the message)."""
    name = type(exc).__name__
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        wait = retry_after_s if retry_after_s is not None else 1.0
        return RateLimited(f"{what}: rate limited, retry after {wait:g}s ({name}: {exc})", retry_after=wait)
    if isinstance(exc, ccxt.OperationFailed):
        return TransientError(f"{what}: no definite answer ({name}: {exc})")
    if isinstance(exc, ccxt.ExchangeError):
        if isinstance(exc.__cause__, aiohttp.ClientError):
            return TransientError(f"{what}: the answer was lost ({name}: {exc}; {exc.__cause__!r})")
        return RejectedError(f"{what}: refused ({name}: {exc})")
    return TransientError(f"{what}: no definite answer ({name}: {exc})")
