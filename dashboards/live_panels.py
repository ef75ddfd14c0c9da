"""The live dashboard's control panels: one card per strategy instance, and the risk panel.

Each panel renders what the session's state says and hands clicks to callbacks the session gives
it (`dashboards.live.LiveApp` makes the API calls). CSS classes are stable hooks for the browser
tests: `rata-instance-<id>` around an instance's card, with `rata-start`, `rata-pause`,
`rata-stop`, `rata-apply` buttons, `rata-instance-state` (its `data-state`) and `rata-params`
(`data-params`, the JSON the API last returned) inside; `rata-kill`, `rata-release` and
`rata-trading-state` in the risk panel.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import panel as pn

from dashboards.live_views import limits_html, state_html
from dashboards.widgets import ParamForm

__all__ = ["RiskPanel", "StrategyCard", "acknowledge", "as_declared", "instance_class"]

Action = Callable[[str, str], Awaitable[None]]
Apply = Callable[[str, dict[str, Any]], Awaitable[None]]
_STATE_COLORS = {"running": "#2e7d32", "paused": "#ef6c00", "stopped": "#616161", "disabled": "#c62828"}
_PENDING = {"start": "starting...", "pause": "pausing...", "stop": "stopping...", "apply": "applying..."}


def instance_class(instance_id: str) -> str:
    """Return the CSS class of an instance's card (characters a selector would need escaped become '-')."""
    return "rata-instance-" + re.sub(r"[^A-Za-z0-9_-]", "-", instance_id)


