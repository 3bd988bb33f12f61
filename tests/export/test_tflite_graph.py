"""The TFLite graph computes the device math (fp32 exactly, int8 within rounding), with TFLite's op versions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from edgegnn.errors import ExportError
from edgegnn.export import tflite_graph
from edgegnn.export.plan import GraphOptions, model_precision
from tests.export import models
from tests.export.graph_checks import check_top

H = 8
CASES = {   # name: (model, how the scores compare)
    "lightgcn-fp32": (lambda: models.lightgcn("fp32"), "exact"),
    "lightgcn-int8-static": (lambda: models.lightgcn("int8"), "int8-static-ignored"),
    "lightgcn-int8-dynamic": (lambda: models.lightgcn("int8-dynamic"), "int8"),
    "lightgcn-mixed": (lambda: models.lightgcn("mixed"), "int8"),
    "lightgcn-lowrank": (lambda: models.lightgcn("lowrank"), "exact"),
    "lightgcn-lowrank-int8-shared": (lambda: models.lightgcn("lowrank-int8-shared"), "int8"),
    "lightgcn-lowrank-int8-static": (lambda: models.lightgcn("lowrank-int8-static"), "loose"),
    "lightgcn-projection": (lambda: models.lightgcn("projection"), "exact"),
    "lightgcn-shared": (lambda: models.lightgcn("shared"), "exact"),
    "lightgcn-shared-int8-fp16": (lambda: models.lightgcn("shared-int8-fp16"), "int8"),
    "lightgcn-pq": (lambda: models.lightgcn("pq"), "exact"),
    "lightgcn-shared-pq": (lambda: models.lightgcn("shared-pq"), "exact"),
    "gat-fp32": (lambda: models.gat("fp32"), "exact"),
    "gat-int8": (lambda: models.gat("int8"), "loose"),
    "gat-lowrank": (lambda: models.gat("lowrank"), "exact"),
    "graph-filter-fp32": (lambda: models.graph_filter("fp32"), "exact"),
    "graph-filter-int8": (lambda: models.graph_filter("int8"), "loose"),
    "graph-filter-int32-ids": (lambda: models.graph_filter("int32-ids"), "exact"),
    "sage-fp32": (lambda: models.sage("fp32"), "exact"),
    "sage-int8": (lambda: models.sage("int8"), "loose"),   # h1's static scale is not applied in TFLite
}


def run(edge, options: GraphOptions, feeds: list[dict], delegate: bool = True):
    from ai_edge_litert.interpreter import OpResolverType

    kwargs = {} if delegate else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    runner = (Interpreter(model_content=tflite_graph.build(edge, options), **kwargs)
              .get_signature_runner("serving_default"))
    outs = [runner(**feed) for feed in feeds]
    return np.concatenate([o["top_items"] for o in outs]), np.concatenate([o["top_scores"] for o in outs])


def history_feeds(edge, hist, base):
    history, mask = models.padded(hist, width=H)
    return [{"history": history[r:r + 1], "history_mask": mask[r:r + 1], "user_base": base[r:r + 1]}
            for r in range(len(hist))]


@pytest.mark.parametrize("delegate", [True, False], ids=["xnnpack", "builtin"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_history_graph_matches_the_simulation(name, delegate):
    make, compare = CASES[name]
    edge = make()
    options = GraphOptions(top_k=12, history_length=H, batch=1, precision=model_precision(edge))
    hist = models.histories(5, H)
    base = np.random.default_rng(5).standard_normal((5, models._base_dim(edge))).astype(np.float32)
    items, scores = run(edge, options, history_feeds(edge, hist, base), delegate)
    assert items.shape == scores.shape == (5, 12 + H) and items.dtype == np.int32
    check_top(edge, hist, base, items, scores, options=options, fmt="tflite", exact=compare == "exact")


@pytest.mark.parametrize("name", ["lightgcn-fp32", "lightgcn-int8-dynamic"])
def test_user_embedding_graph_matches_the_simulation(name):
    make, compare = CASES[name]
    edge = make()
    hist = models.histories(3, 4)
    base = np.zeros((3, models.DIM), np.float32)
    user = edge.encode(hist, base)
    options = GraphOptions(variant="user", top_k=10, batch=1, precision=model_precision(edge))
    items, scores = run(edge, options, [{"user_embedding": user[r:r + 1]} for r in range(3)])
    check_top(edge, hist, base, items, scores, options=options, fmt="tflite", exact=compare == "exact", user=True)


@pytest.mark.parametrize("items, pad", [(300, False), (293, True), (40, False)],
                         ids=["30-blocks", "padded-293", "k-beyond-the-blocks"])
@pytest.mark.parametrize("kind", ["fp32", "int8-dynamic"])
def test_two_stage_top_k_returns_the_one_stage_top_k(kind, items, pad):
    """Block maxima, then the top blocks' scores: the same items (293 = prime: blocks of 8, the
    last padded with the lowest float; 40 items: 8 blocks of 5, k = 20 > 8 takes them all)."""
    edge = models.lightgcn(kind, items=items)
    options = GraphOptions(top_k=12, history_length=H, batch=1, precision=model_precision(edge),
                           block_topk_min_items=1)
    hist = models.histories(4, H, items=items)
    base = np.random.default_rng(3).standard_normal((4, models.DIM)).astype(np.float32)
    feeds = history_feeds(edge, hist, base)
    two_items, two_scores = run(edge, options, feeds)
    one_items, one_scores = run(edge, dataclasses.replace(options, block_topk_min_items=None), feeds)
    np.testing.assert_array_equal(two_items, one_items)
    np.testing.assert_array_equal(two_scores, one_scores)
    used = {c.builtinCode for c in _model(edge, options).operatorCodes}
    assert schema.BuiltinOperator.REDUCE_MAX in used and (schema.BuiltinOperator.PADV2 in used) == pad
    check_top(edge, hist, base, two_items, two_scores, options=options, fmt="tflite", exact=kind == "fp32")


def _model(edge, options):
    return schema.ModelT.InitFromPackedBuf(tflite_graph.build(edge, options), 0)


def test_op_versions_follow_tflite_versioning_and_a_signature_is_present():
    edge = models.lightgcn("int8-dynamic")
    model = _model(edge, GraphOptions(history_length=H, batch=1, precision="int8"))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    versions = {names[code.builtinCode]: code.version for code in model.operatorCodes}
    assert versions["FULLY_CONNECTED"] == 12      # float in/out, int8 per-channel weights (hybrid)
    assert versions["GATHER"] == 2                # int8 table
    assert versions["CAST"] == 3 and versions["TOPK_V2"] == 1
    assert model.signatureDefs[0].signatureKey == b"serving_default"
    assert sorted(t.name.decode() for t in model.signatureDefs[0].inputs) == ["history", "history_mask", "user_base"]
    fp32 = _model(models.lightgcn("fp32"), GraphOptions(history_length=H, batch=1))
    assert all(code.version == 1 for code in fp32.operatorCodes)


def test_int8_scoring_table_is_per_item_quantized_and_buffers_are_aligned():
    edge = models.lightgcn("int8-dynamic")
    data = tflite_graph.build(edge, GraphOptions(history_length=H, batch=1, precision="int8"))
    model = schema.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    int8 = [graph.Tensors(i) for i in range(graph.TensorsLength()) if graph.Tensors(i).Type() == schema.TensorType.INT8
            and graph.Tensors(i).Buffer() > 0]
    scored = [t for t in int8 if t.Quantization() is not None and t.Quantization().ScaleLength() == models.ITEMS]
    assert len(scored) == 1
    np.testing.assert_array_equal(scored[0].Quantization().ScaleAsNumpy(), edge.tensors["item"].scale)
    for i in range(1, model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            assert buffer._tab.Vector(4) % 16 == 0


def test_the_file_is_deterministic():
    edge = models.lightgcn("int8")
    options = GraphOptions(history_length=H, batch=1, precision="int8")
    assert tflite_graph.build(edge, options) == tflite_graph.build(models.lightgcn("int8"), options)


def test_tflite_refuses_dynamic_shapes_and_fp16():
    edge = models.lightgcn("fp32")
    with pytest.raises(ExportError, match="fixed history length"):
        tflite_graph.build(edge, GraphOptions(batch=1))
    with pytest.raises(ExportError, match="fp16"):
        tflite_graph.build(edge, GraphOptions(history_length=H, batch=1, precision="fp16"))
