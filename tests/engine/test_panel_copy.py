"""A copy of a `RollingPanel` kept up to date from its new rows builds the same windows as the panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.engine.panel import RollingPanel
from tests.engine.test_strategy_engine import SECOND, bar

SYMBOLS = ["A", "B", "C", "D"]


def assert_same_windows(panel: RollingPanel, copy: RollingPanel) -> None:
    for length in range(1, len(panel) + 1):
        theirs, ours = panel.window(length), copy.window(length)
        for name in ("open", "high", "low", "close", "volume"):
            pd.testing.assert_frame_equal(ours.field(name), theirs.field(name))
        assert ours.instruments == theirs.instruments
        assert ours.timeframe == theirs.timeframe
    np.testing.assert_array_equal(copy.last_closes(), panel.last_closes())


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 6),
    rounds=st.lists(
        st.lists(st.lists(st.sampled_from(SYMBOLS), unique=True), min_size=0, max_size=8), min_size=1, max_size=6
    ),
)
def test_a_copy_fed_the_rows_after_its_newest_builds_the_panels_windows(
    capacity: int, rounds: list[list[list[str]]]
) -> None:
    """Quiet symbols (carried forward), symbols before their first bar (NaN) and the buffer's wrap-around."""
    panel = RollingPanel(SYMBOLS, capacity, timeframe="1s")
    copy = RollingPanel(SYMBOLS, capacity, timeframe="1s")
    t = 0
    for appended in rounds:
        for trading in appended:
            t += 1
            panel.append(t * SECOND, [bar(s, t, 10.0 + t + k) for k, s in enumerate(trading)])
        rows = panel.rows_after(copy.last_time_ns) if copy.last_time_ns is not None else panel.kept_rows()
        if rows is None:  # more rows came than the panel keeps: the copy starts again from all of them
            copy = RollingPanel(SYMBOLS, capacity, timeframe="1s")
            rows = panel.kept_rows()
        assert rows is not None
        copy.append_rows(*rows)
        if len(panel):
            assert_same_windows(panel, copy)


def test_rows_after_a_time_the_panel_no_longer_keeps_are_unknown() -> None:
    panel = RollingPanel(["A"], 2)
    for t in range(1, 5):
        panel.append(t * SECOND, [bar("A", t, float(t))])
    assert panel.rows_after(1 * SECOND) is None  # rolled out: rows 2 (and 3) are gone too
    assert panel.rows_after(int(2.5 * SECOND)) is None  # never a row
    times, values = panel.rows_after(3 * SECOND) or (None, None)
    assert times is not None
    assert values is not None
    assert times.tolist() == [4 * SECOND]
    assert values[3].tolist() == [[4.0]]
    empty = panel.rows_after(4 * SECOND)
    assert empty is not None
    assert len(empty[0]) == 0
