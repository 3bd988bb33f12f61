"""Link prediction with a probability: AUC and log-loss on sampled pairs, and the calibration
that turns a device model's scores into P(user likes item).

Each held-out positive (u, i) is paired with K items j the user has no row with (train or
held out), drawn uniformly: the same mix a "bce" model is trained on (`edgegnn.train.losses.
bce_loss`), so its σ(score) is a probability of that mix. For scores s and labels y:
    AUC      = P(s_ui > s_uj) over each positive and its own K negatives (ties count ½)
    log-loss = −mean [y log p + (1 − y) log(1 − p)],  p = σ(a·s + b)
A model trained on the training rows has seen each held-out positive as an unobserved pair, so
its raw σ(s) underrates them: the held-out log-loss of a "bce" head can be worse than the base
rate's, which is why artifacts recalibrate on validation.
(a, b) = (1, 0) for a model trained with BCE; `fit_calibration` fits them (Platt scaling: a
one-feature logistic regression, scikit-learn's) to the scores a device model gives users it
serves from their history alone, whose logits are not the trained ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MAX_USERS = 5000               # held-out users sampled for the pairs (seeded)
SCORE_BATCH = 256              # users an EdgeModel scores at once ([B, I] float32)


def sampled_pairs(train_csr, truth_csr, negatives: int, *, seed: int = 0, max_users: int = MAX_USERS
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users int64 [n], positive items int64 [n], negative items int64 [n, K]) for the held-out
    positives of up to `max_users` users; a negative is never one of the user's items (redrawn)."""
    rng = np.random.default_rng(seed)
    num_items = truth_csr.shape[1]
    users_with_truth = np.flatnonzero(np.diff(truth_csr.indptr) > 0)
    if len(users_with_truth) > max_users:
        users_with_truth = np.sort(rng.choice(users_with_truth, max_users, replace=False))
    counts = np.diff(truth_csr.indptr)[users_with_truth]
    users = np.repeat(users_with_truth, counts)
    positives = np.concatenate([truth_csr.indices[truth_csr.indptr[u]:truth_csr.indptr[u + 1]]
                                for u in users_with_truth]).astype(np.int64) if len(users) else np.zeros(0, np.int64)
    known = (train_csr + truth_csr).tocsr()
    known_keys = np.sort(np.repeat(np.arange(known.shape[0], dtype=np.int64), np.diff(known.indptr)) * num_items
                         + known.indices)
    drawn = rng.integers(num_items, size=(len(users), negatives))
    for _ in range(20):       # a user's items are a sliver of the catalog: few redraws are needed
        clash = np.isin(users[:, None] * num_items + drawn, known_keys)
        if not clash.any():
            break
        drawn[clash] = rng.integers(num_items, size=int(clash.sum()))
    return users, positives, drawn


def link_metrics(score_pairs: Callable[[np.ndarray, np.ndarray], np.ndarray], train_csr, truth_csr, *,
                 negatives: int = 4, scale: float = 1.0, offset: float = 0.0, seed: int = 0) -> dict[str, float]:
    """{"auc", "logloss", "logloss_constant", "pairs"} of `score_pairs(users [n], items [n]) ->
    scores [n]` on the held-out positives of `truth_csr` and K = `negatives` sampled negatives
    each; "logloss_constant" is the log-loss of the constant 1 / (1 + K), the base rate: what
    probabilities must beat to carry information."""
    users, positives, drawn = sampled_pairs(train_csr, truth_csr, negatives, seed=seed)
    if len(users) == 0:
        return {"auc": float("nan"), "logloss": float("nan"), "logloss_constant": float("nan"), "pairs": 0}
    positive = score_pairs(users, positives).astype(np.float64)
    negative = score_pairs(np.repeat(users, negatives), drawn.ravel()).astype(np.float64).reshape(drawn.shape)
    auc = float(np.mean((positive[:, None] > negative) + 0.5 * (positive[:, None] == negative)))
    logits = scale * np.r_[positive, negative.ravel()] + offset
    labels = np.r_[np.ones(len(positive)), np.zeros(negative.size)]
    prior = 1.0 / (1 + negatives)
    constant = float(-(prior * np.log(prior) + (1 - prior) * np.log(1 - prior)))
    return {"auc": auc, "logloss": log_loss(logits, labels), "logloss_constant": constant, "pairs": int(len(labels))}


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of σ(logits) against 0/1 labels, computed stably from the
    logits (log σ(x) = −softplus(−x))."""
    return float(np.mean(labels * np.logaddexp(0.0, -logits) + (1.0 - labels) * np.logaddexp(0.0, logits)))


def fit_calibration(scores: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    """(a, b) of p = σ(a·s + b) fitted to 0/1 labels (Platt scaling: logistic regression on the
    one feature s, scikit-learn's lbfgs, no penalty: C = inf)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, random_state=seed).fit(np.asarray(scores, np.float64)[:, None], labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def embedding_pairs(user_emb: np.ndarray, item_emb: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """score_pairs for dot-product embeddings: s_ui = user_emb[u] · item_emb[i]."""
    return lambda users, items: np.einsum("nd,nd->n", user_emb[users], item_emb[items])


def edge_pairs(edge, train_csr, history_length: int | None):
    """score_pairs(users, items) -> scores of the EdgeModel for users served from their training
    rows in `train_csr` (the last H when `history_length` is set), batches of SCORE_BATCH users;
    only the users in the pairs are scored (each must have a training row)."""
    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.zeros(len(users), np.float32)
        unique, inverse = np.unique(users, return_inverse=True)
        order = np.argsort(inverse, kind="stable")                 # the pairs, grouped by user
        bounds = np.searchsorted(inverse[order], np.arange(0, len(unique) + SCORE_BATCH, SCORE_BATCH))
        for block_index, start in enumerate(range(0, len(unique), SCORE_BATCH)):
            batch = unique[start:start + SCORE_BATCH]
            histories = [train_csr.indices[train_csr.indptr[u]:train_csr.indptr[u + 1]].astype(np.int64) for u in batch]
            block = edge.scores([h[-history_length:] if history_length else h for h in histories])   # [B, I]
            rows = order[bounds[block_index]:bounds[block_index + 1]]
            out[rows] = block[inverse[rows] - start, items[rows]]
        return out

    return score
