"""`edgegnn train`, `edgegnn evaluate` and `edgegnn import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import data_note, metrics_table, print_json, progress, setup_logging, stdout, user_errors


def _load_card(model: Optional[Path]):
    from edgegnn.models import ModelCard, load_model_card

    return load_model_card(model) if model is not None else ModelCard(name="lightgcn")


@data_options
def train(
    out: Annotated[Path, typer.Option("--out", help="Where to write the checkpoint (MODEL.pt).")],
    model: opt.ModelCardPath = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default: the model card's).")] = None,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", help="Stop after this many seconds of training.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="BPR batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="whole-data | bpr")] = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Train a GNN recommender and write a checkpoint."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.train.api import fit, override_training
        from edgegnn.train.checkpoint import save_checkpoint

        from edgegnn.configs import check_range
        from edgegnn.kinds import is_trained

        opt.output_file("out", out)                # before training, not after it
        if epochs is not None:                     # before the data loads
            check_range("train", "epochs", epochs, low=1)
        card = override_training(_load_card(model), learning_rate=lr, batch_size=batch_size,
                                 loss=loss, seed=source.seed_value)
        splits, _ = source.load()
        closed_form = not is_trained(card.model.type)
        total = 1 if closed_form else epochs if epochs is not None else card.training.epochs
        with progress(enabled=not json) as bar:
            task = bar.add_task(f"{'fitting' if closed_form else 'training'} {card.name}", total=total, status="")

            def on_evaluate(record) -> None:
                shown = ", ".join(f"{k} {v:.4f}" for k, v in record.metrics.items()
                                  if k.startswith(("recall@", "ndcg@")))
                bar.update(task, status=f"loss {record.loss:.4f} {shown}")
                if record.metrics:
                    bar.console.print(f"epoch {record.epoch:4d}  {record.seconds:7.1f}s  "
                                      f"loss {record.loss:.4f}  valid {shown}")

            checkpoint, result = fit(splits, card, epochs=epochs, time_budget=time_budget,
                                     on_epoch=lambda epoch, _: bar.update(task, completed=epoch),
                                     on_evaluate=on_evaluate)
            bar.update(task, completed=result.epochs_run if result.epochs_run else total)
        save_checkpoint(checkpoint, out)
    if json:
        print_json(checkpoint.metrics)
        return
    stdout.print(metrics_table(f"{card.name} on {splits.source}", shown_metrics(checkpoint.metrics)))
    if result.epochs_run == 0:
        stdout.print(f"fitted in closed form in {result.seconds:.1f} s; wrote {out}")
    else:
        stdout.print(f"{result.epochs_run} epochs in {result.seconds:.1f} s (best epoch {result.best_epoch}, "
                     f"stopped by {result.stopped_because}); wrote {out}")


def shown_metrics(metrics: dict) -> dict:
    """The rows a metrics table shows: test, valid, and the popularity baseline on test."""
    names = {"test": "test", "valid": "valid", "popularity": "popularity (test)"}
    return {label: metrics[key] for key, label in names.items() if key in metrics}


@data_options
def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL.pt", help="A checkpoint from `edgegnn train`.")],
    k: opt.K = [20],
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Full-ranking Recall/NDCG/Precision/HitRate@K of a checkpoint on the test split."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.errors import ConfigError
        from edgegnn.train.api import evaluate as evaluate_checkpoint
        from edgegnn.train.checkpoint import load_checkpoint

        bad = [value for value in k if value < 1]
        if bad:
            raise ConfigError("k", bad[0], "must be >= 1")
        checkpoint = load_checkpoint(model_path)
        splits, data = source.load_for_model(checkpoint.data)
        metrics = evaluate_checkpoint(checkpoint, splits, ks=tuple(sorted(set(k))))
    if json:
        print_json({**metrics, "data": data})
        return
    stdout.print(metrics_table(f"{checkpoint.card.name} ({model_path}) on {splits.source}",
                               {"test": metrics, "popularity (test)": metrics["popularity"]}))
    stdout.print(f"{metrics['users']:,} test users; {data_note(data)}")


@data_options
def import_pyg(
    state: Annotated[Path, typer.Argument(metavar="STATE.pt", help="state_dict of torch_geometric.nn.models.LightGCN.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the edgegnn checkpoint.")],
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Import a PyTorch Geometric LightGCN state dict trained elsewhere (nodes: users, then items)."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.train.checkpoint import import_pyg_lightgcn, save_checkpoint

        checkpoint = import_pyg_lightgcn(state, source.load()[0])
        save_checkpoint(checkpoint, out)
    if json:
        print_json(checkpoint.metrics)
        return
    stdout.print(metrics_table(f"imported {state}", {"test": checkpoint.metrics["test"]}))
    stdout.print(f"wrote {out}")
