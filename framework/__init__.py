"""rata's framework: the strategy contract, vectorbt research tools and data, shared with the live runner."""

from framework.backtest import BacktestResult, backtest
from framework.bars import Bars
from framework.data import dataset_names, load_dataset, load_file
from framework.errors import (
    DataError,
    FatalError,
    IntegrityError,
    LookaheadError,
    ParameterError,
    RataError,
    RejectedError,
    StrategyError,
    TransientError,
    UnknownNameError,
)
from framework.execution import ExecutionModel
from framework.instruments import Instrument
from framework.lookahead import LookaheadReport, check_lookahead
from framework.params import Param
from framework.registry import get_strategy, strategy_classes
from framework.strategy import Indicator, Signals, Strategy, TargetWeights
from framework.sweep import SweepResult, sweep
from framework.walkforward import WalkForwardResult, walk_forward

__all__ = [
    "BacktestResult",
    "Bars",
    "DataError",
    "ExecutionModel",
    "FatalError",
    "Indicator",
    "Instrument",
    "IntegrityError",
    "LookaheadError",
    "LookaheadReport",
    "Param",
    "ParameterError",
    "RataError",
    "RejectedError",
    "Signals",
    "Strategy",
    "StrategyError",
    "SweepResult",
    "TargetWeights",
    "TransientError",
    "UnknownNameError",
    "WalkForwardResult",
    "backtest",
    "check_lookahead",
    "dataset_names",
    "get_strategy",
    "load_dataset",
    "load_file",
    "strategy_classes",
    "sweep",
    "walk_forward",
]
