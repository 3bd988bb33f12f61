"""Graph filters on the server: fit GF-CF's (or ChebyCF's) two parts from the training interactions.

GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?", CIKM 2021) scores a
user u with binary history r_u [I] by two filters over the normalized item graph:
    R̃  = D_U^-½ R D_I^-½                       [U, I], D the user / item degrees
    P̃  = R̃ᵀ R̃                                   [I, I], the linear (low-pass) filter
    s_u = r_u · P̃ + α · r_u D_I^-½ V_k V_kᵀ D_I^½    V_k [I, k]: top-k right singular vectors of R̃
What ships (`fit_graph_filter`):
    message   [I, k] = α · D_I^-½ V_k     gathered by the history and summed: e_u = Σ_h message[h]
    item      [I, k] = D_I^½ V_k          scored: e_u · itemᵀ = α r_u D_I^-½ V_k V_kᵀ D_I^½
    neighbors [I, N] the N largest entries of each row of P̃ (ids and weights), the diagonal left
                     out (it only scores the user's own history, which is never recommended).
P̃ is computed in row blocks, each made dense once to pick its top N: memory stays one block of
`block_bytes` whatever the catalog, and no [I, I] matrix is ever held.

ChebyCF (`filter: chebycf`) and BSPM (`filter: bspm`) ship in the same three arrays: `_chebycf`,
`_bspm` (BSPM's tables are 2k wide: `table_width`).

The singular vectors come from scikit-learn's randomized SVD (Halko et al.), far faster than
ARPACK (`scipy.sparse.linalg.svds`) at these ranks and as good for ranking (README, "Graph
filters"); its power iterations are a card setting. `GraphFilterModule` holds the fitted arrays
as torch buffers, so the checkpoint stores them like any model's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from edgegnn.errors import ConfigError

BLOCK_BYTES = 1 << 28


@dataclass(frozen=True, eq=False)
class GraphFilterTables:
    """The fitted arrays: message, item float32 [I, k]; neighbor_items int32 [I, N];
    neighbor_weights float32 [I, N] (rows with fewer than N non-zeros padded with weight 0)."""

    message: np.ndarray
    item: np.ndarray
    neighbor_items: np.ndarray
    neighbor_weights: np.ndarray


def normalized_interactions(train_csr) -> tuple[sp.csr_matrix, np.ndarray]:
    """(R̃ = D_U^-½ R D_I^-½ as float32 CSR [U, I], item degrees float64 [I]); R binarized,
    duplicates counted once; a user or item with no interaction gets a zero row / column."""
    binary = sp.csr_matrix(train_csr, dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.data[:] = 1.0
    user_degree = np.asarray(binary.sum(axis=1)).ravel().astype(np.float64)
    item_degree = np.asarray(binary.sum(axis=0)).ravel().astype(np.float64)
    normalized = sp.diags(_inverse_sqrt(user_degree)) @ binary @ sp.diags(_inverse_sqrt(item_degree))
    return normalized.astype(np.float32).tocsr(), item_degree


def _inverse_sqrt(degree: np.ndarray) -> np.ndarray:
    return np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)


def check_fits(config, num_users: int, num_items: int) -> None:
    """A ConfigError unless the card's rank fits the data: k < min(users, items)."""
    limit = min(num_users, num_items)
    if config.rank >= limit:
        raise ConfigError("model.rank", config.rank,
                          f"must be below min(users, items) = {limit} for this data ({num_users} users, "
                          f"{num_items} items)")


def neighbor_count(config, num_items: int) -> int:
    """N: the card's `neighbors`, capped at items - 1 (an item's possible neighbours)."""
    return min(config.neighbors, max(num_items - 1, 0))


def fit_graph_filter(config, train_csr, *, seed: int = 0) -> GraphFilterTables:
    """The shipped arrays of the card's filter (module docstring) from the training CSR [U, I]."""
    from sklearn.utils.extmath import randomized_svd

    num_users, num_items = train_csr.shape
    check_fits(config, num_users, num_items)
    normalized, item_degree = normalized_interactions(train_csr)
    _, singular, vt = randomized_svd(normalized, config.rank, n_iter=config.svd_iterations, random_state=seed)
    products = FilterProducts(
        neighbors=lambda count, **scales: top_neighbors(normalized, count, **scales),
        gram=lambda columns: normalized.T @ (normalized @ columns))
    return filter_tables(config, item_degree, vt.T.astype(np.float64), singular.astype(np.float64) ** 2,
                         neighbor_count(config, num_items), products)


