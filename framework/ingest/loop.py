"""How an ingesting process runs: its event loop (uvloop when installed) and its garbage collector.

Ingestion is one event loop doing everything (websocket reads, validation, PostgreSQL round
trips), so the loop's own cost per wake-up and per socket read matters. uvloop (libuv, Cython)
does the same work with less CPU than asyncio's pure-Python selector loop, and asyncpg is built
for it. `rata ingest` and the ingestion benchmark both run through `run`.

The cyclic garbage collector is the other source of stalls: a process that imported the
framework holds over half a million long-lived objects (modules, ccxt's exchange classes,
pandas), and a full collection walks them all: about 200 ms on the benchmark machine, during which
nothing is read or committed. `settle_gc`, once start-up is done, moves them out of the
collector's sight (`gc.freeze`), so later collections only walk what ingestion itself allocates.
What a trading runner allocates afterwards (the orders and positions it keeps) still makes each
full collection a pause of tens of milliseconds; `FullCollections` lets the runner take those
pauses between bar closes instead of whenever the collector decides.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["FullCollections", "LoopKind", "loop_factory", "loop_name", "run", "settle_gc"]

LoopKind = Literal["auto", "uvloop", "asyncio"]
T = TypeVar("T")


def loop_factory(kind: LoopKind = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return a factory of the loop `kind` ("auto": uvloop if installed), or None for asyncio's default."""
    if kind == "asyncio" or (kind == "auto" and importlib.util.find_spec("uvloop") is None):
        return None
    import uvloop  # raises ImportError when asked for explicitly and missing

    return uvloop.new_event_loop


def loop_name(kind: LoopKind = "auto") -> str:
    """Return the name and version of the loop `kind` resolves to."""
    if loop_factory(kind) is None:
        return "asyncio (default selector loop)"
    from importlib.metadata import version

    return f"uvloop {version('uvloop')}"


def run(main: Coroutine[Any, Any, T], kind: LoopKind = "auto") -> T:
    """Run `main` to completion on a new loop of `kind` (like `asyncio.run`)."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)


def settle_gc() -> None:
    """Collect garbage once, then freeze every object alive (start-up is over: they live for good)."""
    gc.collect()
    gc.freeze()


class FullCollections:
    """Full (oldest generation) garbage collections when the owner says, at most every `every_s`.

    `start` takes automatic full collections off (the oldest generation's threshold out of reach;
    the young generations are collected as usual, in a few milliseconds at most); `collect_if_due`
    runs one when `every_s` has passed since the last, and the owner calls it at a quiet moment:
    the trading runner, between one bar close's orders and the next close. `collect_if_overdue`
    (twice `every_s`) is for a timer, when no close comes to call the other. `stop` gives the
    collector its own schedule back.

    Hand-written, because CPython (3.11) has no incremental collector: a full collection walks
    every tracked object at once (the 20,000 ended orders and 14,000 positions the runner keeps
    are a 30-70 ms pause), and the only way to choose when that happens is to run it yourself.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self.count = 0
        self.last_pause_s = 0.0
        self._saved: tuple[int, int, int] | None = None
        self._last = time.monotonic()

    @property
    def active(self) -> bool:
        """Return whether full collections are on this object's schedule (between `start` and `stop`)."""
        return self._saved is not None

    def start(self) -> None:
        """Stop the collector's automatic full collections."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(self._saved[0], self._saved[1], 2**31 - 1)
            self._last = time.monotonic()

    def stop(self) -> None:
        """Give the collector its thresholds back."""
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def collect_if_due(self) -> bool:
        """Run a full collection if `every_s` has passed since the last; return whether one ran."""
        return self._collect_after(self.every_s)

    def collect_if_overdue(self) -> bool:
        """Run a full collection if twice `every_s` has passed since the last (no quiet moment came)."""
        return self._collect_after(2 * self.every_s)

    def _collect_after(self, seconds: float) -> bool:
        now = time.monotonic()
        if not self.active or now - self._last < seconds:
            return False
        gc.collect()
        self._last = time.monotonic()
        self.last_pause_s = self._last - now
        self.count += 1
        return True
