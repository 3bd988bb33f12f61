"""How a tensor of an EdgeModel is stored: dense, per-row int8/int4, low-rank, sparse, row-scaled, PQ.

Every stored tensor knows its logical shape, its bytes as stored (what ships in an
artifact), its parameter count, and how to give back float32 values. Pure numpy: the
device-side simulation and the exporters use these, never torch.

Storage kinds, and what each one saves:
    DenseTensor      float32 (or float16) values.                     4 bytes/value
    QuantizedTensor  symmetric per-row int8 or int4 with a float32 (or float16) scale per row:
                     x[r, c] ≈ q[r, c] · scale[r],  q ∈ [-(2^(b-1)-1), 2^(b-1)-1].
                     Smaller on disk AND in runtime memory; int8 scoring also cuts
                     memory traffic.                                  1 or ½ byte/value + 4 (2)/row
    LowRankTensor    x ≈ left @ rightᵀ (left [R, r], right [C, r]); each factor is itself
                     stored (dense or quantized). Smaller and faster: x·v costs r(R + C).
    SparseTensor     unstructured pruning: CSR of the kept values. Smaller on disk only;
                     runtimes here have no sparse kernels, so it is densified to run.
    MixedQuantizedTensor   per-row int8 or int4 (a QuantizedTensor whose marked rows hold
                     int4 codes): int8 for the popular head, int4 for the tail.
    QuantizedSparseTensor  a SparseTensor whose kept values are per-row int8/int4 codes.
    RowScaledTensor  x[r] = row_scale[r] · base[r]: a per-row factor on any stored tensor
                     (the share pass: message_i = s_i · item_i W).        + 2 or 4 bytes/row
    ProductQuantizedTensor  each row cut into M sub-vectors, each one uint8 index into its
                     sub-space's codebook of K <= 256 centroids; scored through a lookup
                     table (no decoding).                             M bytes/row + codebooks
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Union

import numpy as np

from edgegnn.errors import ConfigError


class StoredTensor(Protocol):
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int: ...

    @property
    def num_params(self) -> int: ...

    def to_dense(self) -> np.ndarray: ...

    def describe(self) -> dict: ...


@dataclass(frozen=True, eq=False)
class DenseTensor:
    """Plain values (float32 by default)."""

    values: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    @property
    def num_params(self) -> int:
        return int(self.values.size)

    def to_dense(self) -> np.ndarray:
        return self.values.astype(np.float32, copy=False)

    def describe(self) -> dict:
        return {"storage": "dense", "dtype": str(self.values.dtype), "shape": list(self.shape)}


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """Symmetric per-row (axis 0) integer quantization: x[r] ≈ q[r] · scale[r].

    Attributes:
        q: int8 [R, C] codes in [-qmax, qmax], qmax = 2^(bits-1) - 1 (int4 codes kept in
           int8 in memory; counted as packed nibbles in `nbytes`).
        scale: float32 or float16 [R], one per row (per item for tables, per output channel
           for weights). A float16 scale is exact in float32, and the device math
           widens it to float32 before use: x[r] = q[r] · float32(scale[r]).
        bits: 8 or 4.
    """

    q: np.ndarray
    scale: np.ndarray
    bits: int = 8

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.q.shape)

    @property
    def nbytes(self) -> int:
        code_bytes = self.q.size if self.bits == 8 else (self.q.size + 1) // 2
        return int(code_bytes + self.scale.nbytes)

    @property
    def num_params(self) -> int:
        return int(self.q.size)

    def to_dense(self) -> np.ndarray:
        return self.q.astype(np.float32) * self.scale.astype(np.float32)[:, None]

    def describe(self) -> dict:
        return {"storage": f"int{self.bits}", "axis": 0, "scale": f"per-row {self.scale.dtype}",
                "shape": list(self.shape)}


@dataclass(frozen=True, eq=False)
class LowRankTensor:
    """x ≈ left @ rightᵀ, left [R, r], right [C, r]; the factors are stored tensors themselves."""

    left: "Stored"
    right: "Stored"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.left.shape[0], self.right.shape[0])

    @property
    def rank(self) -> int:
        return self.left.shape[1]

    @property
    def nbytes(self) -> int:
        return self.left.nbytes + self.right.nbytes

    @property
    def num_params(self) -> int:
        return self.left.num_params + self.right.num_params

    def to_dense(self) -> np.ndarray:
        return self.left.to_dense() @ self.right.to_dense().T

    def describe(self) -> dict:
        return {"storage": "low-rank", "rank": self.rank, "shape": list(self.shape),
                "left": self.left.describe(), "right": self.right.describe()}


@dataclass(frozen=True, eq=False)
class SparseTensor:
    """Unstructured-pruned 2-D tensor as CSR: kept values, their column indices, row pointers.

    Bytes count int32 column indices and row pointers plus the values as stored.
    """

    shape: tuple[int, ...]
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "SparseTensor":
        import scipy.sparse as sp

        csr = sp.csr_matrix(dense)
        return cls(tuple(dense.shape), csr.indptr.astype(np.int32), csr.indices.astype(np.int32),
                   csr.data.astype(np.float32))

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.values.nbytes)

    @property
    def num_params(self) -> int:
        return int(self.values.size)

    def to_dense(self) -> np.ndarray:
        import scipy.sparse as sp

        return sp.csr_matrix((self.values, self.indices, self.indptr), shape=self.shape).toarray()

    def describe(self) -> dict:
        density = self.values.size / max(1, int(np.prod(self.shape)))
        return {"storage": "sparse-csr", "density": round(float(density), 4), "shape": list(self.shape)}


@dataclass(frozen=True, eq=False)
class MixedQuantizedTensor(QuantizedTensor):
    """Per-row int8 or int4: x[r] ≈ q[r] · scale[r], rows marked in `int4_mask` hold int4 codes.

    A QuantizedTensor (bits=8 describes the code container), so every reader of int8 rows
    reads it exactly: int4 codes in [-7, 7] are valid int8 codes. Only the stored size
    differs: head rows cost C bytes, int4 rows C/2 bytes (packed nibbles).

    Attributes:
        int4_mask: uint8 [ceil(R/8)], `np.packbits` of the bool [R] "row r is int4".
    """

    int4_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))

    @property
    def int4_rows(self) -> np.ndarray:
        """bool [R]: which rows are stored as int4."""
        return np.unpackbits(self.int4_mask, count=self.q.shape[0]).astype(bool)

    @property
    def nbytes(self) -> int:
        tail = int(self.int4_rows.sum())
        columns = self.q.shape[1]
        head_bytes = (self.q.shape[0] - tail) * columns
        return int(head_bytes + (tail * columns + 1) // 2 + self.scale.nbytes + self.int4_mask.nbytes)

    def describe(self) -> dict:
        return {"storage": "int8+int4", "axis": 0, "scale": f"per-row {self.scale.dtype}", "shape": list(self.shape),
                "int4_rows": int(self.int4_rows.sum())}


@dataclass(frozen=True, eq=False)
class QuantizedSparseTensor:
    """A CSR tensor whose kept values are symmetric per-row integer codes: x[r, c] ≈ q · scale[r].

    Attributes:
        shape: (R, C).
        indptr, indices: int32 CSR structure, as in SparseTensor.
        q: int8 [nnz] codes (int4 codes counted as packed nibbles in `nbytes`).
        scale: float32 [R], one per row.
        bits: 8 or 4.
    """

    shape: tuple[int, ...]
    indptr: np.ndarray
    indices: np.ndarray
    q: np.ndarray
    scale: np.ndarray
    bits: int = 8

    @property
    def nbytes(self) -> int:
        code_bytes = self.q.size if self.bits == 8 else (self.q.size + 1) // 2
        return int(self.indptr.nbytes + self.indices.nbytes + code_bytes + self.scale.nbytes)

    @property
    def num_params(self) -> int:
        return int(self.q.size)

    def row_of_values(self) -> np.ndarray:
        """int64 [nnz]: the row each kept value belongs to."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def to_dense(self) -> np.ndarray:
        import scipy.sparse as sp

        values = self.q.astype(np.float32) * self.scale[self.row_of_values()]
        return sp.csr_matrix((values, self.indices, self.indptr), shape=self.shape).toarray()

    def describe(self) -> dict:
        density = self.q.size / max(1, int(np.prod(self.shape)))
        return {"storage": f"sparse-csr-int{self.bits}", "density": round(float(density), 4),
                "scale": "per-row float32", "shape": list(self.shape)}


