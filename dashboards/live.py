"""The live trading dashboard: a client of one runner's REST API and WebSocket, for traders.

After logging in (the API's users, the same JWT as every other client), the page shows:

- a **candlestick chart with volume** of a chosen instrument and timeframe (1s by default): stored
  bars first, then every bar as it closes, streamed over the WebSocket without reloading, the
  **forming candle** and a last-price line moving with every trade (the `ticks` channel), the
  strategies' **fills** marked on it (blue triangles up: buys; orange down: sells), and a chosen
  strategy instance's **indicators** (by default the first running instance trading the
  instrument): lines over the candles, or in a pane under them, with a legend;
- **positions** with their marks and PnL, **open orders** with a cancel button each, the latest
  **fills**, and the account's **equity curve**;
- the **strategy instances**, each with start / pause / stop and a parameter form generated from
  the class's declarations (Apply sends the change; the API validates it with those declarations);
- the **risk panel**: the trading state (ACTIVE, REDUCING, HALTED), the account's limits, the
  **kill switch** (halt and cancel every open order) and its release (admins only);
- **feed health**: connection, staleness, tick rate, bad messages, the runner's readiness.

The API refuses what the user's role does not allow (viewers watch; traders trade and may press
the kill switch; admins also release it): its reason is shown at the top of the page, as is any
other refusal. The access token is refreshed before it expires, and the WebSocket reconnects with
the fresh one (the chart fetches what it missed).

Never imports a broker or touches the database: everything goes through the API, so the page
works against any runner it can reach. State lives in a `LiveState` per browser session; stream
events are queued by the WebSocket reader and applied in batches (one per event-loop turn): new
candles, fill markers, equity points, strategy and risk badges at once; the tables (positions,
open orders, fills) at most every half second, since redrawing a table costs the browser more
than anything else on the page. Each part of the page is a root of its own, so a change in one
(a badge after a click) never makes the browser lay out the charts again.

Serve it with `rata dashboard live --api http://127.0.0.1:8000` (http://127.0.0.1:5006/live).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import panel as pn
from bokeh.document import Document
from panel.io.state import set_curdoc

from dashboards.live_client import ApiClient, ApiRefusal
from dashboards.live_events import chart_symbol, snapshot_update, sort_events
from dashboards.live_feed import FILLS_KEPT, ChartFeed
from dashboards.live_layout import LiveLayout, LiveState
from dashboards.live_panels import StrategyCard
from dashboards.live_stream import LiveStream, Subscription
from dashboards.live_views import OPEN_STATUSES, TickRate, feed_html, parse_metrics

__all__ = ["LiveApp", "LiveState", "create_app", "serve_live"]

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_MS = 2000
"""How often account, positions, risk and feed health are re-read over REST (the stream covers the rest)."""
CHANNELS = ("orders", "fills", "positions", "strategies", "risk", "equity")
TABLES = ("positions", "open_orders", "fills")
TABLES_EVERY_S = 0.5
"""Stream updates of the tables are shown at most this often (charts, badges and risk at once)."""


class LiveApp:
    """The live page of one browser session; see the module docstring.

    `ui` holds the widgets (`dashboards.live_layout.LiveLayout`), `chart` what the chart streams
    (`dashboards.live_feed.ChartFeed`); this class logs in, loads, streams, polls, and turns
    clicks into API calls.
    """

    def __init__(self, api_url: str, *, client: ApiClient | None = None) -> None:
        self.api_url = api_url
        self.state = LiveState()
        self.client = client or ApiClient(api_url)
        self.doc: Document | None = pn.state.curdoc
        self.ui = LiveLayout(api_url, self.state, self)
        self.stream = self._new_stream()
        self.cards: dict[str, StrategyCard] = {}
        self.classes: dict[str, list[dict[str, Any]]] = {}
        self._inbox: list[tuple[str, dict[str, Any]]] = []
        self._flush_scheduled = False
        self._tables_due: dict[str, Any] = {}
        self._tables_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: Any = None
        self._tick_rate = TickRate()
        self.chart = ChartFeed(self)

    def view(self) -> pn.template.BootstrapTemplate:
        """Return the page."""
        return self.ui.view()

    # ---- session ------------------------------------------------------------------------------

    async def login(self, event: Any = None) -> None:
        """Log in with the form's username and password, then load and stream everything."""
        ui = self.ui
        username, password = (ui.username.value or "").strip(), ui.password.value or ""
        if not username or not password:
            self.state.error = "enter a username and a password"
            return
        ui.login_button.disabled = True
        try:
            login = await self.client.login(username, password)
        except ApiRefusal as exc:
            self.state.error = f"login refused: {exc}"
            return
        finally:
            ui.login_button.disabled = False
            ui.password.value = ""
        self.state.param.update(username=login.username, role=login.role, error="", notice="")
        ui.show_dashboard(True)
        await self._start()

    def _new_stream(self) -> LiveStream:
        return LiveStream(self.client, self._on_event, self._on_stream_status, self._on_stream_error)

    async def _start(self) -> None:
        self.stream = self._new_stream()
        self.chart.restart()
        await self._load()
        self.spawn(self.stream.run())
        self.spawn(self._keep_fresh())
        for channel in CHANNELS:
            await self.stream.subscribe(Subscription(channel))
        await self.chart.switch()
        await self.poll()
        self._poller = pn.state.add_periodic_callback(self.poll, period=POLL_MS)  # type: ignore[arg-type]

    async def logout(self, event: Any = None) -> None:
        """End the session: stop streaming, revoke the tokens, show the login form."""
        self._stop()
        await self.client.logout()
        self.state.param.update(username="", role="", stream="offline", error="", notice="logged out")
        self.ui.show_dashboard(False)

    def _stop(self) -> None:
        if self._tables_timer is not None:
            self._tables_timer.cancel()
            self._tables_timer = None
        self._tables_due = {}
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self.stream.stop()
        self.chart.stop()
        for task in list(self._tasks):
            task.cancel()

    def destroy(self, *_: Any) -> None:
        """Stop everything when the browser session ends."""
        self._stop()
        with contextlib.suppress(RuntimeError):
            self.spawn(self.client.close())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` as a task of this session (cancelled when the session stops)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep_fresh(self) -> None:
        """Refresh the access token at 80% of its life, for as long as the session lasts."""
        while True:
            await asyncio.sleep(max(1.0, self.client.refresh_due()))
            if self.client.refresh_due() > 0:
                continue  # the stream refreshed it meanwhile
            try:
                await self.client.refresh()
            except ApiRefusal as exc:
                if exc.status not in (401, 403):
                    await asyncio.sleep(5.0)
                    continue
                self._on_document(functools.partial(self._session_ended, str(exc)))
                return

    def _session_ended(self, why: str) -> None:
        self._stop()
        self.state.param.update(error=f"the session ended ({why}); log in again", stream="closed")
        self.ui.show_dashboard(False)

    async def call(self, what: str, call: Awaitable[T]) -> T | None:
        """Await an API call; on refusal show `what: reason` at the top and return None."""
        try:
            result = await call
        except ApiRefusal as exc:
            self.state.error = f"{what}: {exc}"
            return None
        if self.state.error:
            self.state.error = ""
        return result

    async def _load(self) -> None:
        """Read everything the page shows once; the stream and the polls keep it current."""
        c = self.client
        since = (datetime.now(UTC) - timedelta(hours=6)).isoformat()
        open_orders = [c.get("/orders", status=status, limit=500) for status in sorted(OPEN_STATUSES)]
        results = await asyncio.gather(
            c.get("/instruments"),
            c.get("/strategies"),
            c.get("/instances"),
            c.get("/risk"),
            c.get("/risk/limits"),
            c.get("/account"),
            c.get("/positions", open_only=True),
            c.get("/fills", limit=FILLS_KEPT),
            c.get("/account/equity", start=since, limit=5000),
            *open_orders,
            return_exceptions=True,
        )
        refusals = [r for r in results if isinstance(r, ApiRefusal)]
        if refusals:
            self.state.error = f"loading: {refusals[0]}"
        instruments, classes, instances, risk, limits, account, positions, fills, equity, *orders = (
            None if isinstance(r, BaseException) else r for r in results
        )
        self.classes = {c["name"]: c["params"] for c in classes or []}
        self._show_instances(instances or [])
        tradable = [i["symbol"] for i in instruments or [] if i.get("tradable")]
        self.state.param.symbol.objects = tradable
        update = snapshot_update(
            account=account, limits=limits, positions=positions, fills=fills, orders=orders, risk=risk
        )
        if self.state.symbol not in tradable:
            update["symbol"] = chart_symbol(instances or [], tradable)
        self.state.param.update(**update)
        with self.changing():
            self.ui.equity.reset((equity or {}).get("items", []))

    def _show_instances(self, instances: list[dict[str, Any]]) -> None:
        self.state.instances = {i["id"]: i for i in instances}
        self.cards = {
            i["id"]: StrategyCard(i, self.classes.get(i["strategy"], []), self.instance_action, self.apply_params)
            for i in instances
        }
        self.ui.show_cards([c.card for c in self.cards.values()])

    # ---- the stream ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """Change Bokeh models from any coroutine of the session: the changes go out at once.

        Panel's widgets and panes schedule their own updates, but raw Bokeh models (the charts' data
        sources) may only change while the document is held: `pn.io.unlocked` holds it and writes
        the events straight to the browser's socket.
        """
        doc = self.doc
        if doc is None or doc.session_context is None:
            yield
            return
        with set_curdoc(doc), pn.io.unlocked():
            yield

    def _on_document(self, callback: Callable[[], Any]) -> None:
        """Run `callback` soon on the event loop, with the session's document current."""

        def run() -> None:
            try:
                with self.changing():
                    callback()
            except Exception:  # a page update failed: keep the session alive, log it
                log.exception("live dashboard update failed")

        asyncio.get_running_loop().call_soon(run)

    def _on_event(self, channel: str, data: dict[str, Any]) -> None:
        """Queue a stream event (called by the WebSocket reader); one flush applies a batch."""
        self._inbox.append((channel, data))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._on_document(self._flush)

    def _on_stream_status(self, status: str) -> None:
        refetch = status == "live" and self.stream.connections > 1
        self._on_document(lambda: self._stream_status(status, refetch=refetch))

    def _on_stream_error(self, message: str) -> None:
        self._on_document(lambda: self.state.param.update(error=message))

    def _stream_status(self, status: str, *, refetch: bool) -> None:
        self.state.stream = status
        if refetch and self.state.username:  # reconnected: fetch what the stream missed
            self.spawn(self.chart.refill())
            self.spawn(self.poll())

    def _table(self, name: str) -> Any:
        """Return the newest value of a table's state: the one waiting to be shown, else the shown one."""
        return self._tables_due.get(name, getattr(self.state, name))

    def _flush(self) -> None:
        """Apply every queued event: charts and controls at once, the tables at most every `TABLES_EVERY_S`."""
        self._flush_scheduled = False
        events, self._inbox = self._inbox, []
        s = self.state
        batch = sort_events(
            events,
            positions=self._table("positions"),
            open_orders=self._table("open_orders"),
            instances=s.instances,
        )
        self.chart.apply(batch)
        if batch.fills:
            batch.update["fills"] = (list(reversed(batch.fills)) + self._table("fills"))[:FILLS_KEPT]
        if batch.equity:
            self.ui.equity.add(batch.equity)
        for instance_id, instance in batch.update.get("instances", {}).items():
            card = self.cards.get(instance_id)
            if card is not None and instance != card.instance:
                self.chart.instance_changed(instance_id, card.instance, instance)
                card.update(instance)
        for name in TABLES:
            if name in batch.update:
                self._tables_due[name] = batch.update.pop(name)
        if batch.update:
            s.param.update(**batch.update)
        if self._tables_due and self._tables_timer is None:
            self._tables_timer = asyncio.get_running_loop().call_later(
                TABLES_EVERY_S, self._on_document, self._show_tables
            )

    def _show_tables(self) -> None:
        """Show the table updates gathered since the last time (a table redraw costs the browser most)."""
        self._tables_timer = None
        due, self._tables_due = self._tables_due, {}
        if due:
            self.state.param.update(**due)

    # ---- polling ------------------------------------------------------------------------------

    async def poll(self) -> None:
        """Re-read account, positions, risk and feed health (marks move between fills)."""
        c = self.client
        results = await asyncio.gather(
            c.get("/account"),
            c.get("/positions", open_only=True),
            c.get("/risk"),
            c.get("/ready"),
            c.metrics_text(),
            return_exceptions=True,
        )
        account, positions, risk, ready, metrics = (None if isinstance(r, BaseException) else r for r in results)
        refusals = [r for r in results[:3] if isinstance(r, ApiRefusal)]
        if refusals and refusals[0].status != 503:
            self.state.error = f"refreshing: {refusals[0]}"
        update: dict[str, Any] = {}
        if isinstance(account, dict):
            update["account"] = account
        if isinstance(positions, list):
            update["positions"] = {(p["strategy"], p["symbol"]): p for p in positions}
            self._tables_due.pop("positions", None)  # fresher than what the stream gathered
        if isinstance(risk, dict):
            update |= {"trading_state": risk["state"], "trading_reason": risk["reason"]}
        self.state.param.update(**update)
        samples = parse_metrics(metrics) if isinstance(metrics, str) else {}
        rate = self._tick_rate.update(samples)
        stream = {"status": self.state.stream, "received": self.stream.received}
        ready_body = ready if isinstance(ready, dict) else {"reason": "the runner does not answer /ready"}
        self.ui.feed_pane.object = feed_html(ready_body, samples, rate, stream)

    # ---- actions ------------------------------------------------------------------------------

    async def instance_action(self, instance_id: str, action: str) -> None:
        """Start, pause or stop a strategy instance."""
        card = self.cards[instance_id]
        if not card.pending(action):
            return
        out = None
        try:
            out = await self.call(f"{action} {instance_id}", self.client.post(f"/instances/{instance_id}/{action}"))
        finally:
            card.done(out)
        if out is not None:
            self.state.param.update(
                instances={**self.state.instances, instance_id: out}, notice=f"{instance_id} is {out['state']}"
            )

    async def apply_params(self, instance_id: str, values: dict[str, Any]) -> None:
        """Send the parameters that differ from the instance's (the API validates them)."""
        card = self.cards[instance_id]
        empty = [name for name, value in values.items() if value is None]
        if empty:
            card.settle("apply")
            self.state.error = f"parameters of {instance_id}: enter a value for {', '.join(empty)}"
            return
        changed = {k: v for k, v in values.items() if card.instance["params"].get(k) != v}
        if not changed:
            card.settle("apply")
            self.state.notice = f"{instance_id}: no parameter changed"
            return
        if not card.pending("apply"):
            return
        out, before = None, card.instance
        try:
            call = self.client.patch(f"/instances/{instance_id}/params", {"params": changed})
            out = await self.call(f"parameters of {instance_id}", call)
        finally:
            card.done(out)
        if out is not None:
            notice = f"{instance_id}: " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
            self.state.param.update(instances={**self.state.instances, instance_id: out}, notice=notice)
            self.chart.instance_changed(instance_id, before, out)

    async def kill(self, reason: str) -> None:
        """Press the kill switch: halt the account and cancel every open order."""
        await self._risk_call("kill switch", "/risk/kill", reason, "halting")

    async def _risk_call(self, what: str, path: str, reason: str, doing: str) -> None:
        risk = self.ui.risk
        if not risk.pending(doing):
            return
        out = None
        try:
            out = await self.call(what, self.client.post(path, {"reason": reason}))
        finally:
            s = self.state
            state, why = (out["state"], out["reason"]) if out is not None else (s.trading_state, s.trading_reason)
            risk.done(state, why)
        if out is not None:
            self.state.param.update(trading_state=out["state"], trading_reason=out["reason"], notice=f"{what}: done")

    async def release(self, reason: str) -> None:
        """Return the account to active trading (admins only)."""
        await self._risk_call("release", "/risk/release", reason, "releasing")

    async def cancel_order(self, client_id: str) -> None:
        """Cancel one open order."""
        out = await self.call(f"cancel {client_id}", self.client.post(f"/orders/{client_id}/cancel"))
        if out is not None:
            orders = dict(self._table("open_orders"))
            if out["status"] in OPEN_STATUSES:
                orders[client_id] = out
            else:
                orders.pop(client_id, None)
            self._tables_due.pop("open_orders", None)
            self.state.param.update(open_orders=orders, notice=f"order {client_id}: {out['status']}")


def create_app(api_url: str) -> pn.template.BootstrapTemplate:
    """Return a fresh live page on the runner API at `api_url` (Panel calls this once per session)."""
    pn.extension("tabulator", notifications=False)
    app = LiveApp(api_url)
    pn.state.on_session_destroyed(app.destroy)
    return app.view()


def serve_live(
    api_url: str, *, port: int = 5006, address: str = "127.0.0.1", show: bool = False, research: bool = False
) -> None:
    """Serve the live dashboard at http://ADDRESS:PORT/live (and the research explorer at /research) until Ctrl-C."""
    from dashboards.serve import AppFactory, serve

    apps: dict[str, AppFactory] = {"live": lambda: create_app(api_url)}
    if research:
        from dashboards.research import create_app as research_app
        from dashboards.research import warm_up

        warm_up()
        apps["research"] = research_app
    serve(apps, port=port, address=address, show=show, title="rata")
