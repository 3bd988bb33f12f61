"""The data layer: read interactions, clean them, split them, describe them.

Most callers need only `load_dataset(spec) -> Split`; the readers, transforms and splits
it chains are exported for scripts and tests.
"""

from edgegnn.data.dataset import load_dataset
from edgegnn.data.fetch import DATASETS, fetch_dataset
from edgegnn.data.interactions import Interactions, Split
from edgegnn.data.loaders import read_csv, read_lightgcn_dir, read_movielens
from edgegnn.data.splits import add_validation, split_leave_last_out, split_random
from edgegnn.data.stats import describe
from edgegnn.data.synthetic import make_synthetic
from edgegnn.data.transforms import drop_duplicates, k_core, to_implicit

__all__ = [
    "DATASETS",
    "Interactions",
    "Split",
    "add_validation",
    "describe",
    "drop_duplicates",
    "fetch_dataset",
    "k_core",
    "load_dataset",
    "make_synthetic",
    "read_csv",
    "read_lightgcn_dir",
    "read_movielens",
    "split_leave_last_out",
    "split_random",
    "to_implicit",
]
