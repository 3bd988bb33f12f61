"""The two library calls the CLI makes: `fit` a model card on a split, `evaluate` a checkpoint."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np

from edgegnn.data.interactions import Interactions, Split
from edgegnn.errors import DataError
from edgegnn.kinds import is_trained, kind
from edgegnn.metrics import evaluate_embeddings, popularity_metrics
from edgegnn.models import ModelCard, build_model
from edgegnn.models.graph import BipartiteGraph
from edgegnn.train.checkpoint import Checkpoint, history_as_dicts
from edgegnn.train.trainer import EpochRecord, TrainResult, model_embeddings, seed_everything, train_model

log = logging.getLogger(__name__)


def fit(split: Split, card: ModelCard, *, epochs: int | None = None,
        time_budget: float | None = None, ks=(20,),
        on_epoch: Callable[[int, float], None] | None = None,
        on_evaluate: Callable[[EpochRecord], None] | None = None,
        monitor: Callable | None = None, measure_test: bool = True) -> tuple[Checkpoint, TrainResult]:
    """Train the card's model on `split.train` and measure it on `split.test` (unless not
    `measure_test`: a model selection's trials see validation only).

    Returns the checkpoint (weights of the best validation epoch, test and validation
    metrics, the popularity baseline's test metrics, the curve) and the training result.
    A kind fitted in closed form (graph filters) is fitted once instead (no epochs). With
    `training.denoise` > 0 the card is fitted twice (`edgegnn.train.denoise`).
    """
    if card.training.denoise:                  # a share > 0, or "auto"
        from edgegnn.train.denoise import denoised_fit

        return denoised_fit(split, card, fit, epochs=epochs, time_budget=time_budget, ks=ks, on_epoch=on_epoch,
                            on_evaluate=on_evaluate, monitor=monitor, measure_test=measure_test)
    if not is_trained(card.model.type):
        return _fit_closed_form(split, card, ks=ks, measure_test=measure_test)
    seed_everything(card.training.seed)
    model = build_model(card.model, split.num_users, split.num_items)
    graph = BipartiteGraph.from_interactions(split.train)
    result = train_model(model, graph, split, card.training, epochs=epochs, time_budget=time_budget,
                         on_epoch=on_epoch, on_evaluate=on_evaluate, monitor=monitor)
    return trained_checkpoint(split, card, model, graph, result, ks=ks, measure_test=measure_test), result


def trained_checkpoint(split: Split, card: ModelCard, model, graph: BipartiteGraph, result: TrainResult, *,
                       ks=(20,), measure_test: bool = True) -> Checkpoint:
    """The checkpoint of a trained `model` (holding its best weights) with its test, validation and
    popularity metrics and its curve."""
    model.eval()
    user_emb, item_emb = model_embeddings(model, graph)
    train_csr = split.train.to_csr()
    metrics = {}
    if measure_test:
        metrics["test"] = _embedding_metrics(card, user_emb, item_emb, train_csr, split.test.to_csr(), ks)
    if result.best_metrics:
        metrics["valid"] = result.best_metrics
    if measure_test:
        metrics["popularity"] = popularity_metrics(train_csr, split.test.to_csr(), ks=ks)
    metrics["training"] = {"epochs": result.epochs_run, "best_epoch": result.best_epoch,
                           "seconds": round(result.seconds, 2), "stopped_because": result.stopped_because}
    return Checkpoint(card=card, state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                      train=split.train, metrics=metrics, history=history_as_dicts(result.history),
                      data=split.record)


def _fit_closed_form(split: Split, card: ModelCard, *, ks, measure_test: bool = True) -> tuple[Checkpoint, TrainResult]:
    """Fit a closed-form kind (`edgegnn.kinds`, TRAINED = False) and measure its device model:
    such a kind scores from the history alone, so its metrics are the EdgeModel's."""
    seed_everything(card.training.seed)
    train_csr = split.train.to_csr()
    start = time.perf_counter()
    model = kind(card.model.type).fit(card.model, train_csr, card.training.seed)
    seconds = time.perf_counter() - start
    log.info("fitted %s in %.1f s", card.name, seconds)
    return closed_form_checkpoint(split, card, model, seconds, ks=ks, measure_test=measure_test)


def closed_form_checkpoint(split: Split, card: ModelCard, model, seconds: float, *, ks=(20,),
                           measure_test: bool = True) -> tuple[Checkpoint, TrainResult]:
    """The checkpoint of a fitted closed-form `model`, measured by its device model (test,
    validation, the popularity baseline), and its TrainResult."""
    from edgegnn.edge_eval import evaluate_edge_model

    train_csr = split.train.to_csr()
    checkpoint = Checkpoint(card=card, state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                            train=split.train, data=split.record)
    edge = kind(card.model.type).fold(model, None, split.train.item_ids)   # the fitted module, as it is
    metrics = {"test": evaluate_edge_model(edge, train_csr, split.test.to_csr(), ks=ks)} if measure_test else {}
    valid = {}
    if split.valid is not None and len(split.valid):
        valid = evaluate_edge_model(edge, train_csr, split.valid.to_csr(), ks=ks)
        metrics["valid"] = valid
    if measure_test:
        metrics["popularity"] = popularity_metrics(train_csr, split.test.to_csr(), ks=ks)
    metrics["training"] = {"epochs": 0, "best_epoch": 0, "seconds": round(seconds, 2),
                           "stopped_because": "closed-form fit"}
    checkpoint.metrics = metrics
    return checkpoint, TrainResult(best_epoch=0, epochs_run=0, seconds=seconds, stopped_because="closed-form fit",
                                   history=[], best_metrics=valid)


def remap(interactions: Interactions, user_ids: np.ndarray,
          item_ids: np.ndarray) -> tuple[Interactions, dict[str, int]]:
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
    trained with are excluded from each user's ranking. "popularity" holds the same metrics of
    the popularity baseline (the most interacted training items) on the same users.
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
    metrics = checkpoint_metrics(checkpoint, truth.to_csr(), ks=ks)
    metrics["popularity"] = popularity_metrics(checkpoint.train.to_csr(), truth.to_csr(), ks=ks)
    metrics.update({f"skipped: {reason}": count for reason, count in skipped.items()})
    return metrics


def checkpoint_metrics(checkpoint: Checkpoint, truth_csr, *, ks=(20,)) -> dict[str, float]:
    """Full-ranking metrics of a checkpoint's model on held-out `truth_csr` [U, I] (its id space):
    a trained kind by its final embeddings, a closed-form kind by its device model (the same
    scores: it has no user parameters)."""
    train_csr = checkpoint.train.to_csr()
    if not is_trained(checkpoint.card.model.type):
        from edgegnn.edge_eval import evaluate_edge_model
        from edgegnn.fold import fold

        return evaluate_edge_model(fold(checkpoint), train_csr, truth_csr, ks=ks)
    model, graph = checkpoint.build()
    user_emb, item_emb = model_embeddings(model, graph)
    return _embedding_metrics(checkpoint.card, user_emb, item_emb, train_csr, truth_csr, ks)


def _embedding_metrics(card: ModelCard, user_emb, item_emb, train_csr, truth_csr, ks) -> dict[str, float]:
    """Full-ranking metrics of dot-product embeddings; for a "bce" card (link prediction with a
    probability, σ(e_u · e_i)) also AUC and log-loss on sampled pairs (`edgegnn.link_prediction`)."""
    metrics = evaluate_embeddings(user_emb, item_emb, train_csr, truth_csr, ks=ks)
    if card.training.loss == "bce":
        from edgegnn.link_prediction import embedding_pairs, link_metrics

        metrics.update(link_metrics(embedding_pairs(user_emb, item_emb), train_csr, truth_csr,
                                    negatives=card.training.negatives, seed=card.training.seed))
    return metrics


def override_training(card: ModelCard, **changes) -> ModelCard:
    """The card with some training settings replaced (None values are ignored)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return card
    training = dataclasses.replace(card.training, **changes)
    return dataclasses.replace(card, training=training)
