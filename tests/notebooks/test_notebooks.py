"""The research notebook and the backtest report template run end to end on a real Jupyter kernel.

Kernel tests are marked `notebook` (deselect with `-m "not notebook"`); papermill raises on the first
cell error, so executing a notebook is the assertion. The input-validation tests start no kernel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

import framework
from framework.errors import ParameterError, UnknownNameError
from framework.report import DEFAULT_TEMPLATE, KERNEL_NAME, ReportError, render_backtest_report

NOTEBOOKS = Path(framework.__file__).resolve().parent.parent / "notebooks"


def _outputs_text(nb: Any) -> str:
    parts: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace notebook execution by a recorder, so a test proves no kernel was started."""
    calls: list[dict[str, Any]] = []

    def record(notebook: Path, output: Path, parameters: dict[str, Any], **kwargs: Any) -> Any:
        calls.append(parameters)
        return nbformat.v4.new_notebook()

    monkeypatch.setattr("framework.report._execute", record)
    return calls


@pytest.mark.notebook
def test_research_notebook_runs_end_to_end_and_catches_the_leaky_strategy(tmp_path: Path) -> None:
    out = tmp_path / "research.ipynb"
    nb = papermill.execute_notebook(
        NOTEBOOKS / "research.ipynb",
        out,
        parameters={"dataset": "GOOG", "fees": 0.001},
        kernel_name=KERNEL_NAME,
        progress_bar=False,
    )
    text = _outputs_text(nb)
    assert "LookaheadError" in text
    assert "Bokeh.embed.embed_items_notebook" in text, "no Bokeh plot rendered"
    assert not [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count") is None]


@pytest.mark.notebook
def test_backtest_report_renders_stats_plots_trades_and_lookahead_to_html(tmp_path: Path) -> None:
    html = render_backtest_report(
        "sma_cross", "stocks", {"fast": 10, "slow": "30"}, fees=0.001, slippage=0.0005, output_dir=tmp_path
    )
    assert html.parent == tmp_path
    assert html.suffix == ".html"
    assert html.with_suffix(".ipynb").is_file()
    text = html.read_text(encoding="utf-8")
    for expected in ("sma_cross", "STOCKS", "Sharpe ratio", "Max drawdown", "Execution model", "Trades"):
        assert expected in text
    assert "Returns by month and year" in text
    assert "Look-ahead check" in text
    assert "PASSED" in text
    assert "Bokeh.embed.embed_items_notebook" in text, "no Bokeh plot in the report"
    for symbol in ("AAPL", "GOOG", "IBM", "MSFT"):
        assert f"{symbol}: sma_cross trades" in text, f"no price chart for {symbol}"
    assert "cdn.bokeh.org" not in text, "BokehJS must be inline so the report renders offline"
    assert "import holoviews" not in text, "code cells leaked into the report"
    assert "check_lookahead(instance, data)" not in text, "code cells leaked into the report"


@pytest.mark.notebook
def test_report_template_runs_with_its_default_parameters(tmp_path: Path) -> None:
    nb = papermill.execute_notebook(
        DEFAULT_TEMPLATE, tmp_path / "report.ipynb", kernel_name=KERNEL_NAME, progress_bar=False
    )
    text = _outputs_text(nb)
    assert "sma_cross" in text
    assert "GOOG" in text


@pytest.mark.notebook
def test_a_failing_report_cell_is_one_report_error_naming_the_cell(tmp_path: Path) -> None:
    template = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('strategy = "sma_cross"')
    parameters.metadata["tags"] = ["parameters"]
    template.cells = [parameters, nbformat.v4.new_code_cell('raise ValueError("the data went missing")')]
    template.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(template, path)

    with pytest.raises(ReportError, match="the data went missing") as caught:
        render_backtest_report("sma_cross", "GOOG", {}, template=path, output_dir=tmp_path / "out")
    assert caught.value.ename == "ValueError"
    assert caught.value.notebook is not None
    assert caught.value.notebook.is_file()
    assert "ValueError" in caught.value.traceback


@pytest.mark.parametrize(
    ("strategy", "dataset", "params", "error", "message"),
    [
        ("sma_crossx", "GOOG", {}, UnknownNameError, "unknown strategy 'sma_crossx'; valid: .*sma_cross"),
        ("sma_cross", "NOPE", {}, UnknownNameError, "unknown dataset 'NOPE'; valid: .*GOOG"),
        ("sma_cross", "GOOG", {"fastt": 5}, UnknownNameError, "unknown parameter of sma_cross 'fastt'"),
        ("sma_cross", "GOOG", {"fast": 1}, ParameterError, "out of bounds"),
        ("sma_cross", "GOOG", {"fast": "ten"}, ParameterError, "must be an int"),
        ("sma_cross", "GOOG", {"fast": 30, "slow": 20}, ParameterError, "must be smaller than slow"),
    ],
)
def test_bad_report_inputs_raise_one_clear_error_without_starting_a_kernel(
    no_kernel: list[dict[str, Any]],
    tmp_path: Path,
    strategy: str,
    dataset: str,
    params: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        render_backtest_report(strategy, dataset, params, output_dir=tmp_path / "out")
    assert no_kernel == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fill": "tomorrow"}, "fill must be"),
        ({"fees": -0.01}, "fees must be"),
        ({"cash": 0.0}, "cash must be"),
    ],
)
def test_bad_execution_options_raise_parameter_error_without_starting_a_kernel(
    no_kernel: list[dict[str, Any]], tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        render_backtest_report("sma_cross", "GOOG", {}, output_dir=tmp_path, **options)
    assert no_kernel == []


def test_report_passes_validated_canonical_inputs_to_the_notebook(
    no_kernel: list[dict[str, Any]], tmp_path: Path
) -> None:
    html = render_backtest_report("sma_cross", "goog", {"slow": "30", "short": "yes"}, fees=0.001, output_dir=tmp_path)
    [parameters] = no_kernel
    assert parameters["strategy"] == "sma_cross"
    assert parameters["dataset"] == "GOOG"
    assert json.loads(parameters["params"]) == {"fast": 10, "slow": 30, "short": True}
    assert parameters["fees"] == 0.001
    assert parameters["fill"] == "next_open"
    assert html.name.startswith("sma_cross_GOOG_")
    assert html.is_file()


def test_report_names_separate_runs_with_different_inputs(no_kernel: list[dict[str, Any]], tmp_path: Path) -> None:
    default = render_backtest_report("sma_cross", "GOOG", {}, output_dir=tmp_path)
    tuned = render_backtest_report("sma_cross", "GOOG", {"fast": 5}, output_dir=tmp_path)
    costly = render_backtest_report("sma_cross", "GOOG", {}, fees=0.002, output_dir=tmp_path)
    named = render_backtest_report("sma_cross", "GOOG", {}, output_dir=tmp_path, name="daily/goog report")
    assert default.name == "sma_cross_GOOG.html"
    assert len({default, tuned, costly}) == 3
    assert named.name == "daily_goog_report.html"


def test_missing_template_is_a_report_error(no_kernel: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="template not found"):
        render_backtest_report("sma_cross", "GOOG", {}, template=tmp_path / "nope.ipynb", output_dir=tmp_path)
