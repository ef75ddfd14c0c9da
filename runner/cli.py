"""The `rata` command line: list strategies and data, backtest, sweep, walk forward, check, report.

User errors (an unknown strategy, dataset or parameter, an out-of-bounds value, a malformed
`--set`/`--grid`, a missing file) print one `error:` line on stderr and exit with code 2; anything
unexpected keeps its traceback. Heavy modules (vectorbt through `framework`) are imported inside
the commands, so `rata --help` stays fast.

    rata strategies
    rata backtest sma_cross --dataset GOOG --set fast=10 --set slow=30 --fees 0.001
    rata sweep sma_cross --dataset GOOG --grid fast=5:50:5 --grid slow=20:200:20 --top 5
    rata walk-forward sma_cross --dataset GOOG --grid fast=5:30:5 --grid slow=40:100:20 --train 500 --test 250
    rata lookahead sma_cross --dataset GOOG
    rata report backtest sma_cross --dataset GOOG --set slow=30 --out reports
    rata demo              # the whole system: database, runner, API and dashboards
    rata demo --research   # backtest, sweep and HTML report of sma_cross on GOOG
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runner import (
    cli_credentials,
    cli_dashboard,
    cli_db,
    cli_demo,
    cli_ingest,
    cli_research,
    cli_run,
    cli_serve,
    cli_users,
)
from runner.cli_output import (
    console,
    stats_table,
    trades_summary,
    trades_table,
)
from runner.cli_support import (
    CashOpt,
    DataOpt,
    DatasetOpt,
    FeesOpt,
    FillOpt,
    JsonOpt,
    SetOpt,
    SlippageOpt,
    StrategyArg,
    SymbolOpt,
    TimeframeOpt,
    UserErrorEdge,
    build_strategy,
    emit_json,
    execution,
    fail,
    load_bars,
    parse_set,
)

if TYPE_CHECKING:
    from framework import ExecutionModel

__all__ = ["app", "main", "render_report"]

app = typer.Typer(
    name="rata",
    cls=UserErrorEdge,
    help="rata: research-to-production trading. Backtest, sweep and check strategies; render reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Directory for the .html report and executed .ipynb.")]

report_app = typer.Typer(cls=UserErrorEdge, help="Render HTML reports with papermill.", no_args_is_help=True)
app.add_typer(report_app, name="report")
app.add_typer(cli_db.db_app, name="db")
app.add_typer(cli_db.data_app, name="data")
app.add_typer(cli_dashboard.dashboard_app, name="dashboard")
app.add_typer(cli_users.users_app, name="users")
app.add_typer(cli_credentials.credentials_app, name="credentials")
app.command("ingest")(cli_ingest.ingest)
app.command("run")(cli_run.run)
app.command("parity")(cli_run.parity)
app.command("serve")(cli_serve.serve)
app.command("demo")(cli_demo.demo)


@app.command("strategies")
def strategies(as_json: JsonOpt = False) -> None:
    """List the strategies with their parameters: type, default, bounds or choices."""
    from framework.registry import strategy_classes

    described = [cls.describe() for _, cls in sorted(strategy_classes().items())]
    if as_json:
        emit_json(described)
        return
    from rich.markup import escape
    from rich.table import Table

    screen = console()
    for info in described:
        table = Table(title=f"[bold]{info['name']}[/bold]: {escape(info['summary'])}", title_justify="left")
        for column in ("parameter", "type", "default", "bounds / choices", "description"):
            table.add_column(column)
        for param in info["params"]:
            cells = (param["name"], param["type"], str(param["default"]), _limits(param), param.get("doc") or "")
            table.add_row(*(escape(cell) for cell in cells))
        screen.print(table)


def _limits(param: dict[str, Any]) -> str:
    if param["bounds"]:
        low, high = param["bounds"]
        return f"[{low}, {high}]"
    if param["choices"]:
        return ", ".join(map(str, param["choices"]))
    return ""


@app.command("datasets")
def datasets(as_json: JsonOpt = False) -> None:
    """List the shipped datasets (offline, ready for --dataset)."""
    from framework.data import describe_datasets

    described = describe_datasets()
    if as_json:
        emit_json([{"name": name, "description": text} for name, text in described.items()])
        return
    from rich.table import Table

    table = Table(title="datasets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, text in described.items():
        table.add_row(name, text)
    console().print(table)


@app.command("backtest")
def backtest(
    strategy: StrategyArg,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    timeframe: TimeframeOpt = None,
    set_: SetOpt = None,
    fees: FeesOpt = None,
    slippage: SlippageOpt = None,
    cash: CashOpt = None,
    fill: FillOpt = None,
    show_trades: Annotated[int, typer.Option("--trades", help="How many of the last closed trades to list.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Backtest one strategy on a dataset or a file and print its stats and trades."""
    from framework import backtest as run_backtest
    from framework import get_strategy

    cls = get_strategy(strategy)
    instance = build_strategy(cls, parse_set(cls, set_))
    model = execution(fees=fees, slippage=slippage, cash=cash, fill=fill)
    bars, source = load_bars(dataset, data, symbol, timeframe)
    result = run_backtest(instance, bars, model=model)
    payload = {**result.to_dict(), "dataset": source}
    if as_json:
        emit_json(payload)
        return
    out = console()
    out.print(
        f"[bold]{instance!r}[/bold] on {source}: {len(bars):,} bars x {_count(len(bars.symbols), 'instrument')}, "
        f"fill {model.fill}, fees {model.fees:g}, slippage {model.slippage:g}"
    )
    out.print(stats_table(result.stats, "statistics"))
    out.print(trades_summary(payload["trades"], payload["open_trades"]))
    if show_trades > 0 and payload["trades"]:
        last = payload["trades"][-show_trades:]
        out.print(trades_table(last, f"last {len(last)} closed trades"))
    if payload["open_trades"]:
        out.print(trades_table(payload["open_trades"], "open trades (marked at the last close)"))


