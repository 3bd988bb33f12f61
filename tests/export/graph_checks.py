"""Compare a graph's top-K outputs with the numpy device math (`EdgeModel.encode` / `score`)."""

from __future__ import annotations

import numpy as np

from edgegnn.edge_model import EdgeModel
from edgegnn.tensors import LowRankTensor, QuantizedTensor


def reference(edge: EdgeModel, hist, base) -> np.ndarray:
    """float32 [B, I]: the simulation's scores."""
    return edge.score(edge.encode(hist, base))


def quantization_bound(edge: EdgeModel, hist, base, *, static_ignored: bool = False) -> np.ndarray | None:
    """Per (user, item) bound on |score error| of int8 scoring with a per-query activation scale.

    Rounding each component of the scored vector x to a step s = max|x|/127 moves it by at most
    s/2, so a score x·w moves by at most s/2 · Σ_c |w_c|. With `static_ignored` the runtime
    scores the float vector where the simulation scored its static-scale rounding: add that step.
    None when the item table is not int8-scored.
    """
    table, x = edge.tensors["item"], edge.encode(hist, base)
    if isinstance(table, LowRankTensor):
        from edgegnn.edge_model import matmul
        x, table = matmul(x, table.right), table.left
    if not isinstance(table, QuantizedTensor):
        return None
    step = np.abs(x).max(axis=1, keepdims=True) / 127
    static = edge.activation_scales.get("user")
    if static is not None and static_ignored:
        step = step + static
    weight = np.abs(table.q.astype(np.float32) * table.scale[:, None]).sum(axis=1)
    return step / 2 * weight[None, :] * 1.01 + 1e-6


def check_top(edge: EdgeModel, hist, base, items: np.ndarray, scores: np.ndarray, *, exact: bool,
              static_ignored: bool = False, loose: bool = False) -> None:
    """The returned items and scores are the simulation's, exactly (rtol 1e-5) or within int8 rounding.

    Top-K membership is checked as sets, with the score margin the tolerance allows (ties may reorder).
    """
    ref = reference(edge, hist, base)
    width = items.shape[1]
    got = np.take_along_axis(ref, items.astype(np.int64), axis=1)
    if exact:
        np.testing.assert_allclose(scores, got, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
        tol = np.full(ref.shape, 1e-5 * np.abs(ref).max())
    elif loose:
        tol = np.full(ref.shape, 0.03 * np.abs(ref).max())
        assert np.abs(scores - got).max() <= tol.max()
    else:
        tol = quantization_bound(edge, hist, base, static_ignored=static_ignored)
        assert tol is not None
        bound = np.take_along_axis(tol, items.astype(np.int64), axis=1)
        assert (np.abs(scores - got) <= bound).all(), np.abs(scores - got).max()
    assert (np.diff(scores, axis=1) <= 1e-6 * np.abs(ref).max()).all(), "scores must come best first"
    for r in range(len(ref)):
        kth = np.sort(ref[r])[::-1][width - 1]
        must = np.flatnonzero(ref[r] > kth + 2 * tol[r].max())
        assert set(must) <= set(items[r].tolist()), f"row {r}: clear top items missing"
