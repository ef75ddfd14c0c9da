"""The live dashboard's state and page: a `LiveState` per session, and the widgets that render it.

`LiveLayout` builds every widget once per session and watches the state: a change of positions,
orders, fills, account, trading state, user or stream status re-renders its pane. Clicks go to
the `LiveActions` the session gives it (`dashboards.live.LiveApp`), which call the API and change
the state. CSS classes are the browser tests' hooks: `rata-login-*`, `rata-error`, `rata-notice`,
`rata-user`, `rata-stream` (`data-status`), `rata-symbol`, `rata-timeframe`, `rata-indicators` (the
instance whose indicators are drawn), `rata-chart-info` (`data-symbol`, `data-timeframe`),
`rata-positions`, `rata-orders` (a `cancel` cell per row), `rata-fills`,
`rata-account`, `rata-feed`, `rata-strategies`, and those of `dashboards.live_panels`.
"""

from __future__ import annotations

import html
from typing import Any, Protocol

import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from dashboards.live_chart import CandleChart, EquityChart
from dashboards.live_indicators import IndicatorLayers
from dashboards.live_panels import RiskPanel
from dashboards.live_views import account_html, fills_frame, orders_frame, positions_frame
from framework.timeframes import TIMEFRAMES

__all__ = ["LiveActions", "LiveLayout", "LiveState"]


class LiveState(param.Parameterized):
    """One browser session's view of the runner; the panes render it, stream events and polls change it."""

    username = param.String(default="", doc="who is logged in")
    role = param.String(default="", doc="their role: viewer, trader or admin")
    symbol: param.Selector[str] = param.Selector(default=None, objects=[], doc="instrument on the chart")
    timeframe: param.Selector[str] = param.Selector(default="1s", objects=list(TIMEFRAMES))
    error = param.String(default="", doc="the last refusal, shown at the top")
    notice = param.String(default="", doc="what the last action did")
    stream = param.String(default="offline", doc="the WebSocket: live, reconnecting (why), closed")
    trading_state = param.String(default="", doc="the account's trading state")
    trading_reason = param.String(default="")
    positions = param.Dict(default={}, doc="(strategy, symbol) -> PositionOut")
    open_orders = param.Dict(default={}, doc="client_id -> OrderOut of every open order")
    fills = param.List(default=[], doc="the latest fills, newest first")
    account = param.Dict(default={}, doc="AccountOut")
    limits = param.Dict(default={}, doc="the account's RiskLimitsBody")
    instances = param.Dict(default={}, doc="instance id -> InstanceOut")


class LiveActions(Protocol):
    """What the page's buttons do (implemented by the session, which calls the API)."""

    async def login(self, event: Any = None) -> None: ...
    async def logout(self, event: Any = None) -> None: ...
    async def kill(self, reason: str) -> None: ...
    async def release(self, reason: str) -> None: ...
    async def cancel_order(self, client_id: str) -> None: ...


def _formats(**columns: str) -> dict[str, NumberFormatter]:
    return {name: NumberFormatter(format=pattern, text_align="right") for name, pattern in columns.items()}


_PRICE, _QTY, _MONEY = "0,0.[000000]", "0,0.[0000]", "0,0.00"

CANCEL_BUTTON = (
    '<span class="rata-cancel" style="color:#c62828;font-weight:600" onclick="'
    "const c = this.closest('.tabulator-row')?.querySelector('.tabulator-cell[tabulator-field=status]');"
    "if (c) c.textContent = 'cancelling...';"
    '">cancel</span>'
)
"""The cancel cell of an open order. Its click marks the row "cancelling..." in the browser at once (no
round trip to the server); the server then says the same, and the API's answer removes the row."""


