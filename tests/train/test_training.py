"""Training learns, is deterministic, stops early, and honours time budgets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edgegnn.metrics import evaluate_scorer
from edgegnn.models import LightGCNConfig, ModelCard, SAGEConfig, TrainConfig
from edgegnn.train.api import fit


def _popularity_recall(split) -> float:
    popularity = split.train.item_degrees().astype(np.float32)
    return evaluate_scorer(lambda users: np.tile(popularity, (len(users), 1)),
                           split.train.to_csr(), split.test.to_csr())["recall@20"]


# An untrained model ranks at random (Recall@20 ~ 0.03 here); popularity reaches ~0.31.
@pytest.mark.parametrize("model, training, margin", [
    (LightGCNConfig(embedding_dim=32), TrainConfig(epochs=150, eval_every=10, patience=3), 1.3),
    (LightGCNConfig(embedding_dim=32), TrainConfig(loss="bpr", epochs=30, batch_size=1024,
                                                   learning_rate=0.01, eval_every=5, patience=3), 1.1),
    (SAGEConfig(embedding_dim=32, hidden_dim=32),
     TrainConfig(epochs=150, learning_rate=0.005, eval_every=10, patience=5), 1.05),
], ids=["lightgcn-whole-data", "lightgcn-bpr", "sage-whole-data"])
def test_training_beats_popularity(small_split, model, training, margin):
    card = ModelCard(name="t", model=model, training=training)
    checkpoint, result = fit(small_split, card)
    recall = checkpoint.metrics["test"]["recall@20"]
    assert recall > margin * _popularity_recall(small_split), (recall, result.history[-1])
    assert result.history and result.history[-1].metrics  # validation was evaluated


@pytest.mark.parametrize("optimizer, lr, momentum, torch_class", [
    ("adagrad", 0.05, 0.0, torch.optim.Adagrad), ("rmsprop", 0.005, 0.0, torch.optim.RMSprop),
    ("sgd", 10.0, 0.9, torch.optim.SGD),
])
def test_each_optimizer_trains_and_is_the_one_named(small_split, optimizer, lr, momentum, torch_class):
    from edgegnn.models import build_model
    from edgegnn.models.graph import BipartiteGraph
    from edgegnn.train.trainer import StepRunner

    training = TrainConfig(optimizer=optimizer, learning_rate=lr, momentum=momentum, epochs=150, eval_every=10,
                           patience=3)
    card = ModelCard(name="t", model=LightGCNConfig(embedding_dim=32), training=training)
    runner = StepRunner(build_model(card.model, small_split.num_users, small_split.num_items),
                        BipartiteGraph.from_interactions(small_split.train), small_split.train, training)
    assert type(runner.optimizer) is torch_class and runner.optimizer.defaults["lr"] == lr
    checkpoint, _ = fit(small_split, card)
    assert checkpoint.metrics["test"]["recall@20"] > 1.2 * _popularity_recall(small_split)
    assert checkpoint.card.training.optimizer == optimizer


def test_same_seed_same_weights_different_seed_different(small_split):
    card = ModelCard(name="t", model=LightGCNConfig(embedding_dim=8), training=TrainConfig(epochs=5))
    a, _ = fit(small_split, card)
    b, _ = fit(small_split, card)
    c, _ = fit(small_split, dataclasses.replace(card, training=TrainConfig(epochs=5, seed=1)))
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key])
    assert not torch.equal(a.state_dict["gnn.embedding.weight"], c.state_dict["gnn.embedding.weight"])


def test_early_stopping_keeps_best_validation_state(small_split):
    # A huge learning rate makes validation recall fall after the first evaluations.
    card = ModelCard(name="t", model=LightGCNConfig(embedding_dim=16),
                     training=TrainConfig(epochs=500, learning_rate=0.05, eval_every=2, patience=2))
    checkpoint, result = fit(small_split, card)
    assert result.stopped_because.startswith("early stopping")
    assert result.epochs_run < 500
    best = max(result.history, key=lambda r: r.metrics["recall@20"])
    assert result.best_epoch == best.epoch
    assert checkpoint.metrics["valid"]["recall@20"] == best.metrics["recall@20"]


def test_time_budget_stops_training(small_split):
    card = ModelCard(name="t", model=LightGCNConfig(embedding_dim=8), training=TrainConfig(epochs=100000))
    _, result = fit(small_split, card, time_budget=0.5)
    assert result.stopped_because == "time budget"
    assert result.epochs_run < 100000
