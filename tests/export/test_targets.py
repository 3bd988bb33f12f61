"""Targets load and validate like every config; check_target fails fast with one line."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from edgegnn.errors import ConfigError, ExportError
from edgegnn.export import check_target, export
from edgegnn.targets import Target, available_targets, load_target
from tests.export import models


def test_the_shipped_targets_load_and_are_frozen():
    assert set(available_targets()) >= {"cpu-x86_64", "arm64-linux", "android-litert", "cuda"}
    cpu, android = load_target("cpu-x86_64"), load_target("android-litert")
    assert (cpu.runtime, cpu.format, cpu.providers, cpu.arch) == ("onnxruntime", "onnx", ("CPUExecutionProvider",),
                                                                  "x86_64")
    assert (android.format, android.delegate, android.history_length, android.batch) == ("tflite", "xnnpack", 64, 1)
    assert load_target("arm64-linux").arch == "aarch64"
    assert load_target("cuda").providers[0] == "CUDAExecutionProvider" and "fp16" in load_target("cuda").precisions
    assert android.memory_budget == 256_000_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        cpu.threads = 4
    assert Target.from_dict(cpu.to_dict()) == cpu


def _write(tmp_path, **changes):
    data = {**load_target("cpu-x86_64").to_dict(), **changes}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, field, text", [
    ({"runtime": "tensorrt"}, "runtime", "allowed: onnxruntime, litert"),
    ({"colour": "red"}, "colour", "unknown key"),
    ({"precisions": ["fp32", "int3"]}, "target.precisions", "allowed: fp32, fp16, int8"),
    ({"threads": 0}, "target.threads", "1 <= threads"),
    ({"memory_budget": "lots"}, "target.memory_budget", "256MB"),
    ({"providers": ["GPUExecutionProvider"]}, "target.providers", "CUDAExecutionProvider"),
    ({"runtime": "litert", "providers": []}, "target.history_length", "fixed history length"),
    ({"score_block_rows": 0}, "target.score_block_rows", "1 <= score_block_rows"),
])
def test_a_bad_target_file_names_the_field_the_value_and_what_is_allowed(tmp_path, changes, field, text):
    with pytest.raises(ConfigError) as error:
        load_target(_write(tmp_path, **changes))
    assert error.value.field == field and text in str(error.value) and "t.yaml" in str(error.value)


def test_an_unknown_target_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown target; known: android-litert, arm64-linux"):
        load_target("tpu-v9")


def test_score_blocks_come_from_the_target(tmp_path):
    from edgegnn.export.check import graph_options
    from tests.export import models

    edge = models.lightgcn("fp32")
    assert graph_options(edge, load_target("arm64-linux")).score_block_rows == 131072
    assert graph_options(edge, load_target("cpu-x86_64")).score_block_rows is None
    assert graph_options(edge, load_target(_write(tmp_path, score_block_rows=64))).score_block_rows == 64
    assert graph_options(edge, load_target("android-litert")).score_block_rows is None      # ONNX only


def test_the_two_stage_top_k_needs_its_ops_in_the_target(tmp_path):
    from edgegnn.export import onnx_graph, tflite_graph
    from edgegnn.export.check import graph_options
    from tests.export import models

    edge = models.lightgcn("fp32")
    assert graph_options(edge, load_target("cpu-x86_64")).block_topk_min_items == onnx_graph.BLOCK_TOPK_MIN_ITEMS
    assert graph_options(edge, load_target("android-litert")).block_topk_min_items == tflite_graph.BLOCK_TOPK_MIN_ITEMS
    assert graph_options(edge, load_target("cuda")).block_topk_min_items is None           # GatherND, Mod not listed
    without_pad = [op for op in load_target("cpu-x86_64").float_ops if op != "Pad"]
    assert graph_options(edge, load_target(_write(tmp_path, float_ops=without_pad))).block_topk_min_items is None


@pytest.mark.parametrize("items, block, pad", [(40981, 107, 0), (1_000_000, 500, 0), (16384, 64, 0),
                                               (100003, 128, 93), (293, 8, 3), (2, 2, 0)])
def test_top_k_blocks_prefer_a_divisor_near_half_the_square_root(items, block, pad):
    from edgegnn.export.plan import topk_blocks

    plan = topk_blocks(items)
    assert (plan.block, plan.pad) == (block, pad) and plan.blocks * plan.block == items + pad


def test_memory_budgets_take_sizes():
    target = Target.from_dict({**load_target("cpu-x86_64").to_dict(), "memory_budget": "1.5GiB"})
    assert target.memory_budget == int(1.5 * 2 ** 30)


def test_check_target_rejects_an_unsupported_precision():
    with pytest.raises(ExportError, match="target cuda: precision int8 is not supported \\(supported: fp32, fp16\\)"):
        check_target(models.lightgcn("int8"), load_target("cuda"))


def test_check_target_rejects_an_op_the_target_lacks():
    android = load_target("android-litert")
    no_cast = dataclasses.replace(android, int8_ops=tuple(op for op in android.int8_ops if op != "CAST"))
    with pytest.raises(ExportError, match="op CAST with int8 inputs is not supported"):
        check_target(models.lightgcn("int8"), no_cast)
    check_target(models.lightgcn("fp32"), no_cast)   # the fp32 graph has no CAST


def test_check_target_rejects_an_over_budget_model_before_any_heavy_work(tmp_path, monkeypatch):
    """A 100k x 64 model against a 1 MB budget fails in the check: no graph is built, nothing is written."""
    from edgegnn.export import tflite_graph

    def no_build(*args, **kwargs):
        raise AssertionError("the graph was built before the target check")

    monkeypatch.setattr(tflite_graph, "build", no_build)
    edge = models.lightgcn("fp32", items=100_000, dim=64)
    tiny = dataclasses.replace(load_target("android-litert"), memory_budget=1_000_000)
    with pytest.raises(ExportError, match="over the budget of 1.0 MB"):
        export(edge, tiny, out_dir=tmp_path / "art")
    assert not any(tmp_path.iterdir())
    report = check_target(models.lightgcn("int8"), load_target("cpu-x86_64"))
    assert report.precision == "int8" and "MatMulInteger" in report.ops["int8"]
