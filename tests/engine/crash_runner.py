"""A trading process that kills itself with SIGKILL at a chosen point of the order path (run as a subprocess).

Usage: python -m tests.engine.crash_runner DSN VENUE_DIR POINT

It opens the database by DSN, a durable paper venue on VENUE_DIR, and an order manager whose crash
hook sends SIGKILL to its own process at POINT ("after_intent_commit", "after_send",
"after_fill_commit"). It trades one batch to completion (bar 0 decides, bar 1 fills), then arms the
hook and trades a second batch (decided on bar 1, filled on bar 2): the process dies inside it. It
prints one JSON line per completed step, so the test knows how far it got; if it survives, it exits 3.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

from framework.clock import SimulatedClock
from framework.engine.order_manager import OrderManager
from framework.orders.model import Mode
from framework.risk import RiskManager, RiskStore
from framework.storage import connect_dsn
from tests.engine.helpers import DAY, INSTRUMENTS, T0, VENUE, flat, intent, paper

SURVIVED = 3
FIRST_BATCH = (("buy", "3", "X", "s1"), ("buy", "1.5", "Y", "s2"))
SECOND_BATCH = (("buy", "2", "X", "s1"), ("sell", "1", "X", "s3"), ("buy", "0.5", "Y", "s2"))


def say(**facts: object) -> None:
    print(json.dumps(facts), flush=True)


async def run(dsn: str, directory: Path, point: str) -> int:
    pool = await connect_dsn(dsn, min_size=1, max_size=4)
    clock = SimulatedClock(T0 + DAY)
    broker = paper(directory, clock, durable=True)
    risk = await RiskManager.open(RiskStore(pool), clock)
    armed = False

    def crash(at: str) -> None:
        if armed and at == point:
            say(step="crash", point=at)
            os.kill(os.getpid(), signal.SIGKILL)

    manager = OrderManager(
        pool, broker, risk, clock, mode=Mode.PAPER, venue=VENUE, instruments=INSTRUMENTS, crash_hook=crash
    )
    report = await manager.start()
    say(step="started", ok=report.ok, reason=report.reason)

    async def feed(i: int) -> None:
        clock.advance_to(T0 + (i + 1) * DAY)
        bars = [flat(i, 100.0, s) for s in ("X", "Y")]
        for b in bars:
            manager.on_price(b.symbol, Decimal(100), clock.now_ns())
        broker.on_bars(bars)
        await manager.idle()

    await feed(0)
    first = await manager.submit_many(
        [intent(side, qty, symbol=sym, strategy=st) for side, qty, sym, st in FIRST_BATCH]
    )
    await feed(1)
    say(step="first batch", orders={o.client_id: manager.orders[o.client_id].status.value for o in first})

    armed = True
    second = await manager.submit_many(
        [intent(side, qty, symbol=sym, strategy=st) for side, qty, sym, st in SECOND_BATCH]
    )
    say(step="second batch sent", orders=[o.client_id for o in second])
    await feed(2)
    say(step="survived")
    await manager.close()
    await broker.close()
    await pool.close()
    return SURVIVED


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    dsn, directory, point = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    sys.exit(asyncio.run(run(dsn, directory, point)))


if __name__ == "__main__":
    main()
