"""`edgegnn data fetch`, `edgegnn data info` and `edgegnn data labels`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import print_json, setup_logging, stdout, table, user_errors

app = typer.Typer(help="Download, describe and label interaction data.", no_args_is_help=True)


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="movielens-100k | movielens-1m")],
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Default: $EDGEGNN_CACHE "
                                                                          "or ~/.cache/edgegnn.")] = None,
    url: Annotated[Optional[str], typer.Option("--url", help="Download from this address "
                                                             "instead of the official one.")] = None,
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


@app.command("labels")
def labels(
    spec: Annotated[str, typer.Argument(metavar="SYNTHETIC", help="'synthetic[:users=N,items=M,clusters=C,seed=S]'.")]
    = "synthetic",
    node: Annotated[opt.Node, typer.Option("--node", help="Whose taste clusters to write.")] = opt.Node.item,
    out: Annotated[Path, typer.Option("--out", help="The labels CSV to write (node,label).")] = Path("labels.csv"),
    seed: Annotated[int, typer.Option("--seed", help="The generator's seed unless the spec sets one.")] = 0,
    verbose: opt.Verbose = False,
) -> None:
    """Write the synthetic data's taste clusters as labels (for `edgegnn classify`)."""
    setup_logging(verbose)
    with user_errors():
        import os
        import tempfile

        from edgegnn.data.dataset import parse_synthetic_spec
        from edgegnn.data.synthetic import taste_clusters
        from edgegnn.errors import DataError

        if spec != "synthetic" and not spec.startswith("synthetic:"):
            raise DataError(f"only synthetic data knows its classes; got {spec!r}",
                            hint="for your own data, write a CSV with a header 'item,label' or 'user,label'")
        opt.output_file("out", out)
        item_cluster, user_cluster = taste_clusters(**parse_synthetic_spec(spec, seed=seed))
        node = opt.value(node)
        classes, prefix = (item_cluster, "i") if node == "item" else (user_cluster, "u")
        fd, tmp = tempfile.mkstemp(dir=out.resolve().parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{node},label\n" + "".join(f"{prefix}{i},cluster{c}\n" for i, c in enumerate(classes)))
        os.replace(tmp, out)
    stdout.print(f"wrote {len(classes)} {node} labels ({len(set(classes.tolist()))} clusters) to {out}")
