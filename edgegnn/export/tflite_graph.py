"""The TFLite graph of an EdgeModel, written with LiteRT's flatbuffers schema (no TensorFlow).

A small fixed graph, batch 1 and a fixed history length H (TFLite plans memory for fixed
shapes; the runtime pads a history with mask 0 or keeps its newest H items):

History variant (the encoder is the model kind's device math, `edgegnn.kinds`, on
`TfliteOps`; LightGCN's shown):
    history [1, H] -RESHAPE-> [H];  history_mask [1, H] -RESHAPE-> [H, 1]
    count  = MAXIMUM(SUM(history_mask, axis 1), 1)                        [1, 1]
    rows   = GATHER(message, history)                                     [H, d]
    e_u    = DIV(SUM(MUL(rows, mask), axis 0), SQRT(count))               [1, d]
             (+ MUL(user_base [· base_projection], a0))
    scores = FULLY_CONNECTED(e_u, item [I, d])                            [1, I]
    top_scores, top_items = TOPK_V2(scores, min(K + H, I))
             (scores is an output too: with H fixed, a user whose seen items outside the
             window crowd the K + H list gets the rest ranked from it by the runtime)
             (from `options.block_topk_min_items` items on, in two stages: REDUCE_MAX of
             [R, C] blocks, TOPK_V2 of the maxima, GATHER of those blocks' scores, TOPK_V2;
             exact, see plan.TopKBlocks)
SAGE: the two layers as FULLY_CONNECTED (+ RELU), means as DIV by count.
With inverted lists (the retrieval pass) the scores are the probed lists' items' only
(`_Builder.list_scores`: FULLY_CONNECTED with the centroids, TOPK_V2 of nprobe lists, GATHER of
their [C, d] codes, BATCH_MATMUL), TOPK_V2 ranks them and a GATHER maps positions to item rows;
"scores" is then [1, N] and "scored_rows" [1, N] says whose.

How each stored tensor runs:
    dense             GATHER for rows; FULLY_CONNECTED weights are [out, in], which is the
                      table's own layout for scoring (x · tableᵀ), so nothing is transposed.
    int8 rows         rows: GATHER the int8 codes, CAST to float32, and multiply by the
                      gathered per-row scales (folded into the mask weights: mask · scale[h]).
                      Scoring: FULLY_CONNECTED with int8 weights and per-channel (per-item)
                      scales, float input and output -- LiteRT's dynamic-range ("hybrid")
                      kernel, which quantizes the user vector per query (one symmetric scale
                      per query) and accumulates in int32. Scores stay float: a full-int8
                      TOPK_V2 creates ties (../shared/notes/TFLITE.md). The static activation
                      scale of the simulation is not applied (a per-query scale cannot reorder
                      a user's items beyond rounding; the metric gate checks the result).
                      Small int8 tensors (weights, factors' right side) become float through
                      DEQUANTIZE of the constant, which LiteRT evaluates once at prepare.
    low-rank          x · (left·rightᵀ)ᵀ = FULLY_CONNECTED(FULLY_CONNECTED(x, rightᵀ), left).
    row-scaled        rows: the mask weights times GATHER(row_scale); x · tableᵀ = MUL(x · baseᵀ,
                      row_scale); x · table = (x · row_scale) · base.
    product-quantized rows: GATHER the uint8 codes, CAST to int32, ADD m·K, GATHER from the
                      flattened codebooks [M·K, D], RESHAPE to [H, M·D]. Scoring (batch 1):
                      LUT = BATCH_MATMUL(x as [M, 1, D], codebooksᵀ [M, D, K]) as [1, M·K];
                      scores = SUM(GATHER(LUT, CAST(codes) + m·K, axis 1), axis 2).
Op versions follow TFLite's own versioning (lite/tools/versioning/op_version.cc), e.g. a
per-channel hybrid FULLY_CONNECTED is version 12, an int8 GATHER version 2; a SignatureDef
("serving_default") lets the signature runner and the CompiledModel API find the tensors.
Buffers are 16-byte aligned, as the converter writes them. The file is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgegnn.class_head import CLASS_OUTPUT, class_logits, has_class_head
from edgegnn.edge_model import EdgeModel, stored_leaves
from edgegnn.errors import ExportError
from edgegnn.export.plan import (
    SCORED_ROWS,
    GraphOptions,
    Scoring,
    TopKBlocks,
    base_dim,
    exportable,
    one_scale,
    scored_items,
    topk_blocks,
    widened_int4,
)
from edgegnn.kinds import item_scores, kind
from edgegnn.retrieval import in_lists, model_lists
from edgegnn.tensors import LowRankTensor, ProductQuantizedTensor, QuantizedTensor, RowScaledTensor

MAX_FLATBUFFER_BYTES = 2 ** 31 - 2 ** 24   # flatbuffers offsets are 32-bit; keep headroom
SIGNATURE_KEY = "serving_default"
# Two-stage top-K from here on (GraphOptions.block_topk_min_items). LiteRT's TOPK_V2 is slow enough that
# the two stages win from 4k items (p50, batch 1, 1 thread: fp32 25 vs 28 us at 4,096; int8 34 vs 56 us at 16k)
BLOCK_TOPK_MIN_ITEMS = 1 << 12
BLOCK_TOPK_OPS = ("RESHAPE", "REDUCE_MAX", "TOPK_V2", "GATHER", "ADD", "PADV2")
_TYPES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "int16": 7, "int8": 9}


class TfliteGraph:
    """Tensors (constants kept as thunks until packing) and operators of one subgraph."""

    def __init__(self) -> None:
        self.tensors: list[dict] = []
        self.operators: list[dict] = []
        self._tables: dict[tuple[int, str], int] = {}
        self.int4_widened: list[str] = []      # model tensors whose int4 codes ship as int8 (set by `plan`)
        self.scoring_ops: set[tuple[str, str, bool]] = set()   # (op, x, ignores the "user" scale), item table
        self.scoring: Scoring | None = None    # how the item table is scored (set by `plan`)

    def tensor(self, name: str, shape, dtype: str, data: Callable[[], np.ndarray] | np.ndarray | None = None,
               quant: dict | None = None, *, exact_name: bool = False) -> int:
        """A tensor; `name` gets a unique suffix unless `exact_name` (graph inputs and outputs)."""
        if data is not None and not callable(data):
            array = np.asarray(data, dtype=dtype)
            data = lambda a=array: a   # noqa: E731 -- a thunk, as for the big tables
        self.tensors.append({"name": name if exact_name else f"{name}_{len(self.tensors)}",
                             "shape": [int(s) for s in shape], "dtype": dtype, "data": data, "quant": quant})
        return len(self.tensors) - 1

    def table(self, tensor, part: str, make: Callable[[], np.ndarray] | None, shape, dtype: str, quant=None,
              op: tuple | None = None) -> int:
        """A constant stored once per (stored tensor, part), however many ops read it; or, with
        `op` = (code, inputs, options), the output of that op on constants, emitted once."""
        key = (id(tensor), part)
        if key not in self._tables:
            if op is None:
                self._tables[key] = self.tensor(part, shape, dtype, make, quant)
            else:
                code, inputs, options = op
                self._tables[key] = self.op(code, inputs, shape, dtype, options)
        return self._tables[key]

    def op(self, code: str, inputs: list[int], out_shape, out_dtype: str, options: tuple | None = None,
           outputs: list[int] | None = None) -> int:
        """Append an operator; returns its (first) output tensor."""
        if outputs is None:
            outputs = [self.tensor("t", out_shape, out_dtype)]
        self.operators.append({"code": code, "inputs": inputs, "outputs": outputs, "options": options})
        return outputs[0]

    def dtype(self, index: int) -> str:
        return self.tensors[index]["dtype"] if index >= 0 else "none"

    def version(self, op: dict) -> int:
        """The op version TFLite's converter would write (op_version.cc), for the ops used here."""
        code, ins = op["code"], [self.dtype(i) for i in op["inputs"]]
        out = self.dtype(op["outputs"][0])
        if code == "GATHER":
            return {"int8": 2, "int16": 3}.get(ins[0], 1)
        if code == "CAST":
            return 3 if "int8" in (ins[0], out) else 1
        if code == "DEQUANTIZE":
            if ins[0] == "float16":
                return 3
            per_channel = self.tensors[op["inputs"][0]]["quant"]["size"] > 1
            return 5 if per_channel else 2
        if code == "FULLY_CONNECTED" and ins[1] == "int8" and ins[0] == "float32":
            return 12 if self.tensors[op["inputs"][1]]["quant"]["size"] > 1 else 3
        return 1

    def ops_used(self) -> dict[str, list[str]]:
        used: dict[str, set[str]] = {"float": set(), "int8": set()}
        for op in self.operators:
            int8 = any(self.dtype(i) in ("int8", "uint8") for i in op["inputs"])
            used["int8" if int8 else "float"].add(op["code"])
        return {k: sorted(v) for k, v in used.items()}

    def const_bytes(self) -> int:
        return sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
                   for t in self.tensors if t["data"] is not None)


