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
"""

from __future__ import annotations

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

    def rows(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """float32 [n, C] rows of each table for features [n, 2d + 1]."""
        return {t: (features @ self.weights[t] + self.intercepts[t]).astype(np.float32) for t in self.tables}

    def record(self) -> dict:
        """What the manifest says about the fit."""
        return {"method": "ridge map from the users' device encodings (edgegnn.catalog.fold)",
                "fitted_items": self.fitted_items,
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
    features = [_fold_features(edge, history, takers, fold) for fold in folds]
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
    return ItemFold(tables, weights, intercepts, alphas, r2, fitted_items=len(fit_items))


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


def _fold_features(edge, history: sp.csr_matrix, takers: sp.csr_matrix, fold: np.ndarray) -> np.ndarray:
    """Features [n, 2d + 1] of the fold's items from e_u encoded without them."""
    kept = np.ones(edge.num_items, bool)
    kept[fold] = False
    vectors, has = encode_users(edge, _keep_columns(history, kept))
    return item_features(vectors, takers[fold] @ sp.diags(has.astype(np.float64)))


def _keep_columns(matrix: sp.csr_matrix, kept: np.ndarray | None) -> sp.csr_matrix:
    """matrix with the columns not `kept` zeroed (None: all kept), as a binary csr."""
    out = matrix.tocsr().astype(np.float64)
    if kept is not None:
        out = out @ sp.diags(kept.astype(np.float64))
    out.eliminate_zeros()
    out.sort_indices()
    return out
