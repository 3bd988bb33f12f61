"""Ranking quality and size of an EdgeModel on a split: the figures every pass is judged by.

Scores come from the device arithmetic itself (`EdgeModel.encode`/`score`, via
`evaluate_edge_model`), so int8 rounding, low-rank scoring and static activation scales are
all in the numbers. A model whose catalog was pruned ("items" pruning) is measured in the
split's full catalog: its dropped items can never be recommended (a held-out dropped item
is a miss, not removed from the denominator) and are ignored in histories, as the device
ignores item ids it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgegnn.compress.calibration import item_rows
from edgegnn.edge_eval import evaluate_edge_model, histories_from_csr
from edgegnn.edge_model import EdgeModel
from edgegnn.metrics import evaluate_scorer


class Evaluator:
    """Measures EdgeModels on one fixed user sample of a split (build once, call per model).

    Args:
        split: an `edgegnn.data.Split`; histories are its train rows, truth its test rows.
        user_base: float32 [U, d] e_u⁰ of the split's users, or None (users as new users).
        ks: metric cut-offs.
        max_users: evaluate a seeded random sample of at most this many users (None: all
            users with a history and a held-out item).
        seed: seed of the sample.
    """

    def __init__(self, split, *, user_base: np.ndarray | None = None, ks: Sequence[int] = (20,),
                 max_users: int | None = None, seed: int = 0):
        self.train_csr = split.train.to_csr()
        self.test_csr = split.test.to_csr()
        self.item_ids = np.asarray(split.train.item_ids)
        self.user_base = user_base
        self.ks = tuple(ks)
        users = np.flatnonzero((np.diff(self.test_csr.indptr) > 0) & (np.diff(self.train_csr.indptr) > 0))
        if max_users is not None and len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        self.users = users
        self._histories = None

    def __call__(self, edge: EdgeModel) -> dict[str, float]:
        """{"recall@K", "ndcg@K", "precision@K", "hitrate@K", "users", "bytes", "params", "items"}."""
        rows = item_rows(self.item_ids, edge.item_ids)
        if rows is None:
            metrics = evaluate_edge_model(edge, self.train_csr, self.test_csr, user_base=self.user_base,
                                          ks=self.ks, users=self.users)
        else:
            metrics = evaluate_scorer(self._remapped_scorer(edge, rows), self.train_csr, self.test_csr,
                                      ks=self.ks, users=self.users)
        metrics.update(bytes=edge.nbytes, params=edge.num_params, items=edge.num_items)
        return metrics

    def _remapped_scorer(self, edge: EdgeModel, rows: np.ndarray):
        """Scores in the split's catalog for a model over a subset of it (-inf: not in the model)."""
        if self._histories is None:
            self._histories = histories_from_csr(self.train_csr)
        known = np.flatnonzero(rows >= 0)

        def score(batch: np.ndarray) -> np.ndarray:
            out = np.full((len(batch), len(rows)), -np.inf, dtype=np.float32)
            mapped = [rows[self._histories[u]] for u in batch]
            mapped = [h[h >= 0] for h in mapped]
            has = np.array([len(h) > 0 for h in mapped])
            out[~has] = 0.0  # nothing the device knows: no ranking signal (ties, not a crash)
            if has.any():
                base = None if self.user_base is None else self.user_base[batch[has]]
                scores = edge.scores([h for h, k in zip(mapped, has) if k], base)
                block = out[has]
                block[:, known] = scores[:, rows[known]]
                out[has] = block
            return out

        return score


def measure(edge: EdgeModel, split, *, user_base: np.ndarray | None = None, ks: Sequence[int] = (20,),
            max_users: int | None = None, seed: int = 0) -> dict[str, float]:
    """Recall/NDCG/Precision/HitRate@K, bytes, params and catalog size of `edge` on `split.test`.

    See `Evaluator` for the arguments; the same arguments give the same user sample.
    """
    return Evaluator(split, user_base=user_base, ks=ks, max_users=max_users, seed=seed)(edge)