def as_declared(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return a parameter declaration as the API gives it, with an int parameter's bounds back to ints.

    JSON cannot tell 2 from 2.0 and the API declares bounds as floats; the integer input widget
    takes integer bounds only.
    """
    out = dict(spec)
    if out.get("type") == "int" and out.get("bounds"):
        out["bounds"] = [int(b) for b in out["bounds"]]
    return out


def _state_html(instance: Mapping[str, Any], pending: str = "") -> str:
    state = str(instance["state"])
    shown = pending or state
    color = "#1565c0" if pending else _STATE_COLORS.get(state, "#616161")
    last = instance.get("last_decision_at") or "never"
    error = instance.get("last_error")
    lines = [
        f'<span class="rata-instance-state" data-state="{html.escape(shown)}" style="background:{color};color:white;'
        f'padding:2px 8px;border-radius:4px;font-weight:600">{html.escape(shown)}</span>'
        f' <span style="color:#555">{instance["decisions"]} decisions, last {html.escape(str(last))}</span>'
    ]
    if error:
        lines.append(f'<div style="color:#c62828">last error: {html.escape(str(error))}</div>')
    return "".join(lines)


def acknowledge(button: pn.widgets.Button, pane: pn.pane.HTML, shown: str) -> None:
    """Show `shown` in `pane` the moment `button` is clicked, in the browser itself.

    The click's first visible change then costs no round trip to the server (which may be busy,
    or far); the server replaces it with its own "...ing" line and then with the API's answer.
    """
    button.js_on_click(args={"pane": pane}, code=f"pane.text = {json.dumps(html.escape(shown))};")


def _params_html(params: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    data = html.escape(json.dumps(params, sort_keys=True))
    return f'<div class="rata-params" data-params="{data}" style="color:#333">params: {html.escape(text)}</div>'


class StrategyCard:
    """One strategy instance: its state, start/pause/stop, and a parameter form with Apply."""

    def __init__(
        self, instance: Mapping[str, Any], specs: Sequence[Mapping[str, Any]], on_action: Action, on_apply: Apply
    ) -> None:
        self.instance = dict(instance)
        self.id = str(instance["id"])
        self.busy = False
        self._on_action = on_action
        self._on_apply = on_apply
        self.form = ParamForm([as_declared(s) for s in specs], values=instance["params"])
        self.state_pane = pn.pane.HTML(_state_html(instance), margin=(0, 5), sizing_mode="stretch_width")
        self.params_pane = pn.pane.HTML(_params_html(instance["params"]), margin=(0, 5), sizing_mode="stretch_width")
        self.buttons = {
            action: pn.widgets.Button(label=label, button_type=kind, css_classes=[f"rata-{action}"], width=80)
            for action, label, kind in (
                ("start", "Start", "success"),
                ("pause", "Pause", "warning"),
                ("stop", "Stop", "danger"),
            )
        }
        for action, button in self.buttons.items():
            button.on_click(self._clicker(action))
            acknowledge(button, self.state_pane, _state_html(instance, pending=_PENDING[action]))
        self.apply_button = pn.widgets.Button(
            label="Apply parameters", button_type="primary", css_classes=["rata-apply"], width=160
        )
        self.apply_button.on_click(self._apply)
        acknowledge(self.apply_button, self.state_pane, _state_html(instance, pending=_PENDING["apply"]))
        symbols = instance["symbols"]
        universe = ", ".join(symbols[:6]) + (f" and {len(symbols) - 6} more" if len(symbols) > 6 else "")
        self.card = pn.Card(
            self.state_pane,
            pn.pane.HTML(
                f'<div style="color:#555">{html.escape(str(instance["strategy"]))} on {instance["timeframe"]} bars: '
                f"{html.escape(universe)}; capital {html.escape(str(instance['capital']))}</div>",
                margin=(0, 5),
                sizing_mode="stretch_width",
            ),
            pn.Row(*self.buttons.values(), margin=0),
            self.form.layout,
            self.apply_button,
            self.params_pane,
            title=f"{self.id} ({instance['strategy']})",
            css_classes=[instance_class(self.id)],
            width=440,
            collapsible=True,
            margin=(5, 5),
        )

    def _clicker(self, action: str) -> Callable[[Any], Awaitable[None]]:
        async def clicked(_event: Any) -> None:
            await self._on_action(self.id, action)

        return clicked

    async def _apply(self, _event: Any) -> None:
        await self._on_apply(self.id, self.form.values())

    def pending(self, action: str) -> bool:
        """Show that `action` was asked for; return False (do nothing) while another one is running.

        The buttons stay enabled: disabling and re-enabling them costs the browser a layout pass
        each, more than the badge that already says what is going on.
        """
        if self.busy:
            return False
        self.busy = True
        self.state_pane.object = _state_html(self.instance, pending=_PENDING.get(action, "..."))
        return True

    def settle(self, action: str) -> None:
        """Show the instance's state again after a click on `action` that sent nothing.

        The browser shows "...ing" by itself (see `acknowledge`), a change the server does not
        hear of: the pane goes through that text on the server too, so that the browser gets the
        state back.
        """
        if not self.busy:
            self.state_pane.object = _state_html(self.instance, pending=_PENDING.get(action, "..."))
            self.state_pane.object = _state_html(self.instance)

    def done(self, instance: Mapping[str, Any] | None = None) -> None:
        """Show the instance as the API returned it (or as it was) and take clicks again."""
        self.busy = False
        if instance is not None:
            self.update(instance)
        self.state_pane.object = _state_html(self.instance)

    def update(self, instance: Mapping[str, Any]) -> None:
        """Show a new version of the instance (the form follows parameter changes made elsewhere)."""
        before = self.instance
        self.instance = dict(instance)
        with pn.io.hold():
            self.state_pane.object = _state_html(instance)
            if instance["params"] != before.get("params"):
                self.params_pane.object = _params_html(instance["params"])
                self.form.set_values(instance["params"])

    def __panel__(self) -> pn.viewable.Viewable:
        return self.card


class RiskPanel:
    """The trading state, the kill switch and its release, and the account's limits."""

    def __init__(self, on_kill: Callable[[str], Awaitable[None]], on_release: Callable[[str], Awaitable[None]]):
        self._on_kill = on_kill
        self._on_release = on_release
        self.busy = False
        self.state_pane = pn.pane.HTML(state_html("", ""), sizing_mode="stretch_width", margin=(0, 5))
        self.reason = pn.widgets.TextInput(
            name="reason", value="kill switch pressed on the dashboard", css_classes=["rata-kill-reason"]
        )
        self.kill_button = pn.widgets.Button(
            label="KILL SWITCH: halt and cancel all", button_type="danger", css_classes=["rata-kill"], height=48
        )
        self.release_button = pn.widgets.Button(
            label="Release (admin)", button_type="light", css_classes=["rata-release"]
        )
        self.kill_button.on_click(self._kill)
        self.release_button.on_click(self._release)
        acknowledge(self.kill_button, self.state_pane, state_html("halting...", ""))
        acknowledge(self.release_button, self.state_pane, state_html("releasing...", ""))
        self.limits_pane = pn.pane.HTML(limits_html({}), sizing_mode="stretch_width", margin=(0, 5))
        self.layout = pn.Column(
            pn.pane.Markdown("#### Risk", margin=(0, 5)),
            self.state_pane,
            self.reason,
            self.kill_button,
            self.release_button,
            pn.pane.Markdown("##### Account limits", margin=(0, 5)),
            self.limits_pane,
            css_classes=["rata-risk"],
            sizing_mode="stretch_width",
        )

    async def _kill(self, _event: Any) -> None:
        await self._on_kill(self.reason.value or "kill switch pressed on the dashboard")

    async def _release(self, _event: Any) -> None:
        await self._on_release("released on the dashboard")

    def show_state(self, state: str, reason: str) -> None:
        """Show the account's trading state."""
        self.state_pane.object = state_html(state, reason)

    def show_limits(self, limits: Mapping[str, Any]) -> None:
        """Show the account's limits."""
        self.limits_pane.object = limits_html(limits)

    def pending(self, what: str) -> bool:
        """Show that `what` was asked for; return False (do nothing) while another call is running."""
        if self.busy:
            return False
        self.busy = True
        self.state_pane.object = state_html(f"{what}...", "")
        return True

    def done(self, state: str, reason: str) -> None:
        """Show the trading state (as the API returned it, or as it was) and take clicks again."""
        self.busy = False
        self.show_state(state, reason)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout
