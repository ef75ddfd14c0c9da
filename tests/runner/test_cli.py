"""The `rata` command line, driven as a user would: through typer's runner and a real process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import framework.registry
from framework import Bars, Param, Signals, Strategy, backtest, load_file
from framework.walkforward import walk_forward, window_bounds
from runner.cli import app
from runner.cli_support import grid_values
from strategies.rsi_reversion import RsiReversion
from strategies.sma_cross import SmaCross

runner = CliRunner()


def rata(*args: str) -> Any:
    return runner.invoke(app, list(args))


def rata_json(*args: str) -> Any:
    result = rata(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_user_error(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""


def rata_executable() -> list[str]:
    script = Path(sys.executable).parent / "rata"
    if script.exists():
        return [str(script)]
    found = shutil.which("rata")
    return [found] if found else [sys.executable, "-c", "from runner.cli import main; main()"]


# ---------------------------------------------------------------------------------------------
# listing


def test_strategies_lists_every_strategy_with_its_parameters_and_bounds():
    result = rata("strategies")
    assert result.exit_code == 0, result.output
    for name in framework.registry.strategy_classes():
        assert name in result.stdout
    assert "fast SMA window" in result.stdout
    assert "[2, 200]" in result.stdout

    described = rata_json("strategies")
    by_name = {s["name"]: s for s in described}
    assert set(by_name) == set(framework.registry.strategy_classes())
    fast = next(p for p in by_name["sma_cross"]["params"] if p["name"] == "fast")
    assert fast == {**fast, "type": "int", "default": 10, "bounds": [2, 200], "choices": None}


def test_datasets_lists_the_shipped_datasets():
    result = rata("datasets")
    assert result.exit_code == 0, result.output
    assert "GOOG" in result.stdout
    assert "EURUSD" in result.stdout
    names = [d["name"] for d in rata_json("datasets")]
    assert names == framework.dataset_names()


# ---------------------------------------------------------------------------------------------
# backtest


def test_backtest_json_has_the_stats_and_trades_of_a_direct_backtest(goog):
    payload = rata_json("backtest", "sma_cross", "--dataset", "GOOG", "--set", "slow=30", "--fees", "0.001")
    direct = backtest(SmaCross(slow=30), goog, fees=0.001)
    for key in ("trades", "open_trades", "final_equity", "total_return", "sharpe", "max_drawdown", "start", "end"):
        assert key in payload
    assert payload["params"] == {"fast": 10, "slow": 30, "short": False}
    assert payload["final_equity"] == pytest.approx(direct.final_equity, rel=1e-12)
    assert payload["total_return"] == pytest.approx(direct.stats["total_return"], rel=1e-12)
    assert payload["sharpe"] == pytest.approx(direct.stats["sharpe"], rel=1e-12)
    assert payload["max_drawdown"] == pytest.approx(direct.stats["max_drawdown"], rel=1e-12)
    assert len(payload["trades"]) == direct.stats["trades"]
    assert len(payload["open_trades"]) == direct.stats["open_trades"]
    assert payload["start"] == goog.index[0].isoformat()
    assert payload["end"] == goog.index[-1].isoformat()
    assert payload["execution"]["fees"] == 0.001


def test_set_and_execution_options_change_the_result():
    default = rata_json("backtest", "sma_cross", "--dataset", "GOOG")
    slower = rata_json("backtest", "sma_cross", "--dataset", "GOOG", "--set", "fast=20", "--set", "slow=60")
    assert slower["params"] == {"fast": 20, "slow": 60, "short": False}
    assert slower["final_equity"] != default["final_equity"]
    assert len(slower["trades"]) < len(default["trades"])
    at_close = rata_json("backtest", "sma_cross", "--dataset", "GOOG", "--fill", "close", "--cash", "50000")
    assert at_close["execution"] == {**default["execution"], "fill": "close", "cash": 50000.0}
    assert at_close["initial_equity"] == 50000.0


def test_backtest_prints_a_stats_table_and_the_last_trades():
    result = rata("backtest", "sma_cross", "--dataset", "GOOG", "--set", "slow=30", "--trades", "3")
    assert result.exit_code == 0, result.output
    for text in ("SmaCross(fast=10, slow=30, short=False) on GOOG", "total return", "Sharpe", "max drawdown"):
        assert text in result.stdout
    assert "closed trades:" in result.stdout
    assert "last 3 closed trades" in result.stdout


def test_backtest_reads_a_csv_file(tmp_path, goog):
    frame = pd.DataFrame(
        {
            "date": (goog.index[:400] - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
            **{f: goog.field(f)["GOOG"].to_numpy()[:400] for f in ("open", "high", "low", "close", "volume")},
        }
    )
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    payload = rata_json("backtest", "sma_cross", "--data", str(path), "--symbol", "XYZ", "--timeframe", "1D")
    direct = backtest(SmaCross(), load_file(path, symbol="XYZ", timeframe="1D"))
    assert payload["symbols"] == ["XYZ"]
    assert payload["dataset"] == str(path)
    assert payload["final_equity"] == pytest.approx(direct.final_equity, rel=1e-12)
    assert payload["end"] == goog.index[399].isoformat()

    swept = rata_json("sweep", "sma_cross", "--data", str(path), "--grid", "fast=5,10", "--grid", "slow=30")
    assert swept["dataset"] == str(path)
    assert swept["combinations"] == 2


# ---------------------------------------------------------------------------------------------
# user errors: one line on stderr, exit 2, no traceback


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["backtest", "foo", "--dataset", "GOOG"], ["unknown strategy 'foo'", "valid: ", "sma_cross"]),
        (["backtest", "sma_cross", "--dataset", "NOPE"], ["unknown dataset 'NOPE'", "GOOG, EURUSD"]),
        (["backtest", "sma_cross", "--dataset", "GOOG", "--set", "fats=3"], ["'fats'", "valid: fast, slow, short"]),
        (["backtest", "sma_cross", "--dataset", "GOOG", "--set", "fast=1"], ["'fast' = 1 is out of bounds [2, 200]"]),
        (["backtest", "sma_cross", "--dataset", "GOOG", "--set", "fast=ten"], ["'fast' must be an int"]),
        (["backtest", "sma_cross", "--dataset", "GOOG", "--set", "fast"], ["malformed --set 'fast'", "NAME=VALUE"]),
        (["backtest", "sma_cross", "--dataset", "GOOG", "--set", "fast=40"], ["fast (40) must be smaller"]),
        (["backtest", "sma_cross", "--dataset", "GOOG", "--fees", "0.9"], ["fees must be a number in [0, 0.5]"]),
        (["backtest", "sma_cross"], ["give --dataset NAME", "GOOG"]),
        (["backtest", "sma_cross", "--data", "/no/such/file.csv"], ["no such file"]),
        (["sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast=1:10"], ["'fast' = 1 is out of bounds"]),
        (["sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast=5:10:0"], ["step must be positive"]),
        (["sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast=10:5"], ["start 10 is after stop 5"]),
        (["sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast:5"], ["malformed --grid", "START:STOP"]),
        (["sweep", "sma_cross", "--dataset", "GOOG", "--grid", "short=0:1"], ["takes a list of values"]),
        (["sweep", "sma_cross", "--dataset", "GOOG"], ["give at least one --grid"]),
        (["sweep", "sma_cross", "-d", "GOOG", "-g", "fast=50", "-g", "slow=20,30", "--json"], ["no valid combination"]),
        (["walk-forward", "sma_cross", "-d", "GOOG", "-g", "fast=5", "--train", "2000", "--test", "500"], ["exceed"]),
        (["sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast=5,10", "--metric", "alpha"], ["unknown metric"]),
        (["lookahead", "nope", "--dataset", "GOOG"], ["unknown strategy 'nope'"]),
        (["report", "backtest", "sma_cross", "--dataset", "NOPE"], ["unknown dataset 'NOPE'"]),
    ],
)
def test_user_errors_print_one_line_and_exit_2(args, needles):
    assert_user_error(rata(*args), *needles)


def test_unreadable_files_are_user_errors(tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_text('time,close\n"2024-01-01,1\n')
    assert_user_error(rata("backtest", "sma_cross", "--data", str(garbage)), "garbage.csv: cannot read")
    no_close = tmp_path / "no_close.csv"
    no_close.write_text("date,open\n2024-01-01,1\n2024-01-02,2\n")
    assert_user_error(rata("backtest", "sma_cross", "--data", str(no_close)), "missing OHLCV columns")
    both = rata("backtest", "sma_cross", "--data", str(no_close), "--dataset", "GOOG")
    assert_user_error(both, "either --dataset or --data")


def test_typer_usage_errors_also_exit_2():
    result = rata("backtest", "sma_cross", "--dataset", "GOOG", "--fill", "tomorrow")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


class Broken(Strategy):
    """Raise inside signals(): a bug, not a user error."""

    name = "broken"
    window = Param(5, bounds=(1, 50))

    def signals(self, data: Bars) -> Signals:
        raise RuntimeError("boom")


class Peeking(Strategy):
    """Buy the day before the close goes up: uses tomorrow's close."""

    name = "peeking"
    window = Param(3, bounds=(1, 50))

    def signals(self, data: Bars) -> Signals:
        up = data.close.shift(-1) > data.close
        return Signals(entries=up, exits=~up)


