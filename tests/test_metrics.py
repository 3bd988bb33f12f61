"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from edgegnn.metrics import evaluate_embeddings, evaluate_scorer, top_k


def test_top_k_orders_best_first_and_handles_ties_stably():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -np.inf]], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [[1, 3, 2]]


def test_metrics_match_hand_computation():
    # 2 users, 5 items. Scores fixed so the top-2 lists are known.
    scores = np.array([[5, 4, 3, 2, 1], [1, 2, 3, 4, 5]], dtype=np.float32)
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    # user 0: item 0 excluded (train) -> top2 = [1, 2]; truth {2, 4} -> hit at rank 2
    # user 1: top2 = [4, 3]; truth {4} -> hit at rank 1
    truth = sp.csr_matrix(np.array([[0, 0, 1, 0, 1], [0, 0, 0, 0, 1]], dtype=np.float32))
    m = evaluate_scorer(lambda users: scores[users], train, truth, ks=(2,))
    recall = (1 / 2 + 1 / 1) / 2
    ndcg_u0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    ndcg = (ndcg_u0 + 1.0) / 2
    assert math.isclose(m["recall@2"], recall)
    assert math.isclose(m["ndcg@2"], ndcg, rel_tol=1e-6)
    assert math.isclose(m["precision@2"], (1 / 2 + 1 / 2) / 2)
    assert m["hitrate@2"] == 1.0 and m["users"] == 2


def test_users_without_held_out_items_are_not_counted_and_chunking_is_invisible():
    rng = np.random.default_rng(0)
    user_emb, item_emb = rng.normal(size=(50, 8)), rng.normal(size=(40, 8))
    train = sp.random(50, 40, density=0.1, random_state=1, format="csr")
    truth = sp.random(50, 40, density=0.05, random_state=2, format="csr")
    truth = truth - truth.multiply(train > 0)
    truth.eliminate_zeros()
    whole = evaluate_embeddings(user_emb, item_emb, train, truth, ks=(5, 10), chunk_size=1000)
    chunked = evaluate_embeddings(user_emb, item_emb, train, truth, ks=(5, 10), chunk_size=7)
    assert whole == pytest.approx(chunked, rel=1e-12)
    assert whole["users"] == int((np.diff(truth.indptr) > 0).sum()) < 50


def test_padding_minus_one_never_hits():
    from edgegnn.metrics import hits_matrix

    truth = sp.csr_matrix(np.array([[0, 0, 1], [1, 0, 0]], dtype=np.float32))
    top = np.array([[2, -1], [-1, 1]])  # -1 must not read the last column (item 2) as a hit
    assert hits_matrix(top, truth).tolist() == [[True, False], [False, False]]