@dataclass(frozen=True, eq=False)
class FilterProducts:
    """What a filter's fit needs of P̃ = R̃ᵀR̃ without forming it; where R̃'s rows live (one
    process, or blocks of users on the ranks of a job) decides how they are computed.

    Attributes:
        neighbors: (count, row_scale=None, column_scale=None) -> (ids int32, weights float32)
            [I, N], the N largest off-diagonal entries of each row of diag(row_scale) P̃
            diag(column_scale) (`top_neighbors`); None where the lists are not assembled (ranks
            other than 0).
        gram: X float64 [I, m] -> P̃ X [I, m].
    """

    neighbors: Callable[..., tuple[np.ndarray, np.ndarray] | None]
    gram: Callable[[np.ndarray], np.ndarray]


def filter_tables(config, item_degree: np.ndarray, vectors: np.ndarray, eigenvalues: np.ndarray, count: int,
                  products: FilterProducts) -> GraphFilterTables | None:
    """The card's filter's arrays from P̃'s top-k eigenvectors [I, k] and eigenvalues [k]
    (largest first), the item degrees [I] and `products`; None where `products.neighbors` is."""
    if config.filter == "chebycf":
        return _chebycf(config, item_degree, vectors, eigenvalues, count, products)
    if config.filter == "bspm":
        return _bspm(config, item_degree, vectors, eigenvalues, count, products)
    lists = products.neighbors(count)
    if lists is None:
        return None
    message = (config.low_pass_weight * _inverse_sqrt(item_degree))[:, None] * vectors
    item = np.sqrt(item_degree)[:, None] * vectors
    return GraphFilterTables(message=message.astype(np.float32), item=item.astype(np.float32),
                             neighbor_items=lists[0], neighbor_weights=lists[1])


def plateau_filter(eigenvalues: np.ndarray, order: int, flatness: float) -> np.ndarray:
    """h(λ): ChebyCF's transfer function at P̃'s eigenvalues λ ∈ [0, 1], the order-K Chebyshev
    interpolation (numpy.polynomial.chebyshev) of a plateau over x = 1 - 2λ ∈ [-1, 1] (the
    normalized Laplacian's spectrum): 0.5 + 0.5 |x|^φ for x < 0 (low frequencies pass), 0.5 - 0.5 x^φ
    for x >= 0. φ = 1, K >= 1 is h(λ) = λ, the linear filter P̃ itself."""
    def plateau(x):
        return np.where(x < 0, 0.5 + 0.5 * np.abs(x) ** flatness, 0.5 - 0.5 * np.abs(x) ** flatness)

    coefficients = np.polynomial.chebyshev.chebinterpolate(plateau, order)
    return np.polynomial.chebyshev.chebval(1.0 - 2.0 * np.asarray(eigenvalues, np.float64), coefficients)


def _chebycf(config, item_degree, vectors, eigenvalues, count, products: FilterProducts) -> GraphFilterTables | None:
    """ChebyCF (Kim et al., SIGIR 2025) in the device form of GF-CF:
        s_u = (r_u D^-β) [h(P̃) + α V_k V_kᵀ] D^β,    D = D_I, β = degree_power, α = low_pass_weight
    h(P̃) is an order-K polynomial of P̃: dense, and its powers cost a pass over P̃ each. It is
    split at the k-th eigenvalue λ_k: below it (the spectrum the device does not keep) h is
    replaced by its secant c·λ, c = h(λ_k) / λ_k, i.e. by c·P̃, shipped as neighbour lists like
    GF-CF's; on the top-k eigenvectors the rest, h(λ) - c·λ, joins the ideal pass:
        h(P̃) + α V Vᵀ ≈ c·P̃ + V diag(h(λ) - c·λ + α) Vᵀ    (exact on the top-k eigenspace)
    message = D^-β V diag(h(λ) - cλ + α), item = D^β V; neighbour weights c · d_i^-β P̃_ij d_j^β."""
    response = plateau_filter(eigenvalues, config.order, config.flatness)
    last = eigenvalues[-1]
    slope = float(response[-1] / last) if last > 0 else 1.0
    weights = response - slope * eigenvalues + config.low_pass_weight                  # [k]
    pre = np.power(np.maximum(item_degree, 1.0), -config.degree_power) * (item_degree > 0)   # D^-β
    post = np.power(item_degree, config.degree_power)                                       # D^β
    lists = products.neighbors(count, row_scale=slope * pre, column_scale=post)
    if lists is None:
        return None
    message = pre[:, None] * vectors * weights[None, :]
    item = post[:, None] * vectors
    return GraphFilterTables(message=message.astype(np.float32), item=item.astype(np.float32),
                             neighbor_items=lists[0], neighbor_weights=lists[1])


