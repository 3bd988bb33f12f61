"""Ranking quality of an EdgeModel, computed with the device's own arithmetic (numpy)."""

from __future__ import annotations

import numpy as np

from edgegnn.edge_model import EdgeModel
from edgegnn.metrics import evaluate_scorer


def histories_from_csr(train_csr) -> list[np.ndarray]:
    """Each user's training items (row indices into the item tables), from a CSR [U, I]."""
    return np.split(train_csr.indices.astype(np.int64), train_csr.indptr[1:-1])


def evaluate_edge_model(edge: EdgeModel, train_csr, truth_csr, *, user_base: np.ndarray | None = None,
                        ks=(20,), users: np.ndarray | None = None) -> dict[str, float]:
    """Full-ranking metrics of `edge` for users whose history is their training row.

    Args:
        edge: the model as the device runs it.
        train_csr: CSR [U, I]; row u is user u's history (and is excluded from ranking).
        truth_csr: CSR [U, I] of held-out items.
        user_base: float32 [U, d] e_u⁰ inputs, or None to treat every user as new.
        users: subset of users to evaluate (default: all with held-out items and a history).
    """
    histories = histories_from_csr(train_csr)
    if users is None:
        has_history = np.diff(train_csr.indptr) > 0
        users = np.flatnonzero((np.diff(truth_csr.indptr) > 0) & has_history)

    def score_users(batch: np.ndarray) -> np.ndarray:
        base = None if user_base is None else user_base[batch]
        return edge.scores([histories[u] for u in batch], base)

    return evaluate_scorer(score_users, train_csr, truth_csr, ks=ks, users=users)