@pytest.fixture
def extra_strategies(monkeypatch):
    classes = {**framework.registry.strategy_classes(), "broken": Broken, "peeking": Peeking}
    monkeypatch.setattr(framework.registry, "strategy_classes", lambda package="strategies": classes)


def test_unexpected_errors_keep_their_traceback(extra_strategies):
    result = rata("backtest", "broken", "--dataset", "GOOG")
    assert result.exit_code == 1
    assert isinstance(result.exception, framework.StrategyError)
    assert "boom" in str(result.exception)


# ---------------------------------------------------------------------------------------------
# research commands


def test_sweep_json_has_one_row_per_valid_combination():
    payload = rata_json(
        "sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast=5:15:5", "--grid", "slow=10,40", "--fees", "0.001"
    )
    assert payload["grid"] == {"fast": [5, 10, 15], "slow": [10, 40]}
    assert payload["combinations"] == len(payload["rows"]) == 4  # 6 pairs; (10, 10) and (15, 10) are refused
    assert {(s["params"]["fast"], s["params"]["slow"]) for s in payload["skipped"]} == {(10, 10), (15, 10)}
    sharpes = [row["sharpe"] for row in payload["rows"]]
    assert sharpes == sorted(sharpes, reverse=True)
    best = payload["best"]
    assert {k: best[k] for k in ("fast", "slow")} == {k: payload["rows"][0][k] for k in ("fast", "slow")}