def sharpening_response(eigenvalues: np.ndarray, time: float, steps: int) -> np.ndarray:
    """g(λ) = q(τλ)^K, τ = time / K, q(z) = 1 - z + z²/2 - z³/6 + z⁴/24: `steps` Runge-Kutta-4
    steps of BSPM's sharpening ODE dx/dt = -x·P̃ over `time`, at P̃'s eigenvalues λ."""
    z = (time / steps) * np.asarray(eigenvalues, np.float64)
    return (1.0 - z + z ** 2 / 2 - z ** 3 / 6 + z ** 4 / 24) ** steps


def sharpen(gram: Callable[[np.ndarray], np.ndarray], columns: np.ndarray, time: float, steps: int) -> np.ndarray:
    """g(P̃) X for X [I, m] (`sharpening_response` as a matrix function): per step the four Taylor
    terms Σ_j (-τP̃)^j X / j!, each P̃·Y = `gram`(Y) (R̃ᵀ(R̃ Y): P̃ is never formed)."""
    tau = time / steps
    out = np.asarray(columns, np.float64)
    for _ in range(steps):
        term, total = out, out.copy()
        for j in range(1, 5):
            term = -(tau / j) * gram(term)
            total += term
        out = total
    return out


def _bspm(config, item_degree, vectors, eigenvalues, count, products: FilterProducts) -> GraphFilterTables | None:
    """BSPM (Choi et al., SIGIR 2023) with early merge, the paper's Gowalla form: blur by one
    Euler step of the heat equation (x·P̃), add the ideal pass, then sharpen (`sharpening_response`):
        s_u = r_u [β D^-½ V Vᵀ D^½ + P̃] g(P̃),      β = low_pass_weight, D = D_I
    The ideal part stays exact and low-rank: message β D^-½ V, item g(P̃) D^½ V (`sharpen` applied
    to its k columns). f(P̃) = P̃ g(P̃) is split at λ_k like ChebyCF's h: neighbour lists L, the N
    largest entries of c·P̃ per row (c = f(λ_k) / λ_k), and on the top-k eigenvectors
    V (diag(f(λ)) - Vᵀ L V) Vᵀ, so Vᵀ (L + that) V = f(Λ) exactly: what the truncated lists lose
    within the kept eigenspace is given back there. Tables are [I, 2k]: the ideal columns, then
    the spectral ones (message V (diag(f) - Vᵀ L V), item V)."""
    response = eigenvalues * sharpening_response(eigenvalues, config.sharpen_time, config.sharpen_steps)
    last = eigenvalues[-1]
    slope = float(response[-1] / last) if last > 0 else 1.0
    sharpened = sharpen(products.gram, np.sqrt(item_degree)[:, None] * vectors, config.sharpen_time,
                        config.sharpen_steps)
    lists = products.neighbors(count, row_scale=np.full(len(item_degree), slope))
    if lists is None:
        return None
    ids, weights = lists
    projected = vectors.T @ (neighbor_matrix(ids, weights) @ vectors)                   # Vᵀ L V [k, k]
    message = np.hstack([config.low_pass_weight * _inverse_sqrt(item_degree)[:, None] * vectors,
                         vectors @ (np.diag(response) - projected)])
    item = np.hstack([sharpened, vectors])
    return GraphFilterTables(message=message.astype(np.float32), item=item.astype(np.float32),
                             neighbor_items=ids, neighbor_weights=weights)


