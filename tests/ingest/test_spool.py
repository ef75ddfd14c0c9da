"""Spool: batches survive restarts and crashes mid-write, replay in order, and a full spool refuses."""

from __future__ import annotations

import pytest

from framework.events import Bar
from framework.ingest import Spool, SpoolFullError
from tests.ingest.helpers import BASE, tick

BAR = Bar("SIM", "AAA", "1m", BASE, 100.0, 101.0, 99.0, 100.5, 10.0, 100.2, 7)


def test_batches_come_back_in_order_and_survive_a_restart(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    first, second = [tick(1, 100.0), tick(2, 101.0)], [tick(3, 102.0, symbol="BBB")]
    spool.append(first, [BAR])
    spool.append(second, [])
    assert spool.pending() == 2
    assert spool.pending_bytes > 0

    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.pending() == 2
    batch = reopened.oldest()
    assert batch is not None
    assert (batch.ticks, batch.bars) == (first, [BAR])
    reopened.remove(batch)
    reopened.append([tick(4, 103.0)], [])
    later = reopened.oldest()
    assert later is not None
    assert later.ticks == second
    reopened.remove(later)
    last = reopened.oldest()
    assert last is not None
    assert last.ticks == [tick(4, 103.0)]
    reopened.remove(last)
    assert (reopened.pending(), reopened.pending_bytes, reopened.oldest()) == (0, 0, None)
    assert list(tmp_path.iterdir()) == []


def test_a_crash_mid_write_leaves_no_half_batch_and_a_corrupt_file_is_kept_aside(tmp_path, caplog):
    spool = Spool(tmp_path)
    spool.append([tick(1, 100.0)], [])
    (tmp_path / "0000000000000001.batch.tmp").write_bytes(b"\x80\x05half a batch")
    (tmp_path / "0000000000000002.batch").write_bytes(b"\x80\x05garbage")
    reopened = Spool(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    assert reopened.pending() == 2
    batch = reopened.oldest()
    assert batch is not None
    assert batch.ticks == [tick(1, 100.0)]
    reopened.remove(batch)
    assert reopened.oldest() is None
    assert [p.name for p in tmp_path.iterdir()] == ["0000000000000002.corrupt"]
    assert "unreadable" in caplog.text
    reopened.append([tick(5, 100.0)], [])
    assert [p.name for p in sorted(tmp_path.glob("*.batch"))] == ["0000000000000003.batch"]


def test_a_full_spool_refuses_the_batch_instead_of_dropping_anything(tmp_path):
    spool = Spool(tmp_path, max_bytes=600)
    spool.append([tick(i, 100.0) for i in range(3)], [])
    with pytest.raises(SpoolFullError, match="full"):
        spool.append([tick(i, 100.0) for i in range(20)], [])
    assert spool.pending() == 1


async def test_drain_stops_at_a_failing_write_and_keeps_that_batch(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append([tick(i, 100.0)], [])
    written = []

    async def write(ticks, bars):
        if len(written) == 1:
            raise OSError("database down")
        written.append(ticks[0])

    with pytest.raises(OSError, match="database down"):
        await spool.drain(write)
    assert written == [tick(0, 100.0)]
    assert spool.pending() == 2

    async def write_all(ticks, bars):
        written.append(ticks[0])

    assert await spool.drain(write_all) == 2
    assert written == [tick(0, 100.0), tick(1, 100.0), tick(2, 100.0)]
    assert spool.pending() == 0
