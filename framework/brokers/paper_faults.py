"""Fault injection for the paper venue: the failures a real venue inflicts, on demand.

A `FaultPlan` holds `Fault`s; the broker asks it, at every submit and cancel, which faults apply.
A fault applies to the next matching call (`times=1`, the default), to the nth call of its
operation (`call=n`, a schedule), to one order (`client_id=...`), to every matching call
(`times=None`), or at random with a seeded `probability`. Every fault that fires is recorded in
`FaultPlan.fired`, so a test can see that it happened.

Kinds (and the operations they apply to):

- `DROP_RESPONSE` (submit, cancel): the venue acts, then the answer is lost: `TransientError`;
  the order exists (or is cancelled).
- `SERVER_ERROR` (submit, cancel): the venue acts, then answers 5xx (`status`): `TransientError`;
  the order exists (or is cancelled).
- `RATE_LIMIT` (submit, cancel): 429 with Retry-After: `RateLimited` carrying `retry_after`
  seconds; nothing is done.
- `DELAY_VISIBILITY` (submit): the order is accepted, but `query` returns None and `open_orders`
  omits it for its next `hidden_queries` queries and/or until `hidden_ns` have passed on the
  broker's clock. It can still fill meanwhile.
- `DUPLICATE_FILL` (submit): every fill of the order is published twice on `events()`, with the
  same `fill_id`; the venue counts it once.
- `LATE_FILL` (cancel): the cancel is acknowledged (cancelled), yet the order still fills on the
  next bar that would have filled it: a `Fill` arrives for a cancelled order, whose status stays
  cancelled.

Example::

    plan = FaultPlan([Fault(FaultKind.SERVER_ERROR, call=3), Fault(FaultKind.DUPLICATE_FILL, client_id="o-7")])
    broker = PaperBroker(tmp_path, faults=plan)
    broker.faults.add(Fault(FaultKind.RATE_LIMIT, retry_after=2.0))  # the very next submit
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from framework.brokers.errors import RateLimited
from framework.errors import ParameterError, TransientError

__all__ = ["Fault", "FaultKind", "FaultPlan", "FiredFault", "Operation", "raise_lost_answer", "raise_rate_limit"]

Operation = Literal["submit", "cancel"]


class FaultKind(StrEnum):
    """What goes wrong; see the module docstring."""

    DROP_RESPONSE = "drop_response"
    SERVER_ERROR = "server_error"
    RATE_LIMIT = "rate_limit"
    DELAY_VISIBILITY = "delay_visibility"
    DUPLICATE_FILL = "duplicate_fill"
    LATE_FILL = "late_fill"


_OPERATIONS: dict[FaultKind, frozenset[str]] = {
    FaultKind.DROP_RESPONSE: frozenset({"submit", "cancel"}),
    FaultKind.SERVER_ERROR: frozenset({"submit", "cancel"}),
    FaultKind.RATE_LIMIT: frozenset({"submit", "cancel"}),
    FaultKind.DELAY_VISIBILITY: frozenset({"submit"}),
    FaultKind.DUPLICATE_FILL: frozenset({"submit"}),
    FaultKind.LATE_FILL: frozenset({"cancel"}),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to inject.

    `operation` defaults to `"cancel"` for `LATE_FILL` and `"submit"` for the rest. `call` is the
    1-based number of the operation's call, counted by the plan; `times` is how often the fault
    fires (None: forever); `probability` fires it at random (seeded by the plan).
    """

    kind: FaultKind
    operation: Operation | None = None
    client_id: str | None = None
    call: int | None = None
    times: int | None = 1
    probability: float = 1.0
    retry_after: float = 1.0
    status: int = 503
    hidden_queries: int = 1
    hidden_ns: int = 0

    def __post_init__(self) -> None:
        kind = FaultKind(self.kind)
        operation = self.operation or ("cancel" if kind is FaultKind.LATE_FILL else "submit")
        if operation not in _OPERATIONS[kind]:
            raise ParameterError(f"fault {kind.value} cannot apply to {operation}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "operation", operation)
        if self.times is not None and self.times < 1:
            raise ParameterError(f"fault times must be at least 1 (or None for always), got {self.times}")
        if self.call is not None and self.call < 1:
            raise ParameterError(f"fault call numbers start at 1, got {self.call}")
        if not 0 < self.probability <= 1:
            raise ParameterError(f"fault probability must be in (0, 1], got {self.probability}")
        if self.retry_after < 0 or self.hidden_queries < 0 or self.hidden_ns < 0:
            raise ParameterError("retry_after, hidden_queries and hidden_ns cannot be negative")
        if not 500 <= self.status <= 599:
            raise ParameterError(f"a server error status is 5xx, got {self.status}")


@dataclass(frozen=True, slots=True)
class FiredFault:
    """A record that `kind` fired on the `call`th `operation`, for order `client_id`."""

    kind: FaultKind
    operation: str
    client_id: str
    call: int


class FaultPlan:
    """The faults a paper venue will inject, and the record of those it did."""

    def __init__(self, faults: Iterable[Fault] = (), *, seed: int = 0) -> None:
        self._faults: list[Fault] = list(faults)
        self._calls: dict[str, int] = {"submit": 0, "cancel": 0}
        self._random = random.Random(seed)
        self.fired: list[FiredFault] = []

    def add(self, fault: Fault) -> Fault:
        """Schedule `fault` and return it."""
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Drop every scheduled fault (the record of fired ones stays)."""
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        """Return the faults that may still fire."""
        return list(self._faults)

    def kinds_fired(self) -> list[FaultKind]:
        """Return the kinds of the faults that fired, in order."""
        return [f.kind for f in self.fired]

    def take(self, operation: Operation, client_id: str) -> dict[FaultKind, Fault]:
        """Count one call of `operation` on `client_id`; return the faults that fire on it, by kind."""
        self._calls[operation] += 1
        call = self._calls[operation]
        chosen: dict[FaultKind, Fault] = {}
        keep: list[Fault] = []
        for fault in self._faults:
            fires = (
                fault.operation == operation
                and fault.kind not in chosen
                and (fault.client_id is None or fault.client_id == client_id)
                and (fault.call is None or fault.call == call)
                and (fault.probability >= 1 or self._random.random() < fault.probability)
            )
            if fires:
                chosen[fault.kind] = fault
                self.fired.append(FiredFault(fault.kind, operation, client_id, call))
                if fault.times is not None:
                    if fault.times > 1:
                        keep.append(replace(fault, times=fault.times - 1))
                    continue
            if fault.call is None or fault.call > call or fault.times is None:
                keep.append(fault)
        self._faults = keep
        return chosen


def raise_rate_limit(faults: dict[FaultKind, Fault], operation: Operation, client_id: str) -> None:
    """Raise `RateLimited` if a rate limit fault fires on this call (before the venue acts)."""
    fault = faults.get(FaultKind.RATE_LIMIT)
    if fault is not None:
        raise RateLimited(
            f"HTTP 429 from the paper venue on {operation} of {client_id!r}: retry after {fault.retry_after:g}s",
            retry_after=fault.retry_after,
        )


def raise_lost_answer(faults: dict[FaultKind, Fault], operation: Operation, client_id: str) -> None:
    """Raise `TransientError` if a 5xx or a dropped answer fires on this call (after the venue acted)."""
    server_error = faults.get(FaultKind.SERVER_ERROR)
    if server_error is not None:
        raise TransientError(
            f"HTTP {server_error.status} from the paper venue on {operation} of {client_id!r} (it may have acted)"
        )
    if FaultKind.DROP_RESPONSE in faults:
        raise TransientError(f"connection lost before the paper venue answered {operation} of {client_id!r}")
