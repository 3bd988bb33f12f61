"""The ONNX graph computes the device math: fp32 exactly, int8 within one rounding step."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgegnn.export import onnx_graph
from edgegnn.export.plan import GraphOptions, io_spec
from tests.export import models
from tests.export.graph_checks import check_top

CASES = {   # name: (model, how the scores compare)
    "lightgcn-fp32": (lambda: models.lightgcn("fp32"), "exact"),
    "lightgcn-int8-static": (lambda: models.lightgcn("int8"), "exact"),
    "lightgcn-int8-dynamic": (lambda: models.lightgcn("int8-dynamic"), "int8"),
    "lightgcn-int8-tensor": (lambda: models.lightgcn("int8-tensor"), "exact"),
    "lightgcn-int8-tensor-dynamic": (lambda: models.lightgcn("int8-tensor-dynamic"), "int8"),
    "lightgcn-lowrank-int8-tensor": (lambda: models.lightgcn("lowrank-int8-tensor"), "int8"),
    "lightgcn-int4": (lambda: models.lightgcn("int4"), "int8"),
    "lightgcn-mixed": (lambda: models.lightgcn("mixed"), "int8"),
    "lightgcn-lowrank": (lambda: models.lightgcn("lowrank"), "exact"),
    "lightgcn-lowrank-int8-shared": (lambda: models.lightgcn("lowrank-int8-shared"), "int8"),
    "lightgcn-lowrank-int8-static": (lambda: models.lightgcn("lowrank-int8-static"), "int8"),
    "lightgcn-projection": (lambda: models.lightgcn("projection"), "exact"),
    "lightgcn-shared": (lambda: models.lightgcn("shared"), "exact"),
    "lightgcn-shared-int8": (lambda: models.lightgcn("shared-int8"), "int8"),
    "lightgcn-shared-int8-fp16": (lambda: models.lightgcn("shared-int8-fp16"), "int8"),
    "lightgcn-pq": (lambda: models.lightgcn("pq"), "exact"),
    "lightgcn-shared-pq": (lambda: models.lightgcn("shared-pq"), "exact"),
    "gat-fp32": (lambda: models.gat("fp32"), "exact"),
    "gat-int8": (lambda: models.gat("int8"), "int8"),
    "gat-lowrank": (lambda: models.gat("lowrank"), "exact"),
    "graph-filter-fp32": (lambda: models.graph_filter("fp32"), "exact"),
    "graph-filter-int8": (lambda: models.graph_filter("int8"), "int8"),
    "graph-filter-int32-ids": (lambda: models.graph_filter("int32-ids"), "exact"),
    "sage-fp32": (lambda: models.sage("fp32"), "exact"),
    "sage-int8": (lambda: models.sage("int8"), "exact"),
}


def session(edge, options: GraphOptions) -> ort.InferenceSession:
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def precision(edge) -> str:
    from edgegnn.export.plan import model_precision
    return model_precision(edge)


@pytest.mark.parametrize("name", sorted(CASES))
def test_history_graph_matches_the_simulation(name):
    make, compare = CASES[name]
    edge = make()
    options = GraphOptions(top_k=15, precision=precision(edge))
    sess = session(edge, options)
    hist = models.histories(6, 7)
    base = np.random.default_rng(5).standard_normal((6, models._base_dim(edge))).astype(np.float32)
    history, mask = models.padded(hist, width=9)
    items, scores = sess.run(["top_items", "top_scores"], {"history": history, "history_mask": mask, "user_base": base})
    assert items.shape == scores.shape == (6, 15 + 9)
    assert items.dtype == np.int64 and scores.dtype == np.float32
    check_top(edge, hist, base, items, scores, options=options, exact=compare == "exact")


@pytest.mark.parametrize("two_stage", [None, 1])
@pytest.mark.parametrize("name", ["lightgcn-fp32", "lightgcn-int8-static", "lightgcn-int8-tensor",
                                  "lightgcn-int8-tensor-dynamic", "lightgcn-lowrank-int8-shared"])
def test_user_embedding_graph_matches_the_simulation(name, two_stage):
    make, compare = CASES[name]
    edge = make()
    options = GraphOptions(variant="user", top_k=10, precision=precision(edge), block_topk_min_items=two_stage)
    sess = session(edge, options)
    hist = models.histories(4, 5)
    base = np.random.default_rng(3).standard_normal((4, models.DIM)).astype(np.float32)
    user = edge.encode(hist, base)
    items, scores = sess.run(["top_items", "top_scores"], {"user_embedding": user})
    assert items.shape == (4, 10)
    check_top(edge, hist, base, items, scores, options=options, exact=compare == "exact", user=True)


@pytest.mark.parametrize("two_stage", [None, 1])
def test_batch_and_history_length_are_dynamic_and_k_is_capped_at_the_catalog(two_stage):
    """Also when k exceeds the two-stage top-K's block count (40 items: 8 blocks of 5)."""
    edge = models.lightgcn("fp32", items=40)
    options = GraphOptions(top_k=35, block_topk_min_items=two_stage)
    sess = session(edge, options)
    base = np.random.default_rng(1).standard_normal((3, models.DIM)).astype(np.float32)
    for batch, width in ((1, 1), (3, 4), (2, 12)):
        hist = models.histories(batch, width, items=40)
        history, mask = models.padded(hist, width=width)
        items, scores = sess.run(["top_items", "top_scores"], {"history": history, "history_mask": mask,
                                                               "user_base": base[:batch]})
        assert items.shape == (batch, min(35 + width, 40))
        check_top(edge, hist, base[:batch], items, scores, options=options, exact=True)


