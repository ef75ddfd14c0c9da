"""Generic measuring helpers for benchmarks: interleaved timing, memory peaks, subprocesses, import time."""

from __future__ import annotations

import contextlib
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from tests.bench._report import REPO

__all__ = [
    "Timings",
    "count_p50_p95_max",
    "import_breakdown",
    "peak_rss",
    "scratch_postgres",
    "subprocess_json",
    "time_interleaved",
    "tracemalloc_peak",
]


@dataclass
class Timings:
    """Seconds of every timed run and the last output, per runner."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def best(self, name: str) -> float:
        return min(self.runs[name])

    def describe(self, name: str) -> str:
        runs = self.runs[name]
        listed = ", ".join(f"{t:.2f}" for t in runs)
        return f"{min(runs):.2f} s (median {statistics.median(runs):.2f}; runs {listed})"


def time_interleaved(
    runners: dict[str, Callable[[], Any]], repeats: int, progress: Progress, reset: Callable[[], None]
) -> Timings:
    """Warm each runner up once, then time them interleaved (so that load bursts hit all alike).

    `reset` runs before every run, untimed (e.g. to drop caches a previous run filled).
    """
    timings = Timings(runs={name: [] for name in runners})
    task = progress.add_task("in-process runs (warm-up + timed)", total=len(runners) * (repeats + 1))
    for name, fn in runners.items():
        reset()
        timings.outputs[name] = fn()
        progress.advance(task)
    for _ in range(repeats):
        for name, fn in runners.items():
            reset()
            gc.collect()
            started = time.perf_counter()
            timings.outputs[name] = fn()
            timings.runs[name].append(time.perf_counter() - started)
            progress.advance(task)
    return timings


def tracemalloc_peak(fn: Callable[[], Any], reset: Callable[[], None]) -> int:
    """Return the peak of memory traced by tracemalloc while `fn` runs (after `reset`, untimed)."""
    reset()
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_rss() -> int:
    """Return this process's peak resident set (VmHWM) in bytes.

    Not `getrusage`: a child started by vfork/exec inherits its parent's peak in `ru_maxrss`.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def subprocess_json(code: str, timeout: float = 600) -> dict[str, Any]:
    """Run `sys.executable -c code` from the repository root and return the JSON on its last stdout line."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"subprocess failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_breakdown(statement: str, top: int = 8) -> list[tuple[str, str, str]]:
    """Return the heaviest root packages imported by `statement`, by summed self import time.

    One `-X importtime` run. Rows: (package, seconds, chain of root packages that first imported it).
    """
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    lines: list[tuple[int, str, float]] = []  # (depth, module, self seconds), children before parents
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].startswith("import time:"):
            continue
        try:
            self_us = float(parts[0].removeprefix("import time:"))
        except ValueError:
            continue
        depth = (len(parts[2]) - len(parts[2].lstrip(" ")) - 1) // 2
        lines.append((depth, parts[2].strip(), self_us / 1e6))
    parent: dict[int, int] = {}
    stack: list[int] = []
    for i in reversed(range(len(lines))):  # reversed post-order is pre-order: a parent precedes its children
        while stack and lines[stack[-1]][0] >= lines[i][0]:
            stack.pop()
        if stack:
            parent[i] = stack[-1]
        stack.append(i)
    totals: dict[str, float] = {}
    via: dict[str, str] = {}
    for i, (_, module, seconds) in enumerate(lines):
        root = module.split(".")[0]
        totals[root] = totals.get(root, 0.0) + seconds
        if root not in via:
            chain: list[str] = []
            j: int | None = parent.get(i)
            while j is not None:
                up = lines[j][1].split(".")[0]
                if up != root and (not chain or chain[-1] != up):
                    chain.append(up)
                j = parent.get(j)
            via[root] = " <- ".join(chain) or "(top level)"
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [(name, f"{seconds:.2f}", via[name]) for name, seconds in ranked]


def count_p50_p95_max(values: Sequence[float]) -> tuple[str, str, str, str]:
    """Return the count, p50, p95 and maximum of `values` as table cells (whole numbers; "-" when empty)."""
    if not values:
        return ("0", "-", "-", "-")
    arr = np.asarray(values)
    return (str(len(arr)), f"{np.percentile(arr, 50):.0f}", f"{np.percentile(arr, 95):.0f}", f"{arr.max():.0f}")


@contextlib.asynccontextmanager
async def scratch_postgres(root: Path) -> AsyncIterator[str]:
    """Yield the DSN of a scratch database on an embedded PostgreSQL kept in `root` (dropped and stopped after).

    `root` must be readable by the embedded server's user (benchmarks chmod it 0o777).
    """
    from framework.storage import EmbeddedPostgres
    from runner.parity import drop_database, scratch_database

    server = EmbeddedPostgres(root / "pgdata")
    server.start()
    try:
        name, dsn = await scratch_database(server.dsn)
        try:
            yield dsn
        finally:
            await drop_database(server.dsn, name)
    finally:
        server.stop()
