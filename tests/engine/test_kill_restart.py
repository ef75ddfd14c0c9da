"""Kill -9 at each point of the order path, restart, reconcile: nothing doubled, nothing lost, books agree.

`crash_runner` is a real trading process (its own interpreter, database connections and durable
paper venue) that SIGKILLs itself at the chosen point of its second batch of orders. The test
process then restarts on the same database and venue directory, reconciles, lets the venue fill
whatever is still working, and checks the invariants.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from framework.clock import SimulatedClock
from framework.orders.model import Mode, Order, OrderSide, OrderType
from framework.orders.positions import PositionBook
from framework.storage import Database
from tests.engine.conftest import MakeRig
from tests.engine.crash_runner import FIRST_BATCH, SECOND_BATCH
from tests.engine.helpers import DAY, T0, VENUE, paper, stored_fills, venue_orders

ROOT = Path(__file__).resolve().parents[2]

# Orders of the second batch (of three) that reach the venue before the process dies at each point.
# The paper venue commits submits that arrive together as one group, and answers them after that
# commit: by the first "after_send" the whole batch is at the venue, none of it acknowledged here.
SENT_BEFORE_CRASH = {"after_intent_commit": 0, "after_send": 3, "after_fill_commit": 3}


async def run_crashing(dsn: str, directory: Path, point: str) -> list[dict[str, Any]]:
    """Run the crash runner until it kills itself; return the steps it reported."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.engine.crash_runner",
        dsn,
        str(directory),
        point,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    steps = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert process.returncode == -signal.SIGKILL, (process.returncode, steps, err.decode()[-3000:])
    assert steps[-1] == {"step": "crash", "point": point}
    return steps


async def restart_and_check(make_oms: MakeRig, database: Database, directory: Path, point: str) -> None:
    clock = SimulatedClock(T0 + 3 * DAY)
    rig = await make_oms(directory, clock=clock, start=False, broker_options={"durable": True})
    report = await rig.manager.start()
    assert report.ok, report.reason
    await rig.feed(3, 100, symbols=("X", "Y"))  # whatever still works fills now

    pool = database.pool
    local_ids = {r["client_id"] for r in await pool.fetch("SELECT client_id FROM orders")}
    at_venue = venue_orders(directory)
    assert len(at_venue) == len(set(at_venue))  # each client id at most once at the venue
    assert set(at_venue) <= local_ids  # every venue order is known locally
    assert len(at_venue) == len(FIRST_BATCH) + SENT_BEFORE_CRASH[point]  # no intent sent twice, none lost
    assert len(local_ids) == len(FIRST_BATCH) + len(SECOND_BATCH)

    rows = await pool.fetch("SELECT client_id, status, filled, reason FROM orders")
    for row in rows:
        if row["client_id"] in at_venue:
            assert row["status"] == "filled", dict(row)
        else:
            assert (row["status"], row["reason"][:23]) == ("rejected", "not sent before restart"), dict(row)

    fills = await stored_fills(pool)
    assert len({(f.venue, f.fill_id) for f in fills}) == len(fills) == len(at_venue)
    for row in rows:
        assert row["filled"] == sum((f.quantity for f in fills if f.client_id == row["client_id"]), Decimal(0))
    from_fills = PositionBook(fills).net_positions()
    assert rig.manager.positions.net_positions() == from_fills == await rig.broker.positions()
    assert rig.manager.open_orders() == []
    assert rig.manager.alerts == []


@pytest.mark.slow
@pytest.mark.parametrize("point", list(SENT_BEFORE_CRASH))
async def test_kill_restart_reconcile(make_oms: MakeRig, database: Database, tmp_path: Path, point: str) -> None:
    directory = tmp_path / "venue"
    steps = await run_crashing(database.dsn, directory, point)
    assert steps[0] == {"step": "started", "ok": True, "reason": ""}
    assert steps[1]["step"] == "first batch"
    assert set(steps[1]["orders"].values()) == {"filled"}
    await restart_and_check(make_oms, database, directory, point)


@pytest.mark.slow
async def test_a_venue_order_planted_while_down_fails_the_restart(
    make_oms: MakeRig, database: Database, tmp_path: Path
) -> None:
    directory = tmp_path / "venue"
    await run_crashing(database.dsn, directory, "after_send")
    clock = SimulatedClock(T0 + 3 * DAY)
    intruder = paper(directory, clock, durable=True)
    await intruder.connect()
    planted = Order("manualABC1", "someone", VENUE, "X", OrderSide.BUY, Decimal(1), OrderType.LIMIT, Decimal(50))
    await intruder.submit(planted.evolve(mode=Mode.PAPER))
    await intruder.close()

    rig = await make_oms(directory, clock=clock, start=False, broker_options={"durable": True})
    report = await rig.manager.start()
    assert not report.ok
    assert [d.kind for d in report.failures] == ["unknown_venue_order"]
    assert "manualABC1" in report.reason
    stored = await database.pool.fetchrow("SELECT ok, reason FROM reconciliations WHERE id = $1", report.id)
    assert (stored["ok"], stored["reason"]) == (False, report.reason)