@pytest.mark.parametrize("kind", ["fp32", "int8-tensor", "int8"])
def test_two_stage_top_k_pads_a_catalog_no_block_length_divides(kind):
    """293 items (prime): 37 blocks of 8, the last padded with 3 scores of -inf (int32 min when the
    graph ranks integer accumulators), which never come back."""
    edge = models.lightgcn(kind, items=293)
    options = GraphOptions(top_k=20, precision=precision(edge), block_topk_min_items=1)
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    assert "Pad" in _ops(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    hist = models.histories(4, 6, items=293)
    base = np.random.default_rng(2).standard_normal((4, models.DIM)).astype(np.float32)
    history, mask = models.padded(hist)
    items, scores = sess.run(["top_items", "top_scores"], {"history": history, "history_mask": mask, "user_base": base})
    assert items.max() < 293 and np.isfinite(scores).all()
    check_top(edge, hist, base, items, scores, options=options, exact=True)


@pytest.mark.parametrize("kind, integers", [("int8-tensor", True), ("int8-tensor-dynamic", True),
                                            ("lowrank-int8-tensor", True), ("int8", False), ("int8-dynamic", False)])
def test_one_scale_per_table_ranks_the_int32_accumulators(kind, integers):
    """One scale for the item rows (static or per-user x scale; a low-rank table's left factor): TopK
    reads MatMulInteger's int32 output, and only the K + H kept values are rescaled (Cast, Mul);
    per-row scales rescale every item first."""
    edge = models.lightgcn(kind)
    options = GraphOptions(top_k=10, precision="int8")
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    producer = {out: node for node in model.graph.node for out in node.output}
    ranked = producer[next(n for n in model.graph.node if n.op_type == "TopK").input[0]]
    assert (ranked.op_type == "MatMulInteger") == integers
    assert (producer["top_scores"].op_type == "Mul") == integers


def test_padding_and_empty_rows_do_not_change_a_user():
    """Padded slots (mask 0) contribute nothing; an all-padding row scores a0 · e_u⁰ (no NaN)."""
    edge = models.lightgcn("fp32")
    options = GraphOptions(top_k=5)
    sess = session(edge, options)
    base = np.random.default_rng(0).standard_normal((2, models.DIM)).astype(np.float32)
    history = np.array([[7, 3, 0, 0], [9, 9, 9, 9]], np.int32)
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
    items, scores = sess.run(["top_items", "top_scores"], {"history": history, "history_mask": mask, "user_base": base})
    check_top(edge, [np.array([7, 3])], base[:1], items[:1], scores[:1], options=options, exact=True)
    expected = 0.25 * base[1] @ edge.tensors["item"].values.T
    np.testing.assert_allclose(scores[1], np.sort(expected)[::-1][:items.shape[1]], rtol=1e-5)


def test_int8_tables_stay_int8_and_score_with_matmulinteger():
    """No DequantizeLinear reads an item-sized initializer (ORT would fold it into an fp32 copy)."""
    edge = models.lightgcn("int8")
    model = onnx_graph.build(edge, GraphOptions(precision="int8"), io_spec(edge, GraphOptions(precision="int8"),
                                                                           index_dtype="int64"))
    inits = {t.name: t for t in model.graph.initializer}
    big = {name for name, t in inits.items() if models.ITEMS in t.dims and len(t.dims) == 2}
    assert big and all(inits[name].data_type == onnx.TensorProto.INT8 for name in big)
    ops = [n.op_type for n in model.graph.node]
    assert "MatMulInteger" in ops and "MatMul" not in ops
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            assert not set(node.input) & big, "a whole int8 table is dequantized"


LAYOUTS = {   # GraphOptions that change how the scoring table is laid out, not the math
    "row-blocks": dict(score_block_rows=128),                     # 300 items -> blocks of 128, 128, 44
    "nbits": dict(nbits_min_rows=1),
    "nbits-row-blocks": dict(nbits_min_rows=1, score_block_rows=128),
    "small-row-blocks": dict(score_block_rows=8),                 # blocks smaller than k = K + H
    "two-stage-top-k": dict(block_topk_min_items=1),              # 30 blocks of 10 items
    "row-blocks-two-stage-top-k": dict(score_block_rows=128, block_topk_min_items=1),
}
LAYOUT_MODELS = {
    "lightgcn-fp32": lambda: models.lightgcn("fp32"),
    "lightgcn-int8-static": lambda: models.lightgcn("int8"),
    "lightgcn-int8-tensor": lambda: models.lightgcn("int8-tensor"),
    "lightgcn-int8-dynamic": lambda: models.lightgcn("int8-dynamic"),
    "lightgcn-int8-d12": lambda: models.lightgcn("int8-dynamic", dim=12),       # block padded 12 -> 16
    "lightgcn-int4": lambda: models.lightgcn("int4"),
    "lightgcn-int4-d12": lambda: models.lightgcn("int4", dim=12),
    "lightgcn-lowrank-int8-shared": lambda: models.lightgcn("lowrank-int8-shared"),
    "lightgcn-shared-int8": lambda: models.lightgcn("shared-int8"),
    "lightgcn-pq": lambda: models.lightgcn("pq"),
    "sage-int8": lambda: models.sage("int8"),
}


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("name", sorted(LAYOUT_MODELS))
def test_scoring_layouts_compute_the_device_math(name, layout):
    edge = LAYOUT_MODELS[name]()
    options = GraphOptions(top_k=12, precision=precision(edge), **LAYOUTS[layout])
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    hist = models.histories(5, 6, items=edge.num_items)
    base = np.random.default_rng(5).standard_normal((5, models._base_dim(edge))).astype(np.float32)
    history, mask = models.padded(hist, width=7)
    items, scores = sess.run(["top_items", "top_scores"], {"history": history, "history_mask": mask, "user_base": base})
    int8 = precision(edge) == "int8" and "pq" not in name     # integer matmuls (PQ scores with lookups)
    nbits = int8 and "nbits" in layout
    whole = "shared" in name or "pq" in name     # gathered too, or not row-blockable: stays whole
    ops = _ops(model)
    assert ("MatMulNBits" in ops) == nbits and ("MatMulInteger" in ops) == (int8 and not nbits)
    blocks = [n for n in model.graph.node if n.op_type == "Concat" and n.attribute[0].i == 1]   # scores by blocks
    assert bool(blocks) == ("row-blocks" in layout and not whole)
    if nbits:
        assert {o.domain for o in model.opset_import} == {"", "com.microsoft"}
    two_stage = "two-stage" in layout
    assert (ops.count("TopK") == 2) == two_stage and ("GatherND" in ops) == two_stage
    exact = not int8 or (name in ("lightgcn-int8-static", "lightgcn-int8-tensor") and not nbits)
    check_top(edge, hist, base, items, scores, options=options, exact=exact)


@pytest.mark.parametrize("nbits", [None, 1])
def test_int4_tables_ship_packed_where_the_target_has_matmul_nbits(nbits):
    edge = models.lightgcn("int4")
    options = GraphOptions(precision="int8", nbits_min_rows=nbits, score_block_rows=128)
    graph = onnx_graph.plan(edge, options)
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    item_codes = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.UINT8 and len(t.dims) == 3]
    if nbits:   # both tables, two codes per byte: scored by MatMulNBits, the message rows unpacked on gather
        assert sum(len(t.raw_data) for t in item_codes) == 2 * models.ITEMS * models.DIM // 2
        assert graph.int4_widened == []
    else:
        assert not item_codes and graph.int4_widened == ["item", "message"]


