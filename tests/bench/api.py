"""API latency benchmark: `GET /api/v1/positions` and a manual order round trip while the runner ingests.

    python -m tests.bench.api            # full run, writes the "API" section of RESULTS.md
    python -m tests.bench.api --quick    # a short smoke run, RESULTS.md untouched

Setup: `rata serve --mode dev` in its own process (uvicorn serving the API inside the runner's
process, as deployed): a `SyntheticFeed` of 500 instruments at 5,000 ticks/s in total into the
ingestion pipeline (validate, bars 1s..1d, batched writes) and an embedded PostgreSQL in a
temporary folder (or the server of `DATABASE_URL`), the paper venue, no strategy instances.
This process is the client (httpx over HTTP/1.1 keep-alive on 127.0.0.1, and a WebSocket for the
order events), on the same machine: client, server and PostgreSQL share its cores.

Measured, after a warm-up:

- `GET /api/v1/positions` (bearer token verified, positions of every strategy marked at the last
  prices; 20 open positions), one request at a time;
- a manual market order: `POST /api/v1/orders` until its answer (intent committed to PostgreSQL,
  risk-checked, sent to the paper venue and acknowledged), and until the WebSocket `orders`
  channel reports it filled. The paper venue fills a market order at the open of the next 1 s bar
  (the backtest's execution model), so the fill latency is bounded below by the bar clock, not by
  the API.

The ingestion rate over the window (from `/metrics`) shows the runner kept up meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import psutil
from rich.console import Console, RenderableType
from websockets.asyncio.client import connect

from framework.security import UserStore
from framework.storage import EmbeddedPostgres
from tests.bench._ingest_probes import drop_database, fresh_database
from tests.bench._report import machine_rows, markdown_table, rich_table, update_section

__all__ = ["main", "run"]

HEADING = "## API (issue: runner service API)"
RATE, INSTRUMENTS = 5_000, 500
PASSWORD = "bench-password-1"


@dataclass
class Plan:
    warmup_s: float = 10.0
    positions: int = 2_000
    orders: int = 300
    order_rate: float = 10.0


@dataclass
class Measured:
    positions_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    fill_ms: list[float] = field(default_factory=list)
    unfilled: int = 0
    ticks_per_s: float = 0.0
    received_per_s: float = 0.0
    window_s: float = 0.0
    lag: str = "-"
    server_cpu: float = 0.0
    machine_cpu: float = 0.0


def _config(folder: Path) -> Path:
    path = folder / "rata.toml"
    path.write_text(
        f'[runner]\nmode = "dev"\npaper_dir = "{folder / "paper"}"\n'
        f'[feed]\nkind = "synthetic"\ninstruments = {INSTRUMENTS}\nrate = {RATE}\n'
    )
    return path


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _buckets(text: str) -> dict[float, float]:
    prefix = 'rata_event_loop_lag_seconds_bucket{le="'
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            bound, count = line[len(prefix) :].split('"}')
            out[float(bound)] = float(count)
    return out


def _lag(before: str, after: str) -> str:
    """Return the server's event-loop lag p50 / p99 over the window, as histogram bucket bounds."""
    start, end = _buckets(before), _buckets(after)
    counts = {bound: end[bound] - start.get(bound, 0.0) for bound in sorted(end)}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return "-"

    def bound(q: float) -> str:
        edge = next(b for b, c in counts.items() if c >= q * total)
        return "> 5 s" if edge == float("inf") else f"<= {edge * 1e3:g} ms"

    return f"p50 {bound(0.5)}, p99 {bound(0.99)} ({total:.0f} samples of 250 ms sleeps)"


async def _wait_ready(http: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(180):
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"rata serve exited with {server.returncode}")
            try:
                if (await http.get("/api/v1/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)


async def _measure(base: str, ws_url: str, plan: Plan, server: subprocess.Popen[bytes]) -> Measured:
    out = Measured()
    async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
        await _wait_ready(anonymous, server)
        login = await anonymous.post("/api/v1/auth/login", json={"username": "bench", "password": PASSWORD})
        token = login.json()["access_token"]
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(20):  # open positions for the positions call to mark
            await http.post("/api/v1/orders", json={"symbol": f"SYN{i:03d}", "side": "buy", "quantity": "1"})
        await asyncio.sleep(plan.warmup_s)
        before, started = (await http.get("/metrics")).text, time.perf_counter()
        cpu_before = _cpu(server)
        psutil.cpu_percent()
        for _ in range(plan.positions):
            t0 = time.perf_counter()
            response = await http.get("/api/v1/positions")
            out.positions_ms.append((time.perf_counter() - t0) * 1e3)
            response.raise_for_status()
        await _orders(http, ws_url, token, plan, out)
        after, out.window_s = (await http.get("/metrics")).text, time.perf_counter() - started
        out.server_cpu = (_cpu(server) - cpu_before) / out.window_s * 100
        out.machine_cpu = psutil.cpu_percent()
    out.lag = _lag(before, after)
    for name, attr in (("rata_ticks_written_total", "ticks_per_s"), ("rata_ticks_received_total", "received_per_s")):
        setattr(out, attr, (_metric(after, name) - _metric(before, name)) / out.window_s)
    return out


async def _orders(http: httpx.AsyncClient, ws_url: str, token: str, plan: Plan, out: Measured) -> None:
    sent: dict[str, float] = {}
    filled: dict[str, float] = {}
    async with connect(ws_url, subprotocols=["bearer", token], proxy=None, max_size=2**22) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"op": "subscribe", "channel": "orders"}))

        async def listen() -> None:
            async for raw in ws:
                message = json.loads(raw)
                data = message.get("data") or {}
                if data.get("status") == "filled" and data.get("client_id") not in filled:
                    filled[data["client_id"]] = time.perf_counter()

        listener = asyncio.create_task(listen())
        for i in range(plan.orders):
            t0 = time.perf_counter()
            body = {"symbol": f"SYN{i % INSTRUMENTS:03d}", "side": "buy", "quantity": "1"}
            response = await http.post("/api/v1/orders", json=body)
            out.submit_ms.append((time.perf_counter() - t0) * 1e3)
            response.raise_for_status()
            sent[response.json()["client_id"]] = t0
            await asyncio.sleep(max(0.0, 1 / plan.order_rate - (time.perf_counter() - t0)))
        deadline = time.perf_counter() + 30
        while len(set(sent) & set(filled)) < len(sent) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        listener.cancel()
    out.fill_ms = [(filled[c] - t0) * 1e3 for c, t0 in sent.items() if c in filled]
    out.unfilled = len(sent) - len(out.fill_ms)


