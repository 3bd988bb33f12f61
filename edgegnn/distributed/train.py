"""Train a LightGCN, GraphSAGE or graph-attention card (or fit a graph filter) over the ranks of a job;
rank 0 writes the checkpoint.

Every rank loads the same split (its files' sha256 and the training pairs are compared across
ranks before anything else), builds the single-process model's initial table and keeps the
rows of its users and of its items (`edgegnn.distributed.sharded`), and runs the ordinary training
loop (`edgegnn.train.trainer.run_training_loop`) with a distributed step, a validation whose
per-rank metrics are combined by their user counts, and rank 0's clock. The best state is
gathered into the checkpoint `evaluate`, `fold` and `export` read; its metrics are measured on
it exactly as the single-process `fit` measures them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from edgegnn.data.interactions import Split
from edgegnn.distributed.context import (
    DistContext,
    DistributedError,
    agreed,
    check_same_on_every_rank,
)
from edgegnn.distributed.halo import ExchangePlan, all_rows
from edgegnn.distributed.partition import BlockPartition, partition_items, partition_users
from edgegnn.distributed.sharded import (
    ShardedGAT,
    ShardedLightGCN,
    ShardedModel,
    ShardedSAGE,
    halo_adjacency,
    inverse_sqrt_degrees,
    mean_adjacency,
)
from edgegnn.distributed.state import (
    ReshardingLayout,
    RowLayout,
    check_resumable,
    complete_checkpoints,
    gather_table,
    load_state,
    parameters_snapshot,
    partition_digest,
    read_progress,
    restore_parameters,
    save_state,
)
from edgegnn.distributed.steps import DistributedStepRunner, RankPairs
from edgegnn.kinds import is_trained
from edgegnn.metrics import evaluate_embeddings
from edgegnn.models import ModelCard, build_model
from edgegnn.models.graph import BipartiteGraph
from edgegnn.train.checkpoint import Checkpoint
from edgegnn.train.trainer import (
    EpochRecord,
    LoopHooks,
    LoopState,
    TrainResult,
    check_loop_settings,
    negative_weights,
    run_training_loop,
    seed_everything,
)

log = logging.getLogger(__name__)

DISTRIBUTED_KINDS = ("lightgcn", "sage", "gat", "graph-filter")


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Where and how often the job writes its DCP checkpoints (`edgegnn.distributed.state`).

    Attributes:
        directory: the checkpoints' directory.
        every: evaluations between checkpoints (an evaluation comes every `eval_every` epochs).
        resume: start from the newest complete checkpoint in `directory`.
    """

    directory: Path
    every: int = 1
    resume: bool = False


def check_card(card: ModelCard) -> None:
    """A DistributedError for what distributed training does not cover yet."""
    if card.model.type not in DISTRIBUTED_KINDS:
        raise DistributedError(f"model.type={card.model.type!r}: distributed training covers "
                               f"{', '.join(DISTRIBUTED_KINDS)} cards",
                               hint="train this card in one process (without --distributed)")


def data_identity(split: Split) -> dict:
    """What makes two ranks' data the same: the split's record (files' sha256, options) and a
    sha256 of its training pairs (a split built in code has no record)."""
    digest = hashlib.sha256()
    for column in (split.train.users, split.train.items):
        digest.update(np.ascontiguousarray(column, dtype=np.int64).tobytes())
    return {"record": None if split.record is None else split.record.to_dict(),
            "train_pairs": digest.hexdigest(), "users": split.num_users, "items": split.num_items}


@dataclasses.dataclass(eq=False)
class RankSetup:
    """One rank's model, data and step runner."""

    context: DistContext
    users: BlockPartition
    items: BlockPartition
    model: ShardedModel
    runner: DistributedStepRunner
    layout: RowLayout

    @property
    def local_users(self) -> np.ndarray:
        """int64 [U_r] original indices of this rank's users."""
        return self.users.rows_of(self.context.rank)


