"""Training loop: full-batch whole-data steps or BPR mini-batches, early stopping on validation.

Every step propagates over the whole graph (a LightGCN needs every node's L-hop
neighbourhood), so the cost of an epoch is (number of steps) x (one propagation forward and
backward). The whole-data loss takes one step per epoch; BPR takes |R| / batch_size.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from edgegnn.configs import check_range
from edgegnn.data.interactions import Interactions, Split
from edgegnn.errors import ConfigError
from edgegnn.metrics import evaluate_embeddings
from edgegnn.models.card import TrainConfig
from edgegnn.models.graph import BipartiteGraph
from edgegnn.train.losses import bce_loss, bpr_loss, l2_penalty, whole_data_loss

log = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    """One evaluated point of the training curve."""

    epoch: int
    seconds: float  # training wall-clock so far, evaluation time excluded
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)  # on validation, if evaluated
    monitored: dict[str, float] = field(default_factory=dict)  # from the `monitor` callback


@dataclass
class TrainResult:
    """What a training run produced: the best state and its curve."""

    best_epoch: int
    epochs_run: int
    seconds: float
    stopped_because: str
    history: list[EpochRecord]
    best_metrics: dict[str, float]


def seed_everything(seed: int) -> None:
    """Seed torch and numpy, and make torch pick deterministic kernels.

    Without deterministic kernels the scatter-add in the backward of an embedding gather
    sums in thread order, and two runs with one seed differed by ~1e-7 after one epoch.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def model_embeddings(model, graph: BipartiteGraph) -> tuple[np.ndarray, np.ndarray]:
    """Final (user [U, d], item [I, d]) embeddings as float32 numpy arrays."""
    with torch.no_grad():
        users, items = model(graph)
    return users.detach().numpy(), items.detach().numpy()       # a kind may return a parameter itself


def evaluate_model(model, graph: BipartiteGraph, train: Interactions, truth: Interactions,
                   *, ks=(20,), users: np.ndarray | None = None) -> dict[str, float]:
    """Full-ranking metrics of a torch recommender on held-out `truth` (train items excluded)."""
    user_emb, item_emb = model_embeddings(model, graph)
    return evaluate_embeddings(user_emb, item_emb, train.to_csr(), truth.to_csr(), ks=ks, users=users)


def make_optimizer(parameters, config: TrainConfig) -> torch.optim.Optimizer:
    """torch.optim's optimizer the card names, at its learning rate (and momentum, for SGD and
    RMSprop); every other setting is torch's default. The L2 penalty is part of the loss (on the
    ego embeddings only), not the optimizer's weight decay."""
    parameters = list(parameters)
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.learning_rate)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(parameters, lr=config.learning_rate)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=config.learning_rate, momentum=config.momentum)
    return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum)


def negative_weights(train: Interactions, config: TrainConfig) -> torch.Tensor:
    """c_i, float32 [I]: the whole-data loss's weight of an unobserved pair with item i,
    ∝ popularity^exponent and averaging `negative_weight`."""
    popularity = np.maximum(train.item_degrees(), 1).astype(np.float64)
    weights = popularity ** config.popularity_exponent
    weights = weights / weights.mean() * config.negative_weight
    return torch.from_numpy(weights.astype(np.float32))


class EpochRunner:
    """One epoch of the configured loss: one whole-data step, or BPR / BCE steps over a shuffled
    pass of the positive pairs. Subclasses give the steps, `num_pairs` and `out_of_time`."""

    config: TrainConfig
    generator: torch.Generator

    def run_epoch(self, deadline: float | None) -> float:
        if self.config.loss == "whole-data":
            return self.whole_data_step()
        return self.batched_epoch(self.bce_step if self.config.loss == "bce" else self.bpr_step, deadline)

    def batched_epoch(self, step: Callable[[torch.Tensor], float], deadline: float | None) -> float:
        """`step` (BPR or BCE) over a shuffled pass of the positives; returns the mean batch loss."""
        order = torch.randperm(self.num_pairs, generator=self.generator)
        losses = []
        for start in range(0, len(order), self.config.batch_size):
            losses.append(step(order[start:start + self.config.batch_size]))
            if deadline is not None and self.out_of_time(deadline):
                break
        return float(np.mean(losses))

    def out_of_time(self, deadline: float) -> bool:
        return time.perf_counter() >= deadline


