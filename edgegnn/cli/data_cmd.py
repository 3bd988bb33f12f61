"""`edgegnn data fetch` and `edgegnn data info`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
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
@data_options
def info(
    path: Annotated[Optional[str], typer.Argument(
        metavar="[PATH]", help="Data path or 'synthetic[:...]' (same as --data).")] = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Users, items, interactions, density and degree percentiles of a data set."""
    setup_logging(verbose)
    if path is not None:
        source = dataclasses.replace(source, data=path)
    with user_errors():
        from edgegnn.data import describe

        stats = describe(source.load()[0])
    if json:
        print_json(stats)
        return
    rows = [(key, value) for key, value in stats.items() if not isinstance(value, dict)]
    stdout.print(table(source.data or "synthetic", ["field", "value"], rows))
    for key, value in stats.items():
        if isinstance(value, dict) and value:
            stdout.print(table(key, ["field", "value"], value.items()))