def test_sweep_with_fixed_parameters_and_a_table(goog):
    payload = rata_json(
        "sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast=5,10", "--set", "slow=50", "--metric", "total_return"
    )
    assert payload["fixed"] == {"slow": 50}
    assert {row["slow"] for row in payload["rows"]} == {50}
    top = payload["rows"][0]
    assert top["final_equity"] == pytest.approx(backtest(SmaCross(fast=top["fast"], slow=50), goog).final_equity)

    result = rata("sweep", "sma_cross", "--dataset", "GOOG", "--grid", "fast=5:30:5", "--grid", "slow=40", "--top", "2")
    assert result.exit_code == 0, result.output
    assert "top 2 of 6 by sharpe" in result.stdout
    assert "best by sharpe: fast=" in result.stdout


def test_grid_ranges_follow_the_declared_types():
    assert grid_values(SmaCross.params["fast"], "5:20:5") == [5, 10, 15, 20]
    assert grid_values(SmaCross.params["fast"], "7:7") == [7]
    assert grid_values(SmaCross.params["short"], "true,false") == [True, False]
    assert grid_values(RsiReversion.params["lower"], "20:30:2.5") == [20.0, 22.5, 25.0, 27.5, 30.0]
    assert grid_values(RsiReversion.params["lower"], "20:30:3") == [20.0, 23.0, 26.0, 29.0]


