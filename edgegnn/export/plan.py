"""What an exported graph computes, independent of the file format: options, I/O, tensor forms.

Both graph writers (ONNX, TFLite) reproduce `EdgeModel.encode`/`score` and end in a top-K.
This module holds what they share:

`GraphOptions` -- the variant ("history": history -> top-K, or "user": user_embedding ->
top-K), K, the history length H (None: dynamic, ONNX only), the batch (None: dynamic), whether
e_u⁰ is an input, and the precision the tables ship in.

Inputs and outputs (`io_spec`), B = batch, H = history length, d = embedding dim:
    history        int32   [B, H]  item row indices, padded with any valid row (e.g. 0)
    history_mask   float32 [B, H]  1 = real item, 0 = padding
    user_base      float32 [B, d⁰] e_u⁰ (optional input; zeros for a new user)
    user_embedding float32 [B, d]  ("user" variant only, instead of the three above)
    top_items      int64 (ONNX) | int32 (TFLite) [B, K + H]  item rows, best first
    top_scores     float32 [B, K + H]
    scores         float32 [B, I] (TFLite history graphs: H is fixed, see the runtime's top_rows)
    class_probabilities float32 [B, C] (models with a user class head, `edgegnn.class_head`)
The graph returns K + H items (at most I) and masks nothing: the caller drops the items the
user has seen, so K are left when at most H were seen. In-graph masking would need a scatter,
which TFLite lacks on its fast path; dropping seen items from K + H rows is free. A user who
saw more (a history longer than the artifact's window) is fed more masked slots (ONNX: H is
dynamic) or ranked from the "scores" output (TFLite), `edgegnn.runtime.Recommender.top_rows`.

Tensor forms (`exportable`): every stored tensor becomes one of the forms a graph can run:
    DenseTensor (fp32), QuantizedTensor (int8 codes + per-row scales),
    ProductQuantizedTensor (uint8 codes + codebooks), and LowRankTensor / RowScaledTensor of
    those. int4 and int8+int4 codes run as int8 (the values are exactly the same); pure int4
    keeps bits=4, so a graph may ship it packed (ONNX: nibbles, scored by MatMulNBits and
    unpacked on gather) where it otherwise widens the codes to int8. float16 scales, row scales
    and codebooks keep their dtype: ONNX ships them as float16 and widens them in the graph
    (a Cast ORT folds at load); TFLite ships row scales and codebooks as float16 (a DEQUANTIZE
    LiteRT runs at prepare) and widens int scales in the file (its int8 kernels read float32
    quantization parameters). Sparse tensors are densified (no sparse kernels).
Shared tensors (a joint low-rank left factor) stay shared: the same object maps to the same
exportable object, so a graph stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgegnn.class_head import CLASS_OUTPUT, has_class_head
from edgegnn.edge_model import EdgeModel, stored_leaves
from edgegnn.errors import ConfigError, ExportError
from edgegnn.retrieval import model_lists
from edgegnn.tensors import (
    DenseTensor,
    LowRankTensor,
    MixedQuantizedTensor,
    ProductQuantizedTensor,
    QuantizedSparseTensor,
    QuantizedTensor,
    RowScaledTensor,
    SparseTensor,
)

VARIANTS = ("history", "user")
SCORED_ROWS = "scored_rows"   # TFLite history graphs with inverted lists: the rows "scores" holds


@dataclass(frozen=True)
class GraphOptions:
    """How to lay out the exported graph.

    Attributes:
        variant: "history" (history -> top-K) or "user" (user_embedding -> top-K).
        top_k: K; the outputs hold min(K + H, I) items ("user" variant: min(K, I)).
        history_length: H, fixed; None for a dynamic H (ONNX only).
        batch: fixed batch size, or None for dynamic (ONNX only).
        user_base: whether e_u⁰ is an input (history variant).
        precision: "fp32", "fp16" (dense tables in float16, ONNX) or "int8" (the model's
            quantized tensors as int8 with per-row scales).
        score_block_rows: ONNX: split the scoring table into row blocks of at most this many
            rows, each its own initializer, scored separately and concatenated (None: one
            block). ONNX Runtime prepacks a weight only after reading all of it; block by
            block, the load peak stays about one block above the packed table.
        nbits_min_rows: ONNX: int8 scoring tables with at least this many rows run on
            com.microsoft MatMulNBits (8 bits, one block per row) instead of MatMulInteger
            (None: never). Measured on ORT 1.32 (benchmarks/bench_onnx_int8_ops.py): faster
            from ~250k rows (memory-bound), slower below ~100k.
        block_topk_min_items: the top-K runs in two stages (`topk_blocks`) from this many
            items on (None: one TopK over all scores).
    """

    variant: Literal["history", "user"] = "history"
    top_k: int = 100
    history_length: int | None = None
    batch: int | None = None
    user_base: bool = True
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    score_block_rows: int | None = None
    nbits_min_rows: int | None = None
    block_topk_min_items: int | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError("variant", self.variant, f"allowed: {', '.join(VARIANTS)}")
        if self.top_k < 1:
            raise ConfigError("top_k", self.top_k, "must be >= 1")
        if self.history_length is not None and self.history_length < 1:
            raise ConfigError("history_length", self.history_length, "must be >= 1 (or None for dynamic)")
        for name in ("score_block_rows", "nbits_min_rows", "block_topk_min_items"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(name, value, "must be >= 1 (or None)")


@dataclass(frozen=True)
class TopKBlocks:
    """The two-stage top-K over I scores: R blocks of C consecutive items (R·C = I + pad).

    1. m_b = max of block b's scores                                      [B, R]
    2. the k blocks with the largest m_b (all R if k >= R)                 [B, min(k, R)]
    3. top-k over those blocks' C scores each                             [B, min(k, R)·C]
    Exact: an item i in the top-k lies in one of those blocks. If its block b were not among
    them, k other blocks would have maxima above m_b >= s_i, k items beating i. (Ties may
    pick another item of equal score.) TopK's cost grows with its input: at 1M items ORT
    spends ~0.7 ms in one TopK, ~0.25 ms in the two stages (one ReduceMax pass + 40k scores).
    The pad (scores of -inf, when C does not divide I) costs a copy of the scores: C is a
    divisor of I where one lies in [sqrt(I)/8, 2·sqrt(I)].
    """

    block: int      # C
    blocks: int     # R
    pad: int        # items of -inf appended so that R·C = I + pad


def topk_blocks(num_items: int) -> TopKBlocks:
    """C near sqrt(I)/2 (measured best at 41k and 1M items on ORT 1.32), a divisor of I if one is
    near enough, else a power of two and a pad."""
    root = num_items ** 0.5
    goal = root / 2
    low, high = max(2, int(root / 8)), max(2, int(2 * root))
    divisors = [c for c in range(low, high + 1) if num_items % c == 0]
    if divisors:
        block = min(divisors, key=lambda c: abs(np.log(c / goal)))
    else:
        block = 1 << max(1, round(np.log2(goal)))
    blocks = -(-num_items // block)
    return TopKBlocks(block=block, blocks=blocks, pad=blocks * block - num_items)


X_QUANTIZATION = ("float", "static-7bit", "per-query-7bit", "runtime-8bit")


@dataclass(frozen=True)
class Scoring:
    """How a graph scores the catalog: recorded in the manifest, and what the CPU
    verification's bounds follow from (`edgegnn.export.verify`).

    Attributes:
        op: the op that scores the item table: "MatMul" / "FULLY_CONNECTED" (float),
            "MatMulInteger" (uint8 x int8 -> int32), "MatMulNBits" (ONNX Runtime's n-bit
            weights, int8 compute), "FULLY_CONNECTED-hybrid" (LiteRT: int8 weights, float
            input), "lookup" (product quantization: lookup tables, float), "BATCH_MATMUL"
            (LiteRT, inverted lists: the probed lists' gathered rows, float).
        x: how the scored vector is quantized on the way into that op:
            "float"           not at all;
            "static-7bit"     the model's static "user" scale, 63 levels (as the simulation);
            "per-query-7bit"  a symmetric scale per user row computed in the graph, 63 levels;
            "runtime-8bit"    by the runtime's kernel, per query or block, ~127 levels (float
                              compute where the CPU lacks the int8 instructions).
        applied_scales: the model's static activation scales the graph applies as the
            simulation does (the others it ignores: the runtime quantizes on its own).
        space: "item" (e_u · itemᵀ), or "low-rank" ((e_u · right) · leftᵀ: the scored vector is
            e_u · right, the table the left factor).
    """

    op: str
    x: str
    applied_scales: tuple[str, ...]
    space: str

    def __post_init__(self) -> None:
        if self.x not in X_QUANTIZATION:
            raise ConfigError("scoring.x", self.x, f"allowed: {', '.join(X_QUANTIZATION)}")

    @classmethod
    def from_ops(cls, edge: EdgeModel, ops: set[tuple[str, str, bool]], *, applies_scales: bool) -> "Scoring":
        """From the scoring ops a graph emitted for the item table: {(op, x, ignores "user" scale)}
        (one per row block, all alike). `applies_scales`: the graph applies the model's static
        scales where its kernels take them (ONNX), or never (TFLite)."""
        kinds = {(op, x) for op, x, _ in ops}
        if len(kinds) != 1:
            raise ExportError(f"the graph scores the item table in {len(kinds)} ways ({sorted(kinds)}); expected one")
        (op, x), = kinds
        ignored = {"user"} if any(ignores for _, _, ignores in ops) else set()
        applied = tuple(sorted(name for name in edge.activation_scales if applies_scales and name not in ignored))
        space = "low-rank" if isinstance(edge.tensors["item"], LowRankTensor) else "item"
        return cls(op=op, x=x, applied_scales=applied, space=space)

    def to_dict(self) -> dict:
        return {"op": self.op, "x": self.x, "applied_scales": list(self.applied_scales), "space": self.space}

    @classmethod
    def from_dict(cls, data: dict) -> "Scoring":
        """From `to_dict` (a manifest's graph.scoring)."""
        return cls(op=data["op"], x=data["x"], applied_scales=tuple(data["applied_scales"]), space=data["space"])


def model_precision(edge: EdgeModel) -> str:
    """"int8" if any stored tensor is integer-coded (int8, int4, mixed, quantized sparse, product-quantized),
    else "fp32"."""
    quantized = (QuantizedTensor, QuantizedSparseTensor, ProductQuantizedTensor)
    return "int8" if any(isinstance(t, quantized) for t in stored_leaves(edge.tensors.values())) else "fp32"


def widened_int4(edge: EdgeModel, packed: set[int] = frozenset(), forms: dict[int, object] | None = None) -> list[str]:
    """Names of tensors whose int4 codes ship as int8 (same values, twice the bytes).

    `packed`: ids of exportable forms a graph stored as packed int4 (`forms` maps the id of
    each stored tensor of `edge` to its exportable form, as `exportable(edge, forms)` fills it).
    """
    names = []
    for name, tensor in edge.tensors.items():
        int4 = [t for t in stored_leaves([tensor]) if getattr(t, "bits", 8) == 4 or isinstance(t, MixedQuantizedTensor)]
        if any(forms is None or id(forms.get(id(t))) not in packed for t in int4):
            names.append(name)
    return sorted(names)


def exportable(edge: EdgeModel, forms: dict[int, object] | None = None) -> dict[str, object]:
    """Each tensor of `edge` in a form the graphs run (see the module docstring), sharing kept.

    `forms`, if given, is filled with id(stored tensor) -> its exportable form.
    """
    memo: dict[int, object] = {} if forms is None else forms
    return {name: _exportable(t, memo) for name, t in edge.tensors.items()}


def _exportable(tensor, memo: dict[int, object]):
    if id(tensor) in memo:
        return memo[id(tensor)]
    if isinstance(tensor, LowRankTensor):
        out = LowRankTensor(_exportable(tensor.left, memo), _exportable(tensor.right, memo))
    elif isinstance(tensor, RowScaledTensor):   # the row scale keeps its dtype: graphs widen it in-graph
        out = RowScaledTensor(_exportable(tensor.base, memo), tensor.row_scale)
    elif isinstance(tensor, ProductQuantizedTensor):   # codebooks too
        out = tensor
    elif isinstance(tensor, QuantizedTensor):  # int8, int4 and int8+int4 alike: the codes fit int8
        # pure int4 stays marked (it may ship packed); scales keep their dtype (graphs widen float16)
        out = (tensor if type(tensor) is QuantizedTensor else
               QuantizedTensor(np.asarray(tensor.q, np.int8), tensor.scale, 8))
    elif isinstance(tensor, QuantizedSparseTensor):
        codes = np.zeros(tensor.shape, dtype=np.int8)
        codes[tensor.row_of_values(), tensor.indices] = tensor.q
        out = QuantizedTensor(codes, np.asarray(tensor.scale, np.float32), 8)
    elif isinstance(tensor, SparseTensor):
        out = DenseTensor(tensor.to_dense().astype(np.float32))
    elif isinstance(tensor, DenseTensor):
        # integer values (neighbour ids) are indices, not weights: they keep their dtype
        keep = tensor.values.dtype == np.float32 or np.issubdtype(tensor.values.dtype, np.integer)
        out = tensor if keep else DenseTensor(tensor.values.astype(np.float32))
    else:
        raise ExportError(f"cannot export a stored tensor of type {type(tensor).__name__}")
    memo[id(tensor)] = out
    return out


def to_fp16(tensors: dict[str, object]) -> dict[str, object]:
    """The same tensors with every dense leaf in float16 (precision "fp16"), sharing kept."""
    memo: dict[int, object] = {}

    def half(t):
        if id(t) not in memo:
            if isinstance(t, LowRankTensor):
                memo[id(t)] = LowRankTensor(half(t.left), half(t.right))
            elif isinstance(t, DenseTensor) and not np.issubdtype(t.values.dtype, np.integer):
                memo[id(t)] = DenseTensor(t.values.astype(np.float16))
            else:
                memo[id(t)] = t
        return memo[id(t)]

    return {name: half(t) for name, t in tensors.items()}


def base_dim(edge: EdgeModel) -> int:
    """d⁰: the width of the e_u⁰ input (the kind's `base_dim`)."""
    from edgegnn.kinds import kind

    return kind(edge.kind).base_dim(edge.tensors)


def output_width(edge: EdgeModel, options: GraphOptions) -> int | str:
    """Items per output row: min(K + H, the scored items: I, or nprobe · C with lists) (an expression when H
    is dynamic)."""
    extra = 0 if options.variant == "user" else options.history_length
    scored = scored_items(edge)
    if extra is None:
        return f"min(K+H, {scored})"
    return min(options.top_k + extra, scored)


def one_scale(table: QuantizedTensor) -> float | None:
    """The scale all rows of `table` share (QuantizeConfig granularity "tensor"), or None."""
    first = table.scale.flat[0]
    return float(first) if bool(np.all(table.scale == first)) else None


def scored_items(edge: EdgeModel) -> int:
    """Scores a query computes: I, or the nprobe · C slots of its lists with inverted lists (the
    retrieval pass; padding slots included, so it may exceed I when nearly every list is probed)."""
    indexed = model_lists(edge.tensors, edge.params)
    return edge.num_items if indexed is None else indexed[1] * indexed[0].capacity


def io_spec(edge: EdgeModel, options: GraphOptions, *, index_dtype: str, full_scores: bool = False
            ) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs as [{"name", "dtype", "shape"}] (symbolic dims are strings); with
    `full_scores` (TFLite history graphs) also "scores" [B, I], every item's score (with inverted
    lists: [B, N], the scored items', and "scored_rows" int32 [B, N], their rows; -1 for padding)."""
    batch = options.batch if options.batch is not None else "batch"
    width = output_width(edge, options)
    if options.variant == "user":
        inputs = [{"name": "user_embedding", "dtype": "float32", "shape": [batch, edge.embedding_dim]}]
    else:
        h = options.history_length if options.history_length is not None else "history"
        inputs = [{"name": "history", "dtype": "int32", "shape": [batch, h]},
                  {"name": "history_mask", "dtype": "float32", "shape": [batch, h]}]
        if options.user_base:
            inputs.append({"name": "user_base", "dtype": "float32", "shape": [batch, base_dim(edge)]})
    outputs = [{"name": "top_items", "dtype": index_dtype, "shape": [batch, width]},
               {"name": "top_scores", "dtype": "float32", "shape": [batch, width]}]
    if full_scores and options.variant == "history":
        scored = scored_items(edge)
        outputs.append({"name": "scores", "dtype": "float32", "shape": [batch, scored]})
        if model_lists(edge.tensors, edge.params) is not None:
            outputs.append({"name": SCORED_ROWS, "dtype": "int32", "shape": [batch, scored]})
    if has_class_head(edge):
        if options.variant != "history":
            raise ExportError("a user class head runs on history graphs (variant 'history'), not on user embeddings")
        outputs.append({"name": CLASS_OUTPUT, "dtype": "float32", "shape": [batch, len(edge.params["classes"])]})
    return inputs, outputs
