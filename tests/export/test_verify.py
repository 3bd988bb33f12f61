"""`edgegnn.export.verify`: the bounds, the checks, and what export records about CPUs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgegnn.cpu import LEVELS, host_cpu, level_of
from edgegnn.errors import ConfigError
from edgegnn.export import export, onnx_graph
from edgegnn.export.emulation import find_emulators
from edgegnn.export.plan import GraphOptions, io_spec
from edgegnn.export.verify import Queries, check_outputs, probe_queries, rounding_error, score_bound
from edgegnn.targets import load_target
from tests.export import models


def _run(edge, options, queries):
    import onnxruntime as ort

    model = onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    history, mask = models.padded(list(queries.histories))
    return session.run(["top_items", "top_scores"], {"history": history, "history_mask": mask,
                                                     "user_base": np.zeros((len(history), models.DIM), np.float32)})


@pytest.fixture(scope="module")
def int8_run():
    edge = models.lightgcn("int8-dynamic", stress=True)
    options = GraphOptions(top_k=10, precision="int8")
    queries = probe_queries(edge, "history", seed=1)
    items, scores = _run(edge, options, queries)
    reference, bound = score_bound(edge, onnx_graph.plan(edge, options).scoring, queries)
    return reference, bound, items, scores


def test_a_correct_graph_passes_within_its_bound(int8_run):
    reference, bound, items, scores = int8_run
    result = check_outputs(reference, bound, items, scores)
    assert result["passed"] and 0 < result["max_error_over_bound"] <= 1
    assert result["queries"] == 24 + 8 and result["scores_checked"] == items.size


def test_a_score_beyond_its_bound_fails(int8_run):
    reference, bound, items, scores = int8_run
    wrong = scores.copy()
    wrong[3, 5] += 3 * bound[3, items[3, 5]]
    result = check_outputs(reference, bound, items, np.sort(wrong, axis=1)[:, ::-1])
    assert not result["passed"] and result["scores_out_of_bound"] >= 1


def test_a_missing_top_item_and_an_unsorted_row_fail(int8_run):
    reference, bound, items, scores = int8_run
    dropped = items.copy()
    best = int(np.argmax(reference[0]))
    dropped[0, items[0] == best] = int(np.argmin(reference[0]))      # the best item replaced by the worst
    assert check_outputs(reference, bound, dropped, scores)["missing_top_items"] >= 1
    swapped = scores.copy()
    swapped[1, [0, -1]] = swapped[1, [-1, 0]]
    assert check_outputs(reference, bound, items, swapped)["unsorted_rows"] == 1


def test_a_static_rounding_may_differ_only_at_its_boundaries():
    x = np.array([[0.26, 0.3, 0.75, -1.2499, 9.0]], np.float32)
    err = rounding_error(x, 0.5, 10, True, np.zeros(x.shape))
    assert err.tolist() == [[0.0, 0.0, 0.5, 0.5, 0.0]]            # 0.75/0.5 = 1.5 and 2.4998 sit on boundaries
    ignored = rounding_error(x, 0.5, 10, False, np.zeros(x.shape))   # ignored: what rounding and clipping moved
    np.testing.assert_allclose(ignored, [[0.24, 0.2, 0.25, 0.2499, 4.0]], atol=1e-6)


def test_the_bound_is_tight_for_float_graphs_and_exact_integer_graphs():
    for kind in ("fp32", "int8"):                  # "int8": static 7-bit x, as the simulation rounds it
        edge = models.lightgcn(kind)
        options = GraphOptions(top_k=10, precision="fp32" if kind == "fp32" else "int8")
        queries = probe_queries(edge, "history", seed=2)
        reference, bound = score_bound(edge, onnx_graph.plan(edge, options).scoring, queries)
        assert np.median(bound / np.abs(reference).max()) < 1e-4


def test_host_cpu_names_its_level_and_flags():
    cpu = host_cpu()
    assert cpu["level"] in LEVELS and cpu["cores"] >= 1 and cpu["model"]
    assert level_of("x86_64", {"sse4_2", "avx", "avx2", "fma"}) == "x86-64-v3"
    assert level_of("x86_64", {"avx2", "fma", "avx512f", "avx512bw", "avx512vl"}) == "x86-64-v4"
    assert level_of("x86_64", {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"}) == "x86-64-v4-vnni"
    assert (level_of("aarch64", {"asimd"}) == "armv8.0"
            and level_of("aarch64", {"asimd", "asimddp"}) == "armv8.2-dotprod")
    arm = host_cpu("processor : 0\nFeatures : fp asimd asimddp sve i8mm\nCPU part : 0xd40\n")
    assert "asimddp" in arm["flags"] or arm["arch"] != "aarch64"


def test_export_records_the_cpus_it_verified_and_those_it_could_not(tmp_path):
    out = export(models.lightgcn("int8"), "cpu-x86_64", out_dir=tmp_path / "a", emulators=None)
    cpus = json.loads((out / "manifest.json").read_text())["cpus"]
    host = host_cpu()["level"]
    assert cpus["target"] == ["x86-64-v2", "x86-64-v3", "x86-64-v4", "x86-64-v4-vnni"]
    assert [v["level"] for v in cpus["verified"]] == [host] and cpus["verified"][0]["passed"]
    assert not cpus["verified"][0]["emulated"] and "this machine" in cpus["verified"][0]["how"]
    reasons = {entry["level"]: entry["reason"] for entry in cpus["not_verified"]}
    assert set(reasons) == set(cpus["target"]) - {host}
    for level, reason in reasons.items():    # QEMU emulates SSE4.2 and AVX2, not AVX-512
        assert ("hardware only" in reason) == (LEVELS[level].qemu_cpu is None)
        assert ("no emulator" in reason) == (LEVELS[level].qemu_cpu is not None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graph"]["scoring"] == {"op": "MatMulInteger", "x": "static-7bit", "applied_scales": ["user"],
                                            "space": "item"}


def test_targets_name_known_levels_of_their_arch():
    assert load_target("arm64-linux").cpus == ("armv8.0", "armv8.2-dotprod", "armv8.4-sve")
    with pytest.raises(ConfigError, match="target.cpus='x86-64-v3' is invalid: a x86_64 level"):
        dataclasses.replace(load_target("arm64-linux"), cpus=("x86-64-v3",))
    with pytest.raises(ConfigError, match="allowed: x86-64-v2"):
        dataclasses.replace(load_target("cpu-x86_64"), cpus=("pentium",))
    with pytest.raises(ConfigError, match="cpus='i386' is invalid"):
        export(models.lightgcn("fp32"), "cpu-x86_64", out_dir="never", cpus=["i386"])


def test_a_wrong_emulator_folder_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGNN_EMULATORS", str(tmp_path))
    with pytest.raises(ConfigError, match="EDGEGNN_EMULATORS=.* is invalid: not an emulator folder"):
        find_emulators()
    with pytest.raises(ConfigError, match="not an emulator folder"):
        export(models.lightgcn("fp32"), "cpu-x86_64", out_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_user_embedding_queries_are_encoded_histories():
    edge = models.lightgcn("int8")
    queries = probe_queries(edge, "user", seed=3)
    assert queries.histories is None and queries.embeddings.shape == (32, models.DIM)
    assert isinstance(queries, Queries) and len(queries) == 32
