"""Exported artifacts give the same answers on aarch64 (user-mode QEMU) as on this x86_64 machine.

Needs an aarch64 sysroot with python3.11, numpy, onnxruntime and ai-edge-litert: build one
with `scripts/setup_arm.sh` (~1 minute, into ./.arm) or point EDGEGNN_ARM_SYSROOT at one
(the folder holding `py-arm64`); skipped otherwise. The edge runtime itself (edgegnn.runtime,
pure Python) runs under emulation, so this checks the runtime on ARM too.

Comparisons (../shared/notes/ARM_EMULATION.md): fp32 scores rtol 1e-5; int8 scores within one
quantization step of the accumulator (scale of the user vector x scale of the item row);
top-k as sets where the scores leave no tie at the cut. Two CPU models: neoverse-n1 (NEON
only) and neoverse-v1 (SVE), which take different kernel paths. Never timed: emulated latency
means nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgegnn.edge_eval import histories_from_csr
from edgegnn.fold import fold
from edgegnn.runtime import Recommender
from tests.conftest import REPO
from tests.export.fixtures import int8_model

pytestmark = pytest.mark.arm_emu
CPUS = ("neoverse-n1", "neoverse-v1")
ARTIFACTS = [("cpu-x86_64", "fp32"), ("cpu-x86_64", "int8"), ("arm64-linux", "int8-big"), ("arm64-linux", "int4"),
             ("android-litert", "fp32"), ("android-litert", "int8"), ("android-litert", "int8-big")]
SCRIPT = """
import json, sys, numpy as np, platform
from edgegnn.runtime import Recommender
job = json.load(open(sys.argv[1]))
assert platform.machine() == "aarch64", platform.machine()
histories = [np.array(h, np.int64) for h in job["histories"]]
for name, path in job["artifacts"].items():
    items, scores = Recommender.open(path).run_rows(histories)
    np.savez(f"{job['out']}/{name}.npz", items=items, scores=scores)
print("ok", platform.machine())
"""


def _sysroot() -> Path | None:
    root = Path(os.environ.get("EDGEGNN_ARM_SYSROOT", REPO / ".arm"))
    return root if (root / "py-arm64").is_file() else None


@pytest.fixture(scope="module")
def arm_runs(artifacts, small_split, tmp_path_factory):
    """{cpu: {artifact name: (items, scores)}} from aarch64, the histories, and the same on x86."""
    root = _sysroot()
    if root is None:
        pytest.skip("no aarch64 sysroot: run scripts/setup_arm.sh (or set EDGEGNN_ARM_SYSROOT) to check ARM")
    histories = [h[:12].tolist() for h in histories_from_csr(small_split.train.to_csr())[:40] if len(h)]
    paths = {f"{t}-{p}": str(artifacts(t, p)) for t, p in ARTIFACTS}
    runs = {}
    for cpu in CPUS:
        out = tmp_path_factory.mktemp(cpu)
        (out / "job.json").write_text(json.dumps({"histories": histories, "artifacts": paths, "out": str(out)}))
        (out / "run.py").write_text(SCRIPT)
        env = {**os.environ, "QEMU_CPU": cpu, "PYTHONPATH": str(REPO)}
        done = subprocess.run([str(root / "py-arm64"), str(out / "run.py"), str(out / "job.json")],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0 and "ok aarch64" in done.stdout, done.stderr[-3000:]
        runs[cpu] = {name: tuple(np.load(out / f"{name}.npz")[k] for k in ("items", "scores")) for name in paths}
    x86 = {name: Recommender.open(path).run_rows([np.array(h) for h in histories]) for name, path in paths.items()}
    return runs, x86, histories


def _step(edge, histories, static: bool) -> np.ndarray:
    """[B, I]: one accumulator unit of int8 scoring, scale(x) · scale(item row)."""
    x = edge.encode([np.array(h) for h in histories])
    scale_x = np.full((len(x), 1), edge.activation_scales["user"]) if static else np.abs(x).max(1, keepdims=True) / 127
    return scale_x * edge.tensors["item"].scale[None, :]


def _same_sets(a_items, a_scores, b_items, tol) -> None:
    """Top-k as sets: every item scored clearly above the last kept score is in both lists."""
    for r in range(len(a_items)):
        clear = a_items[r][a_scores[r] > a_scores[r][-1] + 2 * tol]
        assert set(clear.tolist()) <= set(b_items[r].tolist()), f"row {r}"


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("target, precision", ARTIFACTS)
def test_aarch64_gives_the_x86_answers(arm_runs, trained, small_split, cpu, target, precision):
    runs, x86, histories = arm_runs
    name = f"{target}-{precision}"
    (arm_items, arm_scores), (x86_items, x86_scores) = runs[cpu][name], x86[name]
    assert arm_items.shape == x86_items.shape
    if precision == "fp32":
        np.testing.assert_allclose(arm_scores, x86_scores, rtol=1e-5, atol=1e-6 * np.abs(x86_scores).max())
        tol = 1e-5 * np.abs(x86_scores).max()
    else:
        edge = int8_model(fold(trained[0]), small_split, 4 if precision == "int4" else 8)
        # TFLite and MatMulNBits ("int8-big") quantize x per query; MatMulInteger uses the static scale
        step = _step(edge, histories, static=precision == "int8" and target == "cpu-x86_64")
        bound = np.take_along_axis(step, x86_items, axis=1) * 1.001 + 1e-7
        arm_on_x86_items = np.take_along_axis(
            _scores_by_item(arm_items, arm_scores, edge.num_items), x86_items, axis=1)
        missing = np.isnan(arm_on_x86_items)
        assert (np.abs(arm_on_x86_items - x86_scores)[~missing] <= bound[~missing]).all()
        tol = step.max()
    _same_sets(x86_items, x86_scores, arm_items, tol)
    _same_sets(arm_items, arm_scores, x86_items, tol)


def _scores_by_item(items: np.ndarray, scores: np.ndarray, num_items: int) -> np.ndarray:
    """[B, I] scores placed at their item columns (NaN where the item was not returned)."""
    full = np.full((len(items), num_items), np.nan, np.float32)
    np.put_along_axis(full, items, scores, axis=1)
    return full


def test_the_big_catalog_layout_is_what_aarch64_ran(artifacts):
    manifest = json.loads((Path(artifacts("arm64-linux", "int8-big")) / "manifest.json").read_text())
    ops = manifest["graph"]["ops"]
    assert "MatMulNBits" in ops["int8"] and {"Concat", "GatherND", "ReduceMax"} <= set(ops["float"])
    litert = json.loads((Path(artifacts("android-litert", "int8-big")) / "manifest.json").read_text())
    assert "REDUCE_MAX" in litert["graph"]["ops"]["float"]


def test_the_packed_int4_layout_is_what_aarch64_ran(artifacts):
    manifest = json.loads((Path(artifacts("arm64-linux", "int4")) / "manifest.json").read_text())
    assert {"MatMulNBits", "BitShift", "BitwiseAnd"} <= set(manifest["graph"]["ops"]["int8"])
    assert manifest["graph"]["int4_widened_to_int8"] == []