def test_walk_forward_json_matches_the_framework(goog):
    args = ["--grid", "fast=5,10", "--grid", "slow=30,60", "--train", "600", "--test", "400"]
    payload = rata_json("walk-forward", "sma_cross", "--dataset", "GOOG", *args)
    direct = walk_forward(SmaCross, goog, {"fast": [5, 10], "slow": [30, 60]}, train=600, test=400)
    assert len(payload["windows"]) == len(window_bounds(len(goog), 600, 400)) == len(direct.windows)
    assert payload["stats"]["final_equity"] == pytest.approx(direct.stats["final_equity"], rel=1e-12)
    assert [w["fast"] for w in payload["windows"]] == list(direct.windows["fast"])

    result = rata("walk-forward", "sma_cross", "--dataset", "GOOG", *args, "--anchored")
    assert result.exit_code == 0, result.output
    assert "anchored train 600 / test 400" in result.stdout
    assert "out-of-sample statistics" in result.stdout


def test_lookahead_passes_a_causal_strategy_and_fails_a_peeking_one(extra_strategies):
    ok = rata("lookahead", "sma_cross", "--dataset", "GOOG", "--cuts", "5")
    assert ok.exit_code == 0, ok.output
    assert "no look-ahead" in ok.stdout

    bad = rata("lookahead", "peeking", "--dataset", "GOOG", "--cuts", "5")
    assert bad.exit_code == 1, bad.output
    assert "FAILED" in bad.stdout
    assert "look-ahead" in bad.stdout
    assert "GOOG" in bad.stdout
    assert "Traceback" not in bad.output
    report = json.loads(rata("lookahead", "peeking", "--dataset", "GOOG", "--cuts", "5", "--json").stdout)
    assert report["ok"] is False
    assert report["problems"][0]["instrument"] == "GOOG"


# ---------------------------------------------------------------------------------------------
# the real process


def test_import_of_the_cli_stays_light():
    code = "import sys, runner.cli; print('vectorbt' in sys.modules, 'framework' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_console_script_prints_pure_json_and_clean_user_errors():
    done = subprocess.run(
        [*rata_executable(), "backtest", "sma_cross", "--dataset", "GOOG", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["strategy"] == "sma_cross"

    failed = subprocess.run(
        [*rata_executable(), "backtest", "sma_cros", "--dataset", "GOOG"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.strip().splitlines() == [
        "error: unknown strategy 'sma_cros'; valid: " + ", ".join(sorted(framework.registry.strategy_classes()))
    ]


# ---------------------------------------------------------------------------------------------
# reports (papermill notebooks: slow)


@pytest.mark.slow
@pytest.mark.notebook
def test_report_backtest_writes_an_html_report(tmp_path):
    out = tmp_path / "reports"
    result = rata("report", "backtest", "sma_cross", "--dataset", "GOOG", "--set", "slow=30", "--out", str(out))
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.is_absolute()
    assert path.parent == out.resolve()
    assert path.suffix == ".html"
    assert "sma_cross" in path.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.notebook
def test_research_demo_backtests_sweeps_and_renders_a_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = rata("demo", "--research")
    assert result.exit_code == 0, result.output
    assert "SmaCross(fast=10, slow=20, short=False)" in result.stdout
    assert "top 5 by Sharpe" in result.stdout
    reports = list((tmp_path / "reports").glob("*.html"))
    assert len(reports) == 1
    assert f"report: {reports[0].resolve()}" in result.stdout