def _index_among_owners(owner: np.ndarray, world_size: int) -> np.ndarray:
    """int64 [E]: each pair's index among the pairs of its owner (one stable sort)."""
    by_owner = np.argsort(owner, kind="stable")
    firsts = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=world_size))[:-1]])
    local = np.empty(len(owner), dtype=np.int64)
    local[by_owner] = np.arange(len(owner)) - firsts[owner[by_owner]]
    return local


def unique_pairs(split: Split) -> np.ndarray:
    """int64 [2, E]: the training split's distinct (user, item) pairs, sorted as the plain trainer's."""
    return np.unique(np.stack([split.train.users, split.train.items]), axis=1)


def partitions(pairs: np.ndarray, split: Split, world_size: int) -> tuple[BlockPartition, BlockPartition]:
    """(users, items) dealt to `world_size` ranks by their degrees in `pairs` (`unique_pairs`)."""
    return (partition_users(np.bincount(pairs[0], minlength=split.num_users), world_size),
            partition_items(np.bincount(pairs[1], minlength=split.num_items), world_size))


def set_up_rank(split: Split, card: ModelCard, context: DistContext, dtype: torch.dtype) -> RankSetup:
    """Partition the users and the items, and build this rank's table, Â blocks, halo and step
    runner (the halo's exchange plan is agreed with the other ranks: a collective)."""
    train, rank = split.train, context.rank
    pairs = unique_pairs(split)
    user_degree = np.bincount(pairs[0], minlength=train.num_users)
    item_degree = np.bincount(pairs[1], minlength=train.num_items)
    users, items = partitions(pairs, split, context.world_size)
    seed_everything(card.training.seed)
    plain = build_model(card.model, train.num_users, train.num_items)  # the single-process initial table
    ego = plain.ego_embeddings.detach().to(dtype)
    owner = users.owners()[pairs[0]]
    mine = owner == rank
    local_users = users.renumbered()[pairs[0][mine]] - users.bounds[rank]
    renumbered_items = items.renumbered()
    pair_items = renumbered_items[pairs[1][mine]]
    halo = np.unique(pair_items)
    halo_positions = np.searchsorted(halo, pair_items)
    plan = ExchangePlan.build(torch.from_numpy(halo), items.bounds, context)
    owned = items.rows_of(rank)
    table = _rank_table(card, ego, users.rows_of(rank), owned, train.num_users)
    shape = (local_users, halo_positions, users.size_of(rank), len(halo))
    model = _sharded_model(card, plain, table, plan, shape, user_degree[pairs[0][mine]], item_degree[pairs[1][mine]])
    negative_weight = negative_weights(train, card.training)
    rank_pairs = RankPairs(users=torch.from_numpy(local_users), items=torch.from_numpy(pair_items),
                           halo_items=torch.from_numpy(halo_positions),
                           owner=torch.from_numpy(owner.astype(np.int32)),
                           local=torch.from_numpy(_index_among_owners(owner, context.world_size)),
                           renumbered_items=torch.from_numpy(renumbered_items), item_bounds=items.bounds,
                           owned_weight=negative_weight[torch.from_numpy(owned)],
                           halo_weight=negative_weight[torch.from_numpy(items.order[halo])])
    runner = DistributedStepRunner(model, rank_pairs, card.training, context)
    return RankSetup(context, users, items, model, runner, RowLayout(context, users, items, user_rows=model.user_rows))


def _rank_table(card: ModelCard, ego: torch.Tensor, users: np.ndarray, items: np.ndarray,
                num_users: int) -> torch.Tensor:
    """This rank's rows of the plain model's ego table `ego`: its users', then its items'
    (original indices `users`, `items`); graph attention's holds items only (users have no ego rows)."""
    if card.model.type == "gat":
        return ego[torch.from_numpy(items)]
    return torch.cat([ego[torch.from_numpy(users)], ego[torch.from_numpy(items + num_users)]])


