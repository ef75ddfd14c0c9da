"""Market data: shipped datasets and file loaders."""

from framework.data.datasets import DATASETS, dataset_names, describe_datasets, load_dataset
from framework.data.files import load_file, read_ohlcv
from framework.data.store import load_bars, read_bars

__all__ = [
    "DATASETS",
    "dataset_names",
    "describe_datasets",
    "load_bars",
    "load_dataset",
    "load_file",
    "read_bars",
    "read_ohlcv",
]
