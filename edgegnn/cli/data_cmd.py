"""`edgegnn data fetch` and `edgegnn data info`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.output import print_json, setup_logging, stdout, table, user_errors

app = typer.Typer(help="Download and describe interaction data.", no_args_is_help=True)


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="movielens-100k | movielens-1m")],
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Default: $EDGEGNN_CACHE or ~/.cache/edgegnn.")] = None,
    url: Annotated[Optional[str], typer.Option("--url", help="Download from this address instead of the official one.")] = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Download a public data set into the cache, checking its sha256."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.data import fetch_dataset

        path = fetch_dataset(name, cache_dir=cache_dir, url=url)
    if json:
        print_json({"name": name, "path": str(path)})
    else:
        stdout.print(f"{name}: {path}")


@app.command("info")
def info(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Data path or 'synthetic[:...]'.")],
    format: opt.Format = "auto",
    seed: opt.Seed = 0,
    test_ratio: opt.TestRatio = 0.2,
    valid_ratio: opt.ValidRatio = 0.0,
    split: opt.SplitKind = "random",
    implicit_threshold: opt.Implicit = None,
    user_col: opt.UserCol = "user",
    item_col: opt.ItemCol = "item",
    rating_col: opt.RatingCol = None,
    time_col: opt.TimeCol = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Users, items, interactions, density and degree percentiles of a data set."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.data import describe, load_dataset

        splits = load_dataset(path, **opt.data_kwargs(
            format=format, seed=seed, test_ratio=test_ratio, valid_ratio=valid_ratio, split=split,
            implicit_threshold=implicit_threshold, user_col=user_col, item_col=item_col,
            rating_col=rating_col, time_col=time_col))
        stats = describe(splits)
    if json:
        print_json(stats)
        return
    rows = [(key, value) for key, value in stats.items() if not isinstance(value, dict)]
    stdout.print(table(f"{path}", ["field", "value"], rows))
    for key, value in stats.items():
        if isinstance(value, dict) and value:
            stdout.print(table(key, ["field", "value"], value.items()))
