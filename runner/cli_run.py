"""`rata run` (the live service) and `rata parity` (backtest vs live replay, trade by trade).

    rata run --config rata.toml --mode dev
    rata run --config rata.toml --mode live --live-trading-i-accept-the-risk
    rata parity sma_cross --dataset GOOG --set fast=10 --set slow=30 --fees 0.001

`rata run` stops cleanly on Ctrl-C or SIGTERM: no new decisions, in-flight writes finish, open
orders are cancelled when `[runner] cancel_on_shutdown` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runner.cli_output import console
from runner.cli_support import (
    ArgumentError,
    build_strategy,
    execution,
    load_bars,
    parse_set,
)

if TYPE_CHECKING:
    from framework.settings import Settings
    from runner.config import RunConfig
    from runner.parity import ParityResult
    from runner.service import Runner

__all__ = ["LIVE_FLAG", "default_sections", "parity", "resolve_run_config", "run"]

LIVE_FLAG = "--live-trading-i-accept-the-risk"


def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Deployment TOML file with the run tables.")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="replay, dev, paper or live (overrides [runner] mode).")] = None,
    live_opt_in: Annotated[bool, typer.Option(LIVE_FLAG, help="Required to trade real money in live mode.")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run the trading service: feed, strategies, risk, orders, until Ctrl-C/SIGTERM or the feed ends."""
    from framework.settings import load_settings

    run_config = resolve_run_config(config, mode, live_opt_in)
    settings = load_settings(config)
    from framework.ingest.loop import run as run_loop

    run_loop(_serve(run_config, settings, duration))  # uvloop when installed, as `rata serve` (uvicorn) runs


def resolve_run_config(config: Path | None, mode: str | None, live_opt_in: bool) -> RunConfig:
    """Return the run tables of `config` for `mode` (`rata run` and `rata serve`); refuse live without the opt-in."""
    from runner.config import load_run_config

    if mode is not None and mode not in ("replay", "dev", "paper", "live"):
        raise ArgumentError(f"--mode must be replay, dev, paper or live, got {mode!r}")
    run_config = load_run_config(config)
    if mode is not None and mode != run_config.runner.mode:
        run_config = default_sections(run_config, mode)
    run_config = run_config.with_mode(mode)
    if run_config.runner.mode == "live" and not live_opt_in:
        raise ArgumentError(f"live mode trades real money: add {LIVE_FLAG} to confirm")
    return run_config


def default_sections(config: RunConfig, mode: str) -> RunConfig:
    """Give a mode its usual feed and broker when the config names another mode's."""
    feed, broker = {"replay": ("replay", "paper"), "dev": ("synthetic", "paper"), "paper": ("ccxt", "paper")}.get(
        mode, ("ccxt", "ccxt")
    )
    updates: dict[str, object] = {}
    if config.feed.kind != feed:
        updates["feed"] = config.feed.model_copy(update={"kind": feed})
    if config.broker.kind != broker:
        updates["broker"] = config.broker.model_copy(update={"kind": broker})
    return config.model_copy(update=updates)


async def _serve(config: RunConfig, settings: Settings, duration: float | None) -> None:
    from framework.storage import apply_migrations, open_database
    from runner.wiring import build_runner

    out = console()
    async with open_database(settings) as db:
        await apply_migrations(db.pool)
        runner = await build_runner(config, settings, db.pool)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, runner.stop)
        report = await runner.start()
        _print_start(runner, report.ok, report.reason)
        if duration is not None:
            loop.call_later(duration, runner.stop)
        await runner.run()
        placed = runner.orders.placed if runner.orders else 0
        out.print(f"runner stopped ({runner.mode.value}); orders placed: {placed}")


def _print_start(runner: Runner, ok: bool, reason: str) -> None:
    out = console()
    state = "reconciled" if ok else f"[red]HALTED[/red]: {reason}"
    engine = runner.engine
    count = len(engine.instances) if engine else 0
    running = sum(1 for r in engine.instances.values() if r.spec.state.value == "running") if engine else 0
    out.print(
        f"rata runner in [bold]{runner.mode.value}[/bold] mode: venue {runner.broker.name}, {state}; "
        f"{running}/{count} strategy instances running"
    )


def parity(
    strategy: Annotated[str, typer.Argument(help="Strategy name (see `rata strategies`).")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Shipped dataset name.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A CSV/Parquet file of bars.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol of a single-instrument file.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Timeframe of the file's bars.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Parameter NAME=VALUE (repeat).")] = None,
    fees: Annotated[float | None, typer.Option(help="Fee rate per fill.")] = None,
    slippage: Annotated[float | None, typer.Option(help="Slippage rate.")] = None,
    cash: Annotated[float | None, typer.Option(help="Starting cash.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Deployment TOML file.")] = None,
) -> None:
    """Replay history through the live engine and diff its trades with the vectorbt backtest."""
    from framework import get_strategy
    from framework.settings import load_settings

    cls = get_strategy(strategy)
    instance = build_strategy(cls, parse_set(cls, set_))
    model = execution(fees=fees, slippage=slippage, cash=cash, fill=None)
    bars, source = load_bars(dataset, data, symbol, timeframe)
    settings = load_settings(config)
    result = asyncio.run(_parity(instance, bars, model, settings))
    _print_parity(result, source)
    if not result.ok:
        raise typer.Exit(1)


async def _parity(instance: object, bars: object, model: object, settings: Settings) -> ParityResult:
    from framework.storage import open_database
    from runner.parity import drop_database, run_parity, scratch_database

    async with open_database(settings) as db:
        name, dsn = await scratch_database(db.dsn)
        try:
            with tempfile.TemporaryDirectory(prefix="rata-parity-") as work:
                return await run_parity(instance, bars, model, dsn=dsn, workdir=Path(work))  # type: ignore[arg-type]
        finally:
            await drop_database(db.dsn, name)


def _print_parity(result: ParityResult, source: str) -> None:
    from rich.table import Table

    out = console()
    table = Table(title=f"parity: {result.strategy} on {source} ({result.bars:,} bars)")
    table.add_column("")
    table.add_column("backtest (vectorbt)", justify="right")
    table.add_column("live engine (replay, paper)", justify="right")
    table.add_row("fills", f"{len(result.backtest_fills):,}", f"{len(result.live_fills):,}")
    table.add_row("final equity", f"{result.backtest_equity:,.2f}", f"{result.live_equity:,.2f}")
    out.print(table)
    if result.ok:
        out.print("[green]parity: identical trades and final equity to the cent[/green]")
    else:
        out.print(f"[red]parity FAILED[/red]: {len(result.differences)} difference(s); first: {result.differences[0]}")