async def _bench(plan: Plan, folder: Path, admin_dsn: str) -> Measured:
    dsn = await fresh_database(admin_dsn, "rata_bench_api")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "RATA_DATA_DIR": str(folder / "data"), "RATA_JWT_SECRET": "b" * 64}
    command = [sys.executable, "-c", "from runner.cli import main; main()", "serve", "--config", str(_config(folder))]
    command += ["--port", str(port), "--log-level", "warning"]
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            await _add_user(pool, server)
        finally:
            await pool.close()
        return await _measure(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/api/v1/ws", plan, server)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
        log.close()
        await drop_database(admin_dsn, "rata_bench_api")


async def _add_user(pool: asyncpg.Pool, server: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(180):  # the server migrates the database on start
        while await pool.fetchval("SELECT to_regclass('users')") is None:
            if server.poll() is not None:
                raise RuntimeError(f"rata serve exited with {server.returncode}")
            await asyncio.sleep(0.2)
    await UserStore(pool).add("bench", PASSWORD, "trader")


def _cpu(server: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(server.pid).cpu_times()
    return float(times.user + times.system)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stats(values: list[float]) -> tuple[str, str, str, str]:
    if not values:
        return "0", "-", "-", "-"
    p50, p99 = np.percentile(values, [50, 99])
    return f"{len(values):,}", f"{p50:.2f}", f"{p99:.2f}", f"{max(values):.2f}"


def run(console: Console, *, quick: bool = False) -> list[RenderableType]:
    """Measure, write the API section of RESULTS.md (unless `quick`), return the tables."""
    plan = Plan(warmup_s=3.0, positions=200, orders=30) if quick else Plan()
    folder = Path(tempfile.mkdtemp(prefix="rata-bench-api-"))
    setup = machine_rows(["fastapi", "uvicorn", "starlette", "pydantic", "asyncpg", "httpx", "websockets", "pgserver"])
    setup += [
        (
            "runner",
            f"`rata serve --mode dev`: SyntheticFeed {INSTRUMENTS} instruments at {RATE:,} ticks/s, paper venue",
        ),
        ("database", "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL (pgserver), fresh"),
        ("client", "this process: httpx keep-alive, one request at a time; WebSocket for order events"),
        (
            "plan",
            f"warm-up {plan.warmup_s:g} s; {plan.positions:,} GETs; {plan.orders} orders at {plan.order_rate:g}/s",
        ),
    ]
    server = None
    try:
        if os.environ.get("DATABASE_URL"):
            admin_dsn = os.environ["DATABASE_URL"]
        else:
            server = EmbeddedPostgres(folder / "pgdata")
            admin_dsn = server.start()
        measured = asyncio.run(_bench(plan, folder, admin_dsn))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    header = ("measure", "n", "p50 ms", "p99 ms", "max ms")
    rows = [
        ("GET /api/v1/positions (20 open positions)", *_stats(measured.positions_ms)),
        (
            "manual order: POST /api/v1/orders -> 201 (committed, risk-checked, acknowledged)",
            *_stats(measured.submit_ms),
        ),
        ("manual order: POST -> filled event on the WebSocket (next 1 s bar)", *_stats(measured.fill_ms)),
    ]
    window = (
        f"over the {measured.window_s:.0f} s window: {measured.received_per_s:,.0f} ticks/s received, "
        f"{measured.ticks_per_s:,.0f} ticks/s written; orders not filled in 30 s: {measured.unfilled}; "
        f"runner process CPU {measured.server_cpu:.0f}% of one core; its event-loop lag {measured.lag}; "
        f"the whole machine {measured.machine_cpu:.0f}% busy (every core; other work included)"
    )
    if not quick:
        body = "### Setup\n\n" + markdown_table(("item", "value"), setup)
        body += "\n\n### Latency\n\n" + markdown_table(header, rows) + f"\n\nIngestion {window}.\n"
        update_section(HEADING, body)
    return [rich_table("setup", ("item", "value"), setup), rich_table("API latency", header, rows), window]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.api", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run; RESULTS.md untouched")
    args = parser.parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=180)
    for renderable in run(console, quick=args.quick):
        console.print(renderable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
