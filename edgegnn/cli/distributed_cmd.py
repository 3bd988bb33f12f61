"""`edgegnn train --distributed`: one rank of a torch.distributed job.

Every rank runs this command (the launcher starts them); rank 0 prints and writes the
checkpoint; an error is one line on every rank, prefixed by the rank it names.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource
from edgegnn.cli.output import metrics_table, next_step, print_json, progress, stdout, user_errors


@dataclass(frozen=True)
class DistributedRun:
    """The train command's options that matter to a distributed run."""

    model: Path | None
    out: Path
    epochs: int | None
    time_budget: float | None
    checkpoint_dir: Path | None
    checkpoint_every: int
    resume: bool
    distributed: bool
    json: bool
    denoise: str | None
    training: dict = field(default_factory=dict)


def _check_options(run: DistributedRun) -> None:
    from edgegnn.configs import check_range
    from edgegnn.errors import ConfigError

    if not run.distributed:
        given = "--checkpoint-dir" if run.checkpoint_dir is not None else "--resume"
        raise ConfigError(given, str(run.checkpoint_dir or True), "only with --distributed")
    if run.model is None:
        raise ConfigError("--model", None, "--distributed trains the card it is given (the choice among "
                                           "kinds runs in one process): pass --model CARD.yaml")
    if run.resume and run.checkpoint_dir is None:
        raise ConfigError("--resume", True, "needs --checkpoint-dir, where the job wrote its checkpoints")
    if run.denoise is not None:
        raise ConfigError("--denoise", run.denoise, "denoising runs in one process (drop --distributed)")
    check_range("train", "checkpoint_every", run.checkpoint_every, low=1)
    opt.output_file("out", run.out)


def _stop_on_sigterm(context, checkpoint_dir: Path | None) -> None:
    """A launcher stops the other ranks with SIGTERM when one fails: say so in one line, with the
    newest checkpoint to resume from."""
    from edgegnn.distributed.context import DistributedError
    from edgegnn.distributed.state import complete_checkpoints

    def stopped(signum, frame):
        found = complete_checkpoints(checkpoint_dir) if checkpoint_dir is not None else []
        hint = ("no checkpoint to resume from (pass --checkpoint-dir to write them)" if not found else
                f"resume with --resume --checkpoint-dir {checkpoint_dir} (newest: {found[-1].name})")
        raise DistributedError(f"{context.prefix()}: stopped by the launcher (SIGTERM), which stops every rank "
                               "when one fails or the job is cancelled", hint=hint)

    signal.signal(signal.SIGTERM, stopped)


def train_distributed_cmd(run: DistributedRun, source: DataSource) -> None:
    """Join the job, train the card, and on rank 0 write and show the checkpoint."""
    with user_errors():
        _check_options(run)
        from edgegnn.distributed import context as dist_context

        context = dist_context.init_from_env()
        _stop_on_sigterm(context, run.checkpoint_dir)
        together = False
        try:
            checkpoint, result = _train(run, source, context)
            together = True
        except dist_context.AgreedError:
            together = True                 # every rank failed alike: they leave together
            raise
        finally:
            dist_context.close(together=together)
    if checkpoint is None:
        return
    if run.json:
        print_json(checkpoint.metrics)
        return
    from edgegnn.cli.train_cmd import shown_metrics

    stdout.print(metrics_table(f"{checkpoint.card.name} on {source.data or 'synthetic'}",
                               shown_metrics(checkpoint.metrics)))
    ranks = checkpoint.metrics["distributed"]["world_size"]
    resumed = checkpoint.metrics["distributed"].get("resumed_from")
    if resumed is not None:
        stdout.print(f"resumed from {resumed['checkpoint']} (epoch {resumed['epoch']}, written by "
                     f"{_ranks(resumed['world_size'])})")
    if result.epochs_run == 0:
        stdout.print(f"fitted in closed form in {result.seconds:.1f} s on {_ranks(ranks)}; wrote {run.out}")
    else:
        stdout.print(f"{result.epochs_run} epochs in {result.seconds:.1f} s on {_ranks(ranks)} "
                     f"(best epoch {result.best_epoch}, stopped by {result.stopped_because}); wrote {run.out}")
    next_step(f"edgegnn compress {run.out} --out {run.out.with_suffix('')}-edge")


def _train(run: DistributedRun, source: DataSource, context):
    """(checkpoint or None, result) of this rank; the checkpoint is written by rank 0."""
    from edgegnn.distributed.context import agreed, lost_rank
    from edgegnn.distributed.train import Checkpointing, train_distributed
    from edgegnn.kinds import is_trained
    from edgegnn.models import load_model_card
    from edgegnn.train.api import override_training
    from edgegnn.train.checkpoint import save_checkpoint

    card = agreed(context, lambda: override_training(load_model_card(run.model), **run.training))
    splits = agreed(context, lambda: source.load()[0])
    checkpointing = None if run.checkpoint_dir is None else Checkpointing(run.checkpoint_dir, run.checkpoint_every,
                                                                          run.resume)
    closed_form = not is_trained(card.model.type)
    total = 1 if closed_form else run.epochs if run.epochs is not None else card.training.epochs
    with progress(enabled=context.is_writer and not run.json) as bar:
        task = bar.add_task(f"{'fitting' if closed_form else 'training'} {card.name} on {_ranks(context.world_size)}",
                            total=total, status="")
        with lost_rank(context, checkpointing):
            checkpoint, result = train_distributed(
                splits, card, context, epochs=run.epochs, time_budget=run.time_budget, checkpointing=checkpointing,
                on_epoch=lambda epoch, loss: bar.update(task, completed=epoch, status=f"loss {loss:.4f}"))
            agreed(context, lambda: checkpoint is not None and save_checkpoint(checkpoint, run.out))
        bar.update(task, completed=total if closed_form else result.epochs_run)
    return checkpoint, result


def _ranks(count: int) -> str:
    return f"{count} rank{'' if count == 1 else 's'}"
