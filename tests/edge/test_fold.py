"""The fold is exact for training users and sensible for new users."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.edge_eval import evaluate_edge_model, histories_from_csr
from edgegnn.fold import fold, user_bases
from edgegnn.metrics import evaluate_scorer, top_k
from edgegnn.models import LightGCNConfig, ModelCard, SAGEConfig, TrainConfig
from edgegnn.train.api import fit
from edgegnn.train.trainer import model_embeddings


@pytest.fixture(scope="module", params=["lightgcn", "sage"])
def trained(request, small_split):
    if request.param == "lightgcn":
        model, training = LightGCNConfig(embedding_dim=32), TrainConfig(epochs=150)
    else:
        model, training = SAGEConfig(embedding_dim=32, hidden_dim=16), TrainConfig(epochs=150, learning_rate=0.005)
    checkpoint, _ = fit(small_split, ModelCard(name=request.param, model=model, training=training))
    return checkpoint


def test_fold_reproduces_trained_user_embeddings_and_rankings(trained):
    edge = fold(trained)
    model, graph = trained.build()
    user_emb, item_emb = model_embeddings(model, graph)
    train_csr = trained.train.to_csr()
    histories = histories_from_csr(train_csr)
    users = np.flatnonzero(np.diff(train_csr.indptr) > 0)
    device = edge.encode([histories[u] for u in users], user_bases(trained)[users])
    np.testing.assert_allclose(device, user_emb[users], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(edge.tensors["item"].to_dense(), item_emb, rtol=1e-5, atol=1e-6)
    device_top = top_k(edge.score(device), 20)
    server_top = top_k(user_emb[users] @ item_emb.T, 20)
    assert (device_top == server_top).mean() > 0.999


def test_new_users_get_sensible_recommendations(trained, small_split):
    """Without e_u⁰ (a new user with the same history) quality stays far above popularity."""
    edge = fold(trained)
    train_csr, test_csr = small_split.train.to_csr(), small_split.test.to_csr()
    as_new = evaluate_edge_model(edge, train_csr, test_csr)["recall@20"]
    known = evaluate_edge_model(edge, train_csr, test_csr, user_base=user_bases(trained))["recall@20"]
    popularity = small_split.train.item_degrees().astype(np.float32)
    pop = evaluate_scorer(lambda u: np.tile(popularity, (len(u), 1)), train_csr, test_csr)["recall@20"]
    assert known == pytest.approx(trained.metrics["test"]["recall@20"], rel=1e-3)
    assert as_new > pop
    assert as_new > 0.8 * known


def test_a_new_user_with_five_items_gets_their_other_items_recommended(small_split):
    """Give the device 5 of a user's items (no e_u⁰): the top-20 should find the user's other
    items far more often than the most popular items do."""
    card = ModelCard(name="l", model=LightGCNConfig(embedding_dim=32), training=TrainConfig(epochs=150))
    edge = fold(fit(small_split, card)[0])
    train_csr, test_csr = small_split.train.to_csr(), small_split.test.to_csr()
    everything = (train_csr + test_csr).tocsr()
    rng = np.random.default_rng(0)
    users = [u for u in range(small_split.num_users) if everything[u].nnz >= 15][:200]
    histories = [rng.choice(everything[u].indices, 5, replace=False) for u in users]
    scores = edge.score(edge.encode(histories))
    popularity = np.tile(small_split.train.item_degrees().astype(np.float32), (len(users), 1))
    for row, history in enumerate(histories):
        scores[row, history] = popularity[row, history] = -np.inf

    def hits(ranking: np.ndarray) -> float:
        return float(np.mean([np.isin(top, everything[u].indices).mean()
                              for u, top in zip(users, top_k(ranking, 20))]))

    assert len(users) == 200
    assert hits(scores) > 1.25 * hits(popularity), (hits(scores), hits(popularity))
