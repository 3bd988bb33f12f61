"""Item rows added to and removed from stored tables, in the table's own storage.

A living catalog changes a few rows of a shipped model: new items get rows appended at the
end (row I, I+1, ...), removed items leave by a swap with the last row (the table shrinks by
one and only two rows change). Both keep every other row's bytes where they were, so a patch
between the two artifacts is small (`edgegnn.export.patch`).

New rows arrive as float32 [n, C] and are stored as the table stores its rows:
    dense:           appended as they are (in the table's dtype);
    int8/int4 rows:  quantized per row with the table's bits and scale dtype (`quantize_rows`);
                     a table with one scale for every row (granularity "tensor": its graph ranks
                     the integer accumulators) gives the new rows that very scale, clipping
                     the values beyond its range (logged);
    low-rank:        left rows of least squares against the fixed right factor,
                     left_new = argmin_L ||L · rightᵀ - x||² = x · right · (rightᵀ right)⁻¹,
                     then stored as the left factor stores its rows;
    product-quant.:  each sub-vector's nearest codeword of the table's codebooks.
Other storages (row-scaled, sparse, mixed int4/int8) are refused in one line.
"""

from __future__ import annotations

import logging

import numpy as np

from edgegnn.errors import ConfigError
from edgegnn.tensors import DenseTensor, LowRankTensor, ProductQuantizedTensor, QuantizedTensor, Stored, quantize_rows

log = logging.getLogger(__name__)


def append_rows(table: Stored, rows: np.ndarray, *, name: str = "table") -> Stored:
    """`table` [R, C] with `rows` float32 [n, C] appended, stored as the table stores its rows."""
    rows = np.asarray(rows, np.float32)
    if type(table) is DenseTensor:
        return DenseTensor(np.concatenate([table.values, rows.astype(table.values.dtype)]))
    if type(table) is QuantizedTensor:
        new = _quantize_like(table, rows, name)
        return QuantizedTensor(q=np.concatenate([table.q, new.q]), scale=np.concatenate([table.scale, new.scale]),
                               bits=table.bits)
    if type(table) is LowRankTensor:
        right = table.right.to_dense().astype(np.float64)                    # [C, r]
        left = np.linalg.lstsq(right, rows.astype(np.float64).T, rcond=None)[0].T
        return LowRankTensor(left=append_rows(table.left, left, name=f"{name}.left"), right=table.right)
    if type(table) is ProductQuantizedTensor:
        return ProductQuantizedTensor(codes=np.concatenate([table.codes, pq_encode(rows, table.codebooks)]),
                                      codebooks=table.codebooks)
    raise ConfigError(name, table.describe()["storage"],
                      "new items can be added to dense, int8/int4, low-rank and product-quantized tables")


def _quantize_like(table: QuantizedTensor, rows: np.ndarray, name: str) -> QuantizedTensor:
    from edgegnn.export.plan import one_scale

    shared = one_scale(table) if len(table.scale) > 1 else None
    if shared is None:
        return quantize_rows(rows, table.bits, scale_dtype=str(table.scale.dtype))
    qmax = 2 ** (table.bits - 1) - 1
    codes = np.rint(rows / np.float32(shared))
    clipped = int((np.abs(codes) > qmax).any(axis=1).sum())
    if clipped:
        log.warning("%s: %d of %d new rows exceed the table's one scale and were clipped", name, clipped, len(rows))
    return QuantizedTensor(q=np.clip(codes, -qmax, qmax).astype(np.int8),
                           scale=np.full(len(rows), shared, table.scale.dtype), bits=table.bits)


def pq_encode(rows: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """uint8 [n, M]: the nearest codeword (squared distance) of each of the M sub-vectors."""
    m, k, d = codebooks.shape
    parts = rows.reshape(len(rows), m, d)
    books = codebooks.astype(np.float32)
    distance = ((parts[:, :, None, :] - books[None]) ** 2).sum(-1)            # [n, M, K]
    return distance.argmin(-1).astype(np.uint8)


def take_rows(table: Stored, order: np.ndarray, *, name: str = "table") -> Stored:
    """The rows `order` (int64 [R']) of `table`, in that order, in the same storage."""
    if type(table) is DenseTensor:
        return DenseTensor(table.values[order])
    if type(table) is QuantizedTensor:
        return QuantizedTensor(q=table.q[order], scale=table.scale[order], bits=table.bits)
    if type(table) is LowRankTensor:
        return LowRankTensor(left=take_rows(table.left, order, name=f"{name}.left"), right=table.right)
    if type(table) is ProductQuantizedTensor:
        return ProductQuantizedTensor(codes=table.codes[order], codebooks=table.codebooks)
    raise ConfigError(name, table.describe()["storage"],
                      "items can be removed from dense, int8/int4, low-rank and product-quantized tables")


def swap_remove_order(num_rows: int, removed: np.ndarray) -> np.ndarray:
    """int64 [R - n]: the row order after removing `removed` (distinct rows) by swaps with the
    last rows: row i < R - n keeps its place unless removed, and then holds one of the last n
    rows that survive (in increasing order). Only the removed rows and the moved rows change."""
    removed = np.unique(np.asarray(removed, np.int64))
    keep = num_rows - len(removed)
    order = np.arange(keep, dtype=np.int64)
    holes = removed[removed < keep]
    tail = np.setdiff1d(np.arange(keep, num_rows), removed)                    # survivors past the end
    order[holes] = tail
    return order
