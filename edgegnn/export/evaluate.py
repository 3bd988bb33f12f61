"""Ranking quality measured on the artifact itself, next to the numpy simulation of the same model.

Protocol (the same for the artifact and the simulation, so that any difference is the
runtime's arithmetic): each test user with a training history and a held-out item; the
history is the user's training items in the model's row order, cut to the artifact's H
(the last H, as the runtime does); the 20 best items that are not among the user's training
items (all of them, also those older than H) are scored against the held-out items (Recall@20,
NDCG@20 as in `edgegnn.metrics`; a list shorter than 20 counts its missing places as misses).
The artifact answers through `Recommender.top_rows` (what `recommend` returns); the simulation
runs `EdgeModel.encode`/`score` in numpy on the same histories, in the artifact's arithmetic
(the static activation scales the graph ignores left out: its runtime quantizes on its own).

`reference` is `edge_eval.evaluate_edge_model`: full histories, full ranking -- the figure the
compression reports use; it differs from the artifact's only where H cuts histories.
`popularity` is the popularity baseline (the most interacted training items) on the same users.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgegnn.edge_eval import evaluate_edge_model
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import DataError
from edgegnn.metrics import popularity_metrics, ranking_metrics_sums
from edgegnn.metrics import top_k as top_k_rows

log = logging.getLogger(__name__)
CUTOFF = 20


@dataclass(frozen=True, eq=False)
class EvalData:
    """Histories and held-out items in the model's row space.

    Attributes:
        train_csr: CSR [U, I]: row u holds user u's training items (their history).
        truth_csr: CSR [U, I]: held-out items.
        user_base: float32 [U, d⁰] e_u⁰ inputs, or None (users measured as new).
        users: the users measured.
    """

    train_csr: object
    truth_csr: object
    user_base: np.ndarray | None
    users: np.ndarray


def eval_data(train, test, item_ids: np.ndarray, *, user_ids: np.ndarray | None = None,
              user_base: np.ndarray | None = None, max_users: int | None = None, seed: int = 0) -> EvalData:
    """Express `train`/`test` Interactions in the model's item rows (and users, if `user_ids`).

    Items (and, with `user_ids`, users) are matched by raw id; unknown ones are dropped.
    """
    import scipy.sparse as sp

    item_row = _index_map(train.item_ids, item_ids)
    users_out = len(user_ids) if user_ids is not None else train.num_users

    def csr(inter) -> sp.csr_matrix:
        rows = inter.users if user_ids is None else _index_map(inter.user_ids, user_ids)[inter.users]
        cols = _index_map(inter.item_ids, item_ids)[inter.items]
        keep = (rows >= 0) & (cols >= 0)
        matrix = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])),
                               shape=(users_out, len(item_ids)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    if (item_row < 0).all():
        raise DataError("none of the data's items are in the model (different data?)")
    train_csr, truth_csr = csr(train), csr(test)
    users = np.flatnonzero((np.diff(train_csr.indptr) > 0) & (np.diff(truth_csr.indptr) > 0))
    if len(users) == 0:
        raise DataError("no test user has both a training history and a held-out item the model knows")
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    return EvalData(train_csr, truth_csr, user_base, users)


def _index_map(source_ids: np.ndarray, model_ids: np.ndarray) -> np.ndarray:
    """int64 [len(source_ids)]: the model index of each source id, -1 if the model lacks it."""
    index = {str(raw): i for i, raw in enumerate(model_ids)}
    return np.array([index.get(str(raw), -1) for raw in source_ids], dtype=np.int64)


def measure(edge: EdgeModel, top_unseen: Callable, data: EvalData, *, history_length: int | None,
            simulated: EdgeModel | None = None, batch: int = 256,
            on_batch: Callable[[int, int], None] | None = None) -> dict:
    """{"artifact": {...}, "simulation": {...}, "reference": {...}, "users": n, ...} (see module doc).

    Args:
        top_unseen: the artifact's answer, (histories fed, rows to leave out, user_base) -> rows
            int64 [B, 20] (-1 pads), e.g. `lambda h, seen, b: rec.top_rows(h, 20, exclude=seen, user_base=b)[0]`.
        history_length: the artifact's H (None: any length).
        simulated: `edge` in the artifact's arithmetic (default: `edge`); the reference is `edge`.
    """
    simulated = edge if simulated is None else simulated
    sums = {"artifact": np.zeros(2), "simulation": np.zeros(2)}
    counted = 0
    for start in range(0, len(data.users), batch):
        users = data.users[start:start + batch]
        histories = [data.train_csr.indices[data.train_csr.indptr[u]:data.train_csr.indptr[u + 1]].astype(np.int64)
                     for u in users]
        fed = [h[-history_length:] if history_length else h for h in histories]
        base = None if data.user_base is None else data.user_base[users]
        scores = simulated.scores(fed, base)
        for row, seen in enumerate(histories):
            scores[row, seen] = -np.inf
        truth = data.truth_csr[users]
        for name, top in (("artifact", top_unseen(fed, histories, base)), ("simulation", top_k_rows(scores, CUTOFF))):
            sums[name] += ranking_sums(top, truth)
        counted += len(users)
        if on_batch is not None:
            on_batch(min(start + batch, len(data.users)), len(data.users))
    result = {name: {f"recall@{CUTOFF}": s[0] / counted, f"ndcg@{CUTOFF}": s[1] / counted} for name, s in sums.items()}
    reference = evaluate_edge_model(edge, data.train_csr, data.truth_csr, user_base=data.user_base,
                                    ks=(CUTOFF,), users=data.users)
    result["reference"] = {k: reference[k] for k in (f"recall@{CUTOFF}", f"ndcg@{CUTOFF}")}
    popularity = popularity_metrics(data.train_csr, data.truth_csr, ks=(CUTOFF,), users=data.users)
    result["popularity"] = {k: popularity[k] for k in (f"recall@{CUTOFF}", f"ndcg@{CUTOFF}")}
    result["users"] = counted
    return result


def ranking_sums(top: np.ndarray, truth) -> np.ndarray:
    """[Σ Recall@20, Σ NDCG@20] over the rows (edgegnn.metrics' definitions; -1 pads never hit)."""
    sums, _ = ranking_metrics_sums(top, truth, (CUTOFF,))
    return np.array([sums[f"recall@{CUTOFF}"], sums[f"ndcg@{CUTOFF}"]])
