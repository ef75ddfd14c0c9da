"""Injected clocks: the same engine runs live on the wall clock and in replay on a simulated one."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SimulatedClock", "WallClock", "sleep_until_or_set"]

_INTERRUPTIBLE_NS = 20_000_000  # waits longer than this can be cut short by the event


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


async def sleep_until_or_set(clock: Clock, when_ns: int, event: asyncio.Event) -> None:
    """Sleep on `clock` until `when_ns`, but return at once when `event` is set (a feed's close).

    Short waits (20 ms or less) are not worth two tasks and are slept through.
    """
    if when_ns - clock.now_ns() <= _INTERRUPTIBLE_NS:
        await clock.sleep_until(when_ns)
        return
    sleeper = asyncio.ensure_future(clock.sleep_until(when_ns))
    closer = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((sleeper, closer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, closer):
            task.cancel()
