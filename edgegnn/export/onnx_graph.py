"""The ONNX graph of an EdgeModel: the device math of `EdgeModel.encode`/`score`, then TopK.

Written by hand with onnx.helper: the folded model is a handful of ops (Gather, Mul,
ReduceSum, Sqrt/Div, MatMul, TopK); exporting it through torch.onnx would pull torch and its
tracer into a fixed graph for nothing, and would not give us per-row int8 tables.

History variant (B batch, H history, d dim, I items):
    e_u    = the model kind's device math (`edgegnn.kinds`) on `OnnxOps`: e.g. LightGCN's
             Σ_h mask · message[history] / sqrt(max(Σ_h mask, 1)) (+ a0 · user_base)   [B, d]
    scores = e_u · itemᵀ                                        [B, I]
    top_scores, top_items = TopK(scores, min(K + H, I))
             (from `options.block_topk_min_items` items on, in two stages: the k blocks
             with the largest maxima, then their scores; exact, see plan.TopKBlocks)

How each stored tensor runs (mirrors edge_model.gather_rows / matmul_transposed / matmul):
    dense [R, C]      Gather(table) for rows; MatMul(x, tableᵀ) with tableᵀ [C, R] stored
                      transposed as the initializer, so nothing is transposed at run time.
    int8 rows [R, C]  rows: Gather the int8 codes and their scales, then a blocked
                      DequantizeLinear (block = one row), so only the gathered rows become
                      float. Scoring stays int8: x is quantized to 7 bits, uint8 in [1, 127]
                      around zero point 64, with the calibrated static scale
                      activation_scales["user"] (or, without one, a per-row dynamic symmetric
                      scale computed in the graph), then MatMulInteger(uint8, int8 codesᵀ
                      [C, R]) -> int32, times scale_x · scale[r]. 7 bits, not 8: ORT's x86
                      kernels without VNNI add u8·s8 pairs in saturating int16 (vpmaddubsw),
                      exact only for x <= 127 (edge_model.ACTIVATION_LEVELS); so the
                      accumulators are exact on every CPU, which the CPU matrix checks.
                      The table stays int8 in memory: no DequantizeLinear sits in front of a
                      float MatMul (ORT would constant-fold it into an fp32 copy of the table).
                      uint8 x int8 is the fast MLAS path on x86 (benchmarks/bench_onnx_int8_ops.py:
                      int8 x int8 MatMulInteger and QLinearMatMul were ~10x slower on ORT 1.32).
                      One scale for all rows (QuantizeConfig granularity "tensor"; also a low-rank
                      table's left factor): the int32 accumulators rank as the scores, so TopK runs
                      on them and Cast · (scale_x · scale) rescales only the K + H kept.
                      Small tensors (weights, right factors, projections) run as the simulation
                      does, (x @ float(qᵀ)) · scale or (x · scale) @ float(q), the Cast of the
                      codes folded once at load.
                      Tables of at least `options.nbits_min_rows` rows (targets that allow it) run on
                      com.microsoft MatMulNBits instead (an int4 table too, as packed nibbles q + 8:
                      half the bytes of int8, where every other path widens int4 codes to int8):
                      the codes as uint8 q + 128, one quantization
                      block per row (block = d rounded up to a power of two, padded with code 0), the
                      per-row scales as its scales, accuracy level 4 (int8 compute). It quantizes x per
                      query and block itself, so the static activation scale is not used there (as
                      LiteRT's hybrid fully-connected op). Memory-bound at 1M items: half the time of
                      MatMulInteger (benchmarks/bench_onnx_int8_ops.py --items 1000000).
    low-rank          x · (left·rightᵀ)ᵀ = (x · right) · leftᵀ: two MatMuls, r(R + C) per user.
    row-scaled        rows: base rows · Gather(row_scale); x · tableᵀ = (x · baseᵀ) · row_scale;
                      x · table = (x · row_scale) · base.
    product-quantized codes [R, M] uint8, codebooks [M, K, D]. Rows: Gather the codes, add m·K,
                      Gather from the flattened codebooks [M·K, D], Reshape to [.., M·D]. Scoring
                      without decoding: LUT = MatMul(x as [B, M, 1, D], codebooksᵀ [M, D, K]) as
                      [B, M·K]; scores = ReduceSum(GatherElements(LUT, codes + m·K), over M). The
                      index codes + m·K is computed from the uint8 codes in the graph (ORT folds
                      it at load: 4 bytes per code in memory, 1 on disk).
Row blocks: an item-sized scoring table with more than `options.score_block_rows` rows (the
target's `score_block_rows`) is cut into blocks, each its own initializer and matmul, their
scores concatenated. ONNX Runtime prepacks a weight once all of it is read; per block, the
load peak stays one block above the prepacked table instead of a whole second copy (a table
also gathered stays whole). Measured at 1M int8 items: 0.68x the file at load instead of
1.14x, for ~15 % more time per query (the Concat; per-block TopK instead was slower still).
External data: initializers of more than EXTERNAL_DATA_BYTES in all go to model.onnx.data,
each of 1 MiB or more at a 64 KiB-aligned offset, so ONNX Runtime memory-maps it instead of
copying.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgegnn.class_head import CLASS_OUTPUT, class_logits, has_class_head
from edgegnn.edge_model import ACTIVATION_LEVELS, EdgeModel, stored_leaves
from edgegnn.errors import ExportError
from edgegnn.export.plan import (
    GraphOptions,
    Scoring,
    TopKBlocks,
    exportable,
    one_scale,
    scored_items,
    to_fp16,
    topk_blocks,
    widened_int4,
)
from edgegnn.kinds import item_scores, kind
from edgegnn.retrieval import in_lists, model_lists
from edgegnn.tensors import DenseTensor, LowRankTensor, ProductQuantizedTensor, QuantizedTensor, RowScaledTensor

OPSET = 21          # blocked DequantizeLinear (per-row dequantization of gathered rows)
MS_DOMAIN = "com.microsoft"          # ONNX Runtime's contrib ops (MatMulNBits)
IR_VERSION = 10
PRODUCER = "edgegnn"
NBITS_MIN_ROWS = 1 << 17              # MatMulNBits from here on (see GraphOptions.nbits_min_rows)
# Two-stage top-K from here on (GraphOptions.block_topk_min_items): ORT p50 at batch 1, 1 thread, fp32 /
# int8: 38 / 32 vs 34 / 27 us (one TopK) at 4,096 items, 83 / 59 vs 88 / 59 us at 16,384, 196 / 103 vs 207 / 114 at 41k
BLOCK_TOPK_MIN_ITEMS = 1 << 14
BLOCK_TOPK_OPS = ("Reshape", "ReduceMax", "TopK", "GatherND", "GatherElements", "Div", "Mod", "Pad")
EXTERNAL_DATA_BYTES = 1 << 20         # above this, tables go to model.onnx.data and are memory-mapped
PROTOBUF_BYTES = 1_800_000_000        # protobuf's hard limit is 2 GiB for the whole file
EXTERNAL_ALIGNMENT = 1 << 16          # ORT maps external data only at page / allocation-granularity offsets
ALIGN_FROM_BYTES = 1 << 20            # smaller tensors are read, not mapped: no padding for them
# x of MatMulInteger: L = 63 levels a side around zero point 64, so uint8 values in [1, 127]
USER_LEVELS = ACTIVATION_LEVELS["user"]
USER_ZERO_POINT = USER_LEVELS + 1
_DTYPES = {"float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int32": 6, "int64": 7, "float16": 10}


class OnnxGraph:
    """Nodes and (lazily materialized) initializers of one graph, with each value's dtype.

    Initializers are kept as numpy arrays or thunks, so planning a graph (which ops, how many
    bytes) costs nothing: `check_target` plans, `to_model` materializes.
    """

    def __init__(self) -> None:
        self.nodes: list[tuple[str, list[str], list[str], dict]] = []
        self.consts: dict[str, tuple[Callable[[], np.ndarray], str, tuple[int, ...]]] = {}
        self.dtypes: dict[str, str] = {}
        self._ids = itertools.count()
        self._tables: dict[tuple[int, str], str] = {}
        self.packed_int4: set[int] = set()    # ids of int4 tables stored as packed nibbles (MatMulNBits)
        self.int4_widened: list[str] = []      # model tensors whose int4 codes ship as int8 (set by `plan`)
        self.scoring_ops: set[tuple[str, str, bool]] = set()   # (op, x, ignores the "user" scale), item table
        self.scoring: Scoring | None = None    # how the item table is scored (set by `plan`)

    def const(self, prefix: str, value, dtype: str | None = None, shape: tuple[int, ...] | None = None) -> str:
        """An initializer; `value` is an array or a thunk (then dtype and shape are required)."""
        name = f"{prefix}" if prefix not in self.consts and prefix not in self.dtypes else f"{prefix}_{next(self._ids)}"
        if callable(value):
            thunk = value
        else:
            array = np.asarray(value)
            thunk, dtype, shape = (lambda a=array: a), str(array.dtype), tuple(array.shape)
        self.consts[name] = (thunk, dtype, tuple(shape))
        self.dtypes[name] = dtype
        return name

    def table(self, tensor, part: str, layout: str, make: Callable[[], np.ndarray], dtype: str, shape) -> str:
        """A big initializer stored once per (tensor, layout), however many ops read it."""
        key = (id(tensor), f"{part}:{layout}")
        if key not in self._tables:
            self._tables[key] = self.const(part, make, dtype, shape)
        return self._tables[key]

    def op(self, op_type: str, inputs: list[str], dtype: str, outputs: int = 1, **attrs) -> str | list[str]:
        names = [f"{op_type.lower()}_{next(self._ids)}" for _ in range(outputs)]
        self.nodes.append((op_type, list(inputs), names, attrs))
        for name in names:
            self.dtypes[name] = dtype
        return names[0] if outputs == 1 else names

    def output(self, op_type: str, inputs: list[str], names: list[str], dtypes: list[str], **attrs) -> None:
        """An op whose outputs are the graph's outputs, named as its interface says."""
        self.nodes.append((op_type, list(inputs), list(names), attrs))
        self.dtypes.update(zip(names, dtypes))

    def ops_used(self) -> dict[str, list[str]]:
        """{"float": [...], "int8": [...]}: op types by whether a data input is int8/uint8.

        Zero points of QuantizeLinear/DequantizeLinear/MatMulInteger are parameters, not data:
        QuantizeLinear of a float tensor is a float op.
        """
        used: dict[str, set[str]] = {"float": set(), "int8": set()}
        data_inputs = {"QuantizeLinear": 1, "DequantizeLinear": 1, "MatMulInteger": 2, "MatMulNBits": 2}
        for op_type, inputs, _, _ in self.nodes:
            data = inputs[:data_inputs.get(op_type, len(inputs))]
            int8 = any(self.dtypes.get(i) in ("int8", "uint8") for i in data if i)
            used["int8" if int8 else "float"].add(op_type)
        return {k: sorted(v) for k, v in used.items()}

    def const_bytes(self) -> int:
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, dtype, shape in self.consts.values())