def test_float16_row_scales_and_codebooks_ship_once_as_float16():
    edge = models.lightgcn("shared-pq")
    options = GraphOptions(precision="int8")
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    half = sorted(tuple(t.dims) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    books = edge.tensors["item"].codebooks.shape                 # models.py: float16 codebooks, row scale
    assert half == [(books[0] * books[1], books[2]), (models.ITEMS,)]
    assert not [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 3]


def test_row_blocks_in_the_user_embedding_graph():
    edge = models.lightgcn("int8")
    sess = session(edge, GraphOptions(variant="user", top_k=10, precision="int8", score_block_rows=64))
    x = np.random.default_rng(3).standard_normal((4, models.DIM)).astype(np.float32)
    items, scores = sess.run(["top_items", "top_scores"], {"user_embedding": x})
    ref = edge.score(x)
    np.testing.assert_allclose(scores, np.take_along_axis(ref, items, axis=1), rtol=1e-5, atol=1e-6)
    assert (np.sort(ref, axis=1)[:, ::-1][:, :10] - scores <= 1e-5).all()


def test_row_blocks_ship_the_table_once():
    edge = models.lightgcn("int8")
    options = GraphOptions(precision="int8", score_block_rows=128)
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    codes = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    scored = [t for t in codes if t.dims[0] == models.DIM]          # transposed [d, rows] blocks
    assert sorted(t.dims[1] for t in scored) == [44, 128, 128]
    assert sum(np.prod(t.dims) for t in codes) == 2 * models.ITEMS * models.DIM    # message + item, once each


def test_nbits_shares_one_table_between_the_gather_and_the_scoring():
    edge = models.lightgcn("lowrank-int8-shared")
    options = GraphOptions(precision="int8", nbits_min_rows=1)
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    item_sized = [t for t in model.graph.initializer if t.dims and t.dims[0] == models.ITEMS and len(t.dims) >= 2]
    assert len(item_sized) == 1 and item_sized[0].data_type == onnx.TensorProto.UINT8


def test_external_data_for_big_tables(tmp_path):
    edge = models.lightgcn("fp32")
    options = GraphOptions(top_k=5)
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    raw = sum(len(t.raw_data) for t in model.graph.initializer if len(t.raw_data) >= 4096)
    (tmp_path / "small").mkdir()
    onnx_graph.save(onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64")), tmp_path / "small",
                    external_data_bytes=1)
    assert (tmp_path / "small" / "model.onnx.data").stat().st_size == raw      # tables under 1 MiB: no padding
    files = onnx_graph.save(model, tmp_path, external_data_bytes=1, align_from_bytes=1)
    assert files == ["model.onnx", "model.onnx.data"]
    assert (tmp_path / "model.onnx").stat().st_size < 10_000 < (tmp_path / "model.onnx.data").stat().st_size
    stored = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    offsets = [int(entry.value) for t in stored.graph.initializer for entry in t.external_data if entry.key == "offset"]
    assert len(offsets) == 2 and all(o % onnx_graph.EXTERNAL_ALIGNMENT == 0 for o in offsets)   # mmap-able
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    hist = models.histories(2, 3)
    history, mask = models.padded(hist)
    items, scores = sess.run(None, {"history": history, "history_mask": mask,
                                    "user_base": np.zeros((2, models.DIM), np.float32)})
    check_top(edge, hist, np.zeros((2, models.DIM), np.float32), items, scores, options=options, exact=True)


def test_fp16_tables_for_gpu_targets_round_like_float16():
    edge = models.lightgcn("fp32")
    options = GraphOptions(top_k=10, precision="fp16")
    sess = session(edge, options)
    hist = models.histories(3, 4)
    history, mask = models.padded(hist)
    base = np.zeros((3, models.DIM), np.float32)
    items, scores = sess.run(["top_items", "top_scores"], {"history": history, "history_mask": mask, "user_base": base})
    check_top(edge, hist, base, items, scores, options=options)


@pytest.mark.parametrize("kind", ["lowrank", "lowrank-int8-shared"])
def test_a_factor_shared_by_the_gather_and_the_scoring_ships_once(kind):
    edge = models.lightgcn(kind)
    options = GraphOptions(precision=precision(edge))
    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    item_sized = [t for t in model.graph.initializer if models.ITEMS in t.dims and len(t.dims) == 2]
    shared = kind == "lowrank-int8-shared"
    assert len(item_sized) == (1 if shared else 2)      # "lowrank" has two distinct left factors
