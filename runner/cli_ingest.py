"""`rata ingest`: run market data ingestion alone (a feed into PostgreSQL), as a service or a test.

    rata ingest --feed synthetic --instruments 500 --rate 5000
    rata ingest --feed ccxt --exchange binance --symbol BTC/USDT --symbol ETH/USDT

Ctrl-C or SIGTERM stops it cleanly: the feed is closed, queued events are written (or spooled if
the database is away) and the final counters are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
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
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Deployment TOML file.")] = None,
) -> None:
    """Ingest a feed into PostgreSQL: validate, aggregate bars (1s..1d) and write in batches."""
    from framework.settings import load_settings

    settings = load_settings(config)
    source = _make_feed(feed, instruments, rate, seed, exchange, symbol, ccxt_config)
    final = asyncio.run(_run(source, settings, duration))
    _print_stats(final, title="ingestion finished")


def _make_feed(
    kind: FeedKind,
    instruments: int,
    rate: float,
    seed: int,
    exchange: str | None,
    symbols: list[str] | None,
    ccxt_config: str | None,
) -> Feed:
    if kind is FeedKind.synthetic:
        from framework.feeds import SyntheticFeed

        return SyntheticFeed(n_instruments=instruments, rate=rate or None, seed=seed)
    if not exchange or not symbols:
        raise ArgumentError("--feed ccxt needs --exchange and at least one --symbol")
    from framework.feeds.ccxt_feed import CcxtFeed

    return CcxtFeed(exchange, symbols, config=_json_option(ccxt_config))


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


async def _run(feed: Feed, settings: Any, duration: float | None) -> IngestStats:
    from framework.ingest import IngestPipeline
    from framework.storage import apply_migrations, open_database

    async with open_database(settings) as db:
        await apply_migrations(db.pool)
        pipeline = IngestPipeline(feed, db.pool, spool=settings.spool_dir)
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
