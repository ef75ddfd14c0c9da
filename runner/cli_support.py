"""Shared pieces of the `rata` CLI: the user-error edge, `--set`/`--grid` parsing, data and output.

Nothing here imports `framework` at module level: the CLI starts fast and only pays for vectorbt
when a command needs it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from framework import Bars, ExecutionModel, Param, Strategy
    from framework.params import ParamValue

__all__ = [
    "USAGE_EXIT",
    "ArgumentError",
    "CashOpt",
    "DataOpt",
    "DatasetOpt",
    "FeesOpt",
    "Fill",
    "FillOpt",
    "GridOpt",
    "JsonOpt",
    "MetricOpt",
    "SetOpt",
    "SlippageOpt",
    "StrategyArg",
    "SymbolOpt",
    "TimeframeOpt",
    "UserErrorEdge",
    "build_strategy",
    "emit_json",
    "execution",
    "fail",
    "jsonable",
    "load_bars",
    "parse_grid",
    "parse_set",
]

USAGE_EXIT = 2

StrategyArg = Annotated[str, typer.Argument(help="Strategy name (see `rata strategies`).", show_default=False)]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Shipped dataset (see `rata datasets`).", show_default=False)
]
DataOpt = Annotated[Path | None, typer.Option("--data", help="CSV or Parquet file of OHLCV bars.", show_default=False)]
SymbolOpt = Annotated[str | None, typer.Option(help="Symbol of --data (default: the file name).")]
TimeframeOpt = Annotated[str | None, typer.Option(help="Bar duration of --data, e.g. 1h, 1D (default: inferred).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="NAME=VALUE", help="Set a strategy parameter (repeatable).", show_default=False
    ),
]
GridOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        "-g",
        metavar="NAME=SPEC",
        help="Swept values: NAME=START:STOP[:STEP] (inclusive) or NAME=V1,V2,... (repeatable).",
        show_default=False,
    ),
]
FeesOpt = Annotated[float | None, typer.Option(help="Fee rate of each fill's notional, e.g. 0.001.", show_default="0")]
SlippageOpt = Annotated[
    float | None, typer.Option(help="Slippage rate against the trader, e.g. 0.0005.", show_default="0")
]
CashOpt = Annotated[float | None, typer.Option(help="Starting cash.", show_default="100000")]
MetricOpt = Annotated[str, typer.Option(help="Statistic to rank combinations by (higher is better).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


class Fill(StrEnum):
    """When a decision at bar t's close fills (see `framework.execution`)."""

    next_open = "next_open"
    close = "close"


FillOpt = Annotated[
    Fill | None,
    typer.Option(help="Fill at the next bar's open (default) or the decision bar's close.", show_default=False),
]


class ArgumentError(ValueError):
    """A malformed command-line value (`--set`, `--grid`, conflicting options)."""


def fail(message: str) -> NoReturn:
    """Print `message` as one `error:` line on stderr and exit with the usage exit code."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(USAGE_EXIT)


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, ArgumentError):
        return True
    errors = sys.modules.get("framework.errors")
    return errors is not None and isinstance(exc, errors.RejectedError)


class UserErrorEdge(TyperGroup):
    """Turn user errors raised by any command into one stderr line and exit code 2.

    User errors are `ArgumentError` and the framework's `RejectedError` family (unknown names,
    out-of-bounds parameters, unusable data). Everything else keeps its traceback.
    """

    def invoke(self, ctx: Any) -> Any:  # typer types it with its vendored, private click Context
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if _is_user_error(exc):
                fail(str(exc))
            raise


# --------------------------------------------------------------------------------------------
# --set and --grid


def _split_assignment(item: str, option: str, form: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise ArgumentError(f"malformed {option} {item!r}; expected {form}")
    return name, value


def _check_names(strategy_cls: type[Strategy], names: Iterable[str]) -> None:
    from framework.errors import UnknownNameError

    for name in names:
        if name not in strategy_cls.params:
            raise UnknownNameError(f"parameter of {strategy_cls.name}", name, list(strategy_cls.params))


def parse_set(strategy_cls: type[Strategy], items: Sequence[str] | None) -> dict[str, ParamValue]:
    """Return the `--set NAME=VALUE` options validated against `strategy_cls`'s parameters."""
    raw: dict[str, str] = {}
    for item in items or ():
        name, value = _split_assignment(item, "--set", "NAME=VALUE")
        if name in raw:
            raise ArgumentError(f"--set {name} given twice")
        raw[name] = value
    _check_names(strategy_cls, raw)
    return {name: strategy_cls.params[name].validate(value) for name, value in raw.items()}


def build_strategy(strategy_cls: type[Strategy], values: Mapping[str, Any]) -> Strategy:
    """Return an instance of `strategy_cls` (raises `ParameterError` when values contradict)."""
    return strategy_cls(**values)