@dataclass(frozen=True, eq=False)
class RowScaledTensor:
    """x[r, c] = row_scale[r] · base[r, c]: one factor per row on top of any stored tensor.

    LightGCN's message_i carries the per-item norm 1/sqrt(|N(i)|), which no linear map of
    the item table can express; the share pass stores message = diag(s) · item · W as
    RowScaledTensor(LowRankTensor(item, Wᵀ), s). Device math, for a history `index`:
        gather:   x[index] = row_scale[index, None] · base[index]
        x @ xᵀ:   x @ tableᵀ = (x @ baseᵀ) · row_scale[None, :]
        x @ t:    x @ table  = (x · row_scale[None, :]) @ base
    (row_scale widened to float32 first.)

    Attributes:
        base: the stored [R, C] tensor being scaled (may be shared with other tensors).
        row_scale: DenseTensor [R], float32 or float16 (counted in the model's bytes).
    """

    base: "Stored"
    row_scale: DenseTensor

    def __post_init__(self) -> None:
        if tuple(self.row_scale.shape) != (self.base.shape[0],):
            raise ConfigError("row_scale.shape", tuple(self.row_scale.shape),
                              f"need one scale per row of the base tensor ({self.base.shape[0]},)")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.base.shape)

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.row_scale.nbytes

    @property
    def num_params(self) -> int:
        return self.base.num_params + self.row_scale.num_params

    def to_dense(self) -> np.ndarray:
        return self.row_scale.to_dense()[:, None] * self.base.to_dense()

    def describe(self) -> dict:
        return {"storage": "row-scaled", "shape": list(self.shape), "row_scale": str(self.row_scale.values.dtype),
                "base": self.base.describe()}


