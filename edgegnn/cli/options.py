"""Options shared by several commands, declared once.

The data options (where the interactions come from and how they are split) are the same
for `train`, `evaluate`, `data info`, `compress`, ...: `@data_options` adds them to a
command's signature and hands the command one `DataSource` instead of a dozen arguments.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Optional

import typer

Seed = Annotated[int, typer.Option("--seed", help="Seed for splits and training.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")]
ModelCardPath = Annotated[Optional[Path], typer.Option("--model", help="Model card YAML (default: LightGCN, models/lightgcn.yaml).")]
K = Annotated[list[int], typer.Option("--k", help="Cut-off K of the metrics (repeatable).")]


@dataclass(frozen=True)
class DataSource:
    """Where the interactions come from and how they are split (the CLI's data options)."""

    data: Annotated[str, typer.Option(
        "--data", help="Interaction data: a LightGCN dir (train.txt/test.txt), a MovieLens file or dir, "
                       "a CSV/TSV file, or 'synthetic[:users=N,items=M,seed=S]'.")] = "synthetic"
    format: Annotated[str, typer.Option("--format", help="auto | lightgcn | movielens | csv")] = "auto"
    seed: Seed = 0
    test_ratio: Annotated[float, typer.Option("--test-ratio", help="Per-user test share (single-file data).")] = 0.2
    valid_ratio: Annotated[float, typer.Option(
        "--valid-ratio", help="Per-user validation share for early stopping (0 disables).")] = 0.1
    split: Annotated[str, typer.Option("--split", help="random | leave-last-out (by timestamp).")] = "random"
    implicit_threshold: Annotated[Optional[float], typer.Option(
        "--implicit-threshold", help="Keep ratings >= this as positives.")] = None
    min_user_degree: Annotated[int, typer.Option(
        "--min-user-degree", help="k-core: keep users with at least this many interactions.")] = 0
    min_item_degree: Annotated[int, typer.Option(
        "--min-item-degree", help="k-core: keep items with at least this many interactions.")] = 0
    user_col: Annotated[str, typer.Option("--user-col", help="CSV: user column (name, or 0-based index).")] = "user"
    item_col: Annotated[str, typer.Option("--item-col", help="CSV: item column.")] = "item"
    rating_col: Annotated[Optional[str], typer.Option("--rating-col", help="CSV: rating column.")] = None
    time_col: Annotated[Optional[str], typer.Option("--time-col", help="CSV: timestamp column.")] = None

    def load(self):
        """The `Split` these options describe (`edgegnn.data.load_dataset`)."""
        from edgegnn.data import load_dataset

        kwargs = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "data"}
        return load_dataset(self.data, **kwargs)


def data_options(command):
    """Give `command(..., source: DataSource)` the data options as CLI options.

    Typer reads a command's signature, so the wrapper's signature lists the command's own
    parameters plus one keyword parameter per `DataSource` field; the wrapper folds them
    back into a `DataSource`.
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "source"]
    hints = typing.get_type_hints(DataSource, include_extras=True)
    extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
             for f in fields(DataSource)]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        source = DataSource(**{f.name: kwargs.pop(f.name) for f in fields(DataSource)})
        return command(*args, source=source, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + extra)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    del wrapper.__wrapped__  # Typer must see the wrapper's signature, not the command's
    return wrapper


def optional_data_options(command):
    """`@data_options`, except that --data has no default: without it, export records no metrics."""
    wrapped = data_options(command)
    annotation = Annotated[Optional[str], typer.Option(
        "--data", help="Measure Recall/NDCG@20 on this data's test split by running the artifact (same forms "
                       "as `train --data`); without it no metrics are recorded.")]
    params = [p.replace(default=None, annotation=annotation) if p.name == "data" else p
              for p in wrapped.__signature__.parameters.values()]
    wrapped.__signature__ = wrapped.__signature__.replace(parameters=params)
    wrapped.__annotations__["data"] = annotation
    return wrapped
