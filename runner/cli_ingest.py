"""`rata ingest`: run market data ingestion alone (a feed into PostgreSQL), as a service or a test.

    rata ingest --feed synthetic --instruments 500 --rate 5000
    rata ingest --feed ccxt --exchange binance --symbol BTC/USDT --symbol ETH/USDT

Ctrl-C or SIGTERM stops it cleanly: the feed is closed, queued events are written (or spooled if
the database is away) and the final counters are printed. A ccxt feed starts from the last trade
stored for each symbol (the gap since is backfilled over REST). Ingestion runs on uvloop when it
is installed (`--loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runner.cli_output import console
from runner.cli_support import ArgumentError

if TYPE_CHECKING:
    from framework.feeds import Feed
    from framework.ingest import IngestPipeline, IngestStats

__all__ = ["ingest"]


class FeedKind(StrEnum):
    """The feeds `rata ingest` can run."""

    synthetic = "synthetic"
    ccxt = "ccxt"


class LoopChoice(StrEnum):
    """The event loops `rata ingest` can run on."""

    auto = "auto"
    uvloop = "uvloop"
    asyncio = "asyncio"


def ingest(
    feed: Annotated[FeedKind, typer.Option("--feed", "-f", help="synthetic (dev) or ccxt (a real exchange).")],
    instruments: Annotated[int, typer.Option(help="synthetic: number of instruments.", min=1)] = 500,
    rate: Annotated[float, typer.Option(help="synthetic: total ticks per second (0: as fast as possible).")] = 5000,
    seed: Annotated[int, typer.Option(help="synthetic: random seed.")] = 0,
    exchange: Annotated[str | None, typer.Option("--exchange", "-e", help="ccxt: exchange id, e.g. binance.")] = None,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="ccxt: symbol (repeat).")] = None,
    ccxt_config: Annotated[
        str | None, typer.Option(help="ccxt: JSON object (or a file holding one) merged into the exchange config.")
    ] = None,
    ccxt_websocket: Annotated[
        bool,
        typer.Option(
            "--ccxt-websocket",
            help="ccxt: read trades with ccxt's watch_trades even where rata reads the stream itself (Binance spot).",
        ),
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    loop: Annotated[
        LoopChoice, typer.Option(help="Event loop: uvloop if installed (auto), uvloop, or asyncio's default.")
    ] = LoopChoice.auto,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Deployment TOML file.")] = None,
) -> None:
    """Ingest a feed into PostgreSQL: validate, aggregate bars (1s..1d) and write in batches."""
    from framework.ingest.loop import run
    from framework.settings import load_settings

    settings = load_settings(config)
    if feed is FeedKind.ccxt and (not exchange or not symbol):
        raise ArgumentError("--feed ccxt needs --exchange and at least one --symbol")
    options = FeedOptions(feed, instruments, rate, seed, exchange, symbol or [], _json_option(ccxt_config),
                          ccxt_websocket)  # fmt: skip
    final = run(_run(options, settings, duration), loop.value)
    _print_stats(final, title="ingestion finished")


@dataclass(frozen=True)
class FeedOptions:
    """The feed `rata ingest` was asked for."""

    kind: FeedKind
    instruments: int
    rate: float
    seed: int
    exchange: str | None
    symbols: list[str]
    ccxt_config: dict[str, Any]
    ccxt_websocket: bool


def _make_feed(options: FeedOptions, pool: Any) -> Feed:
    if options.kind is FeedKind.synthetic:
        from framework.feeds import SyntheticFeed

        return SyntheticFeed(n_instruments=options.instruments, rate=options.rate or None, seed=options.seed)
    from framework.feeds.ccxt_feed import CcxtFeed
    from framework.feeds.venues import venue_for
    from framework.feeds.venues.binance import BinanceVenue
    from framework.storage.marketdata import last_tick

    exchange = options.exchange
    assert exchange is not None
    venue = venue_for(exchange)
    if options.ccxt_websocket and isinstance(venue, BinanceVenue):
        venue = BinanceVenue(native_stream=False)
    return CcxtFeed(
        exchange,
        options.symbols,
        config=options.ccxt_config,
        venue=venue,
        last_seen=lambda symbol: last_tick(pool, exchange, symbol),
    )


def _json_option(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    path = Path(text)
    raw = path.read_text() if not text.lstrip().startswith("{") and path.exists() else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"--ccxt-config is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ArgumentError("--ccxt-config must be a JSON object")
    return value


async def _run(options: FeedOptions, settings: Any, duration: float | None) -> IngestStats:
    from framework.ingest import IngestPipeline
    from framework.ingest.loop import settle_gc
    from framework.storage import apply_migrations, open_database

    async with open_database(settings) as db:
        await apply_migrations(db.pool)
        feed = _make_feed(options, db.pool)
        pipeline = IngestPipeline(feed, db.pool, spool=settings.spool_dir)
        settle_gc()  # start-up is over: keep a full collection from stalling the loop
        running = asyncio.create_task(pipeline.run(), name="rata-ingest")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await _watch(pipeline, running, stop, duration)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await pipeline.stop()
            await running
        return pipeline.stats()


async def _watch(
    pipeline: IngestPipeline, running: asyncio.Task[None], stop: asyncio.Event, duration: float | None
) -> None:
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    with console().status("starting...") as status:
        while not running.done() and not stop.is_set():
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
            s = pipeline.stats()
            p99 = f"{s.tick_latency.p99_ms:.1f} ms" if s.tick_latency.p99_ms is not None else "-"
            status.update(
                f"received {s.received:,}  accepted {s.accepted:,}  rejected {sum(s.rejected.values()):,}  "
                f"written {s.ticks_written:,} ticks / {s.bars_written:,} bars  p99 {p99}  "
                f"spool {s.spool_pending}  db {'up' if s.db_online else 'DOWN'}"
            )
            if deadline is not None and loop.time() >= deadline:
                break


def _print_stats(s: IngestStats, title: str) -> None:
    from rich.table import Table

    table = Table("measure", "value", title=title)
    rows = [
        ("received", f"{s.received:,}"),
        ("accepted", f"{s.accepted:,}"),
        ("rejected", ", ".join(f"{k}: {v:,}" for k, v in sorted(s.rejected.items())) or "0"),
        ("ticks written (new)", f"{s.ticks_written:,}"),
        ("bars written", f"{s.bars_written:,}"),
        ("spooled batches / pending", f"{s.spooled_batches:,} / {s.spool_pending:,}"),
        ("database outages", f"{s.outages:,}"),
    ]
    lat = s.tick_latency
    if lat.count:
        rows.append(("tick-to-commit p50 / p99 / p99.9", f"{lat.p50_ms:.2f} / {lat.p99_ms:.2f} / {lat.p999_ms:.2f} ms"))
    for name, value in rows:
        table.add_row(name, value)
    console().print(table)
