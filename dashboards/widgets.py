"""Panel widgets generated from strategy parameter declarations (`Param.describe()` dicts).

One declaration drives every screen: the research explorer builds its forms here from
`Strategy.describe()`, and the live dashboard builds them from the same dicts as the runner's REST
API returns them. The forms only collect what the user typed (`None` for an empty field); the
framework validates it (`Param.validate`, `Strategy.validate`), so every screen refuses the same
values with the same message.

- int / float with bounds: a numeric input limited to the bounds (the browser clamps typed values);
  without bounds, an unlimited numeric input.
- bool: a checkbox.
- choices: a select.
- str: a text input.
- the parameter's `doc`: a tooltip next to the widget.

>>> from strategies.sma_cross import SmaCross
>>> form = ParamForm(SmaCross.describe()["params"])
>>> form.values()
{'fast': 10, 'slow': 20, 'short': False}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import panel as pn

__all__ = ["GridAxis", "GridForm", "ParamForm", "param_widget", "pending_on_click", "widget_class"]

ParamSpec = Mapping[str, Any]


def widget_class(name: str) -> str:
    """Return the CSS class that marks the widget of parameter `name` (a stable hook for tests)."""
    return f"rata-param-{name}"


def _numeric_step(spec: ParamSpec) -> float:
    bounds = spec.get("bounds")
    if spec["type"] == "int":
        return 1
    if bounds:
        span = float(bounds[1]) - float(bounds[0])
        return 10 ** math.floor(math.log10(span / 100)) if span > 0 else 0.1
    return 0.1


def param_widget(spec: ParamSpec, value: Any = None, *, css_class: str | None = None) -> pn.widgets.Widget:
    """Return the input widget of one declared parameter, holding `value` (default: its default)."""
    name, kind = str(spec["name"]), spec["type"]
    current = spec["default"] if value is None else value
    doc = spec.get("doc") or None
    classes = [css_class or widget_class(name)]
    bounds = spec.get("bounds")
    start, end = (bounds[0], bounds[1]) if bounds else (None, None)
    if spec.get("choices"):
        options = list(spec["choices"])
        return pn.widgets.Select(label=name, options=options, value=current, description=doc, css_classes=classes)
    if kind == "bool":
        return pn.widgets.Checkbox(label=name, value=bool(current), css_classes=classes, align="center")
    if kind == "int":
        return pn.widgets.IntInput(
            label=name, value=int(current), start=start, end=end, step=1, description=doc, css_classes=classes
        )
    if kind == "float":
        return pn.widgets.FloatInput(
            label=name,
            value=float(current),
            start=start,
            end=end,
            step=_numeric_step(spec),
            description=doc,
            css_classes=classes,
        )
    return pn.widgets.TextInput(label=name, value=str(current), description=doc, css_classes=classes)


def _with_tooltip(widget: pn.widgets.Widget, spec: ParamSpec) -> pn.viewable.Viewable:
    """Return `widget`, with a tooltip icon beside it when the widget has no description of its own."""
    doc = spec.get("doc")
    if doc and isinstance(widget, pn.widgets.Checkbox):
        return pn.Row(widget, pn.widgets.TooltipIcon(value=doc), margin=0)
    return widget


class ParamForm:
    """Input widgets for a list of parameter declarations, and the values typed into them.

    `values()` returns what the widgets hold (`None` for an empty numeric field), not validated:
    pass it to the framework (`resolve_params`, the strategy's constructor, or the REST API).
    """

    def __init__(self, specs: Iterable[ParamSpec], values: Mapping[str, Any] | None = None) -> None:
        self.specs: dict[str, ParamSpec] = {str(s["name"]): s for s in specs}
        given = values or {}
        self.widgets: dict[str, pn.widgets.Widget] = {
            name: param_widget(spec, given.get(name)) for name, spec in self.specs.items()
        }
        self.layout = pn.Column(
            *(_with_tooltip(self.widgets[n], s) for n, s in self.specs.items()),
            sizing_mode="stretch_width",
            margin=0,
        )

    def values(self) -> dict[str, Any]:
        """Return the current value of every parameter, by name."""
        return {name: widget.value for name, widget in self.widgets.items()}

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Show `values` (unknown names are ignored) in the widgets."""
        for name, value in values.items():
            if name in self.widgets:
                self.widgets[name].value = value

    def reset(self) -> None:
        """Put every widget back to its declared default."""
        self.set_values({name: spec["default"] for name, spec in self.specs.items()})

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout


@dataclass(frozen=True, slots=True)
class GridAxis:
    """What the user asked to sweep for one parameter: a numeric range, or every value."""

    name: str
    start: Any = None
    stop: Any = None
    step: Any = None
    every_value: bool = False


def _default_range(spec: ParamSpec) -> tuple[float, float, float]:
    """Return a modest range around the default (half to double it, within bounds, ~10 steps)."""
    default = float(spec["default"])
    bounds = spec.get("bounds") or (-math.inf, math.inf)
    low, high = float(bounds[0]), float(bounds[1])
    start = max(low, default / 2 if default > 0 else default - 10)
    stop = min(high, default * 2 if default > 0 else default + 10)
    if spec["type"] == "int":
        start, stop = math.ceil(start), math.floor(stop)
        return start, stop, max(1, round((stop - start) / 10))
    step = (stop - start) / 10 if stop > start else 1.0
    return start, stop, float(f"{step:.2g}")


class GridForm:
    """Sweep ranges for a list of parameter declarations: which to sweep, and from/to/step.

    Numeric parameters take a start, an inclusive stop and a step; bool and choice parameters
    sweep every value; free-text parameters are not offered. The `first` numeric parameters are
    ticked at the start.
    """

    def __init__(self, specs: Iterable[ParamSpec], *, first: int = 2) -> None:
        self.specs: dict[str, ParamSpec] = {str(s["name"]): s for s in specs}
        self.enabled: dict[str, pn.widgets.Checkbox] = {}
        self.ranges: dict[str, tuple[pn.widgets.Widget, pn.widgets.Widget, pn.widgets.Widget]] = {}
        rows: list[pn.viewable.Viewable] = []
        ticked = 0
        for name, spec in self.specs.items():
            numeric = spec["type"] in ("int", "float") and not spec.get("choices")
            if not (numeric or spec["type"] == "bool" or spec.get("choices")):
                continue  # a free-text parameter has no grid to sweep
            on = numeric and ticked < first
            ticked += on
            box = pn.widgets.Checkbox(label=f"sweep {name}", value=on, css_classes=[f"rata-sweep-{name}"])
            self.enabled[name] = box
            if not numeric:
                rows.append(pn.Row(box, pn.pane.Str("every value", margin=(8, 5)), margin=0))
                continue
            start, stop, step = _default_range(spec)
            cls = pn.widgets.IntInput if spec["type"] == "int" else pn.widgets.FloatInput
            cast = int if spec["type"] == "int" else float
            trio = tuple(
                cls(label=label, value=cast(v), width=80, css_classes=[f"rata-sweep-{name}-{label}"])
                for label, v in (("from", start), ("to", stop), ("step", step))
            )
            self.ranges[name] = (trio[0], trio[1], trio[2])
            rows.append(pn.Column(box, pn.Row(*trio, margin=0), margin=0))
        self.layout = pn.Column(*rows, sizing_mode="stretch_width", margin=0)

    def axes(self) -> list[GridAxis]:
        """Return the ticked parameters with their ranges (raw widget values, not validated)."""
        chosen = []
        for name, box in self.enabled.items():
            if not box.value:
                continue
            if name in self.ranges:
                start, stop, step = (w.value for w in self.ranges[name])
                chosen.append(GridAxis(name, start, stop, step))
            else:
                chosen.append(GridAxis(name, every_value=True))
        return chosen

    def set_axes(self, axes: Sequence[GridAxis]) -> None:
        """Tick exactly the parameters of `axes` and show their ranges."""
        wanted = {a.name: a for a in axes}
        for name, box in self.enabled.items():
            box.value = name in wanted
            if name in wanted and name in self.ranges:
                axis = wanted[name]
                for widget, value in zip(self.ranges[name], (axis.start, axis.stop, axis.step), strict=True):
                    if value is not None:
                        widget.value = value

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout


_PENDING_JS = """
const model = (typeof source !== "undefined") ? source : cb_obj.origin
const view = (window.Bokeh != null && model != null) ? window.Bokeh.index.find_one(model) : null
if (view != null && view.button_el != null) {
  view.button_el.disabled = true
  view.button_el.textContent = LABEL
}
"""


def pending_on_click(button: pn.widgets.Button, label: str) -> None:
    """Make `button` read `label`, disabled, in the frame after a click, before the server answers.

    The feedback of a click should not wait for a round trip to a busy server. This changes only
    the button's element in the browser (no model property, so nothing is sent back and nothing
    can race with the server); the next server-side change of the button's `label` or `disabled`
    redraws it from its model. The server must therefore change one of them after every click,
    e.g. disable the button while the click's work runs, and enable it again.
    """
    button.js_on_click(code=_PENDING_JS.replace("LABEL", json.dumps(label)))
