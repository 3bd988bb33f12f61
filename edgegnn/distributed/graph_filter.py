"""A graph filter's fit over ranks (GF-CF, ChebyCF, BSPM): sparse products of row blocks, all-reduced,
and nothing [U, ·] moves.

Rank r holds the rows of its users (`partition`) of R̃ = D_U^-½ R D_I^-½ (item degrees summed
over ranks). Every quantity of the fit is a sum over users, so over ranks:
    P̃ X = R̃ᵀ R̃ X = Σ_r R̃_rᵀ (R̃_r X)          for X [I, m]: one [I, m] all-reduce
The top-k right singular vectors of R̃ are P̃'s top-k eigenvectors, found by randomized subspace
iteration on P̃ (Halko et al. 2011, Alg. 4.4 on a symmetric matrix): Q = orth(P̃ Ω), then
`svd_iterations` times Q = orth(P̃ Q), and the Rayleigh-Ritz step on Qᵀ P̃ Q [l, l] (l = k + 10).
scikit-learn's randomized_svd, which the one-process fit uses, needs R̃ whole; this is the same
method on the Gram matrix, so the vectors agree to the randomized method's accuracy, not bit
for bit. The neighbour lists, the N largest entries of each row of P̃, are owner-computes:
item rows are dealt to ranks in contiguous ranges, each block of rows P̃[b, :] = Σ_r
R̃_r[:, b]ᵀ R̃_r is reduced to its owner (dense, one block at a time), which scales it as the
filter asks and keeps its top N; rank 0 gathers the lists. With these two products
(`FilterProducts`) each filter's tables are assembled by the one-process code
(`edgegnn.models.graph_filter.filter_tables`): ChebyCF's scaled lists, BSPM's sharpening
(4 · steps products with P̃) and its lists.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist

from edgegnn.distributed.context import DistContext
from edgegnn.models.graph_filter import (
    BLOCK_BYTES,
    FilterProducts,
    GraphFilterTables,
    _inverse_sqrt,
    check_fits,
    filter_tables,
    neighbor_count,
    scaled,
    top_of_rows,
)

OVERSAMPLES = 10           # scikit-learn's randomized_svd default


def all_reduced(array: np.ndarray) -> np.ndarray:
    """Σ over ranks of a float64 numpy array."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))
    dist.all_reduce(tensor)
    return tensor.numpy()


def local_normalized(train_csr, users: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(R̃_r float32 CSR [U_r, I] of this rank's users, the global item degrees float64 [I])."""
    binary = sp.csr_matrix(train_csr[users], dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.data[:] = 1.0
    item_degree = all_reduced(np.asarray(binary.sum(axis=0)).ravel())
    user_degree = np.asarray(binary.sum(axis=1)).ravel().astype(np.float64)
    normalized = sp.diags(_inverse_sqrt(user_degree)) @ binary @ sp.diags(_inverse_sqrt(item_degree))
    return normalized.astype(np.float32).tocsr(), item_degree


def gram_product(block: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """P̃ X = Σ_r R̃_rᵀ (R̃_r X), X float64 [I, m]."""
    return all_reduced(block.T @ (block @ columns))


def top_eigenvectors(block: sp.csr_matrix, rank: int, iterations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues [k] of P̃, largest first; eigenvectors float64 [I, k]) by randomized subspace
    iteration (module docstring); every rank draws the same Ω and gets the same result."""
    num_items = block.shape[1]
    width = min(rank + OVERSAMPLES, num_items)
    sketch = np.random.default_rng(seed).standard_normal((num_items, width))
    basis, _ = np.linalg.qr(gram_product(block, sketch))
    for _ in range(iterations):
        basis, _ = np.linalg.qr(gram_product(block, basis))
    small = basis.T @ gram_product(block, basis)
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    order = np.argsort(values)[::-1][:rank]
    return values[order], basis @ vectors[:, order]


def owned_items(num_items: int, context: DistContext) -> tuple[int, int]:
    """This rank's contiguous range of item rows for the neighbour lists."""
    bounds = np.linspace(0, num_items, context.world_size + 1).astype(np.int64)
    return int(bounds[context.rank]), int(bounds[context.rank + 1])


def neighbor_lists(block: sp.csr_matrix, count: int, context: DistContext, block_bytes: int = BLOCK_BYTES, *,
                   row_scale: np.ndarray | None = None, column_scale: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """The top `count` off-diagonal entries of every row of diag(row_scale) P̃ diag(column_scale)
    on rank 0 (None elsewhere): ids int32 and weights float32 [I, N], as
    `edgegnn.models.graph_filter.top_neighbors` gives them."""
    num_items = block.shape[1]
    transposed = block.T.tocsr()
    rows_per_block = max(1, block_bytes // (4 * max(num_items, 1)))
    mine = owned_items(num_items, context)
    ids = np.zeros((mine[1] - mine[0], count), np.int32)
    weights = np.zeros((mine[1] - mine[0], count), np.float32)
    for owner in range(context.world_size):
        start_owner, stop_owner = owned_items(num_items, DistContext(owner, context.world_size))
        for start in range(start_owner, stop_owner, rows_per_block):
            stop = min(stop_owner, start + rows_per_block)
            partial = torch.from_numpy((transposed[start:stop] @ block).toarray())     # [b, I] float32
            dist.reduce(partial, dst=owner)
            if owner == context.rank and count:
                rows = slice(start - mine[0], stop - mine[0])
                ids[rows], weights[rows] = top_of_rows(scaled(partial.numpy(), start, row_scale, column_scale),
                                                       start, count)
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, (ids, weights))
    if context.rank != 0:
        return None
    return np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered])


def fit_graph_filter_distributed(config, train_csr, users: np.ndarray, context: DistContext, *,
                                 seed: int = 0) -> GraphFilterTables | None:
    """The card's filter's shipped arrays from this rank's users' rows (`users`: original indices);
    on rank 0 (None elsewhere)."""
    num_users, num_items = train_csr.shape
    check_fits(config, num_users, num_items)
    block, item_degree = local_normalized(train_csr, users)
    eigenvalues, vectors = top_eigenvectors(block, config.rank, config.svd_iterations, seed)
    return filter_tables(config, item_degree, vectors, eigenvalues, neighbor_count(config, num_items),
                         distributed_products(block, context))


def distributed_products(block: sp.csr_matrix, context: DistContext) -> FilterProducts:
    """P̃'s products over the ranks' row blocks (collectives: every rank calls each in turn)."""
    return FilterProducts(neighbors=lambda count, **scales: neighbor_lists(block, count, context, **scales),
                          gram=lambda columns: gram_product(block, columns))
