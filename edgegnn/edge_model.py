"""`EdgeModel`: the model that runs on the device, as numpy arrays plus a small spec.

The device sees one user at a time: the item indices of the user's own history (their
ego-graph) and, optionally, the user's base embedding e_u⁰. It encodes the user from that
history with its kind's device math (`edgegnn.kinds`: LightGCN's folded layer, GraphSAGE's
two layers) and scores every item:
    e_u = kind.encode(history, e_u⁰)        [B, d]
    s   = e_u · itemᵀ (+ kind.item_scores(history))     [B, I]
(the second term: graph filters' neighbour lists, scattered into the scores; `scores`).

Optional tensors written by compression passes:
    `base_projection` [d, d'] (LightGCN): e_u⁰ enters as e_u⁰ · base_projection when the
        tables were narrowed to d' columns (structured pruning); absent means identity.
Activation scales (static, see `edgegnn.compress.quantize`): "user" (e_u entering the
scoring matmul) and the kind's ACTIVATIONS (SAGE: "h1", entering the second layer); an
activation x with scale s runs as clip(rint(x / s), -L, L) · s, L = ACTIVATION_LEVELS[name].
Factors may be shared between tables (a joint low-rank factorization gives `message` and
`item` one left factor; the share pass makes message = diag(s) · item · W over the very
item table); shared factors are stored, and counted, once.

`encode` and `score` do exactly this arithmetic in numpy (`NumpyOps`, the kinds' ops over
arrays), reading each tensor the way it is stored (int8 rows dequantized on gather, low-rank
tables scored in the rank-r space), so the metrics of an EdgeModel are the metrics the device
will get.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgegnn.errors import ConfigError
from edgegnn.kinds import KINDS, item_scores, neighbor_tensors
from edgegnn.kinds import kind as kind_module
from edgegnn.retrieval import model_lists
from edgegnn.tensors import DenseTensor, LowRankTensor, ProductQuantizedTensor, QuantizedTensor, RowScaledTensor, Stored

ITEM_TABLES = {name: module.TABLES for name, module in KINDS.items()}
WEIGHTS = {name: module.WEIGHTS for name, module in KINDS.items()}
# Levels L on each side of zero of a static activation quantization, by activation.
# "user" is 7 bits (63): it enters the integer scoring matmul, which ONNX exports as MatMulInteger
# with x as uint8 (zero point 64) and int8 item codes in [-127, 127]. On x86 CPUs without VNNI
# (SSE4.1 up to AVX-512BW), ONNX Runtime multiplies with vpmaddubsw, which adds each pair of
# u8·s8 products into a saturating int16: with x in [1, 255] (8 bits, zero point 128) a pair
# reaches 2·255·127 = 64,770 and wraps to 32,767 (../shared/notes/CPU_ISA.md: 81 % of the outputs
# of a full-range 1 x 64 x 4,096 product wrong on AVX2). With x in [1, 127] a pair stays within
# 2·127·127 = 32,258, so every kernel path (SSE4.2, AVX2, AVX-512, VNNI, ARM) is exact, at the
# same speed (the same kernel). Recall@20 on Gowalla, int8 item rows: README, "Exact on every CPU".
# "h1" (SAGE) runs as a float fake-quantization (no integer kernel): 8 bits.
ACTIVATION_LEVELS = {"user": 63, "h1": 127}


@dataclass(frozen=True, eq=False)
class EdgeModel:
    """The deployable model.

    Attributes:
        kind: a model kind of `edgegnn.kinds.KINDS` ("lightgcn", "sage").
        tensors: name -> stored tensor (see the module docstring for names and shapes).
        item_ids: [I] raw item ids of the table rows (row r scores item `item_ids[r]`).
        params: scalars of the device math, e.g. {"a0": 0.25} for LightGCN.
        recipe: the compression configs applied so far, in order, as dicts.
        activation_scales: calibrated static scales of activations, by name (int8 passes).
        data: the DataRecord (as a dict) of the split the model was trained on, or None
            (`edgegnn.data.provenance`): evaluate, export and profile default to it.
    """

    kind: str
    tensors: Mapping[str, Stored]
    item_ids: np.ndarray
    params: Mapping[str, Any] = field(default_factory=dict)
    recipe: tuple[dict, ...] = ()
    activation_scales: Mapping[str, float] = field(default_factory=dict)
    data: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        module = kind_module(self.kind)
        missing = [name for name in module.TABLES + module.WEIGHTS if name not in self.tensors]
        neighbors = [name for name in neighbor_tensors(self.kind) if name in self.tensors]
        if neighbors and len(neighbors) != len(neighbor_tensors(self.kind)):
            missing += [name for name in neighbor_tensors(self.kind) if name not in neighbors]
        if missing:
            raise ConfigError("tensors", sorted(self.tensors), f"a {self.kind} EdgeModel needs {missing}")

    @property
    def num_items(self) -> int:
        return int(self.tensors["item"].shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.tensors["item"].shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of every tensor as stored (tables, weights, scales, factors; shared factors once)."""
        return sum(t.nbytes for t in stored_leaves(self.tensors.values()))

    @property
    def num_params(self) -> int:
        return sum(t.num_params for t in stored_leaves(self.tensors.values()))

    def with_tensors(self, recipe_entry: dict | None = None, **tensors: Stored) -> "EdgeModel":
        """A copy with some tensors replaced (and the recipe extended)."""
        recipe = self.recipe + ((recipe_entry,) if recipe_entry is not None else ())
        return replace(self, tensors={**self.tensors, **tensors}, recipe=recipe)

    def describe(self) -> dict:
        return {"kind": self.kind, "num_items": self.num_items, "embedding_dim": self.embedding_dim,
                "bytes": self.nbytes, "params": self.num_params,
                "tensors": {name: t.describe() for name, t in self.tensors.items()},
                "recipe": list(self.recipe)}

    # ---- the device math -------------------------------------------------------------

    def encode(self, histories: Sequence[np.ndarray], user_base: np.ndarray | None = None) -> np.ndarray:
        """User embeddings from histories (lists of row indices), float32 [B, d].

        Args:
            histories: B arrays of item row indices (each non-empty).
            user_base: float32 [B, d] e_u⁰ of known users, or None (new users: zeros).
        """
        ops = NumpyOps(self, histories, user_base)
        return np.asarray(kind_module(self.kind).encode(ops, self.params), np.float32)

    @property
    def has_item_scores(self) -> bool:
        """Whether the device math adds a history term to e_u · itemᵀ (graph filters' neighbour
        lists): then scores need the history (`scores`), not e_u alone."""
        return any(name in self.tensors for name in neighbor_tensors(self.kind))

    def scores(self, histories: Sequence[np.ndarray], user_base: np.ndarray | None = None) -> np.ndarray:
        """The device's scores of every item, float32 [B, I]: score(encode(...)) plus the kind's
        item_scores term of the same histories (if any)."""
        ops = NumpyOps(self, histories, user_base)
        scores = self.score(np.asarray(kind_module(self.kind).encode(ops, self.params), np.float32))
        term = item_scores(self.kind, ops, self.params)
        return scores if term is None else (scores + term).astype(np.float32)

    def score(self, user_emb: np.ndarray) -> np.ndarray:
        """e_u · itemᵀ, float32 [B, I], read as the table is stored (without a kind's item_scores
        term: `scores` adds it). With inverted lists (the retrieval pass), only the items of the
        lists probed with e_u (before its "user" rounding) are scored, the others are -inf."""
        scores = matmul_transposed(self.quantize_activation("user", user_emb), self.tensors["item"])
        indexed = model_lists(self.tensors, self.params)
        if indexed is None:
            return scores
        lists, nprobe = indexed
        return lists.keep_candidates(user_emb, nprobe, scores)

    def raw_activation(self, name: str, histories: Sequence[np.ndarray], user_base: np.ndarray | None = None
                       ) -> np.ndarray:
        """An internal activation of the kind (e.g. SAGE's "h1"), float32 [B, C], before its own
        static quantization (the ones before it applied): what calibration sees."""
        ops = NumpyOps(self, histories, user_base, record=name)
        kind_module(self.kind).encode(ops, self.params)
        if ops.recorded is None:
            raise ConfigError("activation", name, f"the {self.kind} device math has none by that name")
        return ops.recorded

    def quantize_activation(self, name: str, x: np.ndarray) -> np.ndarray:
        """Static quantize-dequantize of an activation, if calibrated (else unchanged):
        clip(rint(x / s), -L, L) · s with L = ACTIVATION_LEVELS[name]."""
        scale = self.activation_scales.get(name)
        if scale is None:
            return x
        levels = ACTIVATION_LEVELS[name]
        return (np.clip(np.rint(x / scale), -levels, levels) * scale).astype(np.float32)


