"""Render a backtest into a standalone HTML report with papermill and nbconvert.

The report is the notebook template `notebooks/backtest_report.ipynb`, executed on a real Jupyter
kernel with the run's parameters, then exported to HTML without its code cells so it reads as a
document (stats, equity and drawdown, prices with trades, trade list, period returns, look-ahead
check). Scheduled reports (cron + `rata report`) and the CLI call `render_backtest_report`.

Every input is validated in this process *before* a kernel starts, so a typo in a strategy, dataset
or parameter name is one `UnknownNameError` or `ParameterError`, not a kernel traceback. A failure
inside the kernel is a `ReportError` naming the failing cell and its error; the partially executed
notebook is kept next to where the report would have been, for debugging.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import framework
from framework.data import dataset_names
from framework.errors import ParameterError, RataError, UnknownNameError
from framework.execution import ExecutionModel, FillTiming
from framework.params import ParamValue
from framework.registry import get_strategy
from framework.strategy import resolve_params

__all__ = ["DEFAULT_TEMPLATE", "KERNEL_NAME", "ReportError", "render_backtest_report"]

KERNEL_NAME = "python3"
DEFAULT_TEMPLATE = Path(framework.__file__).resolve().parent.parent / "notebooks" / "backtest_report.ipynb"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class ReportError(RataError):
    """A report could not be produced: missing template or kernel, or a cell that raised.

    `cell_index`, `ename`, `evalue` and `traceback` describe the failing cell when there is one;
    `notebook` is the partially executed notebook, kept for debugging.
    """

    def __init__(
        self,
        message: str,
        *,
        notebook: Path | None = None,
        cell_index: int | None = None,
        ename: str | None = None,
        evalue: str | None = None,
        traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback


def render_backtest_report(
    strategy: str,
    dataset: str,
    params: Mapping[str, Any] | None = None,
    *,
    fees: float = 0.0,
    slippage: float = 0.0,
    cash: float = 100_000.0,
    fill: str = "next_open",
    output_dir: Path | str = Path("reports"),
    progress: bool = False,
    name: str | None = None,
    template: Path | str | None = None,
    timeout: float | None = 600.0,
) -> Path:
    """Backtest `strategy` on `dataset` in a fresh kernel and return the path of the HTML report.

    `params` are the strategy's parameter values (the rest keep their defaults); `fees`,
    `slippage`, `cash` and `fill` set the execution model (see `framework.execution`). The
    executed notebook is written to `output_dir/<name>.ipynb` and the report to
    `output_dir/<name>.html`; `name` defaults to `<strategy>_<DATASET>`, with a short digest of the
    parameters and execution model when they differ from the defaults, so runs with different
    inputs do not overwrite each other. `template` replaces `notebooks/backtest_report.ipynb`;
    `timeout` bounds each cell's run time in seconds (None: no bound).

    Raises `UnknownNameError` or `ParameterError` for bad inputs (before any kernel starts) and
    `ReportError` when the template or kernel is missing or a cell fails.

    >>> from framework.report import render_backtest_report
    >>> html = render_backtest_report("sma_cross", "GOOG", {"fast": 10, "slow": 30}, fees=0.001)  # doctest: +SKIP
    """
    strategy_cls = get_strategy(strategy)
    dataset_key = _dataset_key(dataset)
    values = resolve_params(strategy_cls, params or {})
    instance = strategy_cls(**values)
    model = ExecutionModel(fill=cast(FillTiming, fill), fees=fees, slippage=slippage, cash=cash)
    notebook = Path(template or DEFAULT_TEMPLATE).resolve()
    if not notebook.is_file():
        raise ReportError(f"report template not found: {notebook}")
    _check_kernel()

    explicit = {k: v for k, v in instance.values.items() if v != strategy_cls.params[k].default}
    run_name = _safe_name(name) if name else _default_name(strategy_cls.name, dataset_key, explicit, model)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ipynb = output_dir / f"{run_name}.ipynb"
    html = output_dir / f"{run_name}.html"
    parameters: dict[str, Any] = {
        "strategy": strategy_cls.name,
        "dataset": dataset_key,
        "params": json.dumps(instance.values),
        "fees": float(model.fees),
        "slippage": float(model.slippage),
        "cash": float(model.cash),
        "fill": model.fill,
    }
    executed = _execute(notebook, ipynb, parameters, progress=progress, timeout=timeout)
    title = f"{strategy_cls.name} on {dataset_key} - rata backtest report"
    html.write_text(_to_html(executed, title), encoding="utf-8")
    return html


def _dataset_key(dataset: str) -> str:
    names = dataset_names()
    by_key = {n.upper(): n for n in names}
    if dataset.upper() not in by_key:
        raise UnknownNameError("dataset", dataset, names)
    return by_key[dataset.upper()]


def _safe_name(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip("._")
    if not cleaned:
        raise ParameterError(f"report name {name!r} has no usable characters")
    return cleaned


def _default_name(strategy: str, dataset: str, explicit: Mapping[str, ParamValue], model: ExecutionModel) -> str:
    base = f"{strategy}_{dataset}"
    if not explicit and model == ExecutionModel():
        return base
    payload = json.dumps(
        {
            "params": dict(explicit),
            "fees": model.fees,
            "slippage": model.slippage,
            "cash": model.cash,
            "fill": model.fill,
        },
        sort_keys=True,
    )
    return f"{base}_{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


def _check_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel as exc:
        raise ReportError(
            f"no Jupyter kernel named {KERNEL_NAME!r}; install one with "
            f"`python -m ipykernel install --sys-prefix --name {KERNEL_NAME}` (done by `make install`)"
        ) from exc


def _execute(notebook: Path, output: Path, parameters: dict[str, Any], *, progress: bool, timeout: float | None) -> Any:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    try:
        return papermill.execute_notebook(
            notebook,
            output,
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            progress_bar=progress,
            report_mode=True,
            execution_timeout=timeout,
            # The kernel listens on loopback TCP only; keep its start-up warnings out of the caller's output.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as exc:
        traceback = _ANSI.sub("", "\n".join(exc.traceback or []))
        raise ReportError(
            f"report cell In [{exc.exec_count}] failed with {exc.ename}: {exc.evalue} (executed notebook: {output})",
            notebook=output,
            cell_index=exc.cell_index,
            ename=exc.ename,
            evalue=exc.evalue,
            traceback=traceback,
        ) from exc
    except CellTimeoutError as exc:
        raise ReportError(
            f"a report cell ran longer than {timeout} s (executed notebook: {output})", notebook=output
        ) from exc
    except DeadKernelError as exc:
        raise ReportError(f"the report kernel died: {exc} (executed notebook: {output})", notebook=output) from exc


def _to_html(executed: Any, title: str) -> str:
    from nbconvert import HTMLExporter

    executed = copy.deepcopy(executed)
    for cell in executed.cells:
        # Drop outputs with no renderable data (HoloViews leaves some), which nbconvert warns about.
        outputs = cell.get("outputs", [])
        cell["outputs"] = [o for o in outputs if o.get("output_type") != "display_data" or o.get("data")]
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(executed, resources={"metadata": {"name": title}})
    return str(body)
