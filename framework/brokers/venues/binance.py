"""Binance spot orders through ccxt: client ids, cheap open-order listing, no wallet calls at start.

- Client order ids go out as `newClientOrderId` (ccxt maps its unified `clientOrderId` there too;
  naming Binance's own parameter keeps ccxt from generating one of its broker-prefixed ids) and
  must match `^[.A-Z:/a-z0-9_-]{1,36}$`. Queries and cancels select by `origClientOrderId`.
  Binance refuses a client id only while another order with it is OPEN ("Duplicate order sent."):
  once that order is filled or cancelled the id can be reused, so uniqueness is rata's job.
- `GET /api/v3/openOrders` costs 6 weight for one symbol and 80 without one: polling lists symbol
  by symbol up to 13 symbols and in one call beyond; `open_orders()` (reconciliation, kill switch)
  always lists every symbol. ccxt refuses the symbol-less call unless its warning is switched off.
- With API keys, ccxt's `load_markets` also calls the wallet (`sapi/v1/capital/config/getall`) and
  the margin pair lists; a spot trading key needs neither, so `fetchCurrencies` and `fetchMargins`
  are off. Market loading is limited to the market types the symbols need (the feed's profile).
- `adjustForTimeDifference` measures the offset to Binance's clock at start, so a drifting local
  clock does not get signed requests refused with -1021 (outside `recvWindow`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import ccxt

from framework.brokers.venues.base import BrokerVenue
from framework.feeds.venues.binance import VENUE as FEED_VENUE

__all__ = ["VENUE", "BinanceBrokerVenue"]


class BinanceBrokerVenue(BrokerVenue):
    """Binance spot orders through ccxt."""

    client_id_pattern = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
    lists_all_open_orders = True
    all_symbols_open_orders_above = 13

    def config(self, symbols: Sequence[str]) -> dict[str, Any]:
        """Return options: market types of the symbols, no wallet calls, clock offset, symbol-less open orders."""
        fetch_markets = FEED_VENUE.config(symbols)["options"]["fetchMarkets"]
        return {
            "options": {
                "fetchMarkets": fetch_markets,
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": True,
                "fetchOpenOrders": {"warnWithoutSymbol": False},
            }
        }

    def is_duplicate(self, exc: BaseException | None) -> bool:
        """Return whether Binance said "Duplicate order sent." (-2010, which ccxt raises as a plain `InvalidOrder`)."""
        return super().is_duplicate(exc) or (isinstance(exc, ccxt.InvalidOrder) and "Duplicate order sent." in str(exc))

    def submit_params(self, client_id: str) -> dict[str, Any]:
        """Return `newClientOrderId`."""
        return {"newClientOrderId": client_id}

    def by_client_id(self, client_id: str) -> dict[str, Any]:
        """Return `origClientOrderId`."""
        return {"origClientOrderId": client_id}


VENUE = BinanceBrokerVenue()
