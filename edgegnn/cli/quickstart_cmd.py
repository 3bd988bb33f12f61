"""`edgegnn quickstart`: the main job, one command, on the embedded default data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import metrics_table, print_json, progress, setup_logging, stdout, user_errors


@data_options
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Output folder for the model and report.")] = Path("runs/quickstart"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 200,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Synthetic data (or --data) -> train LightGCN -> evaluate; prints the metrics table."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.data import describe
        from edgegnn.models import ModelCard
        from edgegnn.train.api import fit, override_training
        from edgegnn.train.checkpoint import save_checkpoint

        splits = source.load()
        stats = describe(splits)
        if not json:
            stdout.print(f"data: {splits.source}: {stats['users']:,} users, {stats['items']:,} items, "
                         f"{stats['interactions']:,} interactions")
        card = override_training(ModelCard(name="lightgcn"), seed=source.seed)
        with progress(enabled=not json) as bar:
            task = bar.add_task("training lightgcn", total=epochs, status="")
            checkpoint, result = fit(splits, card, epochs=epochs,
                                     on_epoch=lambda epoch, _: bar.update(task, completed=epoch))
        model_path = save_checkpoint(checkpoint, Path(out) / "model.pt")
    report = {"data": stats, "metrics": checkpoint.metrics, "model": str(model_path)}
    if json:
        print_json(report)
        return
    shown = {k: v for k, v in checkpoint.metrics.items() if k in ("test", "valid")}
    stdout.print(metrics_table(f"LightGCN on {splits.source}", shown))
    stdout.print(f"trained {result.epochs_run} epochs in {result.seconds:.1f} s; model: {model_path}")
