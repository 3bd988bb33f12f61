"""Full-ranking metrics for top-K recommendation: Recall, NDCG, Precision, HitRate @K.

Pure numpy (the device-side simulations use it too, so it must not need torch). Scores
are computed in chunks of users so memory stays bounded at `chunk_size x num_items`
floats whatever the catalog size.

For a user u with held-out items T_u and the top-K list L_u (training items excluded):
    Recall@K    = |L_u ∩ T_u| / |T_u|
    Precision@K = |L_u ∩ T_u| / K
    HitRate@K   = 1 if |L_u ∩ T_u| > 0 else 0
    NDCG@K      = DCG / IDCG, DCG = Σ_{r<K} hit_r / log2(r + 2), IDCG the DCG of min(|T_u|, K) hits.
Each metric is averaged over users with at least one held-out item (as in the LightGCN
paper's evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

METRIC_NAMES = ("recall", "ndcg", "precision", "hitrate")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores per row, best first.

    Args:
        scores: float [n, num_items]; excluded items set to -inf.
        k: list length, 1 <= k <= num_items.
    Returns:
        int64 [n, k]; -1 where a row has fewer than k items above -inf (excluded items, or items
        inverted lists did not score, are never recommended: -1 never hits).
    """
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    return np.where(np.isneginf(np.take_along_axis(part_scores, order, axis=1)), -1, top)


def hits_matrix(top_items: np.ndarray, truth_rows) -> np.ndarray:
    """bool [n, k]: whether each recommended item is in the user's held-out set.

    Args:
        top_items: int [n, k] recommended item indices; -1 pads a short list and never hits.
        truth_rows: scipy CSR [n, num_items] of held-out items for the same n users.
    """
    n, k = top_items.shape
    rows = np.repeat(np.arange(n), k)
    found = np.asarray(truth_rows[rows, np.maximum(top_items, 0).ravel()]).reshape(n, k) > 0
    return found & (top_items >= 0)


def ranking_metrics_sums(top_items: np.ndarray, truth_rows, ks: Sequence[int]) -> tuple[dict[str, float], int]:
    """Per-metric sums over the users with held-out items, and how many users that is."""
    hits = hits_matrix(top_items, truth_rows)
    num_true = np.diff(truth_rows.indptr)
    valid = num_true > 0
    hits, num_true = hits[valid], num_true[valid]
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    sums: dict[str, float] = {}
    for k in ks:
        hk = hits[:, :k]
        n_hit = hk.sum(axis=1)
        ideal_cumsum = np.concatenate([[0.0], np.cumsum(discounts[:k])])
        idcg = ideal_cumsum[np.minimum(num_true, k)]
        sums[f"recall@{k}"] = float((n_hit / num_true).sum())
        sums[f"ndcg@{k}"] = float(((hk * discounts[:k]).sum(axis=1) / idcg).sum())
        sums[f"precision@{k}"] = float((n_hit / k).sum())
        sums[f"hitrate@{k}"] = float((n_hit > 0).sum())
    return sums, int(valid.sum())


def evaluate_scorer(
    score_users: Callable[[np.ndarray], np.ndarray],
    train_csr,
    truth_csr,
    *,
    ks: Sequence[int] = (20,),
    users: np.ndarray | None = None,
    chunk_size: int = 2048,
) -> dict[str, float]:
    """Full-ranking metrics of any scoring function.

    Args:
        score_users: maps int64 [n] user indices to float [n, num_items] scores.
        train_csr: CSR [num_users, num_items]; these items are excluded from ranking.
        truth_csr: CSR [num_users, num_items] of held-out items.
        ks: cut-offs; the top max(ks) list is computed once.
        users: which users to evaluate (default: all with a held-out item).
        chunk_size: users scored at once (bounds memory to chunk_size x num_items floats).
    Returns:
        {"recall@20": ..., "ndcg@20": ..., "precision@20": ..., "hitrate@20": ..., "users": n}.
    """
    if users is None:
        users = np.flatnonzero(np.diff(truth_csr.indptr) > 0)
    k_max = max(ks)
    totals: dict[str, float] = {}
    counted = 0
    for start in range(0, len(users), chunk_size):
        batch = users[start:start + chunk_size]
        scores = np.array(score_users(batch), dtype=np.float32, copy=True)
        seen = train_csr[batch]
        scores[seen.nonzero()] = -np.inf
        sums, n = ranking_metrics_sums(top_k(scores, k_max), truth_csr[batch], ks)
        counted += n
        for name, value in sums.items():
            totals[name] = totals.get(name, 0.0) + value
    result = {name: value / max(counted, 1) for name, value in totals.items()}
    result["users"] = counted
    return result


def evaluate_embeddings(user_emb: np.ndarray, item_emb: np.ndarray, train_csr, truth_csr,
                        **kwargs) -> dict[str, float]:
    """Metrics of dot-product scores `s = user_emb[u] @ item_emb.T` ([U, d] and [I, d])."""
    item_t = np.ascontiguousarray(item_emb.T)
    return evaluate_scorer(lambda batch: user_emb[batch] @ item_t, train_csr, truth_csr, **kwargs)


def popularity_metrics(train_csr, truth_csr, **kwargs) -> dict[str, float]:
    """Metrics of the popularity baseline: every user gets the items with the most training
    interactions (minus the user's own). What a model must beat to have learned anything."""
    popularity = np.asarray(train_csr.sum(axis=0), dtype=np.float32).ravel()
    return evaluate_scorer(lambda batch: np.broadcast_to(popularity, (len(batch), len(popularity))),
                           train_csr, truth_csr, **kwargs)