def _per_channel(scale: np.ndarray, axis: int) -> dict:
    """Per-channel symmetric quantization parameters (zero points all 0)."""
    return {"scale": lambda: np.asarray(scale, np.float32), "axis": axis, "size": int(scale.shape[0])}


class _Builder:
    """Emits the ops of EdgeModel's arithmetic (batch 1) into a TfliteGraph."""

    def __init__(self, edge: EdgeModel, options: GraphOptions) -> None:
        if options.precision == "fp16":
            raise ExportError("TFLite export supports fp32 and int8 (fp16 tables: use an ONNX target)")
        self.edge, self.options, self.g = edge, options, TfliteGraph()
        self.t = exportable(edge)
        # int8 tables the scoring FULLY_CONNECTED reads carry per-channel quantization parameters
        # (scales + int64 zero points); tables only gathered ship bare codes (their scales apart).
        self.scored = {id(leaf) for leaf in stored_leaves([self.t["item"]])}
        self.class_output: int | None = None     # the user class head's output (`history_scores`)
        # Inverted lists (the retrieval pass): the item table is scored list by list (`list_scores`)
        self.lists = model_lists(self.t, edge.params)
        self.candidate_rows: int | None = None   # int32 [N] item rows of the scores, when not all items
        self.scored_rows: int | None = None      # the same as [1, N], an output beside "scores"
        if self.lists is not None:
            self.scored = set()

    def const(self, name: str, value, dtype: str = "float32") -> int:
        array = np.asarray(value, dtype=dtype)
        return self.g.tensor(name, array.shape, dtype, array)

    def reshape(self, x: int, shape) -> int:
        new_shape = self.const("shape", list(shape), "int32")
        return self.g.op("RESHAPE", [x, new_shape], shape, self.g.dtype(x),
                         ("ReshapeOptions", {"newShape": list(shape)}))

    def binary(self, code: str, a: int, b: int, shape) -> int:
        return self.g.op(code, [a, b], shape, "float32", (f"{code.title()}Options", {}))

    # rows of a table: table[index] [H, C] (float); weight [H, 1] multiplies them (mask)
    def weighted_rows(self, table, index: int, weight: int, h: int) -> int:
        g = self.g
        if isinstance(table, LowRankTensor):
            rows = self.weighted_rows(table.left, index, weight, h)
            return self.matmul_transposed(rows, table.right, h)
        if isinstance(table, RowScaledTensor):   # the row factors join the mask weights
            picked = g.op("GATHER", [self.row_scale(table), index], (h,), "float32", ("GatherOptions", {"axis": 0}))
            return self.weighted_rows(table.base, index, self.binary("MUL", weight, self.reshape(picked, (h, 1)),
                                                                     (h, 1)), h)
        if isinstance(table, ProductQuantizedTensor):
            rows = self.pq_rows(table, index, h)
        elif isinstance(table, QuantizedTensor):
            quant = _per_channel(table.scale, 0) if id(table) in self.scored else None
            codes = g.table(table, "codes", lambda: table.q, table.shape, "int8", quant)
            scales = g.table(table, "scales", lambda: table.scale, table.scale.shape, "float32")
            rows = g.op("GATHER", [codes, index], (h, table.shape[1]), "int8", ("GatherOptions", {"axis": 0}))
            rows = g.op("CAST", [rows], (h, table.shape[1]), "float32")
            row_scale = self.reshape(g.op("GATHER", [scales, index], (h,), "float32", ("GatherOptions", {"axis": 0})),
                                     (h, 1))
            weight = self.binary("MUL", weight, row_scale, (h, 1))
        else:
            values = g.table(table, "table", lambda: table.values, table.shape, "float32")
            rows = g.op("GATHER", [values, index], (h, table.shape[1]), "float32", ("GatherOptions", {"axis": 0}))
        return self.binary("MUL", rows, weight, (h, table.shape[1]))

    # x @ tableᵀ: x [n, C], table [R, C] -> [n, R]
    def matmul_transposed(self, x: int, table, n: int = 1) -> int:
        g = self.g
        if isinstance(table, LowRankTensor):
            return self.matmul_transposed(self.matmul(x, table.right, n), table.left, n)
        if isinstance(table, RowScaledTensor):
            scale = self.reshape(self.row_scale(table), (1, table.shape[0]))
            return self.binary("MUL", self.matmul_transposed(x, table.base, n), scale, (n, table.shape[0]))
        if isinstance(table, ProductQuantizedTensor):
            self.note_scoring(table, "lookup", "float")
            return self.pq_scores(x, table, n)
        if isinstance(table, QuantizedTensor) and self.is_big(table):   # hybrid int8 FULLY_CONNECTED
            self.note_scoring(table, "FULLY_CONNECTED-hybrid", "runtime-8bit")
            weight = g.table(table, "codes", lambda: table.q, table.shape, "int8", _per_channel(table.scale, 0))
        elif isinstance(table, QuantizedTensor):
            codes = g.table(table, "codes", lambda: table.q, table.shape, "int8", _per_channel(table.scale, 0))
            weight = g.op("DEQUANTIZE", [codes], table.shape, "float32", ("DequantizeOptions", {}))
        else:
            self.note_scoring(table, "FULLY_CONNECTED", "float")
            weight = g.table(table, "table", lambda: table.values, table.shape, "float32")
        return self.fully_connected(x, weight, (n, table.shape[0]))

    # x @ table: x [n, R], table [R, C] -> [n, C]  (small tensors: projections, right factors)
    def matmul(self, x: int, table, n: int = 1) -> int:
        g = self.g
        if isinstance(table, LowRankTensor):
            return self.matmul_transposed(self.matmul(x, table.left, n), table.right, n)
        if isinstance(table, RowScaledTensor):
            scale = self.reshape(self.row_scale(table), (1, table.shape[0]))
            return self.matmul(self.binary("MUL", x, scale, (n, table.shape[0])), table.base, n)
        shape_t = (table.shape[1], table.shape[0])
        if isinstance(table, QuantizedTensor):
            codes = g.table(table, "codes_t", lambda: np.ascontiguousarray(table.q.T), shape_t, "int8",
                            _per_channel(table.scale, 1))
            weight = g.op("DEQUANTIZE", [codes], shape_t, "float32", ("DequantizeOptions", {}))
        else:
            weight = g.table(table, "table_t", lambda: np.ascontiguousarray(table.values.T), shape_t, "float32")
        return self.fully_connected(x, weight, (n, table.shape[1]))

    def row_scale(self, table: RowScaledTensor) -> int:
        return self.float_const(table.row_scale, "row_scale", table.row_scale.values)

    def float_const(self, owner, part: str, values: np.ndarray) -> int:
        """A constant in its own float dtype, read as float32: float16 ships at 2 bytes a value and
        goes through one DEQUANTIZE (LiteRT evaluates it once, at prepare)."""
        g = self.g
        dtype = str(values.dtype)
        stored = g.table(owner, part, lambda: values, values.shape, dtype)
        if dtype == "float32":
            return stored
        return g.table(owner, f"{part}:float32", None, values.shape, "float32",
                       op=("DEQUANTIZE", [stored], ("DequantizeOptions", {})))

    # ---- product quantization ----------------------------------------------------------------

    def pq_index(self, table: ProductQuantizedTensor, codes: int, rows: int) -> int:
        """int32 [rows, M]: codes + m·K, positions in the flattened [M·K] codebook axis."""
        g, m = self.g, table.subvectors
        offsets = self.const("pq_offsets", np.arange(m) * table.centroids, "int32")
        wide = g.op("CAST", [codes], (rows, m), "int32")
        return g.op("ADD", [wide, offsets], (rows, m), "int32", ("AddOptions", {}))

    def pq_codes(self, table: ProductQuantizedTensor) -> int:
        return self.g.table(table, "pq_codes", lambda: table.codes, table.codes.shape, "uint8")

    def pq_books(self, table: ProductQuantizedTensor) -> int:
        """float32 [M·K, D]: the codebooks, flattened, stored once (in their own dtype)."""
        m, k, d = table.codebooks.shape
        return self.float_const(table, "pq_codebooks", table.codebooks.reshape(m * k, d))

    def pq_rows(self, table: ProductQuantizedTensor, index: int, h: int) -> int:
        """table[index] [H, C], decoded from the codebooks."""
        g = self.g
        m, k, d = table.codebooks.shape
        books = self.pq_books(table)
        codes = g.op("GATHER", [self.pq_codes(table), index], (h, m), "uint8", ("GatherOptions", {"axis": 0}))
        parts = g.op("GATHER", [books, self.pq_index(table, codes, h)], (h, m, d), "float32",
                     ("GatherOptions", {"axis": 0}))
        return self.reshape(parts, (h, m * d))

    def pq_scores(self, x: int, table: ProductQuantizedTensor, n: int) -> int:
        """x @ tableᵀ [1, R] through lookup tables (batch 1), the table never decoded."""
        if n != 1:
            raise ExportError("product-quantized tables score one user at a time in TFLite graphs")
        g = self.g
        m, k, d = table.codebooks.shape
        rows = table.shape[0]
        books = self.reshape(self.pq_books(table), (m, k, d))
        lut = g.op("BATCH_MATMUL", [self.reshape(x, (m, 1, d)), books], (m, 1, k), "float32",
                   ("BatchMatMulOptions", {"adjX": False, "adjY": True}))          # x_m · codebooks[m]ᵀ
        lut = self.reshape(lut, (1, m * k))
        index = self.pq_index(table, self.pq_codes(table), rows)
        picked = g.op("GATHER", [lut, index], (1, rows, m), "float32", ("GatherOptions", {"axis": 1}))
        axis2 = self.const("axis", [2], "int32")
        return g.op("SUM", [picked, axis2], (1, rows), "float32", ("ReducerOptions", {"keepDims": False}))

    def item_scores(self, e_u: int) -> int:
        """e_u · itemᵀ [1, I], or with inverted lists the probed lists' scores [1, N] (`list_scores`)."""
        return self.matmul_transposed(e_u, self.t["item"]) if self.lists is None else self.list_scores(e_u)

    def list_scores(self, e_u: int) -> int:
        """The scores [1, N] of the items of the nprobe lists nearest e_u, N = nprobe · C, their
        item rows in `candidate_rows` (as the ONNX graph's `list_scores`, batch 1):
            probed = TOPK_V2(FULLY_CONNECTED(e_u, centroids [L, d]), nprobe)          [nprobe]
            codes  = CAST(GATHER(list codes [L, C, d], probed)) as [N, d]             (int8 -> float)
            scores = BATCH_MATMUL(e_u, codesᵀ) · scale + GATHER(pad bias, probed)      [1, N]
        e_u as the graph has it (LiteRT graphs apply no static activation scale, as for the exact
        scan); scale: the table's one scale, or the candidates' row scales gathered from [L, C];
        the pad bias is 0 for an item, -inf for a list's padding (row -1)."""
        g, (lists, nprobe) = self.g, self.lists
        table = self.t["item"]
        count, capacity = lists.rows.shape
        centroids = g.table(lists, "list_centroids", lambda: lists.centroids, lists.centroids.shape, "float32")
        _, probed = self.topk_v2(self.fully_connected(e_u, centroids, (1, count)), nprobe)
        if isinstance(table, LowRankTensor):    # scored in the rank-r space: e_u · right against the left factor
            e_u, table = self.matmul(e_u, table.right), table.left
        width, n = int(table.shape[1]), nprobe * capacity
        self.note_scoring(table, "BATCH_MATMUL", "float")
        probed = self.reshape(probed, (nprobe,))
        quantized = isinstance(table, QuantizedTensor)
        codes, dtype = (table.q, "int8") if quantized else (table.values, "float32")
        stored = g.table(table, "list_codes", lambda: in_lists(codes, lists.rows), (count, capacity, width), dtype)
        picked = g.op("GATHER", [stored, probed], (nprobe, capacity, width), dtype, ("GatherOptions", {"axis": 0}))
        if quantized:
            picked = g.op("CAST", [picked], (nprobe, capacity, width), "float32")
        scores = g.op("BATCH_MATMUL", [e_u, self.reshape(picked, (n, width))], (1, n), "float32",
                      ("BatchMatMulOptions", {"adjX": False, "adjY": True}))
        if quantized and one_scale(table) is not None:
            scores = self.binary("MUL", scores, self.const("scale", [one_scale(table)]), (1, n))
        elif quantized:
            scales = g.table(table, "list_scales", lambda: in_lists(
                np.asarray(table.scale, np.float32).reshape(-1, 1), lists.rows)[..., 0], (count, capacity), "float32")
            scores = self.binary("MUL", scores, self.per_candidate(scales, probed, n, "float32"), (1, n))
        bias = g.table(lists, "list_bias", lambda: np.where(lists.rows >= 0, 0, -np.inf).astype(np.float32),
                       (count, capacity), "float32")
        rows = g.table(lists, "list_rows", lambda: lists.rows, (count, capacity), "int32")
        self.scored_rows = self.per_candidate(rows, probed, n, "int32")                    # [1, N]
        self.candidate_rows = self.reshape(self.scored_rows, (n,))
        return self.binary("ADD", scores, self.per_candidate(bias, probed, n, "float32"), (1, n))

    def per_candidate(self, table: int, probed: int, n: int, dtype: str) -> int:
        """GATHER(table [L, C], probed [nprobe]) as [1, N]."""
        capacity = self.g.tensors[table]["shape"][1]
        picked = self.g.op("GATHER", [table, probed], (n // capacity, capacity), dtype, ("GatherOptions", {"axis": 0}))
        return self.reshape(picked, (1, n))

    def fully_connected(self, x: int, weight: int, out_shape) -> int:
        return self.g.op("FULLY_CONNECTED", [x, weight, -1], out_shape, "float32",
                         ("FullyConnectedOptions", {"keepNumDims": False}))

    def note_scoring(self, table, op: str, x: str) -> None:
        """Record how an item-sized table is scored (the static scales never apply in TFLite graphs:
        LiteRT's hybrid kernels quantize the input per query themselves)."""
        if self.is_big(table):
            self.g.scoring_ops.add((op, x, False))

    def is_big(self, table) -> bool:
        return table.shape[0] > 4096 or table.shape[0] == self.edge.num_items

    # ---- the encoder and the top-K ------------------------------------------------------------

    def history_scores(self, history: int, mask: int, base: int | None, h: int) -> int:
        """scores [1, I]: e_u of the model kind's device math (`edgegnn.kinds`) on `TfliteOps`
        scored against the item table, plus the kind's item_scores term (if any)."""
        ops = TfliteOps(self, history, mask, base, h)
        e_u = kind(self.edge.kind).encode(ops, self.edge.params)
        if has_class_head(self.edge):      # beside the scores, from the same float e_u
            logits = class_logits(ops, e_u)
            self.class_output = self.g.op("SOFTMAX", [logits], ops.shape(logits), "float32",
                                          ("SoftmaxOptions", {"beta": 1.0}))
            self.g.tensors[self.class_output]["name"] = CLASS_OUTPUT
        scores = self.item_scores(e_u)
        term = item_scores(self.edge.kind, ops, self.edge.params)
        return scores if term is None else self.binary("ADD", scores, term, (1, self.edge.num_items))

    def bias(self, name: str) -> int:
        return self.const(name, np.asarray(self.edge.tensors[name].to_dense(), np.float32).reshape(1, -1))

    def top_k(self, scores: int, extra: int) -> tuple[int, int]:
        """top_scores, top_items = TOPK_V2(scores, k), k = min(K + H, I); in two stages from
        `options.block_topk_min_items` items on."""
        g, num_items = self.g, scored_items(self.edge)
        k = min(self.options.top_k + extra, num_items)
        values = g.tensor("top_scores", (1, k), "float32", exact_name=True)
        indices = g.tensor("top_items", (1, k), "int32", exact_name=True)
        threshold = self.options.block_topk_min_items
        if self.candidate_rows is not None:       # positions among the candidates -> their item rows
            _, position = self.topk_v2(scores, k, values)
            g.op("GATHER", [self.candidate_rows, position], None, None, ("GatherOptions", {"axis": 0}),
                 outputs=[indices])
        elif threshold is not None and num_items >= threshold:
            self.block_top_k(scores, k, topk_blocks(num_items), values, indices)
        else:
            self.topk_v2(scores, k, values, indices)
        return indices, values

    def topk_v2(self, x: int, k: int, values: int | None = None, indices: int | None = None) -> tuple[int, int]:
        """TOPK_V2 over the last axis of x [..., n] -> values (float32), indices (int32) [..., k]."""
        g = self.g
        shape = list(g.tensors[x]["shape"][:-1]) + [k]
        values = g.tensor("topk_values", shape, "float32") if values is None else values
        indices = g.tensor("topk_indices", shape, "int32") if indices is None else indices
        g.op("TOPK_V2", [x, self.const("k", np.array(k, np.int32), "int32")], None, None, ("TopKV2Options", {}),
             outputs=[values, indices])
        return values, indices

    def block_top_k(self, scores: int, k: int, plan: TopKBlocks, values: int, indices: int) -> None:
        """The two-stage top-K of `plan` (see `TopKBlocks`) over scores [1, I]. Item ids of the
        candidates come from the picked blocks' first rows plus 0..C-1 (int32 GATHER/ADD, version 1)."""
        g = self.g
        rows, block = plan.blocks, plan.block
        if plan.pad:
            paddings = self.const("paddings", [[0, 0], [0, plan.pad]], "int32")
            lowest = self.const("lowest", np.finfo(np.float32).min)
            scores = g.op("PADV2", [scores, paddings, lowest], (1, rows * block), "float32", ("PadV2Options", {}))
        grid = self.reshape(scores, (rows, block))
        block_max = g.op("REDUCE_MAX", [grid, self.const("axis", [1], "int32")], (rows,), "float32",
                         ("ReducerOptions", {"keepDims": False}))
        wanted = min(k, rows)
        _, picked = self.topk_v2(block_max, wanted)                                            # [k_b]
        candidates = g.op("GATHER", [grid, picked], (wanted, block), "float32", ("GatherOptions", {"axis": 0}))
        firsts = g.op("GATHER", [self.const("block_firsts", np.arange(rows) * block, "int32"), picked], (wanted,),
                      "int32", ("GatherOptions", {"axis": 0}))
        ids = g.op("ADD", [self.reshape(firsts, (wanted, 1)), self.const("offsets", np.arange(block)[None], "int32")],
                   (wanted, block), "int32", ("AddOptions", {}))
        _, position = self.topk_v2(self.reshape(candidates, (1, wanted * block)), k, values)
        g.op("GATHER", [self.reshape(ids, (wanted * block,)), position], None, None, ("GatherOptions", {"axis": 0}),
             outputs=[indices])


class TfliteOps:
    """The kinds' ops (`edgegnn.kinds.ops`) as TFLite operators (batch 1); values are tensor indices.

    history_pool: GATHER (as the table is stored) · mask, SUM over H, DIV by count =
    MAXIMUM(SUM(mask), 1) or its SQRT. activation: unchanged -- LiteRT's hybrid kernels
    quantize their inputs themselves, so the graph applies no static scale (Scoring records it).
    """

    def __init__(self, builder: "_Builder", history: int, mask: int, base: int | None, h: int) -> None:
        g = builder.g
        self.b, self.g, self.base, self.h = builder, g, base, h
        self.index = builder.reshape(history, (h,))
        self.mask_col = builder.reshape(mask, (h, 1))
        count = g.op("SUM", [mask, builder.const("axis", [1], "int32")], (1, 1), "float32",
                     ("ReducerOptions", {"keepDims": True}))
        self.count = g.op("MAXIMUM", [count, builder.const("one", [1.0])], (1, 1), "float32",
                          ("MaximumMinimumOptions", {}))
        self._sqrt_count: int | None = None

    def shape(self, x: int) -> tuple[int, ...]:
        return tuple(self.g.tensors[x]["shape"])

    def history_pool(self, table: str, norm: str) -> int:
        stored = self.b.t[table]
        rows = self.b.weighted_rows(stored, self.index, self.mask_col, self.h)
        width = stored.shape[1]
        summed = self.g.op("SUM", [rows, self.b.const("axis", [0], "int32")], (1, width), "float32",
                           ("ReducerOptions", {"keepDims": True}))
        if norm == "sum":
            return summed
        if norm == "sqrt" and self._sqrt_count is None:
            self._sqrt_count = self.g.op("SQRT", [self.count], (1, 1), "float32")
        return self.b.binary("DIV", summed, self._sqrt_count if norm == "sqrt" else self.count, (1, width))

    def history_attention(self, table: str) -> int:
        """GATHER the rows [H, C + 1] (as stored, mask folded in), SLICE the messages and the
        logit column, push the padding's logits to -1e9, SOFTMAX over H (as a [1, H] row),
        weigh the messages by it as a column and SUM over H."""
        g, b, h = self.g, self.b, self.h
        width = b.t[table].shape[1] - 1
        rows = b.weighted_rows(b.t[table], self.index, self.mask_col, h)                       # [H, C + 1]
        values = g.op("SLICE", [rows, b.const("begin", [0, 0], "int32"), b.const("size", [h, width], "int32")],
                      (h, width), "float32", ("SliceOptions", {}))
        logits = g.op("SLICE", [rows, b.const("begin", [0, width], "int32"), b.const("size", [h, 1], "int32")],
                      (h, 1), "float32", ("SliceOptions", {}))
        penalty = b.binary("ADD", b.binary("MUL", self.mask_col, b.const("big", [1e9]), (h, 1)),
                           b.const("minus_big", [-1e9]), (h, 1))
        row = b.reshape(b.binary("ADD", logits, penalty, (h, 1)), (1, h))
        weights = g.op("SOFTMAX", [row], (1, h), "float32", ("SoftmaxOptions", {"beta": 1.0}))
        weighted = b.binary("MUL", values, b.reshape(weights, (h, 1)), (h, width))
        return g.op("SUM", [weighted, b.const("axis", [0], "int32")], (1, width), "float32",
                    ("ReducerOptions", {"keepDims": True}))

    def user_base(self) -> int | None:
        return self.base

    def has(self, name: str) -> bool:
        return name in self.b.t

    def matmul(self, x: int, table: str) -> int:
        return self.b.matmul(x, self.b.t[table])

    def matmul_t(self, x: int, table: str) -> int:
        return self.b.matmul_transposed(x, self.b.t[table])

    def add(self, a: int, b: int) -> int:
        return self.b.binary("ADD", a, b, self.shape(a))

    def scale(self, x: int, factor: float) -> int:
        return self.b.binary("MUL", x, self.b.const("factor", [np.float32(factor)]), self.shape(x))

    def relu(self, x: int) -> int:
        return self.g.op("RELU", [x], self.shape(x), "float32")

    def bias(self, name: str) -> int:
        return self.b.bias(name)

    def activation(self, name: str, x: int) -> int:
        return x

    def neighbor_scores(self, ids: str, weights: str) -> int:
        """GATHER the history's neighbour ids [H, N] and weights (as stored, mask folded in), then
        SCATTER_ND(ids [H·N, 1], weights [H·N], [I]), which sums a neighbour of several history
        items. uint16 ids (LiteRT's GATHER has no uint16) ship as int16 id - 32768, CAST to int32
        and shifted back in the graph."""
        g, b, h = self.g, self.b, self.h
        table = b.t[ids]
        items, count = table.shape
        if table.values.dtype == np.uint16:
            stored = g.table(table, "neighbor_items",
                             lambda: (table.values.astype(np.int32) - (1 << 15)).astype(np.int16),
                             table.shape, "int16")
            picked = g.op("GATHER", [stored, self.index], (h, count), "int16", ("GatherOptions", {"axis": 0}))
            picked = g.op("ADD", [g.op("CAST", [picked], (h, count), "int32"), b.const("shift", [1 << 15], "int32")],
                          (h, count), "int32", ("AddOptions", {}))
        else:
            stored = g.table(table, "neighbor_items", lambda: table.values.astype(np.int32), table.shape, "int32")
            picked = g.op("GATHER", [stored, self.index], (h, count), "int32", ("GatherOptions", {"axis": 0}))
        values = b.weighted_rows(b.t[weights], self.index, self.mask_col, h)                   # [H, N]
        scattered = g.op("SCATTER_ND", [b.reshape(picked, (h * count, 1)), b.reshape(values, (h * count,)),
                                        b.const("scatter_shape", [items], "int32")], (items,), "float32",
                         ("ScatterNdOptions", {}))
        return b.reshape(scattered, (1, items))


FIXED_HISTORY = True       # TFLite plans memory for fixed shapes: H is the target's


def layout(target) -> dict:
    """GraphOptions' layout fields for a target: the two-stage top-K where its op lists allow it."""
    two_stage = all(op in target.float_ops for op in BLOCK_TOPK_OPS)
    return {"block_topk_min_items": BLOCK_TOPK_MIN_ITEMS if two_stage else None}


def plan_graph(edge: EdgeModel, options: GraphOptions) -> TfliteGraph:
    """The graph (`plan`, constants not materialized); what `check_target` reads."""
    return plan(edge, options)[0]


def write(edge: EdgeModel, options: GraphOptions, io, directory: Path, *, external_data_bytes: int | None = None
          ) -> list[str]:
    """model.tflite of `edge` in `directory` (`io` and `external_data_bytes` are ONNX's); the file name."""
    (directory / "model.tflite").write_bytes(build(edge, options))
    return ["model.tflite"]


def plan(edge: EdgeModel, options: GraphOptions) -> tuple[TfliteGraph, list[int], list[int]]:
    """The graph (constants not materialized), its input and output tensor indices."""
    builder = _Builder(edge, options)
    g = builder.g
    g.int4_widened = widened_int4(edge)     # no packed int4 kernels in LiteRT: int4 ships as int8
    if options.batch not in (None, 1):
        raise ExportError(f"TFLite graphs here take batch 1, not {options.batch}")
    if options.variant == "user":
        x = g.tensor("user_embedding", (1, edge.embedding_dim), "float32", exact_name=True)
        scores = builder.item_scores(x)
        g.scoring = Scoring.from_ops(edge, g.scoring_ops, applies_scales=False)
        return g, [x], list(builder.top_k(scores, 0))
    h = options.history_length
    if h is None:
        raise ExportError("TFLite graphs need a fixed history length (target history_length)")
    inputs = [g.tensor("history", (1, h), "int32", exact_name=True),
              g.tensor("history_mask", (1, h), "float32", exact_name=True)]
    base = None
    if options.user_base:
        base = g.tensor("user_base", (1, base_dim(edge)), "float32", exact_name=True)
        inputs.append(base)
    scores = builder.history_scores(inputs[0], inputs[1], base, h)
    g.scoring = Scoring.from_ops(edge, g.scoring_ops, applies_scales=False)
    g.tensors[scores]["name"] = "scores"      # also an output: the runtime ranks it when K + H runs short
    outputs = list(builder.top_k(scores, h)) + [scores]
    if builder.scored_rows is not None:       # with inverted lists: the scored items' rows beside their scores
        g.tensors[builder.scored_rows]["name"] = SCORED_ROWS
        outputs.append(builder.scored_rows)
    return g, inputs, outputs + ([builder.class_output] if builder.class_output is not None else [])


def build(edge: EdgeModel, options: GraphOptions) -> bytes:
    """The .tflite file of `edge` (bytes)."""
    g, inputs, outputs = plan(edge, options)
    if g.const_bytes() > MAX_FLATBUFFER_BYTES:
        raise ExportError(f"the model's tensors take {g.const_bytes():,} bytes; a .tflite file holds under 2 GB "
                          "(compress the model or use an ONNX target)")
    return _pack(g, inputs, outputs, edge)


# ---- flatbuffers ------------------------------------------------------------------------------

def _pack(g: TfliteGraph, inputs: list[int], outputs: list[int], edge: EdgeModel) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from edgegnn import __version__

    codes = sorted({op["code"] for op in g.operators})
    versions = {code: max(g.version(op) for op in g.operators if op["code"] == code) for code in codes}
    opcode_index = {code: i for i, code in enumerate(codes)}
    buffers = [schema.BufferT()]            # buffer 0: the empty sentinel every data-less tensor points to
    tensors = []
    for t in g.tensors:
        buffer = 0
        if t["data"] is not None:
            buffers.append(_AlignedBuffer(np.ascontiguousarray(t["data"](), dtype=t["dtype"])
                                          .reshape(-1).view(np.uint8)))
            buffer = len(buffers) - 1
        tensors.append(schema.TensorT(shape=np.array(t["shape"], np.int32), type=_TYPES[t["dtype"]], buffer=buffer,
                                      name=t["name"], quantization=_quantization(schema, t["quant"])))
    operators = [schema.OperatorT(opcodeIndex=opcode_index[op["code"]], inputs=np.array(op["inputs"], np.int32),
                                  outputs=np.array(op["outputs"], np.int32), **_options(schema, op["options"]))
                 for op in g.operators]
    subgraph = schema.SubGraphT(tensors=tensors, inputs=np.array(inputs, np.int32),
                                outputs=np.array(outputs, np.int32), operators=operators, name="main")
    signature = schema.SignatureDefT(
        inputs=[schema.TensorMapT(name=g.tensors[i]["name"], tensorIndex=i) for i in inputs],
        outputs=[schema.TensorMapT(name=g.tensors[i]["name"], tensorIndex=i) for i in outputs],
        signatureKey=SIGNATURE_KEY, subgraphIndex=0)
    model = schema.ModelT(
        version=3, description=f"edgegnn {__version__} {edge.kind}",
        operatorCodes=[schema.OperatorCodeT(deprecatedBuiltinCode=min(_builtin(schema, c), 127),
                                            builtinCode=_builtin(schema, c), version=versions[c]) for c in codes],
        subgraphs=[subgraph], buffers=buffers, signatureDefs=[signature])
    builder = flatbuffers.Builder(1024 + g.const_bytes() + 64 * len(g.tensors))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _builtin(schema, code: str) -> int:
    return getattr(schema.BuiltinOperator, code)


def _quantization(schema, quant: dict | None):
    if quant is None:
        return None
    scale = quant["scale"]()
    return schema.QuantizationParametersT(scale=np.asarray(scale, np.float32).reshape(-1),
                                          zeroPoint=np.zeros(scale.size, np.int64),
                                          quantizedDimension=quant["axis"])


def _options(schema, options: tuple | None) -> dict:
    """builtinOptionsType/builtinOptions of an operator from ("FullyConnectedOptions", {fields})."""
    if options is None:
        return {}
    name, fields = options
    value = getattr(schema, f"{name}T")()
    for key, field in fields.items():
        setattr(value, key, np.array(field, np.int32) if isinstance(field, list) else field)
    return {"builtinOptionsType": getattr(schema.BuiltinOptions, name), "builtinOptions": value}


class _AlignedBuffer:
    """A BufferT whose bytes start on a 16-byte boundary (as TFLite's converter writes them):
    kernels read weights in place, and SIMD loads of a misaligned float table are slow or fault."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def Pack(self, builder):   # noqa: N802 -- the flatbuffers object API's name
        from ai_edge_litert import schema_py_generated as schema

        builder.StartVector(1, self.data.size, 16)
        builder.head = builder.head - self.data.size
        builder.Bytes[builder.head:builder.head + self.data.size] = self.data.tobytes()
        vector = builder.EndVector()
        schema.BufferStart(builder)
        schema.BufferAddData(builder, vector)
        return schema.BufferEnd(builder)
