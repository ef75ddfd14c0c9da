"""The columnar path: `TickBatch`, and the normaliser and aggregator taking batches as they take ticks.

Every batch operation is checked against the per-tick path it replaces: the same trades accepted,
the same reasons counted, the same bars, whatever the mix and the order of good and bad trades.
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest

from framework.clock import SimulatedClock
from framework.events import Tick, TickBatch
from framework.ingest import BarAggregator, Normaliser
from framework.ingest.spool import Spool
from tests.ingest.helpers import BASE, SECOND, tick

KNOWN = {("SIM", "AAA"), ("SIM", "BBB")}


def test_a_batch_holds_ticks_of_one_venue_as_columns_and_gives_them_back():
    ticks = [tick(1, 100.0), tick(2, 101.5, 2.0, "BBB"), dataclasses.replace(tick(3, 99.0), side=-1, recv_ns=7)]
    batch = TickBatch.from_ticks(ticks)
    assert (len(batch), batch.venue, batch.symbols) == (3, "SIM", ["AAA", "BBB", "AAA"])
    assert batch.time_ns.dtype == np.int64
    assert batch.side.dtype == np.int8
    assert batch.ticks() == ticks
    assert [batch.tick(i) for i in range(3)] == ticks
    assert [Tick(*row) for row in batch.rows()] == ticks
    assert batch.take(np.array([True, False, True])).ticks() == [ticks[0], ticks[2]]
    assert batch.take(np.array([2, 0])).ticks() == [ticks[2], ticks[0]]
    assert TickBatch.concat([batch, TickBatch.from_ticks(ticks[:1])]).ticks() == [*ticks, ticks[0]]
    assert TickBatch.concat([batch]) is batch
    assert len(TickBatch.empty("SIM")) == 0
    with pytest.raises(ValueError, match="one venue"):
        TickBatch.from_ticks([tick(1, 100.0), dataclasses.replace(tick(2, 100.0), venue="OTHER")])
    with pytest.raises(ValueError, match="one value per trade"):
        TickBatch("SIM", ["AAA"], ["1", "2"], [1], [1.0], [1.0], [1], [0], [0])


def messy_ticks(n: int, seed: int) -> list[Tick]:
    """Return `n` ticks of two instruments, mostly good, with every kind of bad one mixed in."""
    rng = random.Random(seed)
    out: list[Tick] = []
    t = 10.0
    for i in range(n):
        t += rng.expovariate(50)
        good = tick(t, round(100 + rng.gauss(0, 1), 2), round(rng.uniform(0.1, 3), 3), rng.choice(["AAA", "BBB"]))
        kind = rng.random()
        if kind < 0.80 or not out:
            out.append(good)
        elif kind < 0.83:
            out.append(rng.choice(out[-50:]))  # a duplicate, usually within the reordering window
        elif kind < 0.86:
            out.append(dataclasses.replace(good, time_ns=good.time_ns - rng.choice([1, 3]) * SECOND, trade_id=f"o{i}"))
        else:
            field, value = rng.choice(
                [
                    ("price", math.nan),
                    ("price", -1.0),
                    ("size", math.inf),
                    ("size", 0.0),
                    ("trade_id", ""),
                    ("symbol", "ZZZ"),
                    ("symbol", ""),
                    ("side", 3),
                    ("time_ns", 0),
                    ("time_ns", BASE + 10**6 * SECOND),
                ]
            )
            out.append(dataclasses.replace(good, **{field: value}))
            if field in ("price", "size") and rng.random() < 0.5:  # two faults at once: the first check wins
                out[-1] = dataclasses.replace(out[-1], symbol="ZZZ", time_ns=0)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_check_batch_accepts_and_refuses_exactly_what_check_does_tick_by_tick(seed):
    ticks = messy_ticks(3000, seed)
    one = Normaliser(KNOWN, SimulatedClock(BASE + 3600 * SECOND), max_recent_ids=64)
    many = Normaliser(KNOWN, SimulatedClock(BASE + 3600 * SECOND), max_recent_ids=64)
    expected = [t for t in ticks if one.check(t) is not None]
    rng = random.Random(seed)
    got: list[Tick] = []
    start = 0
    while start < len(ticks):
        size = rng.choice([1, 2, 7, 64, 500])
        accepted = many.check_batch(TickBatch.from_ticks(ticks[start : start + size]))
        got += accepted.ticks() if accepted is not None else []
        start += size
    assert got == expected
    assert many.rejected == one.rejected
    assert set(one.rejected) == {
        "non_finite",
        "non_positive",
        "missing_field",
        "invalid_value",
        "unknown_instrument",
        "future_timestamp",
        "duplicate",
        "out_of_order",
    }
    assert (many.received, many.accepted) == (one.received, one.accepted) == (len(ticks), len(expected))


def test_a_clean_batch_passes_as_is_and_an_all_bad_one_gives_none():
    normaliser = Normaliser(KNOWN, SimulatedClock(BASE + 3600 * SECOND))
    clean = TickBatch.from_ticks([tick(1, 100.0), tick(2, 100.0, symbol="BBB")])
    assert normaliser.check_batch(clean) is clean
    assert normaliser.check_batch(clean) is None  # the same trades again: duplicates
    assert normaliser.rejected == {"duplicate": 2}
    assert normaliser.check_batch(TickBatch.empty("SIM")) is None
    assert normaliser.check_batch(TickBatch.from_ticks([dataclasses.replace(tick(3, 1.0), venue="X")])) is None
    assert normaliser.rejected == {"duplicate": 2, "unknown_instrument": 1}


def test_a_batch_with_values_of_the_wrong_type_is_refused_never_raised():
    normaliser = Normaliser(KNOWN, SimulatedClock(BASE + 3600 * SECOND))
    t = tick(1, 100.0)
    batch = TickBatch("SIM", [["not", "hashable"], "AAA", "AAA"], ["a", 17, "c"], [t.time_ns] * 3, [1.0] * 3,
                      [1.0] * 3, [1] * 3, [0] * 3, [0] * 3)  # fmt: skip
    accepted = normaliser.check_batch(batch)  # type: ignore[arg-type]
    assert accepted is not None
    assert accepted.trade_ids == ["c"]
    assert normaliser.rejected == {"wrong_type": 2}
    weird_venue = TickBatch(None, ["AAA"], ["x"], [t.time_ns], [1.0], [1.0], [1], [0], [0])  # type: ignore[arg-type]
    assert normaliser.check_batch(weird_venue) is None
    assert normaliser.rejected == {"wrong_type": 3}


def test_on_batch_builds_the_bars_on_tick_does():
    rng = random.Random(5)
    ticks, t = [], 0.0
    while t < 2 * 3600:
        t += rng.expovariate(1 / 0.7) if rng.random() < 0.97 else rng.uniform(30, 700)
        ticks.append(tick(t, round(rng.uniform(90, 110), 2), round(rng.uniform(0.1, 2), 3), rng.choice(["AAA", "BBB"])))
    ticks.insert(500, dataclasses.replace(ticks[10], trade_id="late"))  # late: its bar was emitted long ago
    one, many = BarAggregator(), BarAggregator()
    expected = [bar for trade in ticks for bar in one.on_tick(trade)]
    got = []
    for start in range(0, len(ticks), 37):
        got += many.on_batch(TickBatch.from_ticks(ticks[start : start + 37]))
    assert got == expected
    assert many.flush_all() == one.flush_all()
    assert (many.late_ticks, many.bars_emitted) == (one.late_ticks, one.bars_emitted)
    assert one.late_ticks == 1


def test_the_spool_keeps_batches_with_the_single_ticks(tmp_path):
    spool = Spool(tmp_path)
    singles = [tick(1, 100.0)]
    batch = TickBatch.from_ticks([tick(2, 101.0), tick(3, 102.0, symbol="BBB")])
    spool.append(singles, [], [batch])
    kept = spool.oldest()
    assert kept is not None
    assert kept.ticks == [*singles, *batch.ticks()]
