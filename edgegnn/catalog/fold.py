"""Device rows for new items, from the users who interacted with them (no retraining).

The item-side analogue of the device's user fold: a user is encoded from their items, so an
item is described by the users who took it. With e_u the device encoding of user u from their
history of catalog items (`EdgeModel.encode`, no e_u⁰) and U(i) the users of item i (n = |U(i)|):
    a_i = (1/sqrt(n)) Σ_{u∈U(i)} e_u                                   [d]
    x_i = [a_i, a_i / sqrt(n), log(1 + n)]                             [2d + 1]
Each item-sized table T of the model kind (LightGCN: message, item) gets a ridge map fitted on
the model's own items, T[i] ≈ x_i · W_T + b_T; a new item's rows are its x · W_T + b_T.

The fit imitates an update on the model's own items: the catalog's items are dealt into
seeded folds of 5 %; for each fold, its items are taken out of every history (as if they were
new), e_u is encoded from the rest, and the fold's features come from that e_u. A new item
never appears in the histories that describe it, so neither do the items the map learns from,
and the histories lose no more than an update of 5 % new items loses. (Taking 25 % out at
once shrank e_u by about sqrt(0.75), the fitted rows came out ~15 % too large at update time,
and the new items were recommended too often: Gowalla's Recall@20 over all items fell 6 %.)
FIT_FOLDS folds (more in a small catalog) train the maps, one more measures R² per table; the ridge strength is chosen
by scikit-learn's efficient leave-one-out (RidgeCV). Works for every kind with an `encode` (LightGCN, SAGE, GAT, graph
filters' tables); graph filters' neighbour lists are refused by the caller.

A row close in R² can still rank too often: a fitted row points at the mean of its takers'
encodings, so it scores high for every user like them. The check fold then sets one factor γ
on the fitted rows of the scored table ("item"): with e_u of CALIBRATION_USERS sampled users
(the check items out of their histories), γ makes the check items take as many places in the
users' top-CALIBRATION_K with their fitted rows γ·p_i as with the rows training gave them,
    mean_u |top_k(e_u · [T_rest ; γ·P_check]ᵀ) ∩ check| = mean_u |top_k(e_u · Tᵀ) ∩ check|,
solved by bisection on log γ (the count grows with γ). So new items come into recommendations
as often as trained items of their kind, no more.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from edgegnn.errors import ConfigError
from edgegnn.kinds import kind as kind_module

log = logging.getLogger(__name__)
ALPHAS = np.logspace(-3, 4, 15)
FOLD_SHARE = 0.05        # items taken out of the histories at once (one fold)
FIT_FOLDS = 4            # folds the maps learn from (more in small catalogs, up to MIN_FIT_ITEMS); one more measures R²
MIN_FIT_ITEMS = 2000
ENCODE_BATCH = 8192
CALIBRATION_USERS = 2000     # users sampled for γ (module docstring)
CALIBRATION_K = 20
SCORED = "item"              # the table every kind scores against (edgegnn.kinds)


@dataclass(frozen=True)
class ItemFold:
    """Fitted maps from user-side features to each item-sized table's rows.

    Attributes:
        tables: names of the tables, in kind order.
        weights: name -> float64 [2d + 1, C] map; intercepts: name -> float64 [C].
        alphas: name -> the ridge strength chosen; r2: name -> R² on the check items.
        fitted_items: how many of the model's items the maps were fitted on.
    """

    tables: tuple[str, ...]
    weights: dict
    intercepts: dict
    alphas: dict
    r2: dict
    fitted_items: int
    score_scale: float = 1.0

    def rows(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """float32 [n, C] rows of each table for features [n, 2d + 1] (the scored table's times γ)."""
        return {t: (self._fitted(t, features) * (self.score_scale if t == SCORED else 1.0)).astype(np.float32)
                for t in self.tables}

    def _fitted(self, table: str, features: np.ndarray) -> np.ndarray:
        return features @ self.weights[table] + self.intercepts[table]

    def record(self) -> dict:
        """What the manifest says about the fit."""
        return {"method": "ridge map from the users' device encodings (edgegnn.catalog.fold)",
                "fitted_items": self.fitted_items, "score_scale": round(float(self.score_scale), 4),
                "tables": {t: {"alpha": float(self.alphas[t]), "r2_check_items": round(float(self.r2[t]), 4)}
                           for t in self.tables}}


def item_features(user_vectors: np.ndarray, takers: sp.csr_matrix) -> np.ndarray:
    """float64 [n, 2d + 1] features of n items (module docstring) from e_u [U, d] and takers
    [n, U] (1 where user u took item j; users without a vector must have zero columns)."""
    counts = np.asarray(takers.sum(axis=1)).ravel().astype(np.float64)
    root = np.sqrt(np.maximum(counts, 1.0))[:, None]
    pooled = np.asarray(takers @ user_vectors.astype(np.float64)) / root
    return np.hstack([pooled, pooled / root, np.log1p(counts)[:, None]])


def encode_users(edge, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(e_u float32 [U, d] with zero rows for empty histories, bool [U] which users have one)
    for a user x item-row matrix `history` [U, I]."""
    has = np.diff(history.indptr) > 0
    vectors = np.zeros((history.shape[0], edge.embedding_dim), np.float32)
    users = np.flatnonzero(has)
    for start in range(0, len(users), ENCODE_BATCH):
        part = users[start:start + ENCODE_BATCH]
        vectors[part] = edge.encode([history.indices[history.indptr[u]:history.indptr[u + 1]] for u in part])
    return vectors, has


def fit_item_fold(edge, history: sp.csr_matrix, *, seed: int = 0) -> ItemFold:
    """Maps for `edge`'s item-sized tables from the training histories [U, I] (module docstring)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    tables = tuple(kind_module(edge.kind).TABLES)
    taken = np.flatnonzero(np.diff(history.tocsc().indptr) > 0)              # items someone took
    folds = _folds(taken, seed)
    takers = _keep_columns(history, None).T.tocsr()                          # [I, U]
    encoded = [_fold_features(edge, history, takers, fold) for fold in folds]
    features = [x for x, _ in encoded]
    fit_items, check_items = np.concatenate(folds[:-1]), folds[-1]
    x_fit, x_check = np.vstack(features[:-1]), features[-1]
    weights, intercepts, alphas, r2 = {}, {}, {}, {}
    for name in tables:
        target = edge.tensors[name].to_dense().astype(np.float64)
        ridge = RidgeCV(alphas=ALPHAS).fit(x_fit, target[fit_items])
        weights[name], intercepts[name] = np.asarray(ridge.coef_).T, np.asarray(ridge.intercept_)
        alphas[name] = float(ridge.alpha_)
        r2[name] = float(r2_score(target[check_items], ridge.predict(x_check)))
        log.info("item fold: %s rows from users, alpha %.3g, R² %.3f on %d check items", name, ridge.alpha_,
                 r2[name], len(check_items))
    fold = ItemFold(tables, weights, intercepts, alphas, r2, fitted_items=len(fit_items))
    if SCORED not in tables:
        return fold
    gamma = _score_scale(edge, encoded[-1][1], history, check_items, fold._fitted(SCORED, x_check), seed)
    return dataclasses.replace(fold, score_scale=gamma)


def _score_scale(edge, vectors: np.ndarray, history: sp.csr_matrix, check: np.ndarray, fitted: np.ndarray,
                 seed: int, steps: int = 14) -> float:
    """γ (module docstring) from e_u [U, d] encoded without the `check` items, the users'
    histories [U, I] (their other items are not ranked) and the check items' fitted rows [n, C]."""
    has = np.flatnonzero(np.abs(vectors).sum(axis=1) > 0)                       # a history beyond the check items
    users = np.sort(np.random.default_rng(seed).choice(has, min(CALIBRATION_USERS, len(has)), replace=False))
    k = min(CALIBRATION_K, edge.num_items - len(check))
    e_u = edge.quantize_activation("user", vectors[users])
    scores = e_u @ edge.tensors[SCORED].to_dense().T.astype(np.float32)          # [B, I]
    seen = history[users].tocoo()
    scores[seen.row, seen.col] = -np.inf
    is_check = np.zeros(edge.num_items, bool)
    is_check[check] = True
    rest = np.sort(np.partition(scores[:, ~is_check], -k, axis=1)[:, -k:], axis=1)     # [B, k] ascending
    trained = _check_places(rest, scores[:, check], k)
    placed = e_u @ fitted.T.astype(np.float32)                                   # [B, n]
    placed = np.where(np.isneginf(scores[:, check]), -np.inf, placed)
    low, high = np.log(0.125), np.log(8.0)
    for _ in range(steps):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if _check_places(rest, np.exp(middle) * placed, k) < trained else (low, middle)
    gamma = float(np.exp(0.5 * (low + high)))
    log.info("item fold: new items' scores times %.3f (check items' top-%d places: %.3f per user with their trained "
             "rows)", gamma, k, trained)
    return gamma


def _check_places(rest: np.ndarray, check_scores: np.ndarray, k: int) -> float:
    """Mean count of check items in each user's top k, given the k best other scores [B, k]."""
    top_check = np.sort(np.partition(check_scores, -min(k, check_scores.shape[1]), axis=1)[:, -k:], axis=1)
    merged = np.concatenate([rest, top_check], axis=1)
    threshold = np.partition(merged, -k, axis=1)[:, -k][:, None]
    return float((top_check >= threshold).sum(axis=1).mean())


def _folds(items: np.ndarray, seed: int) -> list[np.ndarray]:
    """Disjoint sorted folds of `items` (a seeded draw, FOLD_SHARE of them each): FIT_FOLDS to fit,
    more while they hold fewer than MIN_FIT_ITEMS (at most every fold), and the last to check."""
    order = np.random.default_rng(seed).permutation(items)
    size = max(int(round(FOLD_SHARE * len(order))), 1)
    if len(order) < FIT_FOLDS + 1:
        raise ConfigError("items", len(order), f"fitting new items' rows needs at least {FIT_FOLDS + 1} items "
                          "with users")
    count = min(max(FIT_FOLDS, -(-MIN_FIT_ITEMS // size)), len(order) // size - 1) + 1
    return [np.sort(order[k * size:(k + 1) * size]) for k in range(count)]


def _fold_features(edge, history: sp.csr_matrix, takers: sp.csr_matrix,
                   fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features [n, 2d + 1] of the fold's items, e_u [U, d]) from e_u encoded without them."""
    kept = np.ones(edge.num_items, bool)
    kept[fold] = False
    vectors, has = encode_users(edge, _keep_columns(history, kept))
    return item_features(vectors, takers[fold] @ sp.diags(has.astype(np.float64))), vectors


def _keep_columns(matrix: sp.csr_matrix, kept: np.ndarray | None) -> sp.csr_matrix:
    """matrix with the columns not `kept` zeroed (None: all kept), as a binary csr."""
    out = matrix.tocsr().astype(np.float64)
    if kept is not None:
        out = out @ sp.diags(kept.astype(np.float64))
    out.eliminate_zeros()
    out.sort_indices()
    return out