@dataclass(frozen=True, eq=False)
class ProductQuantizedTensor:
    """Product quantization: row r is the concatenation of M codewords, one per sub-space.

    The C columns are cut into M contiguous blocks of D = C / M; block m of row r is
    codebooks[m, codes[r, m]]:  x[r, m·D:(m+1)·D] = codebooks[m, codes[r, m]].

    Device math:
        gather (history rows): decode, x[index] = concat_m codebooks[m, codes[index, m]].
        scoring a user u [C] against every row, without decoding the table:
            LUT[m, k] = u[m·D:(m+1)·D] · codebooks[m, k]          ([M, K], M·K·D flops)
            score[r]  = Σ_m LUT[m, codes[r, m]]                  (M lookups and adds per row)
    A table of R rows costs R·M bytes of codes plus M·K·D codebook values.

    Attributes:
        codes: uint8 [R, M], each < K.
        codebooks: float32 or float16 [M, K, D] (widened to float32 for the math).
    """

    codes: np.ndarray
    codebooks: np.ndarray

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or self.codebooks.ndim != 3 or self.codes.shape[1] != self.codebooks.shape[0]:
            raise ConfigError("product_quantized.shape", (self.codes.shape, self.codebooks.shape),
                              "need codes [R, M] and codebooks [M, K, D]")

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.codes.shape[0]), int(self.codebooks.shape[0] * self.codebooks.shape[2]))

    @property
    def subvectors(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def centroids(self) -> int:
        return int(self.codebooks.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.codebooks.nbytes)

    @property
    def num_params(self) -> int:
        return int(self.codes.size + self.codebooks.size)

    def decode(self, rows: np.ndarray | None = None) -> np.ndarray:
        """float32 [N, C]: the rows `rows` (all rows if None), decoded."""
        codes = self.codes if rows is None else self.codes[rows]
        books = self.codebooks.astype(np.float32, copy=False)
        parts = books[np.arange(self.subvectors)[None, :], codes.astype(np.int64)]  # [N, M, D]
        return parts.reshape(len(codes), -1)

    def to_dense(self) -> np.ndarray:
        return self.decode()

    def describe(self) -> dict:
        return {"storage": "product-quantized", "subvectors": self.subvectors, "centroids": self.centroids,
                "codebook_dtype": str(self.codebooks.dtype), "shape": list(self.shape)}


Stored = Union[DenseTensor, QuantizedTensor, LowRankTensor, SparseTensor, QuantizedSparseTensor, RowScaledTensor,
               ProductQuantizedTensor]

SCALE_DTYPES = ("float32", "float16")


def quantize_rows(values: np.ndarray, bits: int = 8, *, clip_percentile: float = 100.0,
                  scale_dtype: str = "float32", per_tensor: bool = False) -> QuantizedTensor:
    """Symmetric per-row quantization of a 2-D float array.

    scale[r] = max_c |x[r, c]| / qmax (or the row's `clip_percentile` of |x|), rounded to
    `scale_dtype`, then q = round(x / scale) with that rounded scale (so the codes fit the
    scale the device will use). An all-zero row gets scale 1 and codes 0 (so it dequantizes
    to exactly zero). float16 scales are kept within [2⁻²⁴, 65504] (finite, non-zero).
    `per_tensor`: every row gets the scale of the whole array (max over all r, c), still
    stored once per row.
    """
    if bits not in (4, 8):
        raise ConfigError("bits", bits, "allowed: 4, 8")
    if scale_dtype not in SCALE_DTYPES:
        raise ConfigError("scale_dtype", scale_dtype, f"allowed: {', '.join(SCALE_DTYPES)}")
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ConfigError("values.ndim", values.ndim, "per-row quantization needs a 2-D tensor")
    qmax = 2 ** (bits - 1) - 1
    magnitude = np.abs(values)
    peak = magnitude.max(axis=1) if clip_percentile >= 100 else np.percentile(magnitude, clip_percentile, axis=1)
    if per_tensor:
        peak = np.full_like(peak, peak.max(initial=0.0))
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    if scale_dtype == "float16":
        scale = np.clip(scale, np.float32(2.0 ** -24), np.float32(65504.0)).astype(np.float16)
    q = np.clip(np.rint(values / scale.astype(np.float32)[:, None]), -qmax, qmax).astype(np.int8)
    return QuantizedTensor(q=q, scale=scale, bits=bits)