class LiveLayout:
    """Every widget of the live page, rendering a `LiveState`; see the module docstring."""

    def __init__(self, api_url: str, state: LiveState, actions: LiveActions) -> None:
        self.api_url = api_url
        self.state = state
        self.actions = actions
        self.chart = CandleChart()
        self.indicators = IndicatorLayers(self.chart.price, self.chart.x_range, keep=self.chart.keep)
        self.chart.pane.append(self.indicators.pane)
        self.equity = EquityChart()
        self.risk = RiskPanel(actions.kill, actions.release)
        self._login_form()
        self._tables()
        self._dashboard()
        for names, render in (
            ("error", self.show_error),
            ("notice", self.show_notice),
            (["username", "role", "stream"], self.show_header),
            (["trading_state", "trading_reason"], self.show_risk),
            ("limits", self.show_limits),
            ("positions", self.show_positions),
            ("open_orders", self.show_orders),
            ("fills", self.show_fills),
            ("account", self.show_account),
        ):
            state.param.watch(render, names)
        self.show_header()

    def _login_form(self) -> None:
        self.error_box = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["rata-error"])
        self.notice_box = pn.pane.Markdown("", css_classes=["rata-notice"], margin=(0, 10))
        self.header = pn.pane.HTML("", css_classes=["rata-header"], sizing_mode="stretch_width")
        self.username = pn.widgets.TextInput(name="username", css_classes=["rata-login-username"], width=300)
        self.password = pn.widgets.PasswordInput(name="password", css_classes=["rata-login-password"], width=300)
        self.login_button = pn.widgets.Button(
            label="Log in", button_type="primary", css_classes=["rata-login"], width=300
        )
        self.login_button.on_click(self.actions.login)
        self.login_card = pn.Column(
            pn.pane.Markdown(f"### Log in to the runner at {html.escape(self.api_url)}"),
            self.username,
            self.password,
            self.login_button,
            css_classes=["rata-login-card"],
            margin=(20, 20),
        )
        self.logout_button = pn.widgets.Button(label="Log out", button_type="light", width=90, visible=False)
        self.logout_button.on_click(self.actions.logout)

    def _tables(self) -> None:
        common: dict[str, Any] = {
            "disabled": True,
            "show_index": False,
            "sizing_mode": "stretch_width",
            "pagination": "local",
            "page_size": 10,
        }
        self.positions_table = pn.widgets.Tabulator(
            positions_frame([]),
            css_classes=["rata-positions"],
            formatters=_formats(
                quantity=_QTY, **{"avg price": _PRICE}, mark=_PRICE, unrealised=_MONEY, realised=_MONEY, fees=_MONEY
            ),
            **common,
        )
        self.orders_table = pn.widgets.Tabulator(
            orders_frame([]),
            buttons={"cancel": CANCEL_BUTTON},
            css_classes=["rata-orders"],
            **common,
        )
        self.orders_table.on_click(self._order_clicked)  # type: ignore[arg-type]  # Panel runs async callbacks too
        self.fills_table = pn.widgets.Tabulator(
            fills_frame([]),
            css_classes=["rata-fills"],
            formatters=_formats(quantity=_QTY, price=_PRICE, fee=_MONEY),
            **common,
        )

    def _dashboard(self) -> None:
        s = self.state
        self.symbol_select = pn.widgets.Select.from_param(
            s.param.symbol, name="instrument", css_classes=["rata-symbol"], width=180
        )
        self.timeframe_select = pn.widgets.Select.from_param(
            s.param.timeframe, name="timeframe", css_classes=["rata-timeframe"], width=100
        )
        self.indicator_select = pn.widgets.Select(
            name="indicators of", options={"none": ""}, value="", css_classes=["rata-indicators"], width=260
        )
        self.chart_info = pn.pane.HTML("", margin=(25, 10), width=300, height=30)
        self.account_pane = pn.pane.HTML(account_html({}), sizing_mode="stretch_width", margin=(0, 5))
        self.feed_pane = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 5))
        # A Column of Rows (see `show_cards`), not a GridBox or a FlexBox: Panel sets up the browser-side
        # click callbacks (`dashboards.live_panels.acknowledge`) of children added after the page loaded
        # only in the layouts of `panel.layout.base` (Panel 1.9's GridBox and FlexBox skip them).
        self.strategies_box = pn.Column(css_classes=["rata-strategies"], margin=0, sizing_mode="stretch_width")
        self.tabs = pn.Tabs(
            ("Positions", self.positions_table),
            ("Open orders", self.orders_table),
            ("Fills", self.fills_table),
            ("Equity", self.equity.pane),
            dynamic=True,  # only the shown tab is in the browser: hidden tables cost nothing there
            sizing_mode="stretch_width",
            css_classes=["rata-tabs"],
        )
        # Each part is a root of its own in the page: a change inside one (a table's rows, a badge)
        # makes the browser lay out that part again, not the whole page with its charts.
        self.parts: list[pn.viewable.Viewable] = [
            pn.Column(
                pn.Row(self.symbol_select, self.timeframe_select, self.indicator_select, self.chart_info, margin=0),
                self.chart.pane,
                sizing_mode="stretch_width",
            ),
            self.tabs,
            pn.Column(
                pn.pane.Markdown("### Strategies", margin=(0, 10)), self.strategies_box, sizing_mode="stretch_width"
            ),
        ]
        self.side: list[pn.viewable.Viewable] = [
            self.risk.layout,
            pn.Column(pn.pane.Markdown("#### Account", margin=(0, 5)), self.account_pane, sizing_mode="stretch_width"),
            pn.Column(pn.pane.Markdown("#### Feed health", margin=(0, 5)), self.feed_pane, sizing_mode="stretch_width"),
        ]
        for part in (*self.parts, *self.side):
            part.visible = False

    def view(self) -> pn.template.BootstrapTemplate:
        """Return the page: a header line, messages, the login form or the dashboard; risk, account and feed aside."""
        top = pn.Row(self.header, self.logout_button, sizing_mode="stretch_width")
        return pn.template.BootstrapTemplate(
            title="rata live",
            main=[top, self.error_box, self.notice_box, self.login_card, *self.parts],
            sidebar=self.side,
            sidebar_width=400,
            header_background="#263238",
        )

    def show_dashboard(self, shown: bool) -> None:
        """Show the dashboard (logged in) or the login form."""
        with pn.io.hold():
            self.login_card.visible = not shown
            self.logout_button.visible = shown
            for part in (*self.parts, *self.side):
                part.visible = shown

    async def _order_clicked(self, event: Any) -> None:
        if event.column != "cancel":
            return
        frame = self.orders_table.value
        if event.row is not None and 0 <= event.row < len(frame):
            self.orders_table.patch({"status": [(event.row, "cancelling...")]})  # one cell: cheap to redraw
            await self.actions.cancel_order(str(frame.iloc[event.row]["client_id"]))

    # ---- rendering ----------------------------------------------------------------------------

    def show_error(self, *_: Any) -> None:
        """Show the last refusal (hidden when there is none)."""
        self.error_box.object = html.escape(self.state.error)
        self.error_box.visible = bool(self.state.error)

    def show_notice(self, *_: Any) -> None:
        """Show what the last action did."""
        self.notice_box.object = self.state.notice

    def show_header(self, *_: Any) -> None:
        """Show who is logged in, the runner and the stream's status."""
        s = self.state
        who = f"{s.username} ({s.role})" if s.username else "not logged in"
        status = s.stream.split(" ")[0]
        self.header.object = (
            f'<span class="rata-user" data-role="{html.escape(s.role)}">{html.escape(who)}</span> &middot; '
            f"runner {html.escape(self.api_url)} &middot; stream: "
            f'<span class="rata-stream" data-status="{html.escape(status)}">{html.escape(s.stream)}</span>'
        )

    def show_risk(self, *_: Any) -> None:
        """Show the trading state."""
        self.risk.show_state(self.state.trading_state, self.state.trading_reason)

    def show_limits(self, *_: Any) -> None:
        """Show the account's limits."""
        self.risk.show_limits(self.state.limits)

    def show_positions(self, *_: Any) -> None:
        """Show the open positions."""
        self.positions_table.value = positions_frame(self.state.positions.values())

    def show_orders(self, *_: Any) -> None:
        """Show the open orders."""
        self.orders_table.value = orders_frame(self.state.open_orders.values())

    def show_fills(self, *_: Any) -> None:
        """Show the latest fills."""
        self.fills_table.value = fills_frame(self.state.fills)

    def show_account(self, *_: Any) -> None:
        """Show the account summary."""
        self.account_pane.object = account_html(self.state.account)

    def show_cards(self, cards: list[Any]) -> None:
        """Show the strategy instances' cards, two a row (a line saying there is none when there is none)."""
        rows: list[Any] = [pn.Row(*cards[i : i + 2], margin=0) for i in range(0, len(cards), 2)]
        self.strategies_box.objects = rows or [pn.pane.Markdown("No strategy instances on this runner.")]

    def show_chart_info(self) -> None:
        """Show which instrument and timeframe the chart streams (data-symbol, data-timeframe for tests).

        Not updated per bar: a text change lays out the chart's part of the page again, which costs
        the browser far more than drawing the new candle.
        """
        chart = self.chart
        self.chart_info.object = (
            f'<span class="rata-chart-info" data-symbol="{html.escape(chart.symbol)}" '
            f'data-timeframe="{chart.timeframe}">streaming {html.escape(chart.symbol)} {chart.timeframe} bars</span>'
        )
