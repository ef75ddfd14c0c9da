"""Parameter widgets are generated from the declarations (`Param.describe()`), for any strategy."""

from __future__ import annotations

import panel as pn
import pytest

from dashboards.widgets import GridAxis, GridForm, ParamForm, param_widget, widget_class
from framework import Param, Strategy
from framework.registry import strategy_classes


class Everything(Strategy):
    """A strategy declaring one parameter of each kind."""

    window = Param(20, bounds=(5, 200), doc="rolling window, in bars")
    k = Param(2.0, bounds=(0.5, 4.0), doc="band width")
    free = Param(1.5)
    short = Param(False, doc="also go short")
    mode = Param("fast", choices=("fast", "slow"), doc="how to run")
    label = Param("x")


def _specs() -> dict[str, dict]:
    return {p["name"]: p for p in Everything.describe()["params"]}


def test_each_declared_kind_gets_its_widget_with_bounds_default_and_doc():
    specs = _specs()
    window = param_widget(specs["window"])
    assert isinstance(window, pn.widgets.IntInput)
    assert (window.start, window.end, window.value) == (5, 200, 20)
    assert window.description == "rolling window, in bars"
    assert widget_class("window") in window.css_classes

    k = param_widget(specs["k"])
    assert isinstance(k, pn.widgets.FloatInput)
    assert (k.start, k.end, k.value) == (0.5, 4.0, 2.0)
    assert 0 < k.step < 1

    free = param_widget(specs["free"])
    assert isinstance(free, pn.widgets.FloatInput)
    assert (free.start, free.end) == (None, None)

    assert isinstance(param_widget(specs["short"]), pn.widgets.Checkbox)
    mode = param_widget(specs["mode"])
    assert isinstance(mode, pn.widgets.Select)
    assert mode.options == ["fast", "slow"]
    assert isinstance(param_widget(specs["label"]), pn.widgets.TextInput)


def test_form_returns_what_the_widgets_hold_and_can_be_set_and_reset():
    form = ParamForm(Everything.describe()["params"], values={"window": 50})
    assert form.values() == {"window": 50, "k": 2.0, "free": 1.5, "short": False, "mode": "fast", "label": "x"}
    form.set_values({"k": 3.5, "short": True, "unknown": 1})
    assert form.values()["k"] == 3.5
    assert form.values()["short"] is True
    form.widgets["window"].value = None
    assert form.values()["window"] is None
    form.reset()
    assert form.values() == {p.name: p.default for p in Everything.params.values()}


@pytest.mark.parametrize("name", sorted(strategy_classes()))
def test_every_shipped_strategy_gets_a_form_holding_its_defaults(name):
    cls = strategy_classes()[name]
    form = ParamForm(cls.describe()["params"])
    assert form.values() == cls().values
    assert cls(**form.values()) == cls()


def test_grid_form_ticks_the_first_two_numeric_parameters_with_ranges_around_the_defaults():
    grid = GridForm(Everything.describe()["params"])
    axes = grid.axes()
    assert [a.name for a in axes] == ["window", "k"]
    window = axes[0]
    assert (window.start, window.stop) == (10, 40)
    assert window.step >= 1
    k = axes[1]
    assert 0.5 <= k.start < 2.0 < k.stop <= 4.0


def test_grid_form_sweeps_every_value_of_bool_and_choice_parameters():
    grid = GridForm(Everything.describe()["params"])
    grid.set_axes(
        [GridAxis("short", every_value=True), GridAxis("mode", every_value=True), GridAxis("free", 1, 2, 0.5)]
    )
    assert grid.axes() == [
        GridAxis("free", 1.0, 2.0, 0.5),
        GridAxis("short", every_value=True),
        GridAxis("mode", every_value=True),
    ]
