"""Latency histograms: log-spaced buckets, recorded in bulk, read as percentiles.

Tens of thousands of samples a second cannot be kept one by one for long. A fixed array of
log-spaced buckets (HDR-histogram style) keeps memory constant, records a whole batch with one
numpy call, and still answers p50/p99/p99.9 to within one bucket width (about 2%).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["LatencyHistogram", "LatencySnapshot", "LatencySummary"]

_PER_DOUBLING = 32
_FLOOR_NS = 1_000
_BUCKETS = _PER_DOUBLING * 32


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of a latency distribution, in milliseconds (None when nothing was recorded)."""

    count: int
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    mean_ms: float | None


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    """The ingestion writer's latencies over a window: each tick to its commit, and each commit."""

    tick: LatencySummary
    batch: LatencySummary


class LatencyHistogram:
    """Count latencies in nanoseconds in log-spaced buckets from 1 µs up to about 70 minutes.

    Values below 1 µs share the first bucket and values above the range the last; negative values
    (clock skew between a venue's send time and ours) count as zero and are tallied in `negative`.
    The exact count, sum and maximum are kept alongside the buckets.
    """

    def __init__(self) -> None:
        self._counts = np.zeros(_BUCKETS, dtype=np.int64)
        self.count = 0
        self.negative = 0
        self._sum_ns = 0
        self._max_ns = 0

    def record(self, latency_ns: int) -> None:
        """Record one latency."""
        self.record_many(np.array([latency_ns], dtype=np.int64))

    def record_many(self, latencies_ns: np.ndarray | Iterable[int]) -> None:
        """Record a batch of latencies with one pass of numpy."""
        values = np.asarray(latencies_ns, dtype=np.int64)
        if values.size == 0:
            return
        self.negative += int(np.count_nonzero(values < 0))
        values = np.maximum(values, 0)
        scaled = np.log2(np.maximum(values, _FLOOR_NS) / _FLOOR_NS) * _PER_DOUBLING
        index = np.minimum(scaled.astype(np.int64), _BUCKETS - 1)
        self._counts += np.bincount(index, minlength=_BUCKETS)
        self.count += int(values.size)
        self._sum_ns += int(values.sum())
        self._max_ns = max(self._max_ns, int(values.max()))

    def percentile(self, q: float) -> float | None:
        """Return the `q`th percentile (0-100) in nanoseconds, or None when empty."""
        if self.count == 0:
            return None
        rank = max(1, int(np.ceil(q / 100.0 * self.count)))
        index = int(np.searchsorted(np.cumsum(self._counts), rank))
        middle = _FLOOR_NS * 2.0 ** ((index + 0.5) / _PER_DOUBLING)
        return float(min(middle, self._max_ns)) if index else float(min(_FLOOR_NS, self._max_ns))

    def summary(self) -> LatencySummary:
        """Return the count, p50, p99, p99.9, maximum and mean in milliseconds."""
        if self.count == 0:
            return LatencySummary(0, None, None, None, None, None)

        def ms(value: float | None) -> float | None:
            return None if value is None else value / 1e6

        return LatencySummary(
            count=self.count,
            p50_ms=ms(self.percentile(50)),
            p99_ms=ms(self.percentile(99)),
            p999_ms=ms(self.percentile(99.9)),
            max_ms=self._max_ns / 1e6,
            mean_ms=self._sum_ns / self.count / 1e6,
        )

    def reset(self) -> None:
        """Forget every sample (start a new measurement window)."""
        self._counts[:] = 0
        self.count = self.negative = self._sum_ns = self._max_ns = 0