# ---- the device math, op by op -------------------------------------------------------------

class _Builder:
    """Emits the ops of EdgeModel's arithmetic into an OnnxGraph."""

    def __init__(self, edge: EdgeModel, options: GraphOptions) -> None:
        self.edge, self.options, self.g = edge, options, OnnxGraph()
        self.forms: dict[int, object] = {}
        tensors = exportable(edge, self.forms)
        self.t = to_fp16(tensors) if options.precision == "fp16" else tensors
        self._scalars: dict[tuple[str, float], str] = {}
        self._quantized_x: dict[tuple[str, float | None], tuple[str, str | None]] = {}
        self._widened: dict[tuple[int, str], str] = {}
        self._blocks: list = []       # block views stay referenced: tables are keyed by id()
        self._block_of: dict[int, int] = {}      # id(row block view) -> id(the whole table)
        # The scoring table is stored transposed ([C, R], MatMul's layout), or in MatMulNBits'
        # row layout; a table both scored and gathered (a shared or joint low-rank factor) is
        # gathered from that layout, so it ships once, and is not cut into row blocks.
        scored = self.t["item"].left if isinstance(self.t["item"], LowRankTensor) else self.t["item"]
        gathered = any(id(scored) == id(leaf) for name, t in self.t.items() if name != "item"
                       for leaf in stored_leaves([t]))
        self.nbits = {id(scored)} if self._nbits_eligible(scored) else set()
        # int4 tables only gathered (the message table) ship packed too, unpacked on gather
        self.packed4 = {id(leaf) for t in self.t.values() for leaf in stored_leaves([t])
                        if self._packs_int4(leaf) and id(leaf) not in self.nbits}
        self.g.packed_int4.update(self.packed4)
        self.transposed = set() if self.nbits else {id(scored)}
        rows, block = scored.shape[0], options.score_block_rows
        blockable = isinstance(scored, (DenseTensor, QuantizedTensor)) and not gathered
        self.blocked = {id(scored)} if blockable and block is not None and rows > block else set()
        # Inverted lists (the retrieval pass): the item table is scored list by list from its
        # own [L, C, d] layout (`list_scores`); any other reader gathers it from the row layout.
        self.lists = model_lists(self.t, edge.params)
        self.candidate_rows: str | None = None      # [B, N] item rows of the scores, when not all items
        if self.lists is not None:
            self.nbits, self.transposed, self.blocked = set(), set(), set()

    def _nbits_eligible(self, table) -> bool:
        """MatMulNBits scores this table: int8 with at least `nbits_min_rows` rows, or int4 of
        any size (packed: half the bytes of int8 codes); d fits one block (<= 256)."""
        return self._packs_int4(table) or (
            isinstance(table, QuantizedTensor) and self.options.nbits_min_rows is not None
            and table.shape[0] >= self.options.nbits_min_rows and table.shape[1] <= 256)

    def _packs_int4(self, table) -> bool:
        """An int4 item-sized table ships as packed nibbles (targets that allow MatMulNBits)."""
        return (isinstance(table, QuantizedTensor) and table.bits == 4 and self.options.nbits_min_rows is not None
                and table.shape[1] <= 256 and self.is_big(table))

    def scalar(self, value, dtype: str = "float32") -> str:
        key = (dtype, float(value))
        if key not in self._scalars:
            self._scalars[key] = self.g.const("c", np.array(value, dtype=dtype))
        return self._scalars[key]

    def ints(self, values) -> str:
        return self.g.const("axes", np.array(values, dtype=np.int64))

    # rows of a table: table[index] as float32 [..., C]
    def gather_rows(self, table, index: str) -> str:
        g = self.g
        if isinstance(table, LowRankTensor):
            return self.matmul_transposed(self.gather_rows(table.left, index), table.right, dynamic_int8=False)
        if isinstance(table, RowScaledTensor):
            return g.op("Mul", [self.gather_rows(table.base, index), self.gathered_row_scale(table, index)], "float32")
        if isinstance(table, ProductQuantizedTensor):
            return self.gather_pq_rows(table, index)
        if isinstance(table, QuantizedTensor) and id(table) in self.nbits | self.packed4:
            return self.gather_nbits_rows(table, index)
        if isinstance(table, QuantizedTensor):
            rows = self.gather(table, "codes", lambda: table.q, "int8", index)            # [B, H, C] int8
            shared = one_scale(table)
            if shared is not None:   # one scale for the table: no gather of the scales
                return g.op("DequantizeLinear", [rows, self.scalar(shared)], "float32")
            row_scale = g.op("Unsqueeze", [g.op("Gather", [self.row_scales(table), index], "float32", axis=0),
                                           self.ints([-1])],
                             "float32")                                                   # [..., 1]
            return g.op("DequantizeLinear", [rows, row_scale], "float32", axis=-1, block_size=int(table.shape[1]))
        rows = self.gather(table, "table", lambda: table.values, str(table.values.dtype), index)
        return self.to_float(rows, table)

    def gather(self, table, part: str, values, dtype: str, index: str) -> str:
        """table[index] [B, H, C], from the row layout, or from the transposed one if the table has it."""
        g = self.g
        rows, cols = table.shape
        if id(table) not in self.transposed:
            return g.op("Gather", [g.table(table, part, "rows", values, dtype, (rows, cols)), index], dtype, axis=0)
        stored = g.table(table, f"{part}_t", "cols", lambda: np.ascontiguousarray(values().T), dtype, (cols, rows))
        picked = g.op("Gather", [stored, index], dtype, axis=1)                            # [C, B, H]
        return g.op("Transpose", [picked], dtype, perm=[1, 2, 0])

    def to_float(self, value: str, table) -> str:
        if isinstance(table, DenseTensor) and table.values.dtype == np.float16:
            return self.g.op("Cast", [value], "float32", to=_DTYPES["float32"])
        return value

    # x @ tableᵀ: x [B, C], table [R, C] -> [B, R]
    def matmul_transposed(self, x: str, table, *, act_scale: float | None = None, dynamic_int8: bool = True) -> str:
        g = self.g
        if isinstance(table, LowRankTensor):
            x = self.fake_quant(x, act_scale, USER_LEVELS) if act_scale is not None else x
            return self.matmul_transposed(self.matmul(x, table.right), table.left, dynamic_int8=dynamic_int8)
        if isinstance(table, RowScaledTensor):
            scores = self.matmul_transposed(x, table.base, act_scale=act_scale, dynamic_int8=dynamic_int8)
            return g.op("Mul", [scores, self.row_scale(table)], "float32")
        if isinstance(table, ProductQuantizedTensor):
            self.note_scoring(table, "lookup", "float")
            return self.pq_scores(self.fake_quant(x, act_scale, USER_LEVELS) if act_scale is not None else x, table)
        if id(table) in self.blocked:
            return self.blocked_scores(x, table, act_scale=act_scale, dynamic_int8=dynamic_int8)
        if id(table) in self.nbits:   # quantizes x itself: the static scale is not used
            self.note_scoring(table, "MatMulNBits", "runtime-8bit", ignores_user_scale=act_scale is not None)
            return self.nbits_scores(x, table)
        if isinstance(table, QuantizedTensor) and (act_scale is not None or dynamic_int8) and self.is_big(table):
            return self.int8_scores(x, table, act_scale)
        self.note_scoring(table, "MatMul", "float")
        if act_scale is not None:
            x = self.fake_quant(x, act_scale, USER_LEVELS)
        if isinstance(table, QuantizedTensor):   # small: (x @ float(qᵀ)) · scale, as the simulation
            return g.op("Mul", [g.op("MatMul", [x, self.float_codes(table, transposed=True)], "float32"),
                                self.row_scales(table)], "float32")
        dtype = str(table.values.dtype)
        weight = g.table(table, "table_t", "cols", lambda: np.ascontiguousarray(table.values.T), dtype,
                         (table.shape[1], table.shape[0]))
        return self.float_matmul(x, weight, table)

    # x @ table: x [B, R], table [R, C] -> [B, C]
    def matmul(self, x: str, table) -> str:
        g = self.g
        if isinstance(table, LowRankTensor):
            return self.matmul_transposed(self.matmul(x, table.left), table.right, dynamic_int8=False)
        if isinstance(table, RowScaledTensor):
            return self.matmul(g.op("Mul", [x, self.row_scale(table)], "float32"), table.base)
        if isinstance(table, QuantizedTensor):    # (x · scale) @ float(q), as the simulation
            scaled = g.op("Mul", [x, self.row_scales(table)], "float32")
            return g.op("MatMul", [scaled, self.float_codes(table, transposed=False)], "float32")
        weight = g.table(table, "table", "rows", lambda: table.values, str(table.values.dtype), table.shape)
        return self.float_matmul(x, weight, table)

    def float_matmul(self, x: str, weight: str, table) -> str:
        g = self.g
        if table.values.dtype == np.float16:
            half = g.op("Cast", [x], "float16", to=_DTYPES["float16"])
            return g.op("Cast", [g.op("MatMul", [half, weight], "float16")], "float32", to=_DTYPES["float32"])
        return g.op("MatMul", [x, weight], "float32")

    def float_codes(self, table: QuantizedTensor, *, transposed: bool) -> str:
        """A small tensor's int8 codes as float32 ([C, R] if transposed), folded by ORT at load.

        A Cast, not a DequantizeLinear: ORT's QDQ fusion turns DequantizeLinear(weight) -> MatMul
        into MatMulIntegerToFloat assuming per-column scales, which per-row scales are not.
        """
        if transposed:
            codes = self.g.table(table, "codes_t", "cols", lambda: np.ascontiguousarray(table.q.T), "int8",
                                 (table.shape[1], table.shape[0]))
        else:
            codes = self.g.table(table, "codes", "rows", lambda: table.q, "int8", table.shape)
        return self.g.op("Cast", [codes], "float32", to=_DTYPES["float32"])

    def row_scale(self, table: RowScaledTensor) -> str:
        """float32 [R]: a row-scaled tensor's factors (stored in their own dtype, e.g. float16)."""
        return self.float_table(table.row_scale, "row_scale", table.row_scale.values)

    def float_table(self, owner, part: str, values: np.ndarray) -> str:
        """A constant stored in its own float dtype, read as float32: a float16 one ships at 2
        bytes a value and gets one Cast, which ORT folds at load."""
        g = self.g
        dtype = str(values.dtype)
        stored = g.table(owner, part, "stored", lambda: values, dtype, values.shape)
        if dtype == "float32":
            return stored
        key = (id(owner), f"{part}:float32")
        if key not in self._widened:
            self._widened[key] = g.op("Cast", [stored], "float32", to=_DTYPES["float32"])
        return self._widened[key]

    def gathered_row_scale(self, table: RowScaledTensor, index: str) -> str:
        """row_scale[index] as [..., 1]."""
        g = self.g
        return g.op("Unsqueeze", [g.op("Gather", [self.row_scale(table), index], "float32", axis=0), self.ints([-1])],
                    "float32")

    # ---- product quantization ----------------------------------------------------------------

    def pq_index(self, table: ProductQuantizedTensor, codes: str) -> str:
        """codes[..., m] + m·K as int32: positions in the flattened [M·K] codebook axis."""
        g = self.g
        offsets = g.const("pq_offsets", (np.arange(table.subvectors) * table.centroids).astype(np.int32))
        return g.op("Add", [g.op("Cast", [codes], "int32", to=_DTYPES["int32"]), offsets], "int32")

    def pq_codes(self, table: ProductQuantizedTensor) -> str:
        return self.g.table(table, "pq_codes", "rows", lambda: table.codes, "uint8", table.codes.shape)

    def pq_books(self, table: ProductQuantizedTensor) -> str:
        """float32 [M·K, D]: the codebooks, flattened, stored once (in their own dtype)."""
        m, k, d = table.codebooks.shape
        return self.float_table(table, "pq_codebooks", table.codebooks.reshape(m * k, d))

    def gather_pq_rows(self, table: ProductQuantizedTensor, index: str) -> str:
        """table[index] [B, H, C], decoded: concat_m codebooks[m, codes[index, m]]."""
        g = self.g
        m, k, d = table.codebooks.shape
        codes = g.op("Gather", [self.pq_codes(table), index], "uint8", axis=0)                 # [B, H, M]
        parts = g.op("Gather", [self.pq_books(table), self.pq_index(table, codes)], "float32", axis=0)  # [B, H, M, D]
        return g.op("Reshape", [parts, self.ints([0, 0, m * d])], "float32")

    def pq_scores(self, x: str, table: ProductQuantizedTensor) -> str:
        """x @ tableᵀ [B, R] through lookup tables: Σ_m (x_m · codebooks[m])[codes[r, m]]."""
        g = self.g
        m, k, d = table.codebooks.shape
        books = g.op("Reshape", [self.pq_books(table), self.ints([m, k, d])], "float32")
        books_t = g.op("Transpose", [books], "float32", perm=[0, 2, 1])       # [M, D, K], folded by ORT at load
        rows = table.shape[0]
        lut = g.op("MatMul", [g.op("Reshape", [x, self.ints([0, m, 1, d])], "float32"), books_t], "float32")
        lut = g.op("Reshape", [lut, self.ints([0, m * k])], "float32")                           # [B, M·K]
        # GatherElements, not Gather: ORT's Gather copies one element per index slowly (5.5 ms
        # vs 0.5 ms for 41k x 16 lookups, ORT 1.32); it needs the index as [B, R·M].
        index = g.op("Reshape", [self.pq_index(table, self.pq_codes(table)), self.ints([1, rows * m])], "int32")
        batch = g.op("Slice", [g.op("Shape", [lut], "int64"), self.ints([0]), self.ints([1])], "int64")
        index = g.op("Expand", [index, g.op("Concat", [batch, self.ints([rows * m])], "int64", axis=0)], "int32")
        picked = g.op("GatherElements", [lut, index], "float32", axis=1)                        # [B, R·M]
        picked = g.op("Reshape", [picked, self.ints([0, rows, m])], "float32")
        return g.op("ReduceSum", [picked, self.ints([2])], "float32", keepdims=0)

    def row_scales(self, table: QuantizedTensor) -> str:
        return self.float_table(table, "scales", table.scale)

    def note_scoring(self, table, op: str, x: str, *, ignores_user_scale: bool = False) -> None:
        """Record how an item-sized table is scored (weights and factors are not recorded)."""
        if self.is_big(table):
            self.g.scoring_ops.add((op, x, ignores_user_scale))

    def is_big(self, table) -> bool:
        """Item-sized tables score in int8; weights and factors (R <= 4096 rows) dequantize once."""
        return table.shape[0] > 4096 or table.shape[0] == self.edge.num_items or id(table) in self._block_of

    def int8_accumulators(self, x: str, table: QuantizedTensor, act_scale: float | None) -> tuple[str, str | None]:
        """MatMulInteger(uint8 x, int8 qᵀ) -> int32 [B, R], and x's dynamic scale (None if static)."""
        g = self.g
        codes_t = g.table(table, "codes_t", "cols", lambda: np.ascontiguousarray(table.q.T), "int8",
                          (table.shape[1], table.shape[0]))
        xq, x_scale = self.quantized_user(x, act_scale)
        self.note_scoring(table, "MatMulInteger", "per-query-7bit" if act_scale is None else "static-7bit")
        return g.op("MatMulInteger", [xq, codes_t, self.scalar(USER_ZERO_POINT, "uint8")], "int32"), x_scale

    def int8_scores(self, x: str, table: QuantizedTensor, act_scale: float | None) -> str:
        """x @ (q · scale)ᵀ as MatMulInteger(uint8 x, int8 qᵀ) · scale_x · scale[r]."""
        g = self.g
        acc, x_scale = self.int8_accumulators(x, table, act_scale)
        scores = g.op("Cast", [acc], "float32", to=_DTYPES["float32"])
        if x_scale is not None:
            return g.op("Mul", [g.op("Mul", [scores, x_scale], "float32"), self.row_scales(table)], "float32")
        factor = g.table(table, "scales_x", f"static{act_scale!r}",
                         lambda: (table.scale.astype(np.float32) * np.float32(act_scale)).astype(np.float32), "float32",
                         table.scale.shape)
        return g.op("Mul", [scores, factor], "float32")

    def quantized_user(self, x: str, act_scale: float | None) -> tuple[str, str | None]:
        """x as 7-bit uint8 (zero point USER_ZERO_POINT, values in [1, 127]: exact on every
        MatMulInteger kernel, see edge_model.ACTIVATION_LEVELS), once per (x, scale): with the
        static scale (then the second value is None), or one symmetric scale per user row
        computed in the graph (it cannot reorder that user's items beyond rounding; the second
        value is that scale)."""
        key = (x, act_scale)
        if key not in self._quantized_x:
            g = self.g
            zero = self.scalar(USER_ZERO_POINT, "uint8")
            if act_scale is not None:
                bound = USER_LEVELS * act_scale
                clipped = g.op("Clip", [x, self.scalar(-bound), self.scalar(bound)], "float32")
                xq = g.op("QuantizeLinear", [clipped, self.scalar(act_scale), zero], "uint8")
                self._quantized_x[key] = (xq, None)
            else:
                peak = g.op("ReduceMax", [g.op("Abs", [x], "float32"), self.ints([1])], "float32", keepdims=1)
                x_scale = g.op("Div", [g.op("Max", [peak, self.scalar(1e-30)], "float32"),
                                       self.scalar(float(USER_LEVELS))], "float32")
                rounded = g.op("Round", [g.op("Div", [x, x_scale], "float32")], "float32")
                xq = g.op("Cast", [g.op("Add", [rounded, self.scalar(float(USER_ZERO_POINT))], "float32")], "uint8",
                          to=_DTYPES["uint8"])
                self._quantized_x[key] = (xq, x_scale)
        return self._quantized_x[key]

    def blocked_scores(self, x: str, table, **kwargs) -> str:
        """x @ tableᵀ [B, R], as Concat over row blocks of at most `score_block_rows` rows."""
        block = self.options.score_block_rows
        parts = []
        for start in range(0, table.shape[0], block):
            rows = slice(start, start + block)
            view = (DenseTensor(table.values[rows]) if isinstance(table, DenseTensor)
                    else QuantizedTensor(table.q[rows], table.scale[rows], table.bits))
            self._blocks.append(view)
            self._block_of[id(view)] = id(table)
            if id(table) in self.nbits:
                self.nbits.add(id(view))
            parts.append(self.matmul_transposed(x, view, **kwargs))
        return self.g.op("Concat", parts, "float32", axis=1)

    @staticmethod
    def nbits_block(table: QuantizedTensor) -> int:
        """MatMulNBits' block length: d rounded up to a power of two, at least 16."""
        return max(16, 1 << (int(table.shape[1]) - 1).bit_length())

    def nbits_codes(self, table: QuantizedTensor) -> str:
        """MatMulNBits' B: the codes shifted by its default zero point z = 2^(bits-1) and padded
        with z (code 0) to the block length. 8 bits: uint8 [R, 1, block], q + 128. 4 bits:
        uint8 [R, 1, block/2], two codes q + 8 per byte, the even column in the low nibble."""
        rows, cols = table.shape
        block, bits = self.nbits_block(table), table.bits
        zero = 1 << (bits - 1)

        def make() -> np.ndarray:
            codes = np.full((rows, block), zero, dtype=np.uint8)
            codes[:, :cols] = (table.q.astype(np.int16) + zero).astype(np.uint8)
            if bits == 4:
                codes = codes[:, 0::2] | (codes[:, 1::2] << 4)
            return codes.reshape(rows, 1, -1)
        return self.g.table(table, "codes_nbits", "nbits", make, "uint8", (rows, 1, block * bits // 8))

    def nbits_scores(self, x: str, table: QuantizedTensor) -> str:
        """x @ (q · scale)ᵀ with MatMulNBits (the table's 8 or 4 bits, default zero point, int8 compute)."""
        rows, cols = table.shape
        if table.bits == 4:
            self.g.packed_int4.add(self._block_of.get(id(table), id(table)))
        return self.g.op("MatMulNBits", [x, self.nbits_codes(table), self.row_scales(table)], "float32",
                         domain=MS_DOMAIN, K=int(cols), N=int(rows), bits=table.bits,
                         block_size=self.nbits_block(table), accuracy_level=4)

    def gather_nbits_rows(self, table: QuantizedTensor, index: str) -> str:
        """table[index] [B, H, C] from MatMulNBits' layout: (codes - z) · scale[row], z = 2^(bits-1);
        4-bit rows are unpacked (low nibble = even column) with BitwiseAnd / BitShift."""
        g = self.g
        picked = g.op("Gather", [self.nbits_codes(table), index], "uint8", axis=0)            # [B, H, 1, bytes]
        codes = g.op("Squeeze", [picked, self.ints([-2])], "uint8")
        if table.bits == 4:
            low = g.op("BitwiseAnd", [codes, self.scalar(15, "uint8")], "uint8")
            high = g.op("BitShift", [codes, self.scalar(4, "uint8")], "uint8", direction="RIGHT")
            pairs = g.op("Concat", [g.op("Unsqueeze", [part, self.ints([-1])], "uint8") for part in (low, high)],
                         "uint8", axis=-1)                                                     # [B, H, bytes, 2]
            codes = g.op("Reshape", [pairs, self.ints([0, 0, self.nbits_block(table)])], "uint8")
        if self.nbits_block(table) != table.shape[1]:
            codes = g.op("Slice", [codes, self.ints([0]), self.ints([table.shape[1]]), self.ints([-1])], "uint8")
        zero = float(1 << (table.bits - 1))
        centered = g.op("Add", [g.op("Cast", [codes], "float32", to=_DTYPES["float32"]), self.scalar(-zero)],
                        "float32")
        row_scale = g.op("Unsqueeze", [g.op("Gather", [self.row_scales(table), index], "float32", axis=0),
                                       self.ints([-1])], "float32")
        return g.op("Mul", [centered, row_scale], "float32")

    def fake_quant(self, x: str, scale: float, levels: int) -> str:
        """clip(rint(x / s), -L, L) · s, as EdgeModel.quantize_activation."""
        g = self.g
        clipped = g.op("Clip", [x, self.scalar(-levels * scale), self.scalar(levels * scale)], "float32")
        xq = g.op("QuantizeLinear", [clipped, self.scalar(scale), self.scalar(0, "int8")], "int8")
        return g.op("DequantizeLinear", [xq, self.scalar(scale), self.scalar(0, "int8")], "float32")

    # ---- the encoder ------------------------------------------------------------------------

    def history_scores(self, history: str, mask: str, base: str | None) -> tuple[str, str | None]:
        """score(e_u) of the model kind's device math (`edgegnn.kinds`) on `OnnxOps`, plus the
        kind's item_scores term (graph filters' neighbour lists; then the scores are float);
        with a user class head, also its output (`edgegnn.class_head`)."""
        ops = OnnxOps(self, history, mask, base)
        e_u = kind(self.edge.kind).encode(ops, self.edge.params)
        if has_class_head(self.edge):      # beside the scores, from the same float e_u
            self.g.output("Softmax", [class_logits(ops, e_u)], [CLASS_OUTPUT], ["float32"], axis=-1)
        scores, factor = self.score(e_u)
        term = item_scores(self.edge.kind, ops, self.edge.params)
        if term is None:
            return scores, factor
        return self.g.op("Add", [scores, term], "float32"), None

    def bias(self, name: str) -> str:
        return self.g.const(name, np.asarray(self.edge.tensors[name].to_dense(), np.float32))

    def score(self, e_u: str) -> tuple[str, str | None]:
        """The scores [B, I], and None; or, when the int8 item rows share one scale, the int32
        accumulators [B, I] and the positive factor [B, 1] or scalar (scale_x · scale) that makes
        them scores: within a user's row one factor ranks the integers as their scores, so the
        top-K runs on them and only K + H values are rescaled."""
        scale = self.edge.activation_scales.get("user")
        act_scale = None if scale is None else float(scale)
        table = self.t["item"]
        if self.lists is not None:
            return self.list_scores(e_u, table, act_scale), None
        if self.ranks_integers(table):
            return self.integer_scores(e_u, table, act_scale)
        if isinstance(table, LowRankTensor) and self.ranks_integers(table.left):
            # as matmul_transposed: (fake-quantized x) · right, then int8 with a per-user scale
            x = self.fake_quant(e_u, act_scale, USER_LEVELS) if act_scale is not None else e_u
            return self.integer_scores(self.matmul(x, table.right), table.left, None)
        return self.matmul_transposed(e_u, table, act_scale=act_scale), None

    def list_scores(self, e_u: str, table, act_scale: float | None) -> str:
        """The scores [B, N] of the items of the nprobe lists nearest e_u, N = nprobe · C, their
        item rows in `candidate_rows` (`edgegnn.retrieval`):
            probed  = TopK(e_u · centroidsᵀ, nprobe)                       [B, nprobe]
            codes   = Gather(list codes [L, C, d], probed) as [B, N, d]    (int8 -> Cast float)
            scores  = (codes · x) · scale + pad bias                        [B, N]
        x = e_u after its static "user" rounding (as the simulation), times the right factor for a
        low-rank table (whose left factor is then the table laid out in lists); scale = the table's one
        scale, or each candidate's row scale gathered from [L, C]; the pad bias is 0 for an item
        and -inf for a list's padding, whose row is -1. Float math on N ≈ 1 % of the items: the
        Cast of the gathered codes costs less than any integer path with a per-query B."""
        g, (lists, nprobe) = self.g, self.lists
        count, capacity = lists.rows.shape
        centroids_t = g.table(lists, "list_centroids_t", "cols", lambda: np.ascontiguousarray(lists.centroids.T),
                              "float32", lists.centroids.shape[::-1])
        if isinstance(table, LowRankTensor):   # scored in the rank-r space: x = (rounded e_u) · right
            x = self.fake_quant(e_u, act_scale, USER_LEVELS) if act_scale is not None else e_u
            x, table, act_scale = self.matmul(x, table.right), table.left, None
        else:
            x = e_u
        width = int(table.shape[1])
        self.note_scoring(table, "MatMul", "float")
        _, probed = g.op("TopK", [g.op("MatMul", [e_u, centroids_t], "float32"), self.ints([nprobe])], "float32",
                         outputs=2, axis=-1, largest=1, sorted=1)
        g.dtypes[probed] = "int64"                                                          # [B, nprobe]
        quantized = isinstance(table, QuantizedTensor)
        codes, dtype = (table.q, "int8") if quantized else (table.values, str(table.values.dtype))
        stored = g.table(table, "list_codes", "lists", lambda: in_lists(codes, lists.rows), dtype,
                         (count, capacity, width))
        picked = g.op("Reshape", [g.op("Gather", [stored, probed], dtype, axis=0), self.ints([0, -1, width])], dtype)
        if dtype != "float32":
            picked = g.op("Cast", [picked], "float32", to=_DTYPES["float32"])               # [B, N, d]
        # rounded after the Unsqueeze: ORT 1.32's QDQ propagation breaks on DequantizeLinear -> Unsqueeze
        x = g.op("Unsqueeze", [x, self.ints([2])], "float32")                                # [B, d, 1]
        x = self.fake_quant(x, act_scale, USER_LEVELS) if act_scale is not None else x
        scores = g.op("MatMul", [picked, x], "float32")
        scores = g.op("Reshape", [scores, self.ints([0, -1])], "float32")                   # [B, N]
        if quantized and one_scale(table) is not None:
            scores = g.op("Mul", [scores, self.scalar(np.float32(one_scale(table)))], "float32")
        elif quantized:
            scales = g.table(table, "list_scales", "lists",
                             lambda: in_lists(np.asarray(table.scale, np.float32).reshape(-1, 1), lists.rows)[..., 0],
                             "float32", (count, capacity))
            scores = g.op("Mul", [scores, self.per_candidate(scales, probed, "float32")], "float32")
        bias = g.table(lists, "list_bias", "lists", lambda: np.where(lists.rows >= 0, 0, -np.inf).astype(np.float32),
                       "float32", (count, capacity))
        ids = g.table(lists, "list_rows", "lists", lambda: lists.rows, "int32", (count, capacity))
        self.candidate_rows = g.op("Cast", [self.per_candidate(ids, probed, "int32")], "int64", to=_DTYPES["int64"])
        return g.op("Add", [scores, self.per_candidate(bias, probed, "float32")], "float32")

    def per_candidate(self, table: str, probed: str, dtype: str) -> str:
        """Gather(table [L, C], probed [B, nprobe]) as [B, nprobe · C]."""
        return self.g.op("Reshape", [self.g.op("Gather", [table, probed], dtype, axis=0), self.ints([0, -1])], dtype)

    def ranks_integers(self, table) -> bool:
        """A one-block MatMulInteger table whose rows share one scale (QuantizeConfig granularity "tensor")."""
        return (isinstance(table, QuantizedTensor) and self.is_big(table) and id(table) not in self.nbits
                and not self.edge.has_item_scores
                and id(table) not in self.blocked and one_scale(table) is not None)

    def integer_scores(self, x: str, table: QuantizedTensor, act_scale: float | None) -> tuple[str, str]:
        """int32 x · qᵀ [B, R] and its factor: scale_x · scale (a scalar, or [B, 1] with a dynamic scale_x)."""
        acc, x_scale = self.int8_accumulators(x, table, act_scale)
        if x_scale is None:
            return acc, self.scalar(np.float32(one_scale(table)) * np.float32(act_scale))
        return acc, self.g.op("Mul", [x_scale, self.scalar(one_scale(table))], "float32")

    def top_k(self, scores: str, factor: str | None, history: str | None) -> None:
        """top_scores, top_items = TopK(scores, k), k = min(K + H, I) (K for the user variant);
        in two stages from `options.block_topk_min_items` items on; integer scores are ranked,
        then the K + H kept are rescaled by `factor`."""
        g, num_items = self.g, scored_items(self.edge)
        if history is None:
            k = self.g.const("k", np.array([min(self.options.top_k, num_items)], np.int64))
        else:   # K + H, with H read from the input's shape (dynamic), capped at I
            h = g.op("Shape", [history], "int64", start=1, end=2)
            k = g.op("Min", [g.op("Add", [h, self.ints([self.options.top_k])], "int64"), self.ints([num_items])],
                     "int64")
        values = "top_scores" if factor is None else "top_accumulators"
        dtype = g.dtypes[scores]
        threshold = self.options.block_topk_min_items
        if self.candidate_rows is not None:     # positions among the candidates -> their item rows
            g.output("TopK", [scores, k], [values, "top_positions"], [dtype, "int64"], axis=-1, largest=1, sorted=1)
            g.output("GatherElements", [self.candidate_rows, "top_positions"], ["top_items"], ["int64"], axis=1)
        elif threshold is not None and num_items >= threshold:
            self.block_top_k(scores, k, topk_blocks(num_items), values)
        else:
            g.output("TopK", [scores, k], [values, "top_items"], [dtype, "int64"], axis=-1, largest=1, sorted=1)
        if factor is not None:
            g.output("Mul", [g.op("Cast", [values], "float32", to=_DTYPES["float32"]), factor], ["top_scores"],
                     ["float32"])

    def block_top_k(self, scores: str, k: str, plan: TopKBlocks, values: str) -> None:
        """The two-stage top-K of `plan` (see `TopKBlocks`), its outputs named `values`, "top_items"."""
        g = self.g
        dtype = g.dtypes[scores]
        if plan.pad:
            lowest = np.iinfo(np.int32).min if dtype == "int32" else -np.inf
            scores = g.op("Pad", [scores, self.ints([0, 0, 0, plan.pad]), self.scalar(lowest, dtype)], dtype,
                          mode="constant")
        grid = g.op("Reshape", [scores, self.ints([0, plan.blocks, plan.block])], dtype)         # [B, R, C]
        block_max = g.op("ReduceMax", [grid, self.ints([2])], dtype, keepdims=0)                # [B, R]
        wanted = g.op("Min", [k, self.ints([plan.blocks])], "int64")
        _, picked = g.op("TopK", [block_max, wanted], dtype, outputs=2, axis=-1, largest=1, sorted=0)
        g.dtypes[picked] = "int64"                                                             # [B, k_b]
        candidates = g.op("GatherND", [grid, g.op("Unsqueeze", [picked, self.ints([2])], "int64")], dtype,
                          batch_dims=1)                                                        # [B, k_b, C]
        flat = g.op("Reshape", [candidates, self.ints([0, -1])], dtype)                         # [B, k_b·C]
        position = f"{values}_position"
        g.output("TopK", [flat, k], [values, position], [dtype, "int64"], axis=-1, largest=1, sorted=1)
        block = g.const("block", np.array(plan.block, np.int64))
        row = g.op("GatherElements", [picked, g.op("Div", [position, block], "int64")], "int64", axis=1)
        g.output("Add", [g.op("Mul", [row, block], "int64"), g.op("Mod", [position, block], "int64")],
                 ["top_items"], ["int64"])


class OnnxOps:
    """The kinds' ops (`edgegnn.kinds.ops`) as ONNX nodes; values are node output names.

    history_pool: Gather (as the table is stored) · mask, ReduceSum over H, Div by
    count = max(Σ mask, 1) or its Sqrt; activation: the float fake-quantization
    QuantizeLinear -> DequantizeLinear of the static scale (the simulation's rounding).
    """

    def __init__(self, builder: "_Builder", history: str, mask: str, base: str | None) -> None:
        g = builder.g
        self.b, self.g, self.history, self.base = builder, g, history, base
        self.count = g.op("Max", [g.op("ReduceSum", [mask, builder.ints([1])], "float32", keepdims=1),
                                  builder.scalar(1.0)], "float32")                        # [B, 1]
        self.mask3 = g.op("Unsqueeze", [mask, builder.ints([2])], "float32")               # [B, H, 1]
        self._sqrt_count: str | None = None

    def history_pool(self, table: str, norm: str) -> str:
        g = self.g
        rows = g.op("Mul", [self.b.gather_rows(self.b.t[table], self.history), self.mask3], "float32")
        summed = g.op("ReduceSum", [rows, self.b.ints([1])], "float32", keepdims=0)
        if norm == "sum":
            return summed
        if norm == "sqrt" and self._sqrt_count is None:
            self._sqrt_count = g.op("Sqrt", [self.count], "float32")
        return g.op("Div", [summed, self._sqrt_count if norm == "sqrt" else self.count], "float32")

    def history_attention(self, table: str) -> str:
        """Gather [B, H, C + 1] (as stored), Slice the messages and the logit column, push the
        padding's logits to -1e9 (logit + 1e9·mask - 1e9), Softmax over H, weigh, ReduceSum."""
        g, b = self.g, self.b
        width = b.t[table].shape[1] - 1
        rows = b.gather_rows(b.t[table], self.history)
        values = g.op("Slice", [rows, b.ints([0]), b.ints([width]), b.ints([2])], "float32")           # [B, H, C]
        logits = g.op("Slice", [rows, b.ints([width]), b.ints([width + 1]), b.ints([2])], "float32")   # [B, H, 1]
        penalty = g.op("Add", [g.op("Mul", [self.mask3, b.scalar(1e9)], "float32"), b.scalar(-1e9)], "float32")
        weights = g.op("Softmax", [g.op("Add", [logits, penalty], "float32")], "float32", axis=1)
        return g.op("ReduceSum", [g.op("Mul", [values, weights], "float32"), b.ints([1])], "float32", keepdims=0)

    def user_base(self) -> str | None:
        return self.base

    def has(self, name: str) -> bool:
        return name in self.b.t

    def matmul(self, x: str, table: str) -> str:
        return self.b.matmul(x, self.b.t[table])

    def matmul_t(self, x: str, table: str) -> str:
        return self.b.matmul_transposed(x, self.b.t[table], dynamic_int8=False)

    def add(self, a: str, b: str) -> str:
        return self.g.op("Add", [a, b], "float32")

    def scale(self, x: str, factor: float) -> str:
        return self.g.op("Mul", [x, self.b.scalar(np.float32(factor))], "float32")

    def relu(self, x: str) -> str:
        return self.g.op("Relu", [x], "float32")

    def bias(self, name: str) -> str:
        return self.b.bias(name)

    def activation(self, name: str, x: str) -> str:
        scale = self.b.edge.activation_scales.get(name)
        return x if scale is None else self.b.fake_quant(x, float(scale), ACTIVATION_LEVELS[name])

    def neighbor_scores(self, ids: str, weights: str) -> str:
        """Gather the history's neighbour ids [B, H, N] (uint16 or int32, as stored) and weights
        (read as stored, times the mask), then ScatterElements(zeros [B, I], ids, weights,
        reduction "add") over [B, H·N]: a neighbour of several history items sums."""
        g, b = self.g, self.b
        table = b.t[ids]
        dtype = str(table.values.dtype)
        stored = g.table(table, "neighbor_items", "rows", lambda: table.values, dtype, table.shape)
        picked = g.op("Gather", [stored, self.history], dtype, axis=0)                     # [B, H, N]
        index = g.op("Reshape", [g.op("Cast", [picked], "int64", to=_DTYPES["int64"]), b.ints([0, -1])], "int64")
        values = g.op("Mul", [b.gather_rows(b.t[weights], self.history), self.mask3], "float32")
        values = g.op("Reshape", [values, b.ints([0, -1])], "float32")                      # [B, H·N]
        batch = g.op("Shape", [self.history], "int64", start=0, end=1)
        shape = g.op("Concat", [batch, b.ints([b.edge.num_items])], "int64", axis=0)
        zeros = g.op("ConstantOfShape", [shape], "float32", value=_zero_tensor())
        return g.op("ScatterElements", [zeros, index, values], "float32", axis=1, reduction="add")


def _zero_tensor():
    from onnx import helper

    return helper.make_tensor("zero", _DTYPES["float32"], [1], [0.0])


FIXED_HISTORY = False      # H stays dynamic; the runtime keeps the newest H of the target's


def layout(target) -> dict:
    """GraphOptions' layout fields for a target: row blocks, MatMulNBits and the two-stage top-K
    where its op lists allow them."""
    two_stage = all(op in target.float_ops for op in BLOCK_TOPK_OPS)
    return {"score_block_rows": target.score_block_rows if "Concat" in target.float_ops else None,
            "nbits_min_rows": NBITS_MIN_ROWS if "MatMulNBits" in target.int8_ops else None,
            "block_topk_min_items": BLOCK_TOPK_MIN_ITEMS if two_stage else None}


def plan_graph(edge: EdgeModel, options: GraphOptions) -> OnnxGraph:
    """The graph's ops and initializers (`plan`); what `check_target` reads."""
    return plan(edge, options)


def write(edge: EdgeModel, options: GraphOptions, io, directory: Path, *, external_data_bytes: int | None = None
          ) -> list[str]:
    """model.onnx (and model.onnx.data) of `edge` in `directory`; the file names."""
    limit = EXTERNAL_DATA_BYTES if external_data_bytes is None else external_data_bytes
    return save(build(edge, options, io), directory, external_data_bytes=limit)


def plan(edge: EdgeModel, options: GraphOptions) -> OnnxGraph:
    """The graph's ops and initializers, initializers not materialized (cheap)."""
    builder = _Builder(edge, options)
    g = builder.g
    if options.variant == "user":
        g.dtypes["user_embedding"] = "float32"
        builder.top_k(*builder.score("user_embedding"), None)
    else:
        for name, dtype in (("history", "int32"), ("history_mask", "float32"), ("user_base", "float32")):
            g.dtypes[name] = dtype
        base = "user_base" if options.user_base else None
        builder.top_k(*builder.history_scores("history", "history_mask", base), "history")
    g.int4_widened = widened_int4(edge, g.packed_int4, builder.forms)
    g.scoring = Scoring.from_ops(edge, g.scoring_ops, applies_scales=True)
    return g


def build(edge: EdgeModel, options: GraphOptions, io: tuple[list[dict], list[dict]]):
    """The onnx.ModelProto of `edge` (checked with onnx.checker when under 2 GB)."""
    import onnx
    from onnx import helper, numpy_helper

    from edgegnn import __version__

    g = plan(edge, options)
    inputs, outputs = io
    nodes = [helper.make_node(op, ins, outs, name=outs[0], **attrs) for op, ins, outs, attrs in g.nodes]
    inits = [numpy_helper.from_array(np.asarray(thunk(), dtype=dtype).reshape(shape), name)
             for name, (thunk, dtype, shape) in g.consts.items()]
    graph = helper.make_graph(nodes, f"edgegnn_{edge.kind}_{options.variant}",
                              [_value_info(helper, spec) for spec in inputs],
                              [_value_info(helper, spec) for spec in outputs], inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if any(attrs.get("domain") == MS_DOMAIN for _, _, _, attrs in g.nodes):
        opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION,
                              producer_name=PRODUCER, producer_version=__version__,
                              doc_string=f"edgegnn {edge.kind} recommender, {options.variant} -> top-K")
    if g.const_bytes() < PROTOBUF_BYTES:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"the ONNX graph does not validate: {str(exc).splitlines()[0]}") from None
    return model


def _value_info(helper, spec: dict):
    return helper.make_tensor_value_info(spec["name"], _DTYPES[spec["dtype"]], spec["shape"])


def save(model, directory: Path, *, external_data_bytes: int = EXTERNAL_DATA_BYTES,
         align_from_bytes: int = ALIGN_FROM_BYTES) -> list[str]:
    """Write model.onnx (and model.onnx.data for big tables) into `directory`; returns the file names.

    With external data, the big tensors of `model` are moved out of it (their raw data cleared).
    External data is written here rather than by onnx.save_model, which packs tensors back to
    back: ONNX Runtime memory-maps an external tensor only when its offset is aligned
    (EXTERNAL_ALIGNMENT), and otherwise reads a private copy. Tensors of `align_from_bytes` or
    more are aligned (up to 64 KiB of padding each); smaller ones follow unpadded; tensors
    under 4 KiB stay inline.
    """
    from onnx import TensorProto, external_data_helper

    total = sum(len(t.raw_data) for t in model.graph.initializer)
    if total < external_data_bytes:
        (directory / "model.onnx").write_bytes(model.SerializeToString())
        return ["model.onnx"]
    offset = 0
    with open(directory / "model.onnx.data", "wb") as data:
        for tensor in model.graph.initializer:
            if len(tensor.raw_data) < 4096:
                continue
            if len(tensor.raw_data) >= align_from_bytes:    # big enough to be worth mapping
                padding = -offset % EXTERNAL_ALIGNMENT
                data.write(b"\0" * padding)
                offset += padding
            raw = tensor.raw_data
            data.write(raw)
            external_data_helper.set_external_data(tensor, "model.onnx.data", offset=offset, length=len(raw))
            tensor.ClearField("raw_data")
            tensor.data_location = TensorProto.EXTERNAL
            offset += len(raw)
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    return ["model.onnx", "model.onnx.data"]
