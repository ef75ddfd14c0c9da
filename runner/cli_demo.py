"""`rata demo`: the whole system on one machine, from nothing: database, data, users, runner, dashboards.

    rata demo                          # API on 127.0.0.1:8000, dashboards on 127.0.0.1:5006
    rata demo --api-port 0 --dashboard-port 0 --data-dir /tmp/rata-demo --duration 60
    rata demo --research               # the research demo: backtest, sweep and HTML report

Steps, each printed as it runs:

1. start the embedded PostgreSQL in the data folder (`.rata` unless `--data-dir`; an external
   server when `DATABASE_URL` is set) and migrate it;
2. load the shipped datasets into it as stored bars (idempotent: a second run rewrites the same bars);
3. create an `admin` user with a generated password, printed once, unless an admin exists already;
4. start the runner in dev mode (`rata serve`: synthetic feed over 500 instruments, paper venue,
   four shipped strategies on 1s and 1m bars) with its API on 127.0.0.1:8000;
5. serve the live dashboard (`/live`) and the research explorer (`/research`) on 127.0.0.1:5006;
6. print the URLs and how to log in, then wait.

Ctrl-C (or SIGTERM, or `--duration`) stops the dashboards, then the runner (which finishes its
work and closes cleanly), then the database, and exits 0. The runner and dashboard logs are in
`<data folder>/demo/`; if either process dies, its log's end is printed and the demo exits 1.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runner.cli_output import console
from runner.cli_support import ArgumentError

if TYPE_CHECKING:
    import asyncpg

    from framework.storage import EmbeddedPostgres

__all__ = ["DEMO_STRATEGIES", "demo", "demo_config", "import_datasets", "research_demo"]

ADMIN = "admin"
DEMO_STRATEGIES = (
    ("sma-1s", "sma_cross", {"fast": 5, "slow": 20}, 20, "1s"),
    ("rsi-1s", "rsi_reversion", {"window": 14}, 20, "1s"),
    ("bollinger-1m", "bollinger_breakout", {"window": 20, "k": 2.0}, 50, "1m"),
    ("momentum-1m", "momentum_rotation", {"lookback": 30, "top": 5, "rebalance": 5}, 100, "1m"),
)
"""The strategy instances the demo runs: id, strategy, parameters, how many symbols, timeframe."""
_STORED_TIMEFRAMES = {"1D": "1d", "1h": "1h"}
_START_TIMEOUT_S = 300.0
_RATA = [sys.executable, "-c", "from runner.cli import main; main()"]


def demo_config(instruments: int, rate: float) -> str:
    """Return the run configuration (TOML) of the demo's runner."""
    lines = [
        "[runner]",
        'mode = "dev"',
        "cash = 1_000_000",
        "",
        "[feed]",
        'kind = "synthetic"',
        f"instruments = {instruments}",
        f"rate = {rate}",
        "",
        "[broker]",
        'kind = "paper"',
    ]
    for instance_id, strategy, params, symbols, timeframe in DEMO_STRATEGIES:
        values = ", ".join(f"{k} = {v}" for k, v in params.items())
        lines += [
            "",
            "[[strategies]]",
            f'id = "{instance_id}"',
            f'strategy = "{strategy}"',
            f"params = {{ {values} }}",
            f"symbols = {min(symbols, instruments)}",
            f'timeframe = "{timeframe}"',
            "capital = 100_000",
        ]
    return "\n".join(lines) + "\n"


