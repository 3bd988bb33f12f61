"""`edgegnn train`, `edgegnn evaluate` and `edgegnn import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import (
    data_note,
    metrics_table,
    next_step,
    print_json,
    progress,
    setup_logging,
    stderr,
    stdout,
    table,
    user_errors,
)


@data_options
def train(
    out: Annotated[Path, typer.Option("--out", help="Where to write the checkpoint (MODEL.pt).")],
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="A model card YAML (models/*.yaml). Default: choose on the data's validation split among "
                        "graph filters and LightGCN, within --time-budget; the choice is written as "
                        "MODEL.card.yaml.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs of a trained kind (default: the card's).")] = None,
    time_budget: Annotated[Optional[float], typer.Option(
        "--time-budget", help="Seconds: of training with --model; of the whole choice without (default 300).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="BPR batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")] = None,
    loss: Annotated[Optional[opt.Loss], typer.Option("--loss", help="The training loss (default: the card's).")
                    ] = None,
    optimizer: Annotated[Optional[opt.Optimizer], typer.Option(
        "--optimizer", help="torch.optim's (default: the card's; adam).")] = None,
    denoise: Annotated[Optional[str], typer.Option(
        "--denoise", help="Robust to noisy rows: drop this share of each user's training rows that a first fit "
                          "scores lowest, then fit again (e.g. 0.1), or 'auto': the share validation prefers "
                          "among 0, 0.1, 0.2, 0.3. [default: 0, off]")] = None,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="Train as one rank of a torch.distributed job (env:// rendezvous), e.g. "
                              "torchrun --standalone --nproc_per_node 2 -m edgegnn train --distributed --model "
                              "CARD ...; needs --model (a lightgcn, sage, gat or graph-filter card).")] = False,
    checkpoint_dir: Annotated[Optional[Path], typer.Option(
        "--checkpoint-dir", help="--distributed: write the training state there (torch.distributed.checkpoint) "
                                 "at evaluations, to resume a failed job.")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="--distributed: evaluations between checkpoints.")] = 1,
    resume: Annotated[bool, typer.Option(
        "--resume", help="--distributed: go on from the newest checkpoint in --checkpoint-dir.")] = False,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Train or fit a recommender and write a checkpoint (without --model: the best on validation)."""
    setup_logging(verbose)
    if distributed or checkpoint_dir is not None or resume:
        from edgegnn.cli.distributed_cmd import DistributedRun, train_distributed_cmd

        run = DistributedRun(model=model, out=out, epochs=epochs, time_budget=time_budget,
                             checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
                             distributed=distributed, json=json, denoise=denoise,
                             training=dict(learning_rate=lr, batch_size=batch_size, loss=opt.value(loss),
                                           optimizer=opt.value(optimizer), seed=source.seed_value))
        train_distributed_cmd(run, source)
        return
    with user_errors():
        from edgegnn.configs import check_range
        from edgegnn.train.api import override_training
        from edgegnn.train.checkpoint import save_checkpoint

        opt.output_file("out", out)                # before training, not after it
        denoise_share = parse_denoise(denoise)
        if epochs is not None:                     # before the data loads
            check_range("train", "epochs", epochs, low=1)
        if time_budget is not None:
            check_range("train", "time_budget", time_budget, low=0.0, low_open=True)

        def adjusted(card):
            return override_training(card, learning_rate=lr, batch_size=batch_size, loss=opt.value(loss),
                                     optimizer=opt.value(optimizer), seed=source.seed_value)

        if model is not None:
            from edgegnn.models import load_model_card

            card = override_training(adjusted(load_model_card(model)), denoise=denoise_share)
            splits, _ = source.load()
            checkpoint, result, trials = (*_train_card(splits, card, epochs, time_budget, json), None)
        else:
            from edgegnn.models import ModelCard

            override_training(adjusted(ModelCard(name="lightgcn")), denoise=denoise_share)   # checked before loading
            splits, _ = source.load()
            checkpoint, result, trials = _choose(splits, adjusted, epochs, time_budget, source.seed_value or 0, json,
                                                 denoise_share or 0.0)
        save_checkpoint(checkpoint, out)
        card_file = _write_card(checkpoint.card, out) if trials is not None else None
    if json:
        print_json(checkpoint.metrics)
        return
    if trials is not None:
        stdout.print(_trials_table(trials, checkpoint.metrics["selection"]))
    card = checkpoint.card
    stdout.print(metrics_table(f"{card.name} on {splits.source}", shown_metrics(checkpoint.metrics)))
    if result.epochs_run == 0:
        stdout.print(f"fitted in closed form in {result.seconds:.1f} s; wrote {out}")
    else:
        stdout.print(f"{result.epochs_run} epochs in {result.seconds:.1f} s (best epoch {result.best_epoch}, "
                     f"stopped by {result.stopped_because}); wrote {out}")
    denoise = checkpoint.metrics.get("denoise")
    if denoise:
        stdout.print(_denoise_line(denoise))
    if card_file is not None:
        stdout.print(f"the chosen card: {card_file} (reuse it with --model)")
    next_step(f"edgegnn compress {out} --out {out.with_suffix('')}-edge",
              f"edgegnn export {out} --target cpu-x86_64 --out artifacts/cpu   (as it is)")


