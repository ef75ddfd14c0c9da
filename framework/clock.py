"""Injected clocks: the same engine runs live on the wall clock and in replay on a simulated one."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SimulatedClock", "WallClock"]


@runtime_checkable
class Clock(Protocol):
    """Tells the time in nanoseconds since the Unix epoch (UTC) and sleeps on that time line."""

    def now_ns(self) -> int:
        """Return the current time."""
        ...

    async def sleep_until(self, when_ns: int) -> None:
        """Return once the clock has reached `when_ns`."""
        ...


class WallClock:
    """The real time."""

    def now_ns(self) -> int:
        """Return `time.time_ns()`."""
        return time.time_ns()

    async def sleep_until(self, when_ns: int) -> None:
        """Sleep on the event loop until the wall clock reaches `when_ns`."""
        delay = (when_ns - time.time_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)


class SimulatedClock:
    """A clock that only moves when told to (replay, tests); `sleep_until` advances it at once."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        """Return the simulated time."""
        return self._now

    def advance_to(self, when_ns: int) -> None:
        """Move the clock forward to `when_ns` (never backward)."""
        self._now = max(self._now, when_ns)

    async def sleep_until(self, when_ns: int) -> None:
        """Jump to `when_ns` and yield to the event loop once."""
        self.advance_to(when_ns)
        await asyncio.sleep(0)
