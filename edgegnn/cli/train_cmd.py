"""`edgegnn train`, `edgegnn evaluate` and `edgegnn import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.output import metrics_table, print_json, progress, setup_logging, stdout, user_errors


def _load_card(model: Optional[Path]):
    from edgegnn.models import ModelCard, load_model_card

    return load_model_card(model) if model is not None else ModelCard(name="lightgcn")


def _load_data(data: str, **kwargs):
    from edgegnn.data import load_dataset

    return load_dataset(data, **opt.data_kwargs(**kwargs))


def train(
    out: Annotated[Path, typer.Option("--out", help="Where to write the checkpoint (MODEL.pt).")],
    data: opt.DataSpec = "synthetic",
    format: opt.Format = "auto",
    model: opt.ModelCardPath = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default: the model card's).")] = None,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", help="Stop after this many seconds of training.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="BPR batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="whole-data | bpr")] = None,
    seed: opt.Seed = 0,
    test_ratio: opt.TestRatio = 0.2,
    valid_ratio: opt.ValidRatio = 0.1,
    split: opt.SplitKind = "random",
    implicit_threshold: opt.Implicit = None,
    user_col: opt.UserCol = "user",
    item_col: opt.ItemCol = "item",
    rating_col: opt.RatingCol = None,
    time_col: opt.TimeCol = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Train a GNN recommender and write a checkpoint."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.train.api import fit, override_training
        from edgegnn.train.checkpoint import save_checkpoint

        card = override_training(_load_card(model), learning_rate=lr, batch_size=batch_size,
                                 loss=loss, seed=seed)
        splits = _load_data(data, format=format, seed=seed, test_ratio=test_ratio,
                            valid_ratio=valid_ratio, split=split, implicit_threshold=implicit_threshold,
                            user_col=user_col, item_col=item_col, rating_col=rating_col, time_col=time_col)
        total = epochs if epochs is not None else card.training.epochs
        with progress(enabled=not json) as bar:
            task = bar.add_task(f"training {card.name}", total=total, status="")

            def on_epoch(epoch: int, loss_value: float) -> None:
                bar.update(task, completed=epoch)

            def on_evaluate(record) -> None:
                shown = ", ".join(f"{k} {v:.4f}" for k, v in record.metrics.items() if "@" in k and k.startswith(("recall", "ndcg")))
                bar.update(task, status=f"loss {record.loss:.4f} {shown}")
                if not json and record.metrics:
                    bar.console.print(f"epoch {record.epoch:4d}  {record.seconds:7.1f}s  loss {record.loss:.4f}  valid {shown}")

            checkpoint, result = fit(splits, card, epochs=epochs, time_budget=time_budget,
                                     on_epoch=on_epoch, on_evaluate=on_evaluate)
        save_checkpoint(checkpoint, out)
    if json:
        print_json(checkpoint.metrics)
        return
    shown = {k: v for k, v in checkpoint.metrics.items() if k in ("test", "valid")}
    stdout.print(metrics_table(f"{card.name} on {splits.source}", shown))
    stdout.print(f"{result.epochs_run} epochs in {result.seconds:.1f} s (best epoch {result.best_epoch}, "
                 f"stopped by {result.stopped_because}); wrote {out}")


def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL.pt", help="A checkpoint from `edgegnn train`.")],
    data: opt.DataSpec = "synthetic",
    format: opt.Format = "auto",
    k: opt.K = [20],
    seed: opt.Seed = 0,
    test_ratio: opt.TestRatio = 0.2,
    valid_ratio: opt.ValidRatio = 0.1,
    split: opt.SplitKind = "random",
    implicit_threshold: opt.Implicit = None,
    user_col: opt.UserCol = "user",
    item_col: opt.ItemCol = "item",
    rating_col: opt.RatingCol = None,
    time_col: opt.TimeCol = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Full-ranking Recall/NDCG/Precision/HitRate@K of a checkpoint on the test split."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.train.api import evaluate as evaluate_checkpoint
        from edgegnn.train.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(model_path)
        splits = _load_data(data, format=format, seed=seed, test_ratio=test_ratio,
                            valid_ratio=valid_ratio, split=split, implicit_threshold=implicit_threshold,
                            user_col=user_col, item_col=item_col, rating_col=rating_col, time_col=time_col)
        for value in k:
            if value < 1:
                from edgegnn.errors import ConfigError
                raise ConfigError("k", value, "must be >= 1")
        metrics = evaluate_checkpoint(checkpoint, splits, ks=tuple(sorted(set(k))))
    if json:
        print_json(metrics)
        return
    stdout.print(metrics_table(f"{checkpoint.card.name} ({model_path}) on {splits.source}", {"test": metrics}))
    stdout.print(f"{metrics['users']:,} test users")


def import_pyg(
    state: Annotated[Path, typer.Argument(metavar="STATE.pt", help="state_dict of torch_geometric.nn.models.LightGCN.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the edgegnn checkpoint.")],
    data: opt.DataSpec = "synthetic",
    format: opt.Format = "auto",
    seed: opt.Seed = 0,
    test_ratio: opt.TestRatio = 0.2,
    valid_ratio: opt.ValidRatio = 0.1,
    split: opt.SplitKind = "random",
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Import a PyTorch Geometric LightGCN state dict trained elsewhere (nodes: users, then items)."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.train.checkpoint import import_pyg_lightgcn, save_checkpoint

        splits = _load_data(data, format=format, seed=seed, test_ratio=test_ratio, valid_ratio=valid_ratio,
                            split=split, implicit_threshold=None, user_col="user", item_col="item",
                            rating_col=None, time_col=None)
        checkpoint = import_pyg_lightgcn(state, splits)
        save_checkpoint(checkpoint, out)
    if json:
        print_json(checkpoint.metrics)
        return
    stdout.print(metrics_table(f"imported {state}", {"test": checkpoint.metrics["test"]}))
    stdout.print(f"wrote {out}")
