"""Trading states, their changes, and the equity marks that daily-loss and drawdown limits read."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = ["DAY_NS", "EquityMark", "StateChange", "TradingState"]

DAY_NS = 86_400 * 1_000_000_000


class TradingState(StrEnum):
    """What a scope may do: trade, only reduce positions, or nothing (cancels are always allowed)."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"

    @property
    def severity(self) -> int:
        """Return 0 for active, 1 for reducing, 2 for halted."""
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class StateChange:
    """A scope (`"*"` for the account, else a strategy) moved from one trading state to another.

    `cancel_open_orders` is True when the scope was halted: the engine must then cancel the
    scope's working orders through the broker (all of them for `"*"`).
    """

    scope: str
    previous: TradingState
    state: TradingState
    reason: str
    time_ns: int

    @property
    def cancel_open_orders(self) -> bool:
        """Return whether the scope's working orders must be cancelled."""
        return self.state is TradingState.HALTED


@dataclass(slots=True)
class EquityMark:
    """One scope's equity as the loss limits see it: at the UTC day start, at its peak, and now.

    `day_start` is the last equity known before the current UTC day began (or the first one seen
    in it); `peak` is the highest equity since the scope was last released.
    """

    day: int
    day_start: Decimal
    peak: Decimal
    last: Decimal
    last_ns: int

    @classmethod
    def first(cls, equity: Decimal, time_ns: int) -> EquityMark:
        """Return the mark of a scope's first equity."""
        return cls(time_ns // DAY_NS, equity, equity, equity, time_ns)

    def update(self, equity: Decimal, time_ns: int) -> None:
        """Record a new equity, rolling the day start over at UTC midnight."""
        day = time_ns // DAY_NS
        if day > self.day:
            self.day = day
            self.day_start = self.last
        self.last = equity
        self.last_ns = max(self.last_ns, time_ns)
        self.peak = max(self.peak, equity)

    def rebase(self) -> None:
        """Start the loss and drawdown measures over from the last equity (after a release)."""
        self.day_start = self.last
        self.peak = self.last

    @property
    def daily_loss(self) -> Decimal:
        """Return the loss since the day start (negative when in profit)."""
        return self.day_start - self.last

    @property
    def drawdown(self) -> Decimal:
        """Return the fall from the peak as a fraction of the peak (0 when the peak is not positive)."""
        return (self.peak - self.last) / self.peak if self.peak > 0 else Decimal(0)
