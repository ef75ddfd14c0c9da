"""`rata db` and `rata data`: migrate the schema, and move bars between files, exchanges and the database.

rata db migrate
rata db status
rata data import bars.csv --symbol BTC/USDT --venue binance --timeframe 1m
rata data export --symbol BTC/USDT --timeframe 1m --out btc.parquet
rata data backfill --exchange binance --symbol BTC/USDT --timeframe 1m --since 2026-11-01
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runner.cli_output import console
from runner.cli_support import UserErrorEdge

if TYPE_CHECKING:
    from framework.settings import Settings

__all__ = ["data_app", "db_app"]

db_app = typer.Typer(cls=UserErrorEdge, help="Database: migrate the schema and show its state.", no_args_is_help=True)
data_app = typer.Typer(cls=UserErrorEdge, help="Market data: import, export and backfill bars.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Deployment TOML file (secrets come from the environment).")
]
SymbolOpt = Annotated[str, typer.Option("--symbol", "-s", help="Instrument symbol, e.g. BTC/USDT or GOOG.")]
VenueOpt = Annotated[str, typer.Option("--venue", help="Venue the instrument trades on.")]
TimeframeOpt = Annotated[str, typer.Option("--timeframe", "-t", help="Bar timeframe: 1s, 1m, 5m, 15m, 1h or 1d.")]


def _settings(config: Path | None) -> Settings:
    from framework.settings import load_settings

    return load_settings(config)


@db_app.command("migrate")
def migrate(config: ConfigOpt = None) -> None:
    """Apply pending migrations from migrations/ (each in its own transaction)."""
    from framework.storage import apply_migrations, open_database

    async def run() -> list[Any]:
        async with open_database(_settings(config)) as db:
            return await apply_migrations(db.pool)

    applied = asyncio.run(run())
    if applied:
        for m in applied:
            console().print(f"applied [bold]{m.version:03d}_{m.name}[/bold]")
    else:
        console().print("database is up to date")


@db_app.command("status")
def status(config: ConfigOpt = None) -> None:
    """Show applied and pending migrations."""
    from rich.table import Table

    from framework.storage import migration_status, open_database

    async def run() -> list[Any]:
        async with open_database(_settings(config)) as db:
            return await migration_status(db.pool)

    table = Table("version", "name", "state", "applied at", title="migrations")
    colors = {"applied": "green", "pending": "yellow"}
    for s in asyncio.run(run()):
        color = colors.get(s.state, "red")
        when = s.applied_at.isoformat(timespec="seconds") if s.applied_at else ""
        table.add_row(f"{s.version:03d}", s.name, f"[{color}]{s.state}[/{color}]", when)
    console().print(table)


@data_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet of OHLCV bars (rows labelled by bar open time).")],
    symbol: SymbolOpt,
    timeframe: TimeframeOpt = "1d",
    venue: VenueOpt = "SIM",
    tick_size: Annotated[float, typer.Option(help="Price increment.")] = 0.01,
    qty_step: Annotated[float, typer.Option(help="Quantity increment (lot size).")] = 1.0,
    config: ConfigOpt = None,
) -> None:
    """Import bars from a file into the database (idempotent: importing twice changes nothing)."""
    from rich.progress import Progress

    from framework.data import read_ohlcv
    from framework.data.store import import_frame
    from framework.instruments import Instrument
    from framework.storage import apply_migrations, open_database
    from framework.timeframes import timeframe_ns

    timeframe_ns(timeframe)
    frame = read_ohlcv(file)
    instrument = Instrument(symbol, tick_size=tick_size, qty_step=qty_step, venue=venue)
    chunk = 20_000

    async def run() -> int:
        async with open_database(_settings(config)) as db:
            await apply_migrations(db.pool)
            written = 0
            with Progress(console=console(), transient=True) as progress:
                task = progress.add_task(f"importing {symbol}", total=len(frame))
                for start in range(0, len(frame), chunk):
                    part = frame.iloc[start : start + chunk]
                    written += await import_frame(db.pool, part, instrument, timeframe)
                    progress.advance(task, len(part))
            return written

    written = asyncio.run(run())
    console().print(f"imported {written} {timeframe} bars of {venue}:{symbol} from {file.name}")


@data_app.command("export")
def export_file(
    symbol: SymbolOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .csv or .parquet file.")],
    timeframe: TimeframeOpt = "1d",
    venue: Annotated[str | None, typer.Option("--venue", help="Venue, when a symbol trades on several.")] = None,
    start: Annotated[str | None, typer.Option(help="First bar open time (UTC), e.g. 2026-11-01.")] = None,
    end: Annotated[str | None, typer.Option(help="Bars opening before this time (UTC).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Export stored bars to CSV or Parquet (rows labelled by bar open time, like `data import` takes)."""
    from framework.data.store import load_bars
    from framework.errors import DataError
    from framework.timeframes import timeframe_timedelta

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"{out.name}: export to .csv or .parquet")
    bars = load_bars([symbol], timeframe, start, end, venue=venue, settings=_settings(config))
    frame = bars.to_long().drop(columns="symbol")
    frame["time"] = frame["time"] - timeframe_timedelta(timeframe)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    console().print(f"exported {len(frame)} {timeframe} bars of {symbol} to {out}")


@data_app.command("backfill")
def backfill(
    exchange: Annotated[str, typer.Option("--exchange", "-e", help="ccxt exchange id, e.g. binance.")],
    symbol: SymbolOpt,
    since: Annotated[str, typer.Option(help="First bar open time (UTC), e.g. 2026-11-01.")],
    timeframe: TimeframeOpt = "1m",
    until: Annotated[str | None, typer.Option(help="Stop before this time (UTC); default now.")] = None,
    exchange_url: Annotated[
        list[str] | None,
        typer.Option("--exchange-url", help="Override a ccxt URL, KEY=URL (e.g. public=http://127.0.0.1:9000/api/v3)."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Fetch historical bars through the exchange's REST API (ccxt) and store them."""
    from rich.progress import Progress

    from framework.data.backfill import backfill_ohlcv
    from framework.storage import apply_migrations, open_database

    overrides = dict(item.split("=", 1) for item in exchange_url or [] if "=" in item)

    async def run() -> int:
        async with open_database(_settings(config)) as db:
            await apply_migrations(db.pool)
            with Progress(console=console(), transient=True) as progress:
                task = progress.add_task(f"backfilling {exchange}:{symbol} {timeframe}", total=None)
                return await backfill_ohlcv(
                    db.pool,
                    exchange,
                    symbol,
                    timeframe,
                    since,
                    until,
                    urls=overrides,
                    on_page=lambda n: progress.advance(task, n),
                )

    written = asyncio.run(run())
    console().print(f"stored {written} {timeframe} bars of {exchange}:{symbol}")