def _sharded_model(card: ModelCard, plain, table: torch.Tensor, plan: ExchangePlan, shape: tuple,
                   user_degree: np.ndarray, item_degree: np.ndarray) -> ShardedModel:
    """The card's model over this rank's rows: the plain model's parameters, and its Â blocks
    (LightGCN), D^-1 A blocks (SAGE) or attention edges (GAT) over the rank's pairs, `shape` =
    (local users, halo positions, U_r, |H_r|), whose users' and items' degrees are `user_degree`,
    `item_degree` [E_r]."""
    num_local_users = shape[2]
    if card.model.type == "gat":
        edges = torch.stack([torch.from_numpy(shape[1]), torch.from_numpy(shape[0])]).long()
        return ShardedGAT(table, edges, plan, plain.conv.to(table.dtype), num_local_users)
    if card.model.type == "sage":
        degrees = torch.from_numpy(user_degree).to(table.dtype), torch.from_numpy(item_degree).to(table.dtype)
        return ShardedSAGE(table, mean_adjacency(*shape, *degrees), plan, plain.conv1.to(table.dtype),
                           plain.conv2.to(table.dtype), num_local_users)
    weight = inverse_sqrt_degrees(user_degree, table.dtype) * inverse_sqrt_degrees(item_degree, table.dtype)
    return ShardedLightGCN(table, *halo_adjacency(*shape, weight), plan, plain.gnn.alpha.detach(), num_local_users)


def combined_metrics(context: DistContext, local: dict[str, float]) -> dict[str, float]:
    """Every rank's metrics over its users, combined as means over all users (by "users" counts);
    one rank's are returned as they are."""
    if context.world_size == 1:
        return local
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, local)
    total = sum(metrics["users"] for metrics in gathered)
    combined = {name: sum(m[name] * m["users"] for m in gathered) / max(total, 1)
                for name in local if name != "users"}
    combined["users"] = total
    return combined


def _validation(setup: RankSetup, split: Split, config) -> Callable[[], dict] | None:
    """The hook measuring validation Recall@K over this rank's users, combined over ranks."""
    if split.valid is None or not len(split.valid):
        return None
    rows = setup.local_users
    train_csr, valid_csr = split.train.to_csr()[rows], split.valid.to_csr()[rows]
    original_order = torch.from_numpy(setup.items.renumbered())

    def validate() -> dict[str, float]:
        with torch.no_grad():
            user_emb, item_emb = setup.model()
            every_item = all_rows(item_emb, setup.items.bounds, setup.context)[original_order]
        local = evaluate_embeddings(user_emb.float().numpy(), every_item.float().numpy(), train_csr, valid_csr,
                                    ks=(config.eval_k,))
        return combined_metrics(setup.context, local)

    return validate


