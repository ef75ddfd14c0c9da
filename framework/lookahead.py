"""Look-ahead and history-dependence checks: prove that `signals()` is causal.

Two failures are looked for, at many cut points through the data:

- **look-ahead**: the decisions on bars up to t change when the bars after t are removed, i.e. a
  decision used data from its future (a `shift(-1)`, a centred window, a full-sample z-score...).
- **history dependence**: the decision at bar t computed from only the live engine's minimum window
  (`warmup + 1` bars ending at t) differs from the one computed on the full history, i.e. the
  strategy needs more history than it declares (an EMA with too short a warm-up, an expanding
  mean, a rebalance schedule counted from the first row). Live and backtest would then disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from framework.bars import Bars
from framework.errors import DataError, LookaheadError
from framework.reporting import jsonable
from framework.strategy import Decision, Signals, Strategy, TargetWeights

__all__ = ["LookaheadProblem", "LookaheadReport", "check_lookahead"]

_WEIGHT_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class LookaheadProblem:
    """One decision that differs between the full run and a truncated one."""

    kind: str
    instrument: str
    time: pd.Timestamp
    field: str
    cut: pd.Timestamp
    full: Any
    truncated: Any

    @property
    def detail(self) -> str:
        """Return a one-line explanation."""
        if self.kind == "lookahead":
            return (
                f"look-ahead: {self.field} of {self.instrument} at {self.time} is {self.full!r} with the full data "
                f"but {self.truncated!r} when the data ends at {self.cut} (it uses later bars)"
            )
        return (
            f"history dependence: {self.field} of {self.instrument} at {self.time} is {self.full!r} with the full "
            f"history but {self.truncated!r} from the live window of warmup+1 bars (declare a longer warmup)"
        )


@dataclass(frozen=True)
class LookaheadReport:
    """The outcome of `check_lookahead`: the cut points tried and every problem found."""

    strategy: Strategy
    cuts: list[pd.Timestamp]
    problems: list[LookaheadProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether no problem was found."""
        return not self.problems

    def raise_if_failed(self) -> None:
        """Raise `LookaheadError` describing the first problem, if any."""
        if self.problems:
            raise LookaheadError(f"{self.strategy!r}: {self.problems[0].detail}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "strategy": self.strategy.name,
            "params": self.strategy.values,
            "ok": self.ok,
            "cuts": len(self.cuts),
            "problems": [
                {
                    "kind": p.kind,
                    "instrument": p.instrument,
                    "time": p.time.isoformat(),
                    "field": p.field,
                    "detail": p.detail,
                }
                for p in self.problems
            ],
        }

    def __repr__(self) -> str:
        if self.ok:
            return f"LookaheadReport({self.strategy!r}: ok, {len(self.cuts)} cut points, no look-ahead)"
        return f"LookaheadReport({self.strategy!r}: {len(self.problems)} problem(s); first: {self.problems[0].detail})"


def check_lookahead(strategy: Strategy, data: Bars, *, cuts: int = 20, history: bool = True) -> LookaheadReport:
    """Recompute `strategy`'s decisions on truncated data at `cuts` points and report differences.

    Cut points are spread evenly over the bars after the warm-up. For each cut at bar c, the
    decisions on `data[:c]` must equal the full run's first c rows (look-ahead), and with
    `history=True` the decision at bar c-1 from the window `data[c-warmup-1:c]` must equal the full
    run's (history dependence). At most one problem per instrument and kind is kept: the earliest;
    an instrument with look-ahead is not also reported for history dependence.
    """
    warmup = strategy.warmup_bars()
    n = len(data)
    first = warmup + 2
    if n <= first:
        raise DataError(f"{strategy!r}: need more than {first} bars to check look-ahead, got {n}")
    points = sorted({int(c) for c in np.linspace(first, n - 1, num=min(cuts, n - first))})
    full = strategy.decide(data)
    found: dict[tuple[str, str], LookaheadProblem] = {}
    for cut in points:
        cut_time = data.index[cut - 1]
        prefix = strategy.decide(data.iloc[:cut])
        for problem in _differences(full, prefix, slice(0, cut), "lookahead", cut_time):
            _keep_earliest(found, problem)
        if history:
            window = strategy.decide(data.iloc[cut - warmup - 1 : cut])
            for problem in _differences(full, window, slice(cut - 1, cut), "history", cut_time, last_only=True):
                _keep_earliest(found, problem)
    leaky = {p.instrument for p in found.values() if p.kind == "lookahead"}
    kept = [p for p in found.values() if p.kind == "lookahead" or p.instrument not in leaky]
    problems = sorted(kept, key=lambda p: (p.time, p.kind != "lookahead", p.instrument))
    return LookaheadReport(strategy=strategy, cuts=[data.index[c - 1] for c in points], problems=problems)


def _keep_earliest(found: dict[tuple[str, str], LookaheadProblem], problem: LookaheadProblem) -> None:
    key = (problem.kind, problem.instrument)
    if key not in found or problem.time < found[key].time:
        found[key] = problem


def _frames(decision: Decision) -> dict[str, pd.DataFrame]:
    if isinstance(decision, Signals):
        return decision.frames()
    if isinstance(decision, TargetWeights):
        return {"weights": decision.weights}
    raise LookaheadError(f"unknown decision type {type(decision).__name__}")


def _differences(
    full: Decision, part: Decision, rows: slice, kind: str, cut: pd.Timestamp, *, last_only: bool = False
) -> list[LookaheadProblem]:
    problems = []
    full_frames, part_frames = _frames(full), _frames(part)
    for name, full_frame in full_frames.items():
        part_frame = part_frames.get(name)
        expected = full_frame.iloc[rows]
        if part_frame is None:
            got = np.zeros(expected.shape, dtype=expected.to_numpy().dtype)
        else:
            got = part_frame.to_numpy()[-1:] if last_only else part_frame.to_numpy()
        want = expected.to_numpy()
        if want.dtype == np.bool_:
            differ = want != got
        else:
            both_nan = np.isnan(want) & np.isnan(got)
            differ = ~both_nan & ~(np.abs(want - got) <= _WEIGHT_TOLERANCE)
        if not differ.any():
            continue
        for col in np.flatnonzero(differ.any(axis=0)):
            row = int(np.flatnonzero(differ[:, col])[0])
            problems.append(
                LookaheadProblem(
                    kind=kind,
                    instrument=str(expected.columns[int(col)]),
                    time=pd.Timestamp(expected.index[row]),
                    field=name,
                    cut=cut,
                    full=jsonable(want[row, col]),
                    truncated=jsonable(got[row, col]),
                )
            )
    return problems
