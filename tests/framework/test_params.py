from __future__ import annotations

import pytest

from framework import Param, ParameterError, Strategy, UnknownNameError
from framework.strategy import Signals


class Demo(Strategy):
    """A strategy with one parameter of each type."""

    window = Param(10, bounds=(2, 50), doc="window")
    level = Param(0.5, bounds=(0.0, 1.0))
    short = Param(False)
    mode = Param("fast", choices=("fast", "slow"))
    warmup = "window"

    def signals(self, data):  # pragma: no cover - not used here
        return Signals(entries=data.close > 0, exits=data.close < 0)


def test_out_of_bounds_value_names_the_parameter_and_its_bounds():
    with pytest.raises(ParameterError, match=r"'window' = 60 is out of bounds \[2, 50\]"):
        Demo(window=60)


def test_values_are_coerced_to_the_declared_type_and_wrong_types_refused():
    demo = Demo(window="12", level=1, short="true")
    assert demo.window == 12
    assert demo.level == 1.0
    assert demo.short is True
    with pytest.raises(ParameterError, match="'window' must be an int"):
        Demo(window=2.5)
    with pytest.raises(ParameterError, match="must be finite"):
        Demo(level=float("nan"))
    with pytest.raises(ParameterError, match="not one of"):
        Demo(mode="medium")


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown parameter of demo 'windw'; valid: window, level, short, mode"):
        Demo(windw=3)


def test_instances_are_immutable_and_with_params_validates():
    demo = Demo()
    with pytest.raises(AttributeError, match="immutable"):
        demo.window = 3
    changed = demo.with_params(window=20)
    assert (demo.window, changed.window) == (10, 20)
    with pytest.raises(ParameterError):
        demo.with_params(window=1)


def test_declarations_describe_themselves_for_rest_and_widgets():
    described = Demo.describe()
    assert described["name"] == "demo"
    assert described["params"][0] == {
        "name": "window",
        "type": "int",
        "default": 10,
        "bounds": [2, 50],
        "choices": None,
        "doc": "window",
    }
    assert Demo.params["level"].grid(0.0, 1.0, 0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert Demo.params["window"].grid(2, 10, 4) == [2, 6, 10]
    assert Demo.params["short"].grid() == [False, True]


def test_warmup_follows_the_named_parameter():
    assert Demo(window=33).warmup_bars() == 33


def test_class_attribute_is_the_declaration_and_instance_attribute_the_value():
    assert isinstance(Demo.window, Param)
    assert Demo(window=7).window == 7
    assert Demo(window=7) == Demo(window=7)
    assert hash(Demo(window=7)) == hash(Demo(window=7))