async def import_datasets(pool: asyncpg.Pool) -> list[tuple[str, str, int]]:
    """Store every shipped single-instrument dataset whose timeframe rata stores; return (symbol, timeframe, rows)."""
    import pandas as pd

    from framework.data import dataset_names, load_dataset
    from framework.data.store import import_frame
    from framework.timeframes import timeframe_timedelta

    done = []
    for name in dataset_names():
        bars = load_dataset(name)
        timeframe = _STORED_TIMEFRAMES.get(str(bars.timeframe))
        if timeframe is None or len(bars.symbols) != 1:
            continue  # monthly bars have no stored timeframe; STOCKS repeats the single-stock sets
        symbol = bars.symbols[0]
        frame = pd.DataFrame({f: bars.field(f)[symbol] for f in ("open", "high", "low", "close", "volume")}).dropna()
        frame.index = pd.DatetimeIndex(frame.index) - timeframe_timedelta(timeframe)  # labelled by open time
        rows = await import_frame(pool, frame, bars.instruments[symbol], timeframe)
        done.append((symbol, timeframe, rows))
    return done


async def ensure_admin(pool: asyncpg.Pool) -> tuple[str, str | None]:
    """Return (admin username, generated password), or (an existing admin, None) when there is one."""
    from framework.security import AuditLog, Role, UserStore

    users = UserStore(pool)
    admins = [u.username for u in await users.list() if u.role is Role.ADMIN]
    if admins:
        return admins[0], None
    password = secrets.token_urlsafe(15)
    await users.add(ADMIN, password, Role.ADMIN)
    await AuditLog(pool).record("cli:demo", "users.add", ADMIN, "ok", detail={"role": "admin"})
    return ADMIN, password


def _free_port(port: int) -> int:
    """Return `port` if it is free on 127.0.0.1 (a free one for 0); raise `ArgumentError` when taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise ArgumentError(f"port {port} on 127.0.0.1 is in use; choose another (0 picks a free one)") from None
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class _Child:
    """A process the demo started, with its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: signal.Signals, timeout_s: float = 90.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _spawn(name: str, args: list[str], log: Path, env: dict[str, str], cwd: Path) -> _Child:
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*_RATA, *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    return _Child(name, proc, log)