def train_distributed(split: Split, card: ModelCard, context: DistContext, *, epochs: int | None = None,
                      time_budget: float | None = None, checkpointing: Checkpointing | None = None,
                      dtype: torch.dtype = torch.float32,
                      on_epoch: Callable[[int, float], None] | None = None,
                      on_evaluate: Callable[[EpochRecord], None] | None = None,
                      ks=(20,)) -> tuple[Checkpoint | None, TrainResult]:
    """Train `card` on `split` as this rank of the job; (the checkpoint on rank 0 / None elsewhere,
    the training result, equal on every rank).

    A graph filter (closed form) is fitted over the ranks instead (no epochs).
    A one-line DistributedError on every rank when the ranks' data differ, the world size does
    not fit the data, the card is not covered, or a resumed checkpoint is another job's.
    """
    config = card.training
    agreed(context, lambda: (check_card(card), check_loop_settings(epochs, time_budget)))
    identity = data_identity(split)
    check_same_on_every_rank(context, "data (sha256 of the files and of the training pairs)", identity)
    if card.training.denoise:
        if checkpointing is not None:
            agreed(context, lambda: _no_checkpoints_for_denoising(card))
        return _denoised(split, card, context, epochs=epochs, time_budget=time_budget, dtype=dtype,
                         on_epoch=on_epoch, on_evaluate=on_evaluate, ks=ks)
    if not is_trained(card.model.type):
        if checkpointing is not None:
            agreed(context, lambda: _no_state_to_checkpoint(card, checkpointing))
        return _fit_closed_form(split, card, context, ks)
    setup = agreed(context, lambda: set_up_rank(split, card, context, dtype))
    job = {"world_size": context.world_size, "partition": partition_digest(setup.users, setup.items),
           "card": card.to_dict(), "data": identity}
    state, best, resumed = LoopState(), None, None
    if checkpointing is not None and checkpointing.resume:
        state, best, resumed = agreed(context, lambda: _resume(setup, split, checkpointing.directory, job))
    hooks = LoopHooks(validate=_validation(setup, split, config),
                      snapshot=lambda: parameters_snapshot(setup.model),
                      restore=lambda saved: restore_parameters(setup.model, saved),
                      shared_seconds=lambda seconds: _rank0_value(seconds),
                      on_epoch=on_epoch if context.is_writer else None,
                      on_evaluate=on_evaluate if context.is_writer else None,
                      after_evaluation=_checkpoint_hook(setup, checkpointing, job))
    total = epochs if epochs is not None else config.epochs
    setup.model.train()
    result = run_training_loop(setup.runner, config, total, time_budget, hooks, state, best)
    table = gather_table(setup.layout, setup.model.table)
    checkpoint = agreed(context, lambda: _final_checkpoint(split, card, setup, table, result, ks, resumed))
    return checkpoint, result


def _denoised(split: Split, card: ModelCard, context: DistContext, *, dtype: torch.dtype,
              **options) -> tuple[Checkpoint | None, TrainResult]:
    """The card's denoised fit (`edgegnn.train.denoise`), each of its fits over the ranks. Every
    rank receives each fit's checkpoint from rank 0, so the scores of the training rows, the rows
    dropped and the chosen share come out the same on all of them (a fit's whole table and
    training pairs per rank while the refits run)."""
    from edgegnn.train.denoise import denoised_fit

    def fit_on_every_rank(fitted: Split, plain: ModelCard, *, epochs=None, time_budget=None, ks=(20,),
                          on_epoch=None, on_evaluate=None, **_):
        checkpoint, result = train_distributed(fitted, plain, context, epochs=epochs, time_budget=time_budget,
                                               dtype=dtype, on_epoch=on_epoch, on_evaluate=on_evaluate, ks=ks)
        shared = [checkpoint]
        dist.broadcast_object_list(shared, src=0)
        return shared[0], result

    # not under `agreed`: each fit agrees on its own errors, and denoised_fit's checks of the card and
    # the split are the same on every rank
    checkpoint, result = denoised_fit(split, card, fit_on_every_rank, **options)
    return (checkpoint if context.is_writer else None), result


def _no_checkpoints_for_denoising(card: ModelCard) -> None:
    raise DistributedError(f"--checkpoint-dir: training.denoise={card.training.denoise!r} runs several fits, "
                           "and a checkpoint directory holds one job's state",
                           hint="drop --checkpoint-dir, or set denoise: 0 in the card")


def _no_state_to_checkpoint(card: ModelCard, checkpointing: Checkpointing) -> None:
    what = "--resume" if checkpointing.resume else "--checkpoint-dir"
    raise DistributedError(f"{what}: {card.model.type} is fitted in closed form, in one step: it has no training "
                           "state to checkpoint or resume", hint=f"drop {what}")