class NumpyOps:
    """The kinds' ops (`edgegnn.kinds.ops`) over float32 numpy arrays: the simulation.

    Args:
        edge: the model whose tensors the ops read.
        histories: B arrays of item row indices (each non-empty).
        user_base: float32 [B, d⁰] e_u⁰, or None (new users).
        record: the name of an activation whose raw value to keep in `recorded`.
    """

    def __init__(self, edge: EdgeModel, histories: Sequence[np.ndarray], user_base: np.ndarray | None = None,
                 record: str | None = None) -> None:
        self.edge, self.base, self.record, self.recorded = edge, user_base, record, None
        self.histories = histories
        self.index, self.segment, self.counts = _flatten(histories)

    def history_pool(self, table: str, norm: str) -> np.ndarray:
        summed = _segment_sum(gather_rows(self.edge.tensors[table], self.index), self.segment, len(self.counts))
        if norm == "sum":
            return summed
        return summed / (np.sqrt(self.counts) if norm == "sqrt" else self.counts)[:, None]

    def history_attention(self, table: str) -> np.ndarray:
        rows = gather_rows(self.edge.tensors[table], self.index)                        # [N, C + 1]
        weights = segment_softmax(rows[:, -1], self.segment, len(self.counts))
        return _segment_sum(rows[:, :-1] * weights[:, None], self.segment, len(self.counts))

    def user_base(self) -> np.ndarray | None:
        return self.base

    def has(self, name: str) -> bool:
        return name in self.edge.tensors

    def matmul(self, x: np.ndarray, table: str) -> np.ndarray:
        return matmul(x, self.edge.tensors[table])

    def matmul_t(self, x: np.ndarray, table: str) -> np.ndarray:
        return matmul_transposed(x, self.edge.tensors[table])

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + b).astype(np.float32)

    def scale(self, x: np.ndarray, factor: float) -> np.ndarray:
        return (x * np.float32(factor)).astype(np.float32)

    def relu(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0).astype(np.float32)

    def bias(self, name: str) -> np.ndarray:
        return self.edge.tensors[name].to_dense().astype(np.float32)

    def activation(self, name: str, x: np.ndarray) -> np.ndarray:
        if name == self.record:
            self.recorded = x
        return self.edge.quantize_activation(name, x)

    def neighbor_scores(self, ids: str, weights: str) -> np.ndarray:
        """(history counts [B, I]) @ (neighbour lists as a CSR [I, I]), both sparse: Σ_h w[h, j]
        lands on item ids[h, j]. The lists are a CSR as they are stored (N entries a row), so
        building it copies nothing; scipy's sparse product sums the overlaps."""
        import scipy.sparse as sp

        neighbor_ids = self.edge.tensors[ids].values
        items, count = neighbor_ids.shape
        values = self.edge.tensors[weights].to_dense().astype(np.float32, copy=False)
        lists = sp.csr_matrix((values.ravel(), neighbor_ids.ravel(), np.arange(0, items * count + 1, count)),
                              shape=(items, items))
        history = sp.csr_matrix((np.ones(len(self.index), np.float32), (self.segment, self.index)),
                                shape=(len(self.counts), items))
        return (history @ lists).toarray().astype(np.float32, copy=False)


