"""The research explorer: pick a strategy, data and parameters; backtest or sweep; see the results.

A point-and-click view of the research path a quant follows in a notebook, calling `framework`
directly (no runner needed):

- **inputs** (sidebar): a strategy from the registry, a shipped dataset or bars stored in
  PostgreSQL, the strategy's parameters (widgets generated from its declarations), the execution
  model (fill timing, fees, slippage, cash), and the sweep ranges;
- **Run backtest**: stats, the equity curve above its drawdown, trades on the price chart, and the
  trade list;
- **Run sweep**: the heatmap of a metric over two swept parameters (a curve over one) and the best
  combinations; "Backtest the best" puts the winner into the parameter form and backtests it.

Work runs in a worker thread; the clicked button says at once what runs, and a spinner with a line
shows when it lasts longer than `SPINNER_DELAY`. Invalid input (an empty field, fast >= slow, a
range out of bounds, too many combinations, unknown stored symbols) shows one clear line on the
page, never a traceback. State lives in a `ResearchState` per browser session; the views render it.

Serve it with `rata dashboard research` (http://127.0.0.1:5006/research), or show
`ResearchApp().panel()` in a JupyterLab cell (after `pn.extension("tabulator")`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pandas as pd
import panel as pn
import param

from dashboards import research_jobs as jobs
from dashboards import research_views as views
from dashboards.research_charts import BacktestCharts
from dashboards.widgets import GridForm, ParamForm, pending_on_click
from framework import BacktestResult, RataError, Strategy, SweepResult
from framework.data import dataset_names, describe_datasets
from framework.registry import strategy_classes
from framework.reporting import METRICS
from framework.settings import Settings, load_settings
from framework.timeframes import TIMEFRAMES

__all__ = ["ResearchApp", "ResearchState", "create_app", "serve_research", "warm_up"]

log = logging.getLogger(__name__)
SOURCES = {"shipped dataset": "dataset", "stored bars": "stored"}
SPINNER_DELAY = 0.3  # seconds of work before the spinner and its line show


class ResearchState(param.Parameterized):
    """One browser session's inputs and results; the views render it, the buttons change it."""

    strategy: param.Selector[str] = param.Selector(default=None, objects=[], doc="strategy name, from the registry")
    source: param.Selector[str] = param.Selector(default="shipped dataset", objects=list(SOURCES))
    dataset: param.Selector[str] = param.Selector(default="GOOG", objects=["GOOG"])
    symbols = param.String(default="", doc="stored bars: symbols, comma-separated")
    timeframe: param.Selector[str] = param.Selector(default="1m", objects=list(TIMEFRAMES))
    start = param.String(default="", doc="stored bars: first bar open time (UTC), empty for all")
    end = param.String(default="", doc="stored bars: end of the range (UTC, exclusive), empty for all")
    fill: param.Selector[str] = param.Selector(default="next_open", objects=["next_open", "close"])
    fees = param.Number(default=0.001, bounds=(0, 0.5), allow_None=True, doc="rate of the filled notional")
    slippage = param.Number(default=0.0, bounds=(0, 0.5), allow_None=True, doc="rate the fill price moves against")
    cash = param.Number(default=100_000.0, bounds=(1, None), allow_None=True)
    metric: param.Selector[str] = param.Selector(
        default="sharpe", objects=list(METRICS), doc="the sweep's ranking metric"
    )
    symbol: param.Selector[str] = param.Selector(default=None, objects=[], doc="instrument shown on the price chart")

    backtest = param.ClassSelector(class_=BacktestResult, default=None, allow_None=True)
    sweep = param.ClassSelector(class_=SweepResult, default=None, allow_None=True)
    error = param.String(default="", doc="the last refusal, shown above the results")
    notice = param.String(default="", doc="what the last run did")
    busy = param.Boolean(default=False, doc="a backtest or sweep is running")
    task = param.String(default="", doc="which button's work is running: backtest or sweep")
    activity = param.String(default="", doc="what is running, shown beside the spinner")
    runs = param.Integer(default=0, doc="backtests shown; the stats table carries the number as data-run")

    def data_choice(self) -> jobs.DataChoice:
        """Return the data the inputs name."""
        return jobs.DataChoice(
            source="stored" if SOURCES[self.source] == "stored" else "dataset",
            dataset=self.dataset,
            symbols=self.symbols,
            timeframe=self.timeframe,
            start=self.start,
            end=self.end,
        )