class StepRunner(EpochRunner):
    """Runs one epoch of the configured loss; owns the sampling state."""

    def __init__(self, model, graph: BipartiteGraph, train: Interactions, config: TrainConfig):
        self.model, self.graph, self.config = model, graph, config
        pairs = np.unique(np.stack([train.users, train.items]), axis=1)
        self.users = torch.from_numpy(pairs[0]).long()
        self.items = torch.from_numpy(pairs[1]).long()
        self.num_items = train.num_items
        self.negative_weight = negative_weights(train, config)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = make_optimizer(model.parameters(), config)

    @property
    def num_pairs(self) -> int:
        return len(self.users)

    def _step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def whole_data_step(self) -> float:
        """One full-batch step of the whole-data loss (= one epoch)."""
        user_emb, item_emb = self.model(self.graph)
        loss = whole_data_loss(user_emb, item_emb, self.users, self.items, self.negative_weight)
        ego = self.model.regularized_parameters()
        penalty = self.config.l2 * sum(p.square().sum() for p in ego) / len(self.users)
        return self._step(loss + penalty)

    def bpr_step(self, batch: torch.Tensor) -> float:
        """One BPR step on the positive pairs `batch` (int64 [B] indices), one negative each."""
        users, pos = self.users[batch], self.items[batch]
        neg = torch.randint(self.num_items, (len(batch),), generator=self.generator)
        user_emb, item_emb = self.model(self.graph)
        loss = bpr_loss(user_emb[users], item_emb[pos], item_emb[neg])
        penalty = l2_penalty(self.model.touched_ego(users, torch.cat([pos, neg])), len(batch))
        return self._step(loss + self.config.l2 * penalty)

    def bce_step(self, batch: torch.Tensor) -> float:
        """One BCE step on the positive pairs `batch`, `negatives` uniform negatives each."""
        users, pos = self.users[batch], self.items[batch]
        neg = torch.randint(self.num_items, (len(batch), self.config.negatives), generator=self.generator)
        user_emb, item_emb = self.model(self.graph)
        loss = bce_loss(user_emb[users], item_emb[pos], item_emb[neg])
        penalty = l2_penalty(self.model.touched_ego(users, torch.cat([pos, neg.reshape(-1)])), len(batch))
        return self._step(loss + self.config.l2 * penalty)


@dataclass
class LoopState:
    """Where a training loop stands: enough to go on from here (`edgegnn.distributed.state` saves it)."""

    epoch: int = 0                       # epochs done
    trained_seconds: float = 0.0
    history: list[EpochRecord] = field(default_factory=list)
    best_score: float = -1.0
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    stale: int = 0                       # evaluations since the best one


@dataclass
class LoopHooks:
    """What a training loop asks of the model it trains.

    Attributes:
        validate: validation metrics of the current model ({"recall@K": ...}), or None without a
            validation split.
        snapshot: a copy of the current weights (kept as the best state); restore: put one back.
        monitor: extra metrics stored in `EpochRecord.monitored`, or None.
        shared_seconds: the training seconds every process agrees on (a distributed job takes
            rank 0's clock); the identity in one process.
        on_epoch: called with (epoch, loss) after every epoch.
        on_evaluate: called with each evaluated `EpochRecord`.
        after_evaluation: called with the loop state and the best snapshot after each evaluation
            (a distributed job checkpoints there).
    """

    validate: Callable[[], dict[str, float]] | None
    snapshot: Callable[[], object]
    restore: Callable[[object], None]
    monitor: Callable[[], dict] | None = None
    shared_seconds: Callable[[float], float] = float
    on_epoch: Callable[[int, float], None] | None = None
    on_evaluate: Callable[[EpochRecord], None] | None = None
    after_evaluation: Callable[[LoopState, object], None] | None = None


