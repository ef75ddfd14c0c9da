"""The generic order-venue profile `CcxtBroker` uses, and the lookup of a venue's own profile.

A profile answers what the broker cannot learn from ccxt's unified API alone: which client order
ids the venue accepts, which parameters carry a client order id on create, query and cancel, how
to list open orders cheaply, and which ccxt options keep the venue's start-up calls to what a
trading key needs. A venue with quirks gets a module of its own here
(`framework.brokers.venues.<ccxt id>`, exposing `VENUE`); every other exchange gets `BrokerVenue`,
which passes ccxt's unified `clientOrderId` parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import ccxt

from framework.errors import RejectedError
from framework.venues import find_profile

__all__ = ["BrokerVenue", "broker_venue_for"]


class BrokerVenue:
    """The generic profile: ccxt's unified `clientOrderId` parameter, open orders symbol by symbol."""

    client_id_pattern: re.Pattern[str] | None = None
    """The client order ids the venue accepts, when it says (None: anything non-empty is sent)."""

    lists_all_open_orders = False
    """Whether `fetch_open_orders()` without a symbol lists every symbol's (used by `open_orders`, to reconcile)."""

    all_symbols_open_orders_above: int | None = None
    """List open orders in one call without a symbol once more than this many symbols are watched (None: never)."""

    def config(self, symbols: Sequence[str]) -> dict[str, Any]:
        """Return ccxt constructor settings this venue needs for trading `symbols` (user settings override them)."""
        return {}

    def check_client_id(self, client_id: str) -> None:
        """Raise `RejectedError` when the venue would refuse `client_id`."""
        pattern = self.client_id_pattern
        if pattern is not None and not pattern.fullmatch(client_id):
            raise RejectedError(f"client order id {client_id!r} does not match the venue's pattern {pattern.pattern}")

    def is_duplicate(self, exc: BaseException | None) -> bool:
        """Return whether a refused submit was refused for reusing a client order id."""
        return isinstance(exc, ccxt.DuplicateOrderId)

    def submit_params(self, client_id: str) -> dict[str, Any]:
        """Return the `create_order` params that carry rata's client order id."""
        return {"clientOrderId": client_id}

    def by_client_id(self, client_id: str) -> dict[str, Any]:
        """Return the `fetch_order` / `cancel_order` params that select an order by client id."""
        return {"clientOrderId": client_id}


def broker_venue_for(exchange_id: str) -> BrokerVenue:
    """Return the profile of a ccxt exchange id: its own module's `VENUE` if there is one, else `BrokerVenue()`."""
    return find_profile(__package__ or "framework.brokers.venues", exchange_id, BrokerVenue())
