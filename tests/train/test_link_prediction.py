"""Link prediction with a probability: the BCE loss, AUC / log-loss, and calibrated artifacts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from edgegnn.link_prediction import fit_calibration, link_metrics, log_loss, sampled_pairs
from edgegnn.models import load_model_card
from edgegnn.train.losses import bce_loss
from tests.conftest import REPO


def test_bce_loss_is_torchs_binary_cross_entropy_over_positives_and_negatives():
    generator = torch.Generator().manual_seed(0)
    users, pos, neg = (torch.randn(shape, generator=generator) for shape in ((6, 3), (6, 3), (6, 4, 3)))
    logits = torch.cat([(users * pos).sum(1), torch.einsum("bd,bkd->bk", users, neg).ravel()])
    labels = torch.cat([torch.ones(6), torch.zeros(24)])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(bce_loss(users, pos, neg), expected)


def _csr(rows, shape=(3, 50)):
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    return sp.csr_matrix((np.ones(len(users)), (users, np.concatenate(rows))), shape=shape)


def test_sampled_negatives_are_never_the_users_items():
    train, truth = _csr([[0, 1, 2], [3, 4], [5]]), _csr([[10], [11, 12], [13]])
    users, positives, drawn = sampled_pairs(train, truth, 8, seed=0)
    assert users.tolist() == [0, 1, 1, 2] and positives.tolist() == [10, 11, 12, 13]
    known = (train + truth).toarray() > 0
    assert not known[users[:, None], drawn].any()


def test_auc_and_log_loss_are_the_textbook_ones():
    from sklearn.metrics import log_loss as sklearn_log_loss

    train, truth = _csr([[0, 1, 2], [3, 4], [5]]), _csr([[10], [11, 12], [13]])
    truth_dense = truth.toarray()
    perfect = link_metrics(lambda u, i: truth_dense[u, i] * 3.0 - 1.5, train, truth, negatives=8)
    assert perfect["auc"] == 1.0 and perfect["logloss"] < perfect["logloss_constant"]
    inverted = link_metrics(lambda u, i: -truth_dense[u, i], train, truth, negatives=8)
    assert inverted["auc"] == 0.0
    logits, labels = np.array([2.0, -1.0, 0.5, -3.0]), np.array([1.0, 0.0, 0.0, 1.0])
    assert log_loss(logits, labels) == pytest.approx(sklearn_log_loss(labels, 1 / (1 + np.exp(-logits))))


def test_platt_scaling_recovers_the_calibration_of_logistic_data():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-(2.0 * scores - 1.0)))).astype(float)
    scale, offset = fit_calibration(scores, labels)
    assert scale == pytest.approx(2.0, abs=0.1) and offset == pytest.approx(-1.0, abs=0.1)


@pytest.fixture(scope="module")
def bce_checkpoint(small_split):
    from edgegnn.train.api import fit

    card = load_model_card(REPO / "models" / "lightgcn-bce.yaml")
    card = dataclasses.replace(card, training=dataclasses.replace(card.training, epochs=15, batch_size=2048,
                                                                  learning_rate=0.01))
    checkpoint, _ = fit(small_split, card)
    return checkpoint


def test_a_bce_model_ranks_and_separates_likes(bce_checkpoint):
    test = bce_checkpoint.metrics["test"]
    assert test["recall@20"] > bce_checkpoint.metrics["popularity"]["recall@20"]
    assert test["auc"] > 0.75 and test["pairs"] > 1000


def test_an_artifact_returns_calibrated_probabilities(bce_checkpoint, small_split, tmp_path):
    from edgegnn.export import export
    from edgegnn.runtime import Recommender, RecommendError

    out = export(bce_checkpoint, "cpu-x86_64", out_dir=tmp_path / "onnx", split=small_split, max_users=300,
                 emulators=None)
    record = json.loads((out / "manifest.json").read_text())["probability"]
    assert record["negatives_per_positive"] == 4 and record["scale"] > 0
    assert record["test"]["logloss"] < record["test"]["logloss_constant"] and record["test"]["auc"] > 0.75
    recommender = Recommender.open(out)
    history = [str(i) for i in small_split.train.item_ids[small_split.train.items[small_split.train.users == 0]]]
    scored = recommender.recommend(history, k=10)
    liked = recommender.recommend(history, k=10, probabilities=True)
    assert liked.ids == scored.ids
    p = np.array([value for _, value in liked])
    a, b = recommender.calibration
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(a * np.array([s for _, s in scored]) + b))), rtol=1e-6)
    assert (np.diff(p) <= 0).all() and ((p > 0) & (p < 1)).all()

    no_valid = dataclasses.replace(small_split, valid=None)
    bare = Recommender.open(export(bce_checkpoint, "cpu-x86_64", out_dir=tmp_path / "bare", split=no_valid,
                                   max_users=300, emulators=None))
    assert bare.calibration is None
    with pytest.raises(RecommendError, match="no probability calibration"):
        bare.recommend(history, k=5, probabilities=True)