class ResearchApp:
    """The research page of one session: widgets bound to a `ResearchState` and the views of it."""

    def __init__(self, state: ResearchState | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings
        self.classes: dict[str, type[Strategy]] = dict(sorted(strategy_classes().items()))
        self.state = state or ResearchState()
        names = list(self.classes)
        self.state.param.strategy.objects = names
        self.state.param.dataset.objects = dataset_names()
        if self.state.strategy not in names:
            self.state.strategy = "sma_cross" if "sma_cross" in names else names[0]
        self.form = ParamForm([])
        self.grid = GridForm([])
        self._build_widgets()
        self._build_outputs()
        self.state.param.watch(self._strategy_changed, "strategy")
        self.state.param.watch(self._busy_changed, "busy")
        self.state.param.watch(self._show_error, "error")
        self.state.param.watch(self._show_notice, "notice")
        self.state.param.watch(self._show_backtest, ["backtest", "symbol"])
        self.state.param.watch(self._show_sweep, ["sweep", "metric"])
        self._strategy_changed()

    # ---- layout -------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        s = self.state
        self.strategy_select = pn.widgets.Select.from_param(
            s.param.strategy, label="strategy", css_classes=["rata-strategy"]
        )
        self.summary = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#555"}, sizing_mode="stretch_width")
        self.source_toggle = pn.widgets.RadioButtonGroup.from_param(
            s.param.source, label="", color="default", css_classes=["rata-source"]
        )
        datasets = describe_datasets()
        self.dataset_select = pn.widgets.Select.from_param(
            s.param.dataset,
            label="dataset",
            css_classes=["rata-dataset"],
            description="; ".join(f"{k}: {v}" for k, v in datasets.items()),
        )
        self.stored_fields = pn.Column(
            pn.widgets.TextInput.from_param(
                s.param.symbols, label="symbols", placeholder="BTC/USDT, ETH/USDT", css_classes=["rata-symbols"]
            ),
            pn.widgets.Select.from_param(s.param.timeframe, label="timeframe", css_classes=["rata-timeframe"]),
            pn.Row(
                pn.widgets.TextInput.from_param(s.param.start, label="start (UTC)", placeholder="2026-11-01"),
                pn.widgets.TextInput.from_param(s.param.end, label="end (UTC)", placeholder="2026-11-02"),
            ),
            margin=0,
            visible=False,
        )
        s.param.watch(self._source_changed, "source")
        self.execution = pn.Column(
            pn.widgets.Select.from_param(
                s.param.fill,
                label="fill",
                description="next_open: a decision at a bar's close fills at the next bar's open; "
                "close: at that bar's close (optimistic)",
            ),
            pn.Row(
                pn.widgets.FloatInput.from_param(
                    s.param.fees, label="fees", step=0.0005, width=150, css_classes=["rata-fees"]
                ),
                pn.widgets.FloatInput.from_param(s.param.slippage, label="slippage", step=0.0005, width=150),
            ),
            pn.widgets.FloatInput.from_param(s.param.cash, label="cash", step=10_000),
            margin=0,
        )
        self.params_box = pn.Column(margin=0, sizing_mode="stretch_width")
        self.grid_box = pn.Column(margin=0, sizing_mode="stretch_width")
        self.backtest_button = pn.widgets.Button(
            label="Run backtest", color="primary", css_classes=["rata-run-backtest"], sizing_mode="stretch_width"
        )
        self.sweep_button = pn.widgets.Button(
            label="Run sweep", color="success", css_classes=["rata-run-sweep"], sizing_mode="stretch_width"
        )
        self.backtest_button.on_click(self.run_backtest)
        self.sweep_button.on_click(self.run_sweep)
        pending_on_click(self.backtest_button, "Running backtest...")
        pending_on_click(self.sweep_button, "Running sweep...")
        self.metric_select = pn.widgets.Select.from_param(s.param.metric, label="rank by", css_classes=["rata-metric"])

    def _build_outputs(self) -> None:
        self.error_box = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["rata-error"])
        self.notice_box = pn.pane.Markdown("", css_classes=["rata-notice"], margin=(0, 10))
        self.spinner = pn.indicators.LoadingSpinner(value=True, size=22, margin=(8, 10), label="")
        self.busy_box = pn.Row(self.spinner, css_classes=["rata-busy"], visible=False, margin=0)
        self.stats = pn.pane.HTML(views.stats_html({}, 0), css_classes=["rata-stats-pane"], width=320)
        self.symbol_select = pn.widgets.Select.from_param(self.state.param.symbol, label="instrument", width=200)
        self.charts = BacktestCharts()
        self.trades = pn.widgets.Tabulator(
            pd.DataFrame(),
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=12,
            sizing_mode="stretch_width",
            css_classes=["rata-trades"],
        )
        self.heatmap = pn.pane.HoloViews(None, sizing_mode="stretch_width")
        self.top = pn.widgets.Tabulator(
            pd.DataFrame(), disabled=True, show_index=False, sizing_mode="stretch_width", css_classes=["rata-top"]
        )
        self.best_button = pn.widgets.Button(
            label="Backtest the best", color="primary", css_classes=["rata-use-best"], disabled=True, width=180
        )
        self.best_button.on_click(self.backtest_best)
        backtest_tab = pn.Column(
            pn.Row(
                pn.Column(self.stats, self.symbol_select),
                pn.Column(self.charts.price, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            self.charts.equity,
            pn.pane.Markdown("#### Trades (newest first)", margin=(0, 10)),
            self.trades,
            sizing_mode="stretch_width",
        )
        sweep_tab = pn.Column(
            pn.Row(self.metric_select, self.best_button),
            pn.Column(self.heatmap, css_classes=["rata-heatmap"], sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Best combinations", margin=(0, 10)),
            self.top,
            sizing_mode="stretch_width",
        )
        self.tabs = pn.Tabs(
            ("Backtest", backtest_tab), ("Sweep", sweep_tab), dynamic=False, sizing_mode="stretch_width"
        )
        status = pn.Row(self.busy_box, self.notice_box, sizing_mode="stretch_width", height=40)
        self.outputs = pn.Column(status, self.tabs, sizing_mode="stretch_width", css_classes=["rata-outputs"])

    def _sidebar(self) -> list[Any]:
        return [
            pn.pane.Markdown("### Strategy", margin=(0, 10)),
            self.strategy_select,
            self.summary,
            pn.pane.Markdown("### Data", margin=(0, 10)),
            self.source_toggle,
            self.dataset_select,
            self.stored_fields,
            pn.pane.Markdown("### Parameters", margin=(0, 10)),
            self.params_box,
            pn.pane.Markdown("### Execution", margin=(0, 10)),
            self.execution,
            self.backtest_button,
            pn.pane.Markdown("### Sweep", margin=(0, 10)),
            self.grid_box,
            self.sweep_button,
        ]

    def view(self) -> pn.template.BootstrapTemplate:
        """Return the served page: inputs in the sidebar, messages and results in the main area."""
        return pn.template.BootstrapTemplate(
            title="rata research", sidebar=self._sidebar(), main=[self.error_box, self.outputs], sidebar_width=380
        )

    def panel(self) -> pn.Row:
        """Return the same page as one Panel layout, for a JupyterLab cell (`ResearchApp().panel()`)."""
        inputs = pn.Column(*self._sidebar(), width=380)
        return pn.Row(inputs, pn.Column(self.error_box, self.outputs, sizing_mode="stretch_width"))

    # ---- watchers -----------------------------------------------------------------------------

    def _strategy_changed(self, *_: Any) -> None:
        described = self.classes[self.state.strategy].describe()
        self.summary.object = described["summary"]
        self.form = ParamForm(described["params"])
        self.grid = GridForm(described["params"])
        self.params_box.objects = [self.form.layout]
        self.grid_box.objects = [self.grid.layout]

    def _source_changed(self, *_: Any) -> None:
        stored = SOURCES[self.state.source] == "stored"
        self.dataset_select.visible = not stored
        self.stored_fields.visible = stored

    def _busy_changed(self, *_: Any) -> None:
        """Show at once which work runs, on the clicked button: cheap for the browser to draw.

        The spinner and its line are not shown here: the layout change they cause costs the
        browser more than a fast backtest takes, so `_work` reveals them only for longer work.
        """
        busy, task = self.state.busy, self.state.task
        with pn.io.hold():
            for name, button in (("backtest", self.backtest_button), ("sweep", self.sweep_button)):
                idle = f"Run {name}"
                button.param.update(disabled=busy, label=f"Running {name}..." if busy and name == task else idle)
            self.best_button.disabled = busy or self.state.sweep is None
            if not busy and self.busy_box.visible:
                self.busy_box.visible = False
                self.notice_box.visible = True

    def _reveal_spinner(self) -> None:
        with pn.io.hold():
            self.spinner.label = f"running the {self.state.activity}..."
            self.busy_box.visible = True
            self.notice_box.visible = False

    def _show_error(self, *_: Any) -> None:
        self.error_box.object = self.state.error
        self.error_box.visible = bool(self.state.error)

    def _show_notice(self, *_: Any) -> None:
        self.notice_box.object = self.state.notice

    def _show_backtest(self, *_: Any) -> None:
        result, symbol = self.state.backtest, self.state.symbol
        if result is None:
            return
        if symbol not in result.data.symbols:
            symbol = result.data.symbols[0]
        self.stats.object = views.stats_html(result.stats, self.state.runs)
        self.charts.show(result, symbol)
        self.trades.value = views.trades_frame(result.trades)

    def _show_sweep(self, *_: Any) -> None:
        result = self.state.sweep
        if result is None:
            return
        metric = self.state.metric
        self.heatmap.object = views.sweep_plot(result, metric)
        self.top.value = views.top_frame(result, metric)
        self.best_button.disabled = self.state.busy

    # ---- actions ------------------------------------------------------------------------------

    def _settings(self) -> Settings:
        return self.settings or load_settings()

    async def _work(self, task: str, activity: str, prepare: Any, work: Any, show: Any) -> None:
        """Check the inputs, run `work` in a thread while the page shows it is busy, then `show` it.

        The page turns busy first, before the inputs are checked: the clicked button then always
        changes twice on the server (busy, then idle), which redraws it after the instant
        "Running..." the browser showed on its own (`pending_on_click`). `prepare()` reads and
        checks the widgets and returns the arguments of `work`; `show(outcome, seconds)` renders
        the outcome. A `RataError` from either becomes the page's one-line message (kept until
        the next click's outcome replaces it); anything else is logged with its traceback and
        shown as one line too.
        """
        if self.state.busy:
            return
        self.state.param.update(task=task, activity=activity, busy=True)
        started = time.perf_counter()
        outcome, error = None, ""
        try:
            prepared = prepare()
            running = asyncio.ensure_future(asyncio.to_thread(work, *prepared))
            done, _ = await asyncio.wait({running}, timeout=SPINNER_DELAY)
            if not done:
                self._reveal_spinner()
            outcome = await running
        except RataError as exc:
            error = str(exc)
        except Exception as exc:  # the page's edge: log the traceback, show one line
            log.exception("%s failed", activity)
            error = f"{activity} failed unexpectedly ({type(exc).__name__}: {exc}); details are in the server log"
        finally:
            with pn.io.hold():
                if outcome is not None:
                    show(outcome, time.perf_counter() - started)
                self.state.param.update(busy=False, error=error)

    async def run_backtest(self, _event: Any = None) -> None:
        """Backtest the chosen strategy and parameters on the chosen data; show the results."""
        cls = self.classes[self.state.strategy]
        choice = self.state.data_choice()

        def prepare() -> tuple[Any, ...]:
            s = self.state
            strategy = jobs.build_strategy(cls, self.form.values())
            model = jobs.build_model(s.fill, s.fees, s.slippage, s.cash)
            jobs.check_choice(choice)
            return strategy, model

        def work(strategy: Strategy, model: Any) -> BacktestResult:
            return jobs.run_backtest(strategy, jobs.load_data(choice, self._settings), model)

        def show(result: BacktestResult, seconds: float) -> None:
            bars = result.data
            self.state.runs += 1
            self.state.param.symbol.objects = bars.symbols
            if self.state.symbol not in bars.symbols:
                self.state.param.update(symbol=bars.symbols[0])
            self.state.notice = (
                f"**{result.strategy!r}** on {choice.label}: {len(bars):,} bars x {len(bars.symbols)} "
                f"instrument(s), fill {result.model.fill}, fees {result.model.fees:g}, "
                f"slippage {result.model.slippage:g} ({seconds * 1000:.0f} ms)"
            )
            self.state.backtest = result
            self.tabs.active = 0

        await self._work("backtest", f"backtest of {cls.name} on {choice.label}", prepare, work, show)

    async def run_sweep(self, _event: Any = None) -> None:
        """Sweep the ticked parameter ranges (other parameters fixed at the form's values)."""
        cls = self.classes[self.state.strategy]
        choice = self.state.data_choice()

        def prepare() -> tuple[Any, ...]:
            s = self.state
            grid = jobs.build_grid(cls, self.grid.axes(), self.form.values())
            model = jobs.build_model(s.fill, s.fees, s.slippage, s.cash)
            jobs.check_choice(choice)
            return grid, model

        def work(grid: dict[str, list[Any]], model: Any) -> SweepResult:
            return jobs.run_sweep(cls, jobs.load_data(choice, self._settings), grid, model)

        def show(result: SweepResult, seconds: float) -> None:
            skipped = f", {len(result.skipped):,} refused by the strategy" if result.skipped else ""
            best = result.best(self.state.metric)
            self.state.notice = (
                f"**{cls.name}** sweep on {choice.label}: {len(result.table):,} combinations{skipped} "
                f"({seconds:.2f} s); best by {self.state.metric}: " + ", ".join(f"{k}={v}" for k, v in best.items())
            )
            self.state.sweep = result
            self.tabs.active = 1

        await self._work("sweep", f"sweep of {cls.name} on {choice.label}", prepare, work, show)

    async def backtest_best(self, _event: Any = None) -> None:
        """Put the best combination of the last sweep into the parameter form and backtest it."""
        result = self.state.sweep
        if result is None or result.strategy.name != self.state.strategy:
            self.state.error = "run a sweep of this strategy first"
            return
        self.form.set_values(result.best(self.state.metric))
        await self.run_backtest()


def create_app(settings: Settings | None = None, *, run_on_load: bool = True) -> pn.template.BootstrapTemplate:
    """Return a fresh research page (Panel calls this once per browser session).

    With `run_on_load`, the page backtests the default strategy as soon as it is open, so it never
    starts empty.
    """
    pn.extension("tabulator", notifications=False)
    app = ResearchApp(settings=settings)
    if run_on_load:
        pn.state.onload(app.run_backtest)
    return app.view()


def warm_up() -> None:
    """Run a small backtest and sweep and render the heatmap, so that no session's first click is slow."""
    import holoviews as hv

    from framework import ExecutionModel
    from framework.data import load_dataset

    cls = next(iter(sorted(strategy_classes().items())))[1]
    bars, model = load_dataset("GOOG"), ExecutionModel()
    jobs.run_backtest(cls(), bars, model)
    numeric = [name for name, p in cls.params.items() if p.kind in (int, float) and p.bounds][:2]
    try:
        swept = jobs.run_sweep(cls, bars, {name: cls.params[name].grid()[:3] for name in numeric}, model)
    except RataError:
        return
    hv.render(views.sweep_plot(swept, "sharpe"))


def serve_research(
    *, port: int = 5006, address: str = "127.0.0.1", show: bool = False, settings: Settings | None = None
) -> None:
    """Serve the research explorer at http://ADDRESS:PORT/research until Ctrl-C."""
    from dashboards.serve import serve

    warm_up()
    serve({"research": lambda: create_app(settings)}, port=port, address=address, show=show, title="rata research")
