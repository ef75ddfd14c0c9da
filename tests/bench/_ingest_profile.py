"""Where the ingesting process spends its CPU: py-spy (sampling) when installed, else cProfile.

py-spy samples this process from outside, 250 times a second, pausing it for each sample (its
`--nonblocking` mode read torn stacks here: it charged two thirds of the time to a 0.5 us
function). Only the event loop's thread is kept (where all of ingestion runs): py-spy here counts
threads parked in a lock wait as busy. Idle time in the loop's `select` is not counted, so the
shares are of CPU time actually used.
cProfile (the fallback) adds a cost to every Python call and so overstates call-heavy code.
Time inside C functions (orjson, datetime, asyncpg's Cython) is charged to the Python function
that called them.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Profile", "profile_self"]

# (component, substrings of the file path); the first match wins, "other" catches the rest
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ccxt client (decode, parse, caches, futures)", ("/ccxt/",)),
    ("aiohttp websocket reader", ("/aiohttp/",)),
    ("asyncpg (protocol, array encoding)", ("/asyncpg/",)),
    ("Binance direct stream (read, parse)", ("framework/feeds/venues/binance.py",)),
    ("CcxtFeed (cursors, outbox, backfill)", ("framework/feeds/ccxt_feed.py", "framework/feeds/venues/")),
    ("SyntheticFeed (draw, batches)", ("framework/feeds/synthetic.py",)),
    ("normaliser (validate, dedupe)", ("framework/ingest/normalise.py", "framework/ingest/messages.py")),
    ("bar aggregator", ("framework/ingest/aggregate.py",)),
    ("pipeline loop", ("framework/ingest/pipeline.py",)),
    (
        "batch writer (collect, columns, latency)",
        ("framework/ingest/writer.py", "framework/ingest/latency.py", "framework/storage/", "framework/events.py"),
    ),
    ("asyncio / uvloop (event loop, futures)", ("/asyncio/", "/uvloop/")),
    ("orjson", ("orjson",)),
    ("numpy", ("/numpy/",)),
    ("frozen dataclass __init__ (Tick, Bar, stats objects)", ("<string>",)),
    ("benchmark harness", ("tests/bench/",)),
)
# (label, file substring, function): share of samples whose stack passes through that function
MARKERS: tuple[tuple[str, str, str], ...] = (
    ("Binance direct stream: BinanceTradeStream._read (socket to outbox)", "feeds/venues/binance.py", "_read"),
    ("CcxtFeed.trade (cursor, outbox; called by the direct stream)", "framework/feeds/ccxt_feed.py", "trade"),
    ("ccxt: websocket message handling (Client.handle_message)", "/ccxt/", "handle_message"),
    ("CcxtFeed._watch (a symbol's ccxt loop, watch_trades included)", "framework/feeds/ccxt_feed.py", "_watch"),
    ("IngestPipeline._consume (normalise, aggregate, enqueue)", "framework/ingest/pipeline.py", "_consume"),
    ("Normaliser.check_batch", "framework/ingest/normalise.py", "check_batch"),
    ("BarAggregator.on_batch", "framework/ingest/aggregate.py", "on_batch"),
    ("BatchWriter._collect (dequeue into batches)", "framework/ingest/writer.py", "_collect"),
    ("BatchWriter._write (columns, the statement, latency)", "framework/ingest/writer.py", "_write"),
)


@dataclass(frozen=True)
class Profile:
    """Shares (0-1) of the sampled CPU time: by component (self time), through key functions, top functions."""

    tool: str
    samples: int
    components: list[tuple[str, float]]
    markers: list[tuple[str, float]]
    top: list[tuple[str, float]]

    def share(self, component_prefix: str) -> float:
        return sum(s for name, s in self.components if name.startswith(component_prefix))


def _component(path: str) -> str:
    for name, needles in COMPONENTS:
        if any(n in path for n in needles):
            return name
    return "other"


def _short(path: str) -> str:
    for anchor in ("site-packages/", "/work/main/", "/lib/python3"):
        if anchor in path:
            return path.split(anchor, 1)[1]
    return Path(path).name


def _frame(text: str) -> tuple[str, str]:
    """Split py-spy's `func (path:line)` into (func, path)."""
    func, _, rest = text.partition(" (")
    return func, rest.rsplit(":", 1)[0]


def _from_stacks(tool: str, stacks: Counter[tuple[tuple[str, str], ...]], top: int) -> Profile:
    total = sum(stacks.values())
    by_component: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    by_marker: Counter[str] = Counter()
    for stack, count in stacks.items():
        func, path = stack[-1]
        by_component[_component(path)] += count
        by_function[f"{func} ({_short(path)})"] += count
        for label, needle, name in MARKERS:
            if any((f == name or f.endswith("." + name)) and needle in p for f, p in stack):
                by_marker[label] += count
    return Profile(
        tool=tool,
        samples=total,
        components=[(k, v / total) for k, v in by_component.most_common()],
        markers=[(label, by_marker[label] / total) for label, _, _ in MARKERS if by_marker[label]],
        top=[(k, v / total) for k, v in by_function.most_common(top)],
    )


def pyspy_path() -> str | None:
    """Return py-spy's executable (next to this Python first), or None."""
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


async def _pyspy(executable: str, seconds: float, top: int) -> Profile:
    with tempfile.TemporaryDirectory(prefix="rata-bench-spy-") as tmp:
        out = Path(tmp) / "stacks.txt"
        # Popen polled from the loop, not asyncio's subprocess: its child watcher thread would sit in
        # waitpid and be sampled as busy.
        proc = subprocess.Popen(
            [executable, "record", "--pid", str(os.getpid()), "--duration", str(max(1, round(seconds))),
             "--rate", "250", "--format", "raw", "--full-filenames", "--threads", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        while proc.poll() is None:
            await asyncio.sleep(0.1)
        err = proc.stderr.read() if proc.stderr is not None else b""
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"py-spy failed ({proc.returncode}): {err.decode()[-500:]}")
        stacks: Counter[tuple[tuple[str, str], ...]] = Counter()
        for line in out.read_text().splitlines():
            text, _, count = line.rpartition(" ")
            thread, _, frames = text.partition(";")
            # the event loop's thread only: py-spy does not see other threads idling in a lock wait
            if frames and count.isdigit() and thread.endswith(": MainThread"):
                stacks[tuple(_frame(f) for f in frames.split(";"))] += int(count)
    return _from_stacks("py-spy", stacks, top)


async def _cprofile(seconds: float, top: int) -> Profile:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await asyncio.sleep(seconds)
    finally:
        profiler.disable()
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    stacks: Counter[tuple[tuple[str, str], ...]] = Counter()
    markers: Counter[str] = Counter()
    for (path, _line, func), (_cc, _nc, self_s, cumulative_s, _callers) in raw.items():
        stacks[((func, path),)] += round(self_s * 1e6)
        for label, needle, name in MARKERS:
            if (func == name or func.endswith("." + name)) and needle in path:
                markers[label] += round(cumulative_s * 1e6)
    profile = _from_stacks("cProfile", stacks, top)
    total = profile.samples or 1
    inclusive = [(label, markers[label] / total) for label, _, _ in MARKERS if markers[label]]
    return Profile(profile.tool, profile.samples, profile.components, inclusive, profile.top)


async def profile_self(seconds: float, top: int = 12, tools: Sequence[str] = ("py-spy", "cProfile")) -> Profile:
    """Profile this process for `seconds` while the event loop keeps running everything else."""
    executable = pyspy_path()
    if "py-spy" in tools and executable is not None:
        return await _pyspy(executable, seconds, top)
    return await _cprofile(seconds, top)