def _denoise_line(record: dict) -> str:
    """What --denoise did: the share (and how it was chosen), the rows dropped, the test Recall
    before and after."""
    how = "chosen on validation" if record["asked"] == "auto" else "as asked"
    line = (f"denoise: dropped {record['dropped_rows']:,} of {record['rows']:,} training rows "
            f"(share {record['share']:g}, {how})")
    first = record.get("first_fit_test")
    if first:
        line += f"; test recall@20 {first['recall@20']:.4f} before"
    return line


def _train_card(splits, card, epochs, time_budget, quiet: bool):
    """Train (or fit) one card with a progress bar; (checkpoint, result)."""
    from edgegnn.kinds import is_trained
    from edgegnn.train.api import fit

    closed_form = not is_trained(card.model.type)
    total = 1 if closed_form else epochs if epochs is not None else card.training.epochs
    with progress(enabled=not quiet) as bar:
        task = bar.add_task(f"{'fitting' if closed_form else 'training'} {card.name}", total=total, status="")

        def on_evaluate(record) -> None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in record.metrics.items() if k.startswith(("recall@", "ndcg@")))
            bar.update(task, status=f"loss {record.loss:.4f} {shown}")
            if record.metrics:
                bar.console.print(f"epoch {record.epoch:4d}  {record.seconds:7.1f}s  "
                                  f"loss {record.loss:.4f}  valid {shown}")

        checkpoint, result = fit(splits, card, epochs=epochs, time_budget=time_budget,
                                 on_epoch=lambda epoch, _: bar.update(task, completed=epoch),
                                 on_evaluate=on_evaluate)
        bar.update(task, completed=result.epochs_run if result.epochs_run else total)
    return checkpoint, result


def parse_denoise(text: str | None) -> float | str | None:
    """--denoise: a share (a number) or "auto"; None when not given."""
    from edgegnn.errors import ConfigError

    if text is None or text.strip().lower() == "auto":
        return None if text is None else "auto"
    try:
        return float(text)
    except ValueError:
        raise ConfigError("denoise", text, "a share such as 0.1, or 'auto'") from None


def _choose(splits, adjusted, epochs, time_budget, seed: int, quiet: bool, denoise: float | str):
    """The default model: `edgegnn.train.select.select_model`, each trial printed as it ends."""
    import dataclasses

    from edgegnn.train.select import select_model

    def trained(card):
        card = adjusted(card)
        return card if epochs is None else dataclasses.replace(card, training=dataclasses.replace(card.training,
                                                                                                  epochs=epochs))

    def on_trial(trial) -> None:
        if not quiet:
            shown = "skipped" if trial.valid is None else f"valid recall@20 {trial.valid.get('recall@20', 0):.4f}"
            stderr.print(f"tried {trial.card.name:<18} {shown}  {trial.seconds:6.1f} s {trial.note}")

    return select_model(splits, time_budget=time_budget, seed=seed, trained=trained, on_trial=on_trial,
                        denoise=denoise)


def _trials_table(trials, selection: dict):
    rows = [[("* " if t.card.name == selection["chosen"] else "  ") + t.card.name,
             "-" if t.valid is None else t.valid.get(selection["metric"], 0.0), f"{t.seconds:.1f}", t.note]
            for t in trials]
    where = "a validation split carved from train" if selection["carved_validation"] else "the validation split"
    return table(f"candidates on {where} (* chosen)", ["model", f"valid {selection['metric']}", "seconds", "note"],
                 rows)


def _write_card(card, out: Path) -> Path:
    """MODEL.card.yaml beside the checkpoint, atomically: the choice, reusable with --model."""
    import os
    import tempfile

    import yaml

    path = out.with_name(out.stem + ".card.yaml")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"# chosen by `edgegnn train` on the validation split of the data of {out.name}\n")
            yaml.safe_dump(card.to_dict(), handle, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def shown_metrics(metrics: dict) -> dict:
    """The rows a metrics table shows: test, valid, and the popularity baseline on test."""
    names = {"test": "test", "valid": "valid", "popularity": "popularity (test)"}
    return {label: metrics[key] for key, label in names.items() if key in metrics}


@data_options
def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL.pt", help="A checkpoint from `edgegnn train`.")],
    k: opt.K = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Full-ranking Recall/NDCG/Precision/HitRate@K of a checkpoint on the test split."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.train.api import evaluate as evaluate_checkpoint
        from edgegnn.train.checkpoint import load_checkpoint

        cutoffs = opt.ints("k", k, default=(20,))
        checkpoint = load_checkpoint(model_path)
        splits, data = source.load_for_model(checkpoint.data)
        metrics = evaluate_checkpoint(checkpoint, splits, ks=tuple(sorted(cutoffs)))
    if json:
        print_json({**metrics, "data": data})
        return
    stdout.print(metrics_table(f"{checkpoint.card.name} ({model_path}) on {splits.source}",
                               {"test": metrics, "popularity (test)": metrics["popularity"]}))
    stdout.print(f"{metrics['users']:,} test users; {data_note(data)}")


@data_options
def import_pyg(
    state: Annotated[Path, typer.Argument(metavar="STATE.pt",
                                          help="state_dict of torch_geometric.nn.models.LightGCN.")],
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
    next_step(f"edgegnn compress {out} --out {out.with_suffix('')}-edge")
