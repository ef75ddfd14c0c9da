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
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["LoopKind", "loop_factory", "loop_name", "run", "settle_gc"]

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