def _fit_closed_form(split: Split, card: ModelCard, context: DistContext, ks) -> tuple[Checkpoint | None, TrainResult]:
    """A graph filter fitted over the ranks' users (`edgegnn.distributed.graph_filter`); on rank 0
    the checkpoint, measured by its device model as the one-process fit measures it."""
    from edgegnn.distributed.graph_filter import fit_graph_filter_distributed
    from edgegnn.models.graph_filter import build_module
    from edgegnn.train.api import closed_form_checkpoint

    train = split.train
    pairs = unique_pairs(split)
    partition = agreed(context, lambda: partition_users(np.bincount(pairs[0], minlength=train.num_users),
                                                        context.world_size))
    seed_everything(card.training.seed)
    started = time.perf_counter()
    tables = agreed(context, lambda: fit_graph_filter_distributed(card.model, train.to_csr(),
                                                                  partition.rows_of(context.rank), context,
                                                                  seed=card.training.seed))
    seconds = time.perf_counter() - started
    if tables is None:
        return None, TrainResult(best_epoch=0, epochs_run=0, seconds=seconds, stopped_because="closed-form fit",
                                 history=[], best_metrics={})
    module = build_module(card.model, train.num_users, train.num_items)
    module.load_tables(tables)
    checkpoint, result = closed_form_checkpoint(split, card, module, seconds, ks=ks)
    checkpoint.metrics["distributed"] = _layout(context, partition)
    return checkpoint, result


def _layout(context: DistContext, users: BlockPartition, items: BlockPartition | None = None) -> dict:
    layout = {"world_size": context.world_size, "backend": "gloo",
              "pairs_per_rank": [int(e) for e in users.edges],
              "users_per_rank": [int(n) for n in np.diff(users.bounds)]}
    if items is not None:
        layout["items_per_rank"] = [int(n) for n in np.diff(items.bounds)]
    return layout


def _rank0_value(value: float) -> float:
    shared = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(shared, src=0)
    return float(shared[0])


def _resume(setup: RankSetup, split: Split, directory: Path, job: dict):
    found = complete_checkpoints(directory)
    if not found:
        raise DistributedError(f"{directory}: no complete checkpoint to resume from",
                               hint="drop --resume to start afresh")
    written_world = check_resumable(found[-1], read_progress(found[-1]), job)
    layout = setup.layout
    if written_world != setup.context.world_size:
        layout = ReshardingLayout(setup.layout, *partitions(unique_pairs(split), split, written_world))
        log.info("resharding %s from %d ranks to %d", found[-1], written_world, setup.context.world_size)
    state, best = load_state(found[-1], layout, setup.model, setup.runner.optimizer, setup.runner.generator)
    log.info("resumed from %s (epoch %d)", found[-1], state.epoch)
    return state, best, {"checkpoint": found[-1].name, "epoch": state.epoch, "world_size": written_world}


def _checkpoint_hook(setup: RankSetup, checkpointing: Checkpointing | None, job: dict):
    if checkpointing is None:
        return None
    evaluations = [0]

    def after_evaluation(state: LoopState, best) -> None:
        evaluations[0] += 1
        if evaluations[0] % checkpointing.every == 0:
            save_state(checkpointing.directory, setup.layout, setup.model, setup.runner.optimizer,
                       setup.runner.generator, state, best, job)

    return after_evaluation


def _final_checkpoint(split: Split, card: ModelCard, setup: RankSetup, table: torch.Tensor | None,
                      result: TrainResult, ks, resumed: dict | None) -> Checkpoint | None:
    """On rank 0, the ordinary checkpoint of the gathered table, measured as `fit` measures it;
    its metrics say where the job was resumed from, if it was."""
    from edgegnn.train.api import trained_checkpoint

    if table is None:
        return None
    model = build_model(card.model, split.num_users, split.num_items)
    model.load_state_dict(setup.model.plain_state(table))
    checkpoint = trained_checkpoint(split, card, model, BipartiteGraph.from_interactions(split.train), result, ks=ks)
    checkpoint.metrics["distributed"] = _layout(setup.context, setup.users, setup.items)
    if resumed is not None:
        checkpoint.metrics["distributed"]["resumed_from"] = resumed
    return checkpoint
