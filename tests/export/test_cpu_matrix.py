"""The CPU matrix: small artifacts of every storage kind and layout, right on every CPU level.

Each artifact runs on this machine and, under QEMU user-mode (scripts/setup_emulators.sh; `make
test` builds the folder), on x86-64 SSE4.2 (-cpu Nehalem) and AVX2 (-cpu Haswell), and on aarch64
v8.0 (cortex-a53, no dot product), v8.2 + dotprod (neoverse-n1) and v8.4 + SVE (neoverse-v1).
ONNX Runtime and XNNPACK choose their kernels by the (emulated) CPU's features, so each level
takes its own integer code paths. Every run is compared with the numpy device math through
`edgegnn.export.verify.check_outputs`: each returned score within its stated bound
(`score_bound`), every item that must be in the top K returned (sets: ties may reorder), best
first. The models carry stress rows (`models.stress_rows`): a full-scale user vector against
item codes of ±127, where a saturating integer kernel is off by thousands of steps.

Before 7-bit activations, the ONNX MatMulInteger layouts failed here on x86-64-v3 (AVX2, as on
any AVX2 machine) and passed on VNNI, SSE4.2 and ARM. Nothing is timed: emulated time means nothing.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from edgegnn.class_head import has_class_head
from edgegnn.errors import ExportError
from edgegnn.export import export, onnx_graph, tflite_graph
from edgegnn.export.emulation import run_on_levels
from edgegnn.export.plan import Scoring
from edgegnn.export.verify import check_classes, check_outputs, class_bound, probe_queries, score_bound
from edgegnn.runtime.replay import run_queries
from edgegnn.targets import load_target
from tests.export import models

pytestmark = pytest.mark.cpu_matrix
EMULATED = ("x86-64-v2", "x86-64-v3", "armv8.0", "armv8.2-dotprod", "armv8.4-sve")
LEVELS = ("host",) + EMULATED
BIG = {"nbits": {"NBITS_MIN_ROWS": 1}, "two-stage": {"BLOCK_TOPK_MIN_ITEMS": 1}}   # a big catalog's layout, small

ARTIFACTS = {   # name: (model, target, what of a big catalog's layout, extra export arguments)
    "onnx-fp32": (lambda: models.lightgcn("fp32", stress=True), "cpu-x86_64", (), {}),
    "onnx-fp16": (lambda: models.lightgcn("fp32", stress=True), "cuda", (), {"precision": "fp16"}),
    "onnx-int8-static": (lambda: models.lightgcn("int8", stress=True), "cpu-x86_64", (), {}),
    "onnx-int8-dynamic": (lambda: models.lightgcn("int8-dynamic", stress=True), "cpu-x86_64", (), {}),
    "onnx-int8-tensor": (lambda: models.lightgcn("int8-tensor", stress=True), "cpu-x86_64", (), {}),
    "onnx-int8-tensor-dynamic": (lambda: models.lightgcn("int8-tensor-dynamic", stress=True), "cpu-x86_64", (), {}),
    "onnx-int8-row-blocks": (lambda: models.lightgcn("int8", stress=True), "arm64-linux", ("blocks",), {}),
    "onnx-int8-two-stage": (lambda: models.lightgcn("int8", stress=True), "cpu-x86_64", ("two-stage",), {}),
    "onnx-int8-tensor-two-stage": (lambda: models.lightgcn("int8-tensor", stress=True), "cpu-x86_64",
                                   ("two-stage",), {}),
    "onnx-int8-nbits": (lambda: models.lightgcn("int8", stress=True), "cpu-x86_64", ("nbits",), {}),
    "onnx-int8-nbits-blocks-two-stage": (lambda: models.lightgcn("int8", stress=True), "arm64-linux",
                                         ("nbits", "blocks", "two-stage"), {}),
    "onnx-int4-packed": (lambda: models.lightgcn("int4", stress=True), "cpu-x86_64", (), {}),
    "onnx-mixed": (lambda: models.lightgcn("mixed", stress=True), "cpu-x86_64", (), {}),
    "onnx-lowrank-int8": (lambda: models.lightgcn("lowrank-int8-shared", stress=True), "cpu-x86_64", (), {}),
    "onnx-lowrank-int8-static": (lambda: models.lightgcn("lowrank-int8-static", stress=True), "cpu-x86_64", (), {}),
    "onnx-lowrank-int8-tensor": (lambda: models.lightgcn("lowrank-int8-tensor", stress=True), "cpu-x86_64", (), {}),
    "onnx-shared-int8": (lambda: models.lightgcn("shared-int8", stress=True), "cpu-x86_64", (), {}),
    "onnx-shared-int8-fp16": (lambda: models.lightgcn("shared-int8-fp16", stress=True), "cpu-x86_64", (), {}),
    "onnx-pq": (lambda: models.lightgcn("pq"), "cpu-x86_64", (), {}),
    "onnx-shared-pq": (lambda: models.lightgcn("shared-pq", stress=True), "cpu-x86_64", (), {}),
    "onnx-sage-int8": (lambda: models.sage("int8"), "cpu-x86_64", (), {}),
    "onnx-graph-filter-int8": (lambda: models.graph_filter("int8", stress=True), "cpu-x86_64", (), {}),
    "onnx-gat-int8": (lambda: models.gat("int8", stress=True), "cpu-x86_64", (), {}),
    "onnx-graph-filter-int8-two-stage": (lambda: models.graph_filter("int8", stress=True), "cpu-x86_64",
                                         ("two-stage",), {}),
    "onnx-lists-fp32": (lambda: models.indexed(models.lightgcn("fp32", stress=True)), "cpu-x86_64", (), {}),
    "onnx-lists-fp16": (lambda: models.indexed(models.lightgcn("fp32", stress=True)), "cuda", (),
                        {"precision": "fp16"}),
    "onnx-lists-int8-static": (lambda: models.indexed(models.lightgcn("int8", stress=True)), "cpu-x86_64", (), {}),
    "onnx-lists-int8-tensor": (lambda: models.indexed(models.lightgcn("int8-tensor", stress=True), nprobe=16),
                               "arm64-linux", (), {}),
    "onnx-lists-lowrank-int8-static": (lambda: models.indexed(models.lightgcn("lowrank-int8-static", stress=True)),
                                       "cpu-x86_64", (), {}),
    "onnx-user-lists-int8": (lambda: models.indexed(models.lightgcn("int8-dynamic", stress=True)), "cpu-x86_64", (),
                             {"variant": "user"}),
    "onnx-user-int8": (lambda: models.lightgcn("int8", stress=True), "cpu-x86_64", (), {"variant": "user"}),
    "onnx-user-int8-tensor": (lambda: models.lightgcn("int8-tensor-dynamic", stress=True), "cpu-x86_64",
                              ("two-stage",), {"variant": "user"}),
    "tflite-lists-fp32": (lambda: models.indexed(models.lightgcn("fp32", stress=True)), "android-litert", (), {}),
    "tflite-lists-int8": (lambda: models.indexed(models.lightgcn("int8", stress=True), nprobe=8), "android-litert",
                          (), {}),
    "tflite-lists-int8-tensor": (lambda: models.indexed(models.lightgcn("int8-tensor", stress=True)),
                                 "android-litert", (), {}),
    "tflite-lists-lowrank-int8": (lambda: models.indexed(models.lightgcn("lowrank-int8-shared", stress=True)),
                                  "android-litert", (), {}),
    "tflite-fp32": (lambda: models.lightgcn("fp32", stress=True), "android-litert", (), {}),
    "tflite-int8": (lambda: models.lightgcn("int8", stress=True), "android-litert", (), {}),
    "tflite-int8-two-stage": (lambda: models.lightgcn("int8-dynamic", stress=True), "android-litert",
                              ("two-stage",), {}),
    "tflite-int4": (lambda: models.lightgcn("int4", stress=True), "android-litert", (), {}),
    "tflite-lowrank-int8": (lambda: models.lightgcn("lowrank-int8-shared", stress=True), "android-litert", (), {}),
    "tflite-shared-int8": (lambda: models.lightgcn("shared-int8", stress=True), "android-litert", (), {}),
    "tflite-pq": (lambda: models.lightgcn("shared-pq", stress=True), "android-litert", (), {}),
    "tflite-sage-int8": (lambda: models.sage("int8"), "android-litert", (), {}),
    "tflite-graph-filter-int8": (lambda: models.graph_filter("int8", stress=True), "android-litert", (), {}),
    "tflite-gat-int8": (lambda: models.gat("int8", stress=True), "android-litert", (), {}),
    "onnx-gat-int8-class-head": (lambda: models.with_class_head(models.gat("int8", stress=True)), "cpu-x86_64",
                                 (), {}),
    "tflite-int8-class-head": (lambda: models.with_class_head(models.lightgcn("int8", stress=True)),
                               "android-litert", (), {}),
    "tflite-user-int8": (lambda: models.lightgcn("int8-dynamic", stress=True), "android-litert", (),
                         {"variant": "user"}),
}


def _export(name: str, out: Path):
    make, target_name, layout, extra = ARTIFACTS[name]
    edge, target = make(), load_target(target_name)
    if "blocks" in layout:
        target = dataclasses.replace(target, score_block_rows=100)
    with ExitStack() as stack:
        for part in layout:
            for constant, value in BIG.get(part, {}).items():
                module = onnx_graph if target.format == "onnx" else tflite_graph
                if hasattr(module, constant):
                    stack.enter_context(mock.patch.object(module, constant, value))
        directory = export(edge, target, out_dir=out / name, cpus=(), emulators=None, **extra)
    manifest = json.loads((directory / "manifest.json").read_text())
    queries = probe_queries(edge, manifest["variant"], history_length=manifest["history_length"], seed=4)
    return edge, manifest, directory, queries


@pytest.fixture(scope="module")
def matrix(emulators, tmp_path_factory):
    """{name: (edge, manifest, {level: (top_items, top_scores)}, queries, {level: runtime})}."""
    out = tmp_path_factory.mktemp("cpu-matrix")
    built = {name: _export(name, out) for name in ARTIFACTS}
    jobs = [(directory, queries) for _, _, directory, queries in built.values()]
    runs = run_on_levels(emulators, list(EMULATED), jobs)
    results = {}
    for i, (name, (edge, manifest, directory, queries)) in enumerate(built.items()):
        host, runtime = run_queries(directory, queries.histories, queries.user_base, queries.embeddings)
        outputs, runtimes = {"host": host}, {"host": runtime}
        for level in EMULATED:
            outputs[level], runtimes[level], _ = runs[level][i]
        results[name] = (edge, manifest, outputs, queries, runtimes)
    return results


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_every_layout_is_right_on_every_cpu(matrix, name, level):
    edge, manifest, outputs, queries, _ = matrix[name]
    scoring = Scoring.from_dict(manifest["graph"]["scoring"])
    reference, bound = score_bound(edge, scoring, queries, precision=manifest["precision"])
    result = check_outputs(reference, bound, *outputs[level][:2])
    if has_class_head(edge):      # the user class head's probabilities, from the same e_u
        result = check_classes(result, *class_bound(edge, scoring, queries, precision=manifest["precision"]),
                               outputs[level][2])
    assert result["passed"], result


def test_the_matrix_covers_every_scoring_op_and_layout(matrix):
    """What the matrix ran: every scoring op and quantization of x, and the big-catalog layouts."""
    scorings = {(m["graph"]["scoring"]["op"], m["graph"]["scoring"]["x"]) for _, m, _, _, _ in matrix.values()}
    assert scorings >= {("MatMul", "float"), ("MatMulInteger", "static-7bit"), ("MatMulInteger", "per-query-7bit"),
                        ("MatMulNBits", "runtime-8bit"), ("lookup", "float"), ("FULLY_CONNECTED", "float"),
                        ("FULLY_CONNECTED-hybrid", "runtime-8bit")}
    ops = {name: set(m["graph"]["ops"]["float"]) | set(m["graph"]["ops"]["int8"])
           for name, (_, m, _, _, _) in matrix.items()}
    assert {"MatMulNBits", "Concat", "GatherND", "ReduceMax"} <= ops["onnx-int8-nbits-blocks-two-stage"]
    assert {"MatMulNBits", "BitShift", "BitwiseAnd"} <= ops["onnx-int4-packed"]
    assert "REDUCE_MAX" in ops["tflite-int8-two-stage"]
    assert "SOFTMAX" in ops["tflite-int8-class-head"] and len(matrix["tflite-int8-class-head"][2]["host"]) == 3
    assert {"TopK", "GatherElements", "Cast", "MatMul"} <= ops["onnx-lists-int8-static"]
    assert {"TOPK_V2", "GATHER", "CAST", "BATCH_MATMUL"} <= ops["tflite-lists-int8"]
    assert ("BATCH_MATMUL", "float") in scorings
    for name in ("onnx-lists-fp32", "onnx-lists-int8-static"):      # lists short of K + H: rows end in -1 pads
        items, scores = matrix[name][2]["host"][:2]
        assert (items < 0).any() and np.isneginf(scores[items < 0]).all()
        assert matrix[name][1]["retrieval"]["scored_items"] == 4 * matrix[name][1]["retrieval"]["capacity"]
    stressed = matrix["onnx-int8-static"]
    assert np.abs(stressed[0].tensors["item"].q[:4]).min() == 127        # the stress rows reach the codes' edges


def test_the_emulated_runtimes_are_the_host_releases(matrix):
    """Every level ran the same onnxruntime / ai-edge-litert release as this machine (the aarch64
    wheels are pinned to the host's by scripts/setup_emulators.sh)."""
    for name, (_, _, _, _, runtimes) in matrix.items():
        assert len(set(runtimes.values())) == 1, f"{name}: {runtimes}; rebuild: rm -rf .emulators && make emulators"


def test_export_verifies_on_the_emulated_levels_and_records_them(emulators, tmp_path):
    for target, emulated in (("cpu-x86_64", {"x86-64-v2", "x86-64-v3"}),
                             ("arm64-linux", {"armv8.0", "armv8.2-dotprod", "armv8.4-sve"})):
        out = export(models.lightgcn("int8-dynamic", stress=True), target, out_dir=tmp_path / target,
                     emulators=emulators.root)
        cpus = json.loads((out / "manifest.json").read_text())["cpus"]
        ran = {entry["level"]: entry for entry in cpus["verified"] if entry["emulated"]}
        assert set(ran) == emulated - {cpus["verified"][0]["level"]}
        assert all(entry["passed"] and entry["how"].startswith("QEMU user-mode -cpu") for entry in ran.values())


def test_export_refuses_an_artifact_that_is_wrong_on_one_cpu(emulators, tmp_path):
    """The graph of before the fix (8-bit x into MatMulInteger, zero point 128) is exact on VNNI
    and on SSE4.2, and wrong on AVX2: export names the CPU and writes nothing. The AVX2 run is
    this machine's own when it is an AVX2 CPU, else QEMU's Haswell."""
    from edgegnn import edge_model

    with mock.patch.dict(edge_model.ACTIVATION_LEVELS, {"user": 127}), \
            mock.patch.object(onnx_graph, "USER_LEVELS", 127), mock.patch.object(onnx_graph, "USER_ZERO_POINT", 128), \
            mock.patch("edgegnn.export.verify._QUERY_STEPS", {"float": None, "static-7bit": None,
                                                              "per-query-7bit": 127, "runtime-8bit": 127}):
        with pytest.raises(ExportError,
                           match=r"wrong on x86-64-v3 \((QEMU user-mode -cpu Haswell|this machine)\).*saturate"):
            export(models.lightgcn("int8-dynamic", stress=True), "cpu-x86_64", out_dir=tmp_path / "a",
                   cpus=("x86-64-v3",), emulators=emulators.root)
    assert list(tmp_path.iterdir()) == []
