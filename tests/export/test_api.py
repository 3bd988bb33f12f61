"""`export`: the artifact folder, its manifest, metrics measured on the artifact, atomic and deterministic."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgegnn.errors import CheckpointError, ConfigError, ExportError
from edgegnn.export import TOLERANCE, export
from edgegnn.runtime.manifest import sha256_file
from tests.export import models


@pytest.mark.parametrize("target", ["cpu-x86_64", "android-litert"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_metrics_measured_on_the_artifact_agree_with_the_simulation(artifacts, target, precision):
    manifest = json.loads((artifacts(target, precision) / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert manifest["precision"] == precision
    assert metrics["users"] > 900 and metrics["tolerance"] == TOLERANCE[precision]
    for name in ("recall@20", "ndcg@20"):
        assert abs(metrics["artifact"][name] - metrics["simulation"][name]) <= TOLERANCE[precision]
        assert metrics["artifact"][name] > 0.15           # a trained model, not noise
    if precision == "fp32":
        assert metrics["users_as"].startswith("known")     # a checkpoint brings e_u0 for its users
        if target == "cpu-x86_64":                         # dynamic H: the same protocol as edge_eval
            assert metrics["artifact"]["recall@20"] == pytest.approx(metrics["reference"]["recall@20"], abs=1e-4)


def test_manifest_describes_the_artifact(artifacts):
    directory = artifacts("android-litert", "int8")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["format"] == "edgegnn-artifact"
    assert sorted(os.listdir(directory)) == ["items.npy", "items_sorted.npy", "items_sorted_rows.npy", "manifest.json",
                                             "model.tflite"]
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
    assert [i["name"] for i in manifest["inputs"]] == ["history", "history_mask", "user_base"]
    assert manifest["inputs"][0] == {"name": "history", "dtype": "int32", "shape": [1, 64]}
    assert manifest["outputs"][0] == {"name": "top_items", "dtype": "int32", "shape": [1, 50 + 64]}
    assert manifest["model"]["tensors"]["item"]["storage"] == "int8"
    assert manifest["recipe"][0]["pass"] == "quantize" and manifest["activation_scales"]["user"] > 0
    assert manifest["target"]["name"] == "android-litert" and manifest["history_length"] == 64
    assert set(manifest["versions"]) >= {"edgegnn", "numpy", "ai-edge-litert"}
    items = np.load(directory / "items.npy")
    assert len(items) == manifest["num_items"] == 800 and items[0] == b"i0" and manifest["items_file"] == "items.npy"
    popularity = manifest["popularity"]
    assert popularity["counts"] == sorted(popularity["counts"], reverse=True) and popularity["total"] > 0


def test_the_same_inputs_give_byte_identical_files(trained, small_split, tmp_path):
    checkpoint, _ = trained
    first = export(checkpoint, "cpu-x86_64", split=small_split, out_dir=tmp_path / "a", max_users=200)
    second = export(checkpoint, "cpu-x86_64", split=small_split, out_dir=tmp_path / "b", max_users=200)
    for name in sorted(os.listdir(first)):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_failed_export_leaves_no_artifact_and_no_temp_files(trained, small_split, tmp_path):
    """The metric gate fails (a tolerance below zero): nothing is written, the old artifact stays."""
    checkpoint, _ = trained
    out = tmp_path / "art"
    with pytest.raises(ExportError, match="simulation"):
        export(checkpoint, "cpu-x86_64", split=small_split, out_dir=out, tolerance=-1, max_users=50)
    assert os.listdir(tmp_path) == []
    export(checkpoint, "cpu-x86_64", out_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ExportError):
        export(checkpoint, "cpu-x86_64", split=small_split, out_dir=out, tolerance=-1, max_users=50)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["art"]


def test_an_existing_artifact_is_replaced_but_other_folders_are_refused(tmp_path):
    edge = models.lightgcn("fp32")
    out = export(edge, "cpu-x86_64", out_dir=tmp_path / "art")
    export(edge, "android-litert", out_dir=out)
    assert sorted(os.listdir(out)) == ["items.npy", "items_sorted.npy", "items_sorted_rows.npy", "manifest.json",
                                       "model.tflite"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an edgegnn artifact"):
        export(edge, "cpu-x86_64", out_dir=other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_without_data_there_are_no_metrics_and_no_popularity_for_a_bare_edge_model(tmp_path):
    manifest = json.loads((export(models.lightgcn("int8"), "cpu-x86_64", out_dir=tmp_path / "a")
                           / "manifest.json").read_text())
    assert manifest["metrics"] is None and manifest["popularity"] is None


def test_export_from_an_edge_model_folder(tmp_path, small_split, trained):
    """The folder `edgegnn compress --out` writes (save_edge_model) exports like the model itself."""
    from edgegnn.compress import Calibration, QuantizeConfig, compress, save_edge_model
    from edgegnn.fold import fold

    checkpoint, _ = trained
    edge = compress(fold(checkpoint), QuantizeConfig(), calibration=Calibration.from_split(small_split, num_users=128))
    save_edge_model(edge, tmp_path / "edge")
    out = export(tmp_path / "edge", "cpu-x86_64", split=small_split, out_dir=tmp_path / "art", max_users=300)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["metrics"]["users"] == 300
    assert manifest["recipe"] == [dict(e) for e in edge.recipe]


def test_user_embedding_variant(tmp_path):
    edge = models.lightgcn("fp32")
    out = export(edge, "android-litert", variant="user", top_k=7, out_dir=tmp_path / "u")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == [{"name": "user_embedding", "dtype": "float32", "shape": [1, models.DIM]}]
    assert manifest["outputs"][1]["shape"] == [1, 7]


def test_bad_model_inputs_are_one_line_errors(tmp_path, artifacts):
    with pytest.raises(CheckpointError, match="no such model"):
        export(tmp_path / "missing.pt", "cpu-x86_64", out_dir=tmp_path / "a")
    with pytest.raises(CheckpointError, match="is an exported artifact"):
        export(artifacts("cpu-x86_64"), "cpu-x86_64", out_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="unknown target"):
        export(models.lightgcn("fp32"), "tpu-v9", out_dir=tmp_path / "a")
    with pytest.raises(ExportError, match="precision=fp16"):
        export(models.lightgcn("int8"), "cuda", precision="fp16", out_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_fp16_for_the_cuda_target(tmp_path, trained, small_split):
    """fp16 tables (ONNX Runtime runs them on CPU here when CUDA is absent) stay within the int8 tolerance."""
    checkpoint, _ = trained
    out = export(checkpoint, "cuda", precision="fp16", split=small_split, out_dir=tmp_path / "gpu", max_users=300)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16" and manifest["metrics"]["delta"]["recall@20"] <= TOLERANCE["fp16"]
    assert (out / "model.onnx").stat().st_size < 0.6 * checkpoint.train.num_items * 16 * 2 * 4