def run_training_loop(runner, config: TrainConfig, total_epochs: int, time_budget: float | None,
                      hooks: LoopHooks, state: LoopState | None = None,
                      best: object = None) -> TrainResult:
    """Epochs of `runner.run_epoch(deadline) -> loss` from `state` (a fresh one by default), with
    evaluation every `config.eval_every` epochs, early stopping on validation Recall@K and a
    time budget; leaves the model holding its best state (`hooks.restore`), or its last state
    without validation."""
    state = state if state is not None else LoopState()
    metric = f"recall@{config.eval_k}"
    stopped = "epochs"
    epoch = state.epoch
    for epoch in range(state.epoch + 1, total_epochs + 1):
        started = time.perf_counter()
        deadline = None if time_budget is None else started + (time_budget - state.trained_seconds)
        loss = runner.run_epoch(deadline)
        state.trained_seconds = hooks.shared_seconds(state.trained_seconds + time.perf_counter() - started)
        state.epoch = epoch
        if hooks.on_epoch is not None:
            hooks.on_epoch(epoch, loss)
        if not np.isfinite(loss):
            stopped = "loss is not finite (lower the learning rate)"
            break
        out_of_time = time_budget is not None and state.trained_seconds >= time_budget
        if epoch % config.eval_every and epoch != total_epochs and not out_of_time:
            continue
        record = EpochRecord(epoch, state.trained_seconds, loss)
        if hooks.validate is not None:
            record.metrics = hooks.validate()
        if hooks.monitor is not None:
            record.monitored = hooks.monitor()
        state.history.append(record)
        if hooks.on_evaluate is not None:
            hooks.on_evaluate(record)
        if hooks.validate is None:
            state.best_epoch = epoch  # nothing to select on: the last state is the result
        elif record.metrics[metric] > state.best_score:
            state.best_score, state.best_epoch, state.best_metrics = record.metrics[metric], epoch, record.metrics
            best, state.stale = hooks.snapshot(), 0
        else:
            state.stale += 1
        if hooks.after_evaluation is not None:
            hooks.after_evaluation(state, best)
        if out_of_time:
            stopped = "time budget"
            break
        if state.stale >= config.patience:
            stopped = f"early stopping (no better validation {metric} in {state.stale} evaluations)"
            break
    if best is not None:
        hooks.restore(best)
    log.info("trained %d epochs in %.1f s; best epoch %d; stopped by %s",
             epoch, state.trained_seconds, state.best_epoch, stopped)
    return TrainResult(best_epoch=state.best_epoch, epochs_run=epoch, seconds=state.trained_seconds,
                       stopped_because=stopped, history=state.history, best_metrics=state.best_metrics)


def train_model(model, graph: BipartiteGraph, split: Split, config: TrainConfig, *,
                epochs: int | None = None, time_budget: float | None = None,
                on_epoch: Callable[[int, float], None] | None = None,
                on_evaluate: Callable[[EpochRecord], None] | None = None,
                monitor: Callable[[torch.nn.Module, BipartiteGraph], dict] | None = None) -> TrainResult:
    """Train `model` in place and leave it holding its best weights.

    Args:
        model: a recommender module (`forward(graph) -> (users [U,d], items [I,d])`).
        graph: the training graph (built from `split.train`).
        split: train / valid / test; valid drives early stopping when present.
        config: loss, optimizer and stopping settings.
        epochs: overrides `config.epochs`.
        time_budget: stop after this many seconds of training (evaluation excluded).
        on_epoch: called after every epoch with (epoch, loss), e.g. to advance a progress bar.
        on_evaluate: called with each evaluated `EpochRecord`.
        monitor: called at each evaluation with (model, graph); its dict is stored in
            `EpochRecord.monitored` (benchmarks use it to trace test metrics over time).
    Returns:
        The curve and where it stopped; the model holds the best validation state
        (or the last state when there is no validation split).
    """
    check_loop_settings(epochs, time_budget)
    seed_everything(config.seed)
    runner = StepRunner(model, graph, split.train, config)
    train_csr = split.train.to_csr()
    valid_csr = split.valid.to_csr() if split.valid is not None and len(split.valid) else None

    def validate() -> dict[str, float]:
        model.eval()
        user_emb, item_emb = model_embeddings(model, graph)
        model.train()
        return evaluate_embeddings(user_emb, item_emb, train_csr, valid_csr, ks=(config.eval_k,))

    def monitored() -> dict:
        model.eval()
        values = monitor(model, graph)
        model.train()
        return values

    hooks = LoopHooks(validate=validate if valid_csr is not None else None,
                      snapshot=lambda: copy.deepcopy(model.state_dict()), restore=model.load_state_dict,
                      monitor=monitored if monitor is not None else None, on_epoch=on_epoch, on_evaluate=on_evaluate)
    model.train()
    return run_training_loop(runner, config, epochs if epochs is not None else config.epochs, time_budget, hooks)


def check_loop_settings(epochs: int | None, time_budget: float | None) -> None:
    """A ConfigError for epochs < 1 or a time budget <= 0."""
    if epochs is not None:     # an untrained model must never be written as if it were trained
        check_range("training", "epochs", epochs, low=1)
    if time_budget is not None and not time_budget > 0:
        raise ConfigError("time_budget", time_budget, "must be > 0 seconds")
