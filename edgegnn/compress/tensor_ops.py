"""Operations on stored tensors that the passes share: pick tensors, map leaves, take rows/columns.

A joint low-rank factorization makes two tables share one factor object (it ships once).
Every operation here takes a `memo` (id of an input object -> its result) so a shared
factor is transformed once and stays shared in the output. Inputs are never modified.
A row-scaled tensor's row scale is not a leaf: it follows the rows (take_rows) and is
otherwise kept as is, while its base is transformed like any tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from edgegnn.edge_model import ITEM_TABLES, WEIGHTS, EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.kinds import neighbor_tensors
from edgegnn.tensors import (
    DenseTensor,
    LowRankTensor,
    MixedQuantizedTensor,
    ProductQuantizedTensor,
    QuantizedSparseTensor,
    QuantizedTensor,
    RowScaledTensor,
    SparseTensor,
    Stored,
)

Memo = dict[int, Stored]


def eligible_tensors(edge: EdgeModel) -> tuple[str, ...]:
    """Item tables, dense weights and neighbour weights (graph filters; never their ids): what
    weight passes act on by default (biases stay fp32)."""
    neighbors = tuple(n for n in neighbor_tensors(edge.kind)[1:] if n in edge.tensors)
    return ITEM_TABLES[edge.kind] + WEIGHTS[edge.kind] + neighbors


def resolve_tensors(edge: EdgeModel, requested: Iterable[str], eligible: tuple[str, ...],
                    field: str) -> tuple[str, ...]:
    """`requested` checked against `eligible` (empty request: all eligible), in model order."""
    requested = tuple(requested)
    for name in requested:
        if name not in eligible:
            raise ConfigError(field, name, f"allowed for a {edge.kind} model: {', '.join(eligible)}")
    return tuple(n for n in eligible if n in requested) if requested else eligible


def map_leaves(tensor: Stored, fn: Callable[[Stored], Stored], memo: Memo) -> Stored:
    """`fn` applied to every leaf (low-rank factors and row-scaled bases unpacked; row scales
    kept), sharing preserved."""
    if isinstance(tensor, LowRankTensor):
        return _memo(memo, tensor, lambda: LowRankTensor(map_leaves(tensor.left, fn, memo),
                                                         map_leaves(tensor.right, fn, memo)))
    if isinstance(tensor, RowScaledTensor):
        return _memo(memo, tensor, lambda: RowScaledTensor(map_leaves(tensor.base, fn, memo), tensor.row_scale))
    return _memo(memo, tensor, lambda: fn(tensor))


def take_rows(tensor: Stored, rows: np.ndarray, memo: Memo) -> Stored:
    """tensor[rows] in the same storage (1-D dense tensors too). Low-rank: rows of the left factor."""
    rows = np.asarray(rows, dtype=np.int64)

    def build() -> Stored:
        if isinstance(tensor, LowRankTensor):
            return LowRankTensor(take_rows(tensor.left, rows, memo), tensor.right)
        if isinstance(tensor, RowScaledTensor):
            return RowScaledTensor(take_rows(tensor.base, rows, memo), DenseTensor(tensor.row_scale.values[rows]))
        if isinstance(tensor, ProductQuantizedTensor):
            return ProductQuantizedTensor(tensor.codes[rows], tensor.codebooks)
        if isinstance(tensor, DenseTensor):
            return DenseTensor(tensor.values[rows])
        if isinstance(tensor, MixedQuantizedTensor):
            return MixedQuantizedTensor(tensor.q[rows], tensor.scale[rows], tensor.bits,
                                        np.packbits(tensor.int4_rows[rows]))
        if isinstance(tensor, QuantizedTensor):
            return QuantizedTensor(tensor.q[rows], tensor.scale[rows], tensor.bits)
        return _csr_kind(tensor, _csr(tensor)[rows], scale=_scale_of(tensor, rows))

    return _memo(memo, tensor, build)


def take_cols(tensor: Stored, cols: np.ndarray, memo: Memo) -> Stored:
    """tensor[:, cols] in the same storage. Low-rank: rows of the right factor.

    Per-row scales stay valid for the kept columns (x ≈ q·scale still holds entry by entry).
    A product-quantized tensor is decoded to dense: its sub-spaces do not survive an
    arbitrary column selection.
    """
    cols = np.asarray(cols, dtype=np.int64)

    def build() -> Stored:
        if isinstance(tensor, LowRankTensor):
            return LowRankTensor(tensor.left, take_rows(tensor.right, cols, memo))
        if isinstance(tensor, RowScaledTensor):
            return RowScaledTensor(take_cols(tensor.base, cols, memo), tensor.row_scale)
        if isinstance(tensor, ProductQuantizedTensor):
            return DenseTensor(tensor.to_dense()[:, cols])
        if isinstance(tensor, DenseTensor):
            return DenseTensor(tensor.values[:, cols])
        if isinstance(tensor, MixedQuantizedTensor):
            return MixedQuantizedTensor(tensor.q[:, cols], tensor.scale, tensor.bits, tensor.int4_mask)
        if isinstance(tensor, QuantizedTensor):
            return QuantizedTensor(tensor.q[:, cols], tensor.scale, tensor.bits)
        return _csr_kind(tensor, _csr(tensor)[:, cols], scale=_scale_of(tensor, None))

    return _memo(memo, tensor, build)


def project_cols(tensor: Stored, projection: np.ndarray, memo: Memo) -> Stored:
    """tensor @ projection ([R, C] @ [C, k]) as dense float32; low-rank keeps its left factor."""
    def build() -> Stored:
        if isinstance(tensor, LowRankTensor):
            # L Rᵀ P = L (Pᵀ R)ᵀ: only the small right factor changes.
            return LowRankTensor(tensor.left, DenseTensor((projection.T @ tensor.right.to_dense()).astype(np.float32)))
        if isinstance(tensor, RowScaledTensor):  # diag(s) X P = diag(s) (X P)
            return RowScaledTensor(project_cols(tensor.base, projection, memo), tensor.row_scale)
        return DenseTensor((tensor.to_dense() @ projection).astype(np.float32))

    return _memo(memo, tensor, build)


def _memo(memo: Memo, tensor: Stored, build: Callable[[], Stored]) -> Stored:
    key = id(tensor)
    if key not in memo:
        memo[key] = build()
    return memo[key]


def _csr(tensor: SparseTensor | QuantizedSparseTensor):
    import scipy.sparse as sp

    data = tensor.values if isinstance(tensor, SparseTensor) else tensor.q
    return sp.csr_matrix((data, tensor.indices, tensor.indptr), shape=tensor.shape)


def _scale_of(tensor, rows: np.ndarray | None) -> np.ndarray | None:
    if not isinstance(tensor, QuantizedSparseTensor):
        return None
    return tensor.scale if rows is None else tensor.scale[rows]


def _csr_kind(like: SparseTensor | QuantizedSparseTensor, csr, *, scale: np.ndarray | None) -> Stored:
    """A sparse tensor of `like`'s kind from a scipy CSR of its values (or codes)."""
    csr.sort_indices()
    indptr, indices = csr.indptr.astype(np.int32), csr.indices.astype(np.int32)
    shape = tuple(int(s) for s in csr.shape)
    if isinstance(like, QuantizedSparseTensor):
        return QuantizedSparseTensor(shape, indptr, indices, csr.data.astype(np.int8), scale, like.bits)
    return SparseTensor(shape, indptr, indices, csr.data.astype(np.float32))
