"""Options shared by several commands (data source and split), declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DataSpec = Annotated[str, typer.Option(
    "--data", help="Interaction data: a LightGCN dir (train.txt/test.txt), a MovieLens file or dir, "
                   "a CSV/TSV file, or 'synthetic[:users=N,items=M,seed=S]'.")]
Format = Annotated[str, typer.Option("--format", help="auto | lightgcn | movielens | csv")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for splits and training.")]
TestRatio = Annotated[float, typer.Option("--test-ratio", help="Per-user test share (single-file data).")]
ValidRatio = Annotated[float, typer.Option("--valid-ratio", help="Per-user validation share for early stopping (0 disables).")]
SplitKind = Annotated[str, typer.Option("--split", help="random | leave-last-out (by timestamp).")]
Implicit = Annotated[Optional[float], typer.Option("--implicit-threshold", help="Keep ratings >= this as positives.")]
UserCol = Annotated[str, typer.Option("--user-col", help="CSV: user column (name, or 0-based index).")]
ItemCol = Annotated[str, typer.Option("--item-col", help="CSV: item column.")]
RatingCol = Annotated[Optional[str], typer.Option("--rating-col", help="CSV: rating column.")]
TimeCol = Annotated[Optional[str], typer.Option("--time-col", help="CSV: timestamp column.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")]
ModelCardPath = Annotated[Optional[Path], typer.Option("--model", help="Model card YAML (default: LightGCN, models/lightgcn.yaml).")]
K = Annotated[list[int], typer.Option("--k", help="Cut-off K of the metrics (repeatable).")]


def data_kwargs(*, format: str, seed: int, test_ratio: float, valid_ratio: float, split: str,
                implicit_threshold, user_col: str, item_col: str, rating_col, time_col) -> dict:
    """The keyword arguments of `edgegnn.data.load_dataset` from CLI options."""
    return dict(format=format, seed=seed, test_ratio=test_ratio, valid_ratio=valid_ratio, split=split,
                implicit_threshold=implicit_threshold, user_col=user_col, item_col=item_col,
                rating_col=rating_col, time_col=time_col)