app.command("sweep")(cli_research.sweep)
app.command("walk-forward")(cli_research.walk_forward)
app.command("lookahead")(cli_research.lookahead)


@report_app.command("backtest")
def report_backtest(
    strategy: StrategyArg,
    dataset: DatasetOpt = None,
    set_: SetOpt = None,
    fees: FeesOpt = None,
    slippage: SlippageOpt = None,
    cash: CashOpt = None,
    fill: FillOpt = None,
    out: OutOpt = Path("reports"),
) -> None:
    """Run the backtest report notebook and print the path of the HTML report."""
    from framework import get_strategy
    from framework.data import dataset_names

    cls = get_strategy(strategy)
    values = parse_set(cls, set_)
    build_strategy(cls, values)
    model = execution(fees=fees, slippage=slippage, cash=cash, fill=fill)
    if not dataset:
        fail(f"give --dataset NAME (one of {', '.join(dataset_names())})")
    path = render_report(cls.name, dataset, values, model, out)
    typer.echo(str(path))


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def render_report(strategy: str, dataset: str, values: dict[str, Any], model: ExecutionModel, out: Path) -> Path:
    from framework.report import ReportError, render_backtest_report

    try:
        with console(stderr=True).status(f"rendering the {strategy} report on {dataset} (runs a notebook)..."):
            path = render_backtest_report(
                strategy,
                dataset,
                values,
                fees=model.fees,
                slippage=model.slippage,
                cash=model.cash,
                fill=model.fill,
                output_dir=out,
            )
    except ReportError as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        if exc.traceback:
            typer.echo(exc.traceback, err=True)
        raise typer.Exit(1) from None
    return path.resolve()


def main() -> None:
    """Run the `rata` command line (the console-script entry point)."""
    app(prog_name="rata")


if __name__ == "__main__":
    main()