def parse_grid(
    strategy_cls: type[Strategy], items: Sequence[str] | None, fixed: Mapping[str, Any] | None = None
) -> dict[str, list[ParamValue]]:
    """Return the `--grid` options as value lists, each value checked against its `Param`.

    Forms: `NAME=START:STOP[:STEP]` (inclusive, numeric parameters; the step defaults to 1 for
    ints and a tenth of the range for floats) and `NAME=V1,V2,...` (any parameter).
    """
    grid: dict[str, list[ParamValue]] = {}
    form = "NAME=START:STOP[:STEP] or NAME=V1,V2,..."
    for item in items or ():
        name, spec = _split_assignment(item, "--grid", form)
        _check_names(strategy_cls, [name])
        if name in grid:
            raise ArgumentError(f"--grid {name} given twice")
        if fixed and name in fixed:
            raise ArgumentError(f"parameter {name!r} is given both in --grid and --set")
        grid[name] = grid_values(strategy_cls.params[name], spec)
    if not grid:
        raise ArgumentError(f"give at least one --grid {form}")
    return grid


def grid_values(param: Param, spec: str) -> list[ParamValue]:
    """Return the values one `--grid` spec (`START:STOP[:STEP]` or `V1,V2,...`) stands for."""
    if ":" not in spec:
        parts = [p.strip() for p in spec.split(",")]
        if not all(parts):
            raise ArgumentError(f"--grid {param.name}={spec}: empty value in the list")
        return list(dict.fromkeys(param.validate(p) for p in parts))
    pieces = [p.strip() for p in spec.split(":")]
    if len(pieces) not in (2, 3) or not all(pieces):
        raise ArgumentError(f"malformed --grid {param.name}={spec}; expected START:STOP[:STEP]")
    if param.kind not in (int, float) or param.choices is not None:
        raise ArgumentError(
            f"parameter {param.name!r} ({param.kind.__name__}) takes a list of values "
            f"({param.name}=V1,V2,...), not a range"
        )
    start, stop = param.validate(pieces[0]), param.validate(pieces[1])
    assert isinstance(start, int | float)
    assert isinstance(stop, int | float)
    if start > stop:
        raise ArgumentError(f"--grid {param.name}={spec}: start {start} is after stop {stop}")
    step = _step(param, pieces[2]) if len(pieces) == 3 else None
    if start == stop:
        return [start]
    if param.kind is int or step is None:
        return param.grid(start, stop, step)
    count = math.floor((stop - start) / step + 1e-9) + 1
    return [param.validate(round(start + i * step, 12)) for i in range(count)]


def _step(param: Param, text: str) -> float:
    try:
        step = float(text)
    except ValueError:
        raise ArgumentError(f"--grid {param.name}: step {text!r} is not a number") from None
    if not (math.isfinite(step) and step > 0):
        raise ArgumentError(f"--grid {param.name}: step must be positive, got {text}")
    if param.kind is int and not step.is_integer():
        raise ArgumentError(f"--grid {param.name}: step of an int parameter must be a whole number, got {text}")
    return step


# --------------------------------------------------------------------------------------------
# data and execution


def load_bars(
    dataset: str | None,
    data_file: Path | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
) -> tuple[Bars, str]:
    """Return the bars of `--dataset NAME` or `--data FILE`, and a label saying where they came from."""
    from framework.data import dataset_names, load_dataset

    if dataset and data_file:
        raise ArgumentError("give either --dataset or --data, not both")
    if data_file is not None:
        if timeframe:
            _check_timeframe(timeframe)
        return _read_file(data_file, symbol, timeframe), str(data_file)
    if symbol or timeframe:
        raise ArgumentError("--symbol and --timeframe only apply to --data FILE")
    if not dataset:
        raise ArgumentError(f"give --dataset NAME (one of {', '.join(dataset_names())}) or --data FILE")
    return load_dataset(dataset), dataset.upper()


def _read_file(path: Path, symbol: str | None, timeframe: str | None) -> Bars:
    import pandas as pd

    from framework.data import load_file

    try:
        return load_file(path, symbol=symbol, timeframe=timeframe)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ArgumentError(f"{path.name}: cannot read the file: {exc}") from exc


def _check_timeframe(timeframe: str) -> None:
    import pandas as pd

    try:
        pd.tseries.frequencies.to_offset(timeframe)
    except ValueError:
        raise ArgumentError(f"invalid --timeframe {timeframe!r}; use a pandas offset such as 1min, 1h, 1D") from None


def execution(
    *, fees: float | None = None, slippage: float | None = None, cash: float | None = None, fill: Fill | None = None
) -> ExecutionModel:
    """Return the execution model for the CLI options, validated (raises `ParameterError`)."""
    from framework.backtest import execution_model

    return execution_model(fees=fees, slippage=slippage, cash=cash, fill=fill.value if fill else None)


# --------------------------------------------------------------------------------------------
# output


def jsonable(value: Any) -> Any:
    """Return `value` as plain JSON data: timestamps as ISO text, non-finite floats as null."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date):
        return None if _is_missing(value) else value.isoformat()
    if isinstance(value, timedelta | Path | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if _is_missing(value):
        return None
    return str(value)


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def emit_json(payload: Any) -> None:
    """Print `payload` as exactly one JSON document on stdout."""
    typer.echo(json.dumps(jsonable(payload), allow_nan=False))