def _flatten(histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated indices [N], the row each belongs to [N], and history lengths [B] (float32)."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    if (lengths == 0).any():
        raise ConfigError("history", "[]", "every history needs at least one item")
    index = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    segment = np.repeat(np.arange(len(histories)), lengths)
    return index, segment, lengths.astype(np.float32)


def _segment_sum(rows: np.ndarray, segment: np.ndarray, num_segments: int) -> np.ndarray:
    out = np.zeros((num_segments, rows.shape[1]), dtype=np.float32)
    np.add.at(out, segment, rows)
    return out


def segment_softmax(logits: np.ndarray, segment: np.ndarray, num_segments: int) -> np.ndarray:
    """float32 [N]: softmax of `logits` within each segment (the max of each subtracted first)."""
    top = np.full(num_segments, -np.inf, np.float32)
    np.maximum.at(top, segment, logits)
    weights = np.exp(logits - top[segment]).astype(np.float32)
    total = np.zeros(num_segments, np.float32)
    np.add.at(total, segment, weights)
    return (weights / total[segment]).astype(np.float32)


def gather_rows(table: Stored, index: np.ndarray) -> np.ndarray:
    """table[index] as float32 [N, C], dequantizing (or decoding) only the gathered rows."""
    if isinstance(table, DenseTensor):
        return table.values[index].astype(np.float32, copy=False)
    if isinstance(table, QuantizedTensor):
        return table.q[index].astype(np.float32) * table.scale[index, None].astype(np.float32)
    if isinstance(table, LowRankTensor):
        return gather_rows(table.left, index) @ table.right.to_dense().T
    if isinstance(table, RowScaledTensor):
        return table.row_scale.to_dense()[index, None] * gather_rows(table.base, index)
    if isinstance(table, ProductQuantizedTensor):
        return table.decode(index)
    return table.to_dense()[index]


def matmul_transposed(x: np.ndarray, table: Stored) -> np.ndarray:
    """x @ tableᵀ, float32 [B, R], for x [B, C] and a stored table [R, C].

    int8 rows: (x @ qᵀ) · scale — the scale is applied to the B x R result, as a device
    kernel would. Low-rank: (x @ right) @ leftᵀ, so the cost is r(R + C) per user, not R·C.
    Row-scaled: (x @ baseᵀ) · row_scale. Product-quantized: lookup tables, see `pq_scores`.
    """
    if isinstance(table, QuantizedTensor):
        return (x @ table.q.T.astype(np.float32)) * table.scale[None, :].astype(np.float32)
    if isinstance(table, LowRankTensor):
        return matmul_transposed(matmul(x, table.right).astype(np.float32), table.left)
    if isinstance(table, RowScaledTensor):
        return matmul_transposed(x, table.base) * table.row_scale.to_dense()[None, :]
    if isinstance(table, ProductQuantizedTensor):
        return pq_scores(x, table)
    return x @ table.to_dense().T


def pq_scores(x: np.ndarray, table: ProductQuantizedTensor) -> np.ndarray:
    """x @ tableᵀ, float32 [B, R], through per-sub-space lookup tables (the table is never decoded).

    LUT[b, m, k] = x[b, m·D:(m+1)·D] · codebooks[m, k];  score[b, r] = Σ_m LUT[b, m, codes[r, m]].
    The M lookups of every row run as one sparse product with the one-hot code matrix
    H [R, M·K] (H[r, m·K + codes[r, m]] = 1): score = LUT.reshape(B, M·K) @ Hᵀ. Multiplying
    by 1 is exact and the sum runs over m in order, so this is the lookup-and-add arithmetic.
    """
    import scipy.sparse as sp

    m, k, d = table.codebooks.shape
    rows = table.codes.shape[0]
    x = np.asarray(x, np.float32).reshape(len(x), m, d)
    lut = np.einsum("bmd,mkd->bmk", x, table.codebooks.astype(np.float32, copy=False)).reshape(len(x), m * k)
    columns = (table.codes.astype(np.int64) + np.arange(m, dtype=np.int64) * k).ravel()
    one_hot = sp.csr_matrix((np.ones(rows * m, np.float32), columns, np.arange(0, rows * m + 1, m)),
                            shape=(rows, m * k))
    return np.asarray((one_hot @ lut.T).T, dtype=np.float32)


def matmul(x: np.ndarray, table: Stored) -> np.ndarray:
    """x @ table, float32 [B, C], for x [B, R] and a stored table [R, C].

    int8 rows: (x · scale) @ q — the per-row scales weight the inputs. Low-rank:
    (x @ left) @ rightᵀ. Row-scaled: (x · row_scale) @ base.
    """
    if isinstance(table, QuantizedTensor):
        return (x * table.scale[None, :].astype(np.float32)) @ table.q.astype(np.float32)
    if isinstance(table, LowRankTensor):
        return matmul_transposed(matmul(x, table.left).astype(np.float32), table.right)
    if isinstance(table, RowScaledTensor):
        return matmul(x * table.row_scale.to_dense()[None, :], table.base)
    return x @ table.to_dense()


def stored_leaves(tensors) -> list:
    """The distinct stored arrays-holders under `tensors` (low-rank factors and row-scaled
    tensors unpacked: base and row scale), each once.

    Shared factors (the same object under two tables) count once: that is how they ship.
    """
    seen: dict[int, object] = {}

    def visit(t) -> None:
        if isinstance(t, LowRankTensor):
            visit(t.left)
            visit(t.right)
        elif isinstance(t, RowScaledTensor):
            visit(t.base)
            visit(t.row_scale)
        else:
            seen.setdefault(id(t), t)

    for t in tensors:
        visit(t)
    return list(seen.values())
