"""The two library calls the CLI makes: `fit` a model card on a split, `evaluate` a checkpoint."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np

from edgegnn.data.interactions import Interactions, Split
from edgegnn.errors import DataError
from edgegnn.metrics import evaluate_embeddings
from edgegnn.models import ModelCard, build_model
from edgegnn.models.graph import BipartiteGraph
from edgegnn.train.checkpoint import Checkpoint, history_as_dicts
from edgegnn.train.trainer import EpochRecord, TrainResult, model_embeddings, seed_everything, train_model

log = logging.getLogger(__name__)


def fit(split: Split, card: ModelCard, *, epochs: int | None = None,
        time_budget: float | None = None, ks=(20,),
        on_epoch: Callable[[int, float], None] | None = None,
        on_evaluate: Callable[[EpochRecord], None] | None = None,
        monitor: Callable | None = None) -> tuple[Checkpoint, TrainResult]:
    """Train the card's model on `split.train` and measure it on `split.test`.

    Returns the checkpoint (weights of the best validation epoch, test and validation
    metrics, the curve) and the training result.
    """
    seed_everything(card.training.seed)
    model = build_model(card.model, split.num_users, split.num_items)
    graph = BipartiteGraph.from_interactions(split.train)
    result = train_model(model, graph, split, card.training, epochs=epochs, time_budget=time_budget,
                         on_epoch=on_epoch, on_evaluate=on_evaluate, monitor=monitor)
    model.eval()
    user_emb, item_emb = model_embeddings(model, graph)
    train_csr = split.train.to_csr()
    metrics = {"test": evaluate_embeddings(user_emb, item_emb, train_csr, split.test.to_csr(), ks=ks)}
    if result.best_metrics:
        metrics["valid"] = result.best_metrics
    metrics["training"] = {"epochs": result.epochs_run, "best_epoch": result.best_epoch,
                           "seconds": round(result.seconds, 2), "stopped_because": result.stopped_because}
    checkpoint = Checkpoint(card=card, state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                            train=split.train, metrics=metrics, history=history_as_dicts(result.history),
                            data=split.record)
    return checkpoint, result


def remap(interactions: Interactions, user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[Interactions, dict[str, int]]:
    """Express `interactions` in another id space (by raw id); rows with unknown ids are dropped.

    Returns the remapped interactions and counts of dropped rows by reason.
    """
    user_index = {raw: i for i, raw in enumerate(user_ids)}
    item_index = {raw: i for i, raw in enumerate(item_ids)}
    users = np.array([user_index.get(raw, -1) for raw in interactions.user_ids], dtype=np.int64)[interactions.users]
    items = np.array([item_index.get(raw, -1) for raw in interactions.item_ids], dtype=np.int64)[interactions.items]
    keep = (users >= 0) & (items >= 0)
    skipped = {}
    if (users < 0).any():
        skipped["rows with a user the model has not seen"] = int((users < 0).sum())
    if ((items < 0) & (users >= 0)).any():
        skipped["rows with an item the model has not seen"] = int(((items < 0) & (users >= 0)).sum())
    remapped = Interactions(users=users[keep], items=items[keep], user_ids=np.asarray(user_ids),
                            item_ids=np.asarray(item_ids))
    return remapped, skipped


def evaluate(checkpoint: Checkpoint, split: Split, *, ks=(20,), on: str = "test") -> dict[str, float]:
    """Full-ranking metrics of a checkpoint on the split's `test` (or `valid`) interactions.

    The split is mapped into the checkpoint's id space by raw ids; items the model was
    trained with are excluded from each user's ranking.
    """
    truth = split.test if on == "test" else split.valid
    if truth is None or len(truth) == 0:
        raise DataError(f"the data has no {on} interactions to evaluate on")
    truth, skipped = remap(truth, checkpoint.train.user_ids, checkpoint.train.item_ids)
    for reason, count in skipped.items():
        log.warning("evaluation skipped %d %s", count, reason)
    if len(truth) == 0:
        raise DataError(f"none of the {on} interactions use users and items the model knows",
                        hint="evaluate on the data the model was trained on")
    model, graph = checkpoint.build()
    user_emb, item_emb = model_embeddings(model, graph)
    metrics = evaluate_embeddings(user_emb, item_emb, checkpoint.train.to_csr(), truth.to_csr(), ks=ks)
    metrics.update({f"skipped: {reason}": count for reason, count in skipped.items()})
    return metrics


def override_training(card: ModelCard, **changes) -> ModelCard:
    """The card with some training settings replaced (None values are ignored)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return card
    training = dataclasses.replace(card.training, **changes)
    return dataclasses.replace(card, training=training)
