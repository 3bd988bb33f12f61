"""Pruning passes: unstructured magnitude, structured (dimensions / channels), catalog items.

magnitude   per tensor, zero the `sparsity` share of values with the smallest |x| and store
            CSR (int32 column indices + values). Honest about what it buys: bytes on disk
            only, and only past ~50 % sparsity (each kept float costs 8 bytes); the
            runtimes here have no sparse kernels and densify it to run.
structured  LightGCN: keep d' = d - floor(sparsity·d) embedding dimensions. Scores are
            e_u · item, e_u = a0 e_u⁰ + Σ message_h / sqrt(n), so a dimension dropped from
            `item` must go from `message` and e_u⁰ too. With `rotate` both tables are first
            turned by the right singular vectors V of the stacked [message; item] (an exact
            change of basis, e_u V · item V = e_u · item), so the kept columns are the d'
            directions of largest joint energy. e_u⁰ follows through `base_projection`
            [d, d'] (e_u⁰ · P). SAGE: keep the hidden channels whose contribution is largest,
            (‖w1_self[c]‖² + ‖w1_neigh[c]‖² + b1[c]²)·‖w2_self[:, c]‖² + ‖hidden[:, c]‖²·‖w2_neigh[:, c]‖²,
            dropping rows of w1_*, b1 and columns of w2_*, `hidden`. Shrinks runtime memory and compute.
items       score the calibration users (history items excluded, as on the device) and
            keep every item that enters some user's top-`top_k`. Of the others, drop at most
            floor(sparsity·I), those farthest from any top-K: smallest
            max_u (s_ui - s_u,(K)) / std_u. Every item table loses those rows; `item_ids` shrinks.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import PruneConfig
from edgegnn.compress.registry import register_pass
from edgegnn.compress.tensor_ops import (
    eligible_tensors,
    map_leaves,
    project_cols,
    resolve_tensors,
    take_cols,
    take_rows,
)
from edgegnn.edge_model import ITEM_TABLES, EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.kinds import neighbor_tensors
from edgegnn.tensors import DenseTensor, QuantizedSparseTensor, QuantizedTensor, SparseTensor, Stored

log = logging.getLogger(__name__)


@register_pass(PruneConfig)
def prune(edge: EdgeModel, config: PruneConfig, calibration: Calibration | None = None) -> EdgeModel:
    """The pruned copy of `edge` (see the module docstring for each method)."""
    if config.method == "magnitude":
        return _magnitude(edge, config)
    if config.method == "structured":
        structured = {"lightgcn": _structured_lightgcn, "sage": _structured_sage}
        if edge.kind not in structured:
            raise ConfigError("prune.method", "structured", f"is implemented for {', '.join(structured)} models, "
                                                           f"not {edge.kind}")
        return structured[edge.kind](edge, config)
    return _items(edge, config, calibration)


# ---- magnitude ---------------------------------------------------------------------------

def _magnitude(edge: EdgeModel, config: PruneConfig) -> EdgeModel:
    names = resolve_tensors(edge, config.tensors, eligible_tensors(edge), "prune.tensors")
    memo: dict = {}
    pruned = {n: map_leaves(edge.tensors[n], lambda leaf: _prune_leaf(leaf, config.sparsity), memo) for n in names}
    return edge.with_tensors(config.recipe_entry(), **pruned)


def _prune_leaf(leaf: Stored, sparsity: float) -> Stored:
    """Zero the floor(sparsity·size) entries of smallest |x| (of the dequantized values) and go CSR."""
    import scipy.sparse as sp

    dense = leaf.to_dense()
    keep = _keep_mask(dense, sparsity)
    if isinstance(leaf, (QuantizedTensor, QuantizedSparseTensor)):
        codes = _codes(leaf)
        csr = sp.csr_matrix(np.where(keep, codes, 0).astype(np.int8))
        return QuantizedSparseTensor(tuple(dense.shape), csr.indptr.astype(np.int32), csr.indices.astype(np.int32),
                                     csr.data.astype(np.int8), leaf.scale, leaf.bits)
    return SparseTensor.from_dense(np.where(keep, dense, 0.0).astype(np.float32))


def _keep_mask(dense: np.ndarray, sparsity: float) -> np.ndarray:
    """bool mask: False for the floor(sparsity·size) smallest |x| (stable order: deterministic ties)."""
    drop = int(np.floor(sparsity * dense.size))
    keep = np.ones(dense.size, dtype=bool)
    keep[np.argsort(np.abs(dense).ravel(), kind="stable")[:drop]] = False
    return keep.reshape(dense.shape)


def _codes(leaf: QuantizedTensor | QuantizedSparseTensor) -> np.ndarray:
    if isinstance(leaf, QuantizedTensor):
        return leaf.q
    import scipy.sparse as sp

    return sp.csr_matrix((leaf.q, leaf.indices, leaf.indptr), shape=leaf.shape).toarray()


# ---- structured --------------------------------------------------------------------------

def _kept_count(width: int, sparsity: float) -> int:
    return max(1, width - int(np.floor(sparsity * width)))


def _structured_lightgcn(edge: EdgeModel, config: PruneConfig) -> EdgeModel:
    message, item = edge.tensors["message"].to_dense(), edge.tensors["item"].to_dense()
    d = message.shape[1]
    k = _kept_count(d, config.sparsity)
    memo: dict = {}
    if config.rotate:
        projection = _principal_axes(np.vstack([message, item]))[:, :k]
        tables = {n: project_cols(edge.tensors[n], projection, memo) for n in ("message", "item")}
    else:
        energy = (message ** 2).sum(axis=0) + (item ** 2).sum(axis=0)  # joint L2 energy per column
        keep = np.sort(np.argsort(-energy, kind="stable")[:k])
        projection = np.eye(d, dtype=np.float32)[:, keep]
        tables = {n: take_cols(edge.tensors[n], keep, memo) for n in ("message", "item")}
    if "base_projection" in edge.tensors:  # pruned before: compose the two projections
        projection = edge.tensors["base_projection"].to_dense() @ projection
    log.info("structured pruning: %d of %d embedding dimensions kept (rotate=%s)", k, d, config.rotate)
    return edge.with_tensors(config.recipe_entry(), base_projection=DenseTensor(projection.astype(np.float32)),
                             **tables)


def _principal_axes(stacked: np.ndarray) -> np.ndarray:
    """float64 [d, d]: right singular vectors of `stacked`, by decreasing singular value, sign-fixed."""
    _, _, vt = np.linalg.svd(stacked.astype(np.float64), full_matrices=False)
    v = vt.T
    signs = np.sign(v[np.abs(v).argmax(axis=0), np.arange(v.shape[1])])
    return v * np.where(signs == 0, 1.0, signs)  # deterministic signs: the largest entry positive


def _structured_sage(edge: EdgeModel, config: PruneConfig) -> EdgeModel:
    t = {name: tensor.to_dense() for name, tensor in edge.tensors.items()}
    into = (t["w1_self"] ** 2).sum(1) + (t["w1_neigh"] ** 2).sum(1) + t["b1"] ** 2
    importance = into * (t["w2_self"] ** 2).sum(0) + (t["hidden"] ** 2).sum(0) * (t["w2_neigh"] ** 2).sum(0)
    h = len(importance)
    keep = np.sort(np.argsort(-importance, kind="stable")[:_kept_count(h, config.sparsity)])
    memo: dict = {}
    new = {n: take_rows(edge.tensors[n], keep, memo) for n in ("w1_self", "w1_neigh", "b1")}
    new.update({n: take_cols(edge.tensors[n], keep, memo) for n in ("w2_self", "w2_neigh", "hidden")})
    log.info("structured pruning: %d of %d hidden channels kept", len(keep), h)
    return edge.with_tensors(config.recipe_entry(), **new)


# ---- items -------------------------------------------------------------------------------

def _items(edge: EdgeModel, config: PruneConfig, calibration: Calibration | None) -> EdgeModel:
    if calibration is None:
        raise ConfigError("prune.method", "items", "items pruning needs calibration users (calibration=...)")
    margin = _top_k_margin(edge, calibration, config.top_k)
    never = np.flatnonzero(margin < 0)
    bound = int(np.floor(config.sparsity * edge.num_items))
    order = never[np.argsort(margin[never], kind="stable")]
    dropped = np.sort(order[:bound])
    keep = np.setdiff1d(np.arange(edge.num_items), dropped)
    log.info("items pruning: dropped %d of %d items (%d never in a calibration top-%d; bound %d)",
             len(dropped), edge.num_items, len(never), config.top_k, bound)
    memo: dict = {}
    tables = {n: take_rows(edge.tensors[n], keep, memo) for n in ITEM_TABLES[edge.kind]}
    tables.update(_kept_neighbors(edge, keep))
    entry = config.recipe_entry()
    return dataclasses.replace(edge, tensors={**edge.tensors, **tables}, item_ids=np.asarray(edge.item_ids)[keep],
                               recipe=edge.recipe + (entry,))


def _kept_neighbors(edge: EdgeModel, keep: np.ndarray) -> dict:
    """The neighbour lists (graph filters) of the kept rows, their ids renumbered to the kept
    rows' new positions; entries naming a dropped item get weight 0 (id 0)."""
    names = [n for n in neighbor_tensors(edge.kind) if n in edge.tensors]
    if not names:
        return {}
    ids_name, weights_name = names
    position = np.full(edge.num_items, -1, np.int64)
    position[keep] = np.arange(len(keep))
    ids = position[edge.tensors[ids_name].values[keep].astype(np.int64)]
    dropped = ids < 0
    weights = take_rows(edge.tensors[weights_name], keep, {})
    if isinstance(weights, QuantizedTensor):
        weights = dataclasses.replace(weights, q=np.where(dropped, 0, weights.q).astype(weights.q.dtype))
    elif isinstance(weights, DenseTensor):
        weights = DenseTensor(np.where(dropped, 0, weights.values).astype(weights.values.dtype))
    else:
        raise ConfigError("prune.method", "items", f"neighbour weights stored as {weights.describe()['storage']} "
                          "cannot drop entries; prune items before compressing them")
    dtype = edge.tensors[ids_name].values.dtype
    return {ids_name: DenseTensor(np.where(dropped, 0, ids).astype(dtype)), weights_name: weights}


def _top_k_margin(edge: EdgeModel, calibration: Calibration, k: int, chunk: int = 256) -> np.ndarray:
    """float [I]: max over calibration users of (s_ui - s_u,(k)) / std_u; >= 0 iff i is in some top-k."""
    histories, base = calibration.for_model(edge)
    margin = np.full(edge.num_items, -np.inf)
    k = min(k, edge.num_items)
    for start in range(0, len(histories), chunk):
        batch = histories[start:start + chunk]
        scores = edge.scores(batch, None if base is None else base[start:start + chunk]).astype(np.float64)
        std = scores.std(axis=1, keepdims=True) + 1e-12
        for row, history in enumerate(batch):
            scores[row, history] = -np.inf  # the device never recommends what the user has
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
        with np.errstate(invalid="ignore"):  # -inf - -inf: a user with < k candidates
            gap = np.where(np.isneginf(scores), -np.inf, (scores - kth) / std)
        margin = np.maximum(margin, np.nan_to_num(gap, nan=np.inf).max(axis=0))
    return margin