def neighbor_matrix(ids: np.ndarray, weights: np.ndarray) -> sp.csr_matrix:
    """The neighbour lists as a CSR [I, I] (row i: weights[i] at columns ids[i]; padding adds 0).
    The arrays are copied: scipy would otherwise sort `ids` in place when it sums duplicates."""
    num_items, count = ids.shape
    indptr = np.arange(0, num_items * count + 1, count)
    lists = sp.csr_matrix((weights.ravel().astype(np.float64), ids.ravel().astype(np.int64), indptr),
                          shape=(num_items, num_items))
    lists.sum_duplicates()
    return lists


def table_width(config) -> int:
    """Columns of `message` and `item`: the rank k, or 2k for BSPM (ideal and spectral parts)."""
    return 2 * config.rank if config.filter == "bspm" else config.rank


def top_neighbors(normalized: sp.csr_matrix, count: int, *, block_bytes: int = BLOCK_BYTES,
                  row_scale: np.ndarray | None = None, column_scale: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The `count` largest off-diagonal entries of each row of P̃ = R̃ᵀR̃ (of diag(row_scale) ·
    P̃ · diag(column_scale), when given; the scales are non-negative), largest first:
    ids int32 [I, N] and weights float32 [I, N] (missing entries weight 0). Which of equal weights at
    the N-th place is kept is argpartition's choice: deterministic for the same input."""
    num_items = normalized.shape[1]
    ids = np.zeros((num_items, count), np.int32)
    weights = np.zeros((num_items, count), np.float32)
    if count == 0:
        return ids, weights
    transposed = normalized.T.tocsr()
    rows_per_block = max(1, block_bytes // (4 * max(num_items, 1)))
    for start in range(0, num_items, rows_per_block):
        stop = min(num_items, start + rows_per_block)
        block = scaled((transposed[start:stop] @ normalized).toarray(), start, row_scale, column_scale)
        ids[start:stop], weights[start:stop] = top_of_rows(block, start, count)
    return ids, weights


def scaled(block: np.ndarray, start: int, row_scale: np.ndarray | None, column_scale: np.ndarray | None) -> np.ndarray:
    """diag(row_scale) · block · diag(column_scale) in place, for the rows `start`.. of P̃ in
    `block` [b, I] float32 (either scale None: 1)."""
    if column_scale is not None:
        block *= column_scale.astype(np.float32)[None, :]
    if row_scale is not None:
        block *= row_scale[start:start + len(block)].astype(np.float32)[:, None]
    return block


def top_of_rows(block: np.ndarray, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, weights) [b, N] of the `count` largest entries of each row of `block` [b, I], the rows
    `start`.. of P̃, largest first, ties by the lower id; the diagonal left out (zeroed in place)."""
    block[np.arange(len(block)), np.arange(start, start + len(block))] = 0.0
    top = np.argpartition(-block, count - 1, axis=1)[:, :count]                         # count < I
    values = np.take_along_axis(block, top, axis=1)
    order = np.lexsort((top, -values), axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)


def build_module(config, num_users: int, num_items: int):
    """`GraphFilterModule` with zero buffers of the shapes this config gives on this data."""
    import torch

    class GraphFilterModule(torch.nn.Module):
        """The fitted arrays as buffers (nothing is trained): what a checkpoint stores."""

        def __init__(self) -> None:
            super().__init__()
            rank, count = table_width(config), neighbor_count(config, num_items)
            self.register_buffer("message", torch.zeros(num_items, rank))
            self.register_buffer("item", torch.zeros(num_items, rank))
            self.register_buffer("neighbor_items", torch.zeros(num_items, count, dtype=torch.int32))
            self.register_buffer("neighbor_weights", torch.zeros(num_items, count))

        def load_tables(self, tables: GraphFilterTables) -> None:
            for name in ("message", "item", "neighbor_items", "neighbor_weights"):
                getattr(self, name).copy_(torch.from_numpy(getattr(tables, name)))

        def tables(self) -> GraphFilterTables:
            return GraphFilterTables(*(getattr(self, name).numpy() for name in
                                       ("message", "item", "neighbor_items", "neighbor_weights")))

    return GraphFilterModule()
