"""Market data: shipped datasets and file loaders."""

from framework.data.datasets import DATASETS, dataset_names, describe_datasets, load_dataset
from framework.data.files import load_file, read_ohlcv

__all__ = ["DATASETS", "dataset_names", "describe_datasets", "load_dataset", "load_file", "read_ohlcv"]
