"""Broker-level refinements of rata's exception tree, shared by every venue adapter.

They subclass the families of `framework.errors`, so a caller that only knows those keeps working:
`RateLimited` is a `TransientError` (retry, after `retry_after` seconds), `DuplicateOrder` and
`UnknownOrder` are `RejectedError`s (do not retry; for a duplicate, query the order instead).
"""

from __future__ import annotations

from framework.errors import RejectedError, TransientError

__all__ = ["DuplicateOrder", "RateLimited", "UnknownOrder"]


class RateLimited(TransientError):
    """The venue answered 429: nothing was done; retry no sooner than `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_s(self) -> float:
        """Return `retry_after` (the name `framework.brokers.ccxt_mapping.RateLimitedError` uses)."""
        return self.retry_after


class DuplicateOrder(RejectedError):
    """The venue already holds an order with this client id; it placed no second one."""

    def __init__(self, client_id: str) -> None:
        super().__init__(f"duplicate client order id {client_id!r}: the venue already has that order")
        self.client_id = client_id


class UnknownOrder(RejectedError, LookupError):
    """The venue has no order with this client id."""

    def __init__(self, client_id: str) -> None:
        super().__init__(f"unknown order {client_id!r}")
        self.client_id = client_id