class _Stop:
    """Ctrl-C, SIGTERM or the duration: set once, checked between steps and while waiting."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.why = ""

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.why = signal.Signals(signum).name
        self.event.set()

    def install(self) -> dict[int, Any]:
        return {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}


def _wait_up(child: _Child, url: str, stop: _Stop) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _answers(url):
        if child.proc.poll() is not None or time.monotonic() > deadline:
            raise _ChildFailed(child, f"did not come up at {url}")
        if stop.event.wait(0.5):
            return False
    return True


class _ChildFailed(Exception):
    def __init__(self, child: _Child, what: str) -> None:
        super().__init__(f"{child.name} {what} (exit {child.proc.poll()})")
        self.child = child


def _setup(dsn: str) -> tuple[list[tuple[str, str, int]], str, str | None]:
    from framework.storage import apply_migrations, connect_dsn

    async def run() -> tuple[list[tuple[str, str, int]], str, str | None]:
        pool = await connect_dsn(dsn, min_size=1, max_size=2)
        try:
            await apply_migrations(pool)
            imported = await import_datasets(pool)
            admin, password = await ensure_admin(pool)
        finally:
            await pool.close()
        return imported, admin, password

    return asyncio.run(run())


def demo(
    api_port: Annotated[int, typer.Option(min=0, max=65_535, help="Port of the runner API (0: a free one).")] = 8000,
    dashboard_port: Annotated[
        int, typer.Option(min=0, max=65_535, help="Port of the dashboards (0: a free one).")
    ] = 5006,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data folder: embedded PostgreSQL, paper venue, logs (default .rata).")
    ] = None,
    instruments: Annotated[int, typer.Option(min=1, help="Instruments of the synthetic feed.")] = 500,
    rate: Annotated[float, typer.Option(min=1, help="Synthetic trades per second, over all instruments.")] = 1000.0,
    duration: Annotated[float | None, typer.Option(min=1, help="Stop after this many seconds.")] = None,
    research: Annotated[bool, typer.Option("--research", help="Run the research demo instead.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="--research: folder of the HTML report.")] = Path("reports"),
) -> None:
    """Run everything locally: PostgreSQL, the datasets, an admin, the runner (dev mode), the API and dashboards."""
    if research:
        research_demo(out)
        return
    stop = _Stop()
    previous = stop.install()
    try:
        _run_demo(api_port, dashboard_port, data_dir, instruments, rate, duration, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_demo(
    api_port: int,
    dashboard_port: int,
    data_dir: Path | None,
    instruments: int,
    rate: float,
    duration: float | None,
    stop: _Stop,
) -> None:
    from framework.settings import load_settings

    screen = console()
    api_port, dashboard_port = _free_port(api_port), _free_port(dashboard_port)
    settings = load_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    folder = settings.data_dir.resolve()
    logs = folder / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    screen.rule("rata demo")
    embedded: EmbeddedPostgres | None = None
    children: list[_Child] = []
    failed: _ChildFailed | None = None
    try:
        if settings.database_url is not None:
            dsn = settings.database_url.get_secret_value()
            screen.print("1. database: DATABASE_URL")
        else:
            from framework.storage import EmbeddedPostgres

            with screen.status(f"starting the embedded PostgreSQL in {settings.embedded_db_dir}..."):
                embedded = EmbeddedPostgres(settings.embedded_db_dir)
                dsn = embedded.start()
            screen.print(f"1. database: embedded PostgreSQL in {settings.embedded_db_dir}")
        with screen.status("migrating, loading the shipped datasets, checking the users..."):
            imported, admin, password = _setup(dsn)
        loaded = ", ".join(f"{s} {tf} ({n:,} bars)" for s, tf, n in imported)
        screen.print(f"2. migrated; datasets stored as bars: {loaded}")
        if password is None:
            screen.print(
                f"3. users: an admin exists already ([bold]{admin}[/bold]); log in with its password "
                f"(`rata users passwd {admin}` sets a new one)"
            )
        else:
            screen.print(f"3. users: created [bold]{admin}[/bold] (admin) with a generated password, shown once below")
        if stop.event.is_set():
            return
        config = logs / "demo.toml"
        config.write_text(demo_config(instruments, rate))
        env = {**os.environ, "DATABASE_URL": dsn, "RATA_DATA_DIR": str(folder)}
        api_url = f"http://127.0.0.1:{api_port}"
        args = ["serve", "--config", str(config), "--mode", "dev", "--port", str(api_port), "--log-level", "warning"]
        children.append(_spawn("the runner (rata serve)", args, logs / "runner.log", env, folder))
        with screen.status(f"4. starting the runner: {instruments} synthetic instruments, paper venue..."):
            if not _wait_up(children[-1], f"{api_url}/api/v1/ready", stop):
                return
        running = ", ".join(f"{i} ({s}, {tf})" for i, s, _, _, tf in DEMO_STRATEGIES)
        screen.print(f"4. runner: dev mode, {instruments} instruments at {rate:,.0f} trades/s; strategies {running}")
        args = ["dashboard", "live", "--api", api_url, "--port", str(dashboard_port), "--research"]
        children.append(_spawn("the dashboards (rata dashboard live)", args, logs / "dashboard.log", env, folder))
        dashboards = f"http://127.0.0.1:{dashboard_port}"
        with screen.status("5. starting the dashboards..."):
            if not _wait_up(children[-1], f"{dashboards}/live", stop):
                return
        screen.print("5. dashboards: live and research")
        _print_ready(screen.print, api_url, dashboards, admin, password, logs)
        _wait(children, stop, duration)
    except _ChildFailed as exc:
        failed = exc
    finally:
        _shutdown(screen.print, children, embedded, stop)
    if failed is not None:
        screen.print(f"[red]error[/red]: {failed}; the end of {failed.child.log}:")
        screen.print(failed.child.tail(), markup=False, highlight=False)
        raise typer.Exit(1)


def _print_ready(
    say: Callable[..., None], api_url: str, dashboards: str, admin: str, password: str | None, logs: Path
) -> None:
    say("")
    say("[bold green]rata demo is running[/bold green]")
    say(f"  live dashboard:  {dashboards}/live", soft_wrap=True)
    say(f"  research:        {dashboards}/research", soft_wrap=True)
    say(f"  API:             {api_url}/api/v1  (docs {api_url}/api/v1/docs, metrics {api_url}/metrics)", soft_wrap=True)
    if password is not None:
        say(f"  log in as:       {admin} / {password}   (shown only now; keep it)", markup=False, soft_wrap=True)
    else:
        say(f"  log in as:       {admin} with its password", markup=False)
    say(f"  logs:            {logs}", soft_wrap=True)
    say("Ctrl-C stops everything.")


def _wait(children: list[_Child], stop: _Stop, duration: float | None) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.event.wait(0.5):
        for child in children:
            if child.proc.poll() is not None:
                raise _ChildFailed(child, "stopped unexpectedly")
        if deadline is not None and time.monotonic() >= deadline:
            stop.why = f"--duration {duration:g} s"
            return


def _shutdown(say: Callable[..., None], children: list[_Child], embedded: EmbeddedPostgres | None, stop: _Stop) -> None:
    if not children and embedded is None:
        return
    say(f"stopping ({stop.why or 'done'}): dashboards, runner, database...")
    for child in reversed(children):  # the dashboards first, then the runner (it finishes its work)
        child.stop(signal.SIGINT)
    if embedded is not None:
        embedded.stop()
    say("rata demo stopped")


def research_demo(out: Path = Path("reports")) -> None:
    """Run the research demo: backtest, sweep and HTML report of sma_cross on GOOG."""
    from framework import backtest as run_backtest
    from framework import get_strategy, load_dataset
    from framework.sweep import sweep
    from runner.cli import render_report
    from runner.cli_output import format_stat, params_text, ranked_table, stats_table, trades_summary
    from runner.cli_support import execution

    screen = console()
    screen.rule("rata research demo: sma_cross on GOOG, 0.1% fees")
    bars = load_dataset("GOOG")
    cls = get_strategy("sma_cross")
    strategy = cls()
    model = execution(fees=0.001)
    result = run_backtest(strategy, bars, model=model)
    payload = result.to_dict()
    screen.print(f"1. backtest {strategy!r} on GOOG ({len(bars):,} daily bars)")
    screen.print(stats_table(result.stats, "statistics"))
    screen.print(trades_summary(payload["trades"], payload["open_trades"]))

    grid: dict[str, list[Any]] = {"fast": list(range(5, 55, 5)), "slow": list(range(20, 220, 20))}
    screen.print("\n2. sweep fast=5:50:5 x slow=20:200:20")
    swept = sweep(cls, bars, grid, model=model, progress=True)
    best = swept.best("sharpe")
    top = swept.top(5, "sharpe").to_dict(orient="records")
    screen.print(ranked_table(top, list(grid), ["sharpe", "total_return", "max_drawdown", "trades"], "top 5 by Sharpe"))
    screen.print(
        f"{len(swept.table)} combinations, {len(swept.skipped)} skipped (fast >= slow); "
        f"best in-sample: {params_text(best)} - check it out of sample with `rata walk-forward`"
    )

    screen.print("\n3. HTML backtest report")
    path = render_report(cls.name, "GOOG", {}, model, out)
    screen.rule("summary")
    stats = result.stats
    screen.print(
        f"{strategy!r}: total return {format_stat('total_return', stats['total_return'])}, "
        f"Sharpe {format_stat('sharpe', stats['sharpe'])}, "
        f"max drawdown {format_stat('max_drawdown', stats['max_drawdown'])}, {stats['trades']} closed trades"
    )
    screen.print(f"best of {len(swept.table)} swept combinations by Sharpe: {params_text(best)}")
    screen.print(f"report: {path}", soft_wrap=True)
