"""Artifacts of models with inverted lists (the retrieval pass): the manifest says what the graph
scores, the metrics measured on the artifact are the approximate ones and match the simulation,
the runtime drops the graph's -1 pads (ONNX) or ranks the scored rows (TFLite's fixed H). (That the
graph scores exactly the simulation's candidates on every CPU: tests/export/test_cpu_matrix.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgegnn.compress import Calibration, RetrievalConfig, compress
from edgegnn.compress.inverted import exact_scan
from edgegnn.export import export
from edgegnn.fold import fold
from edgegnn.runtime import Recommender
from tests.export import models
from tests.export.fixtures import int8_model


@pytest.fixture(scope="module")
def indexed(trained, small_split):
    """The trained test LightGCN in int8 with 32 inverted lists, nprobe chosen for overlap 0.75 (a coarse one: the
    metrics must differ from the exact scan's)."""
    edge = int8_model(fold(trained[0]), small_split)
    calibration = Calibration.from_split(small_split, num_users=200)
    return compress(edge, RetrievalConfig(lists=32, overlap=0.75), calibration=calibration)


def test_the_artifact_records_the_lists_and_measures_what_it_serves(indexed, small_split, tmp_path):
    out = export(indexed, "cpu-x86_64", split=small_split, out_dir=tmp_path / "a", emulators=None)
    manifest = json.loads((out / "manifest.json").read_text())
    record, chosen = manifest["retrieval"], indexed.params["retrieval"]
    assert record["method"] == "inverted-lists" and record["nprobe"] == chosen["nprobe"] < 32
    assert record["overlap"] == chosen["overlap"] >= 0.75 and record["scored_items"] == chosen["nprobe"] * record[
        "capacity"] < indexed.num_items
    metrics = manifest["metrics"]
    assert max(metrics["delta"].values()) <= 0.005, metrics          # the artifact serves what was simulated
    exact = export(exact_scan(indexed), "cpu-x86_64", split=small_split, out_dir=tmp_path / "exact", emulators=None)
    exact_metrics = json.loads((exact / "manifest.json").read_text())["metrics"]
    assert json.loads((exact / "manifest.json").read_text())["retrieval"] is None
    assert metrics["artifact"] != exact_metrics["artifact"]         # approximate: measured, not copied


def test_short_lists_give_fewer_items_never_a_pad(tmp_path):
    edge = models.indexed(models.lightgcn("int8", stress=True), lists=16, nprobe=1)     # one list of <= 24 items
    out = export(edge, "cpu-x86_64", out_dir=tmp_path / "a", cpus=(), emulators=None)
    rec = Recommender.open(out)
    items, scores = rec.run_rows([np.array([5, 9])])
    assert (items < 0).any()                                   # the graph pads its row
    answer = rec.recommend([str(edge.item_ids[5]), str(edge.item_ids[9])], k=50)
    ids = [item for item, _ in answer]
    real = int((items[0] >= 0).sum()) - len({5, 9} & set(items[0].tolist()))
    assert len(ids) == real < 50 and set(ids) <= set(edge.item_ids.tolist())
    assert all(np.isfinite(score) for _, score in answer)
    rows, _ = rec.top_rows([np.array([5, 9])], 50)
    assert (rows[0][:real] >= 0).all() and (rows[0][real:] == -1).all()


def test_tflite_lists_rank_their_scored_rows_when_short(tmp_path, caplog):
    """A TFLite history graph with lists outputs the scored items' scores and rows: a list short
    of k is ranked from them (the runtime's fallback for a fixed H), quietly, never a pad."""
    edge = models.indexed(models.lightgcn("int8", stress=True), lists=16, nprobe=1)
    out = export(edge, "android-litert", out_dir=tmp_path / "a", cpus=(), emulators=None)
    manifest = json.loads((out / "manifest.json").read_text())
    capacity = manifest["retrieval"]["capacity"]
    assert [o["name"] for o in manifest["outputs"]] == ["top_items", "top_scores", "scores", "scored_rows"]
    assert manifest["outputs"][2]["shape"] == [1, capacity] and manifest["graph"]["scoring"]["op"] == "BATCH_MATMUL"
    rec = Recommender.open(out)
    history = [str(edge.item_ids[5]), str(edge.item_ids[9])]
    full = rec.backend.full_scores(rec.feeds([np.array([5, 9])], None), rec.num_items)
    scored = np.flatnonzero(np.isfinite(full))
    assert 0 < len(scored) <= capacity
    answer = rec.recommend(history, k=50)
    ids = [item for item, _ in answer]
    assert len(ids) == len(set(scored.tolist()) - {5, 9}) < 50 and "no scores output" not in caplog.text
    assert set(ids) == {str(edge.item_ids[r]) for r in scored if r not in (5, 9)}


def test_every_list_probed_serves_the_exact_answer_with_the_shapes_the_manifest_says(tmp_path):
    """nprobe = L: N = L · C slots exceed I (the padding counts); the outputs' shapes say so, and
    the answer is the exact scan's."""
    edge = models.indexed(models.lightgcn("fp32"), lists=16, nprobe=16)
    exact = exact_scan(edge)
    for target in ("cpu-x86_64", "android-litert"):
        out = export(edge, target, out_dir=tmp_path / target, cpus=(), emulators=None)
        manifest = json.loads((out / "manifest.json").read_text())
        slots = manifest["retrieval"]["scored_items"]
        assert slots == 16 * manifest["retrieval"]["capacity"] > edge.num_items
        rec = Recommender.open(out)
        items, _ = rec.run_rows([np.array([3, 8, 21])])
        if target == "android-litert":
            shapes = {o["name"]: o["shape"] for o in manifest["outputs"]}
            assert shapes["scores"] == shapes["scored_rows"] == [1, slots]
            assert items.shape == (1, min(manifest["top_k"] + manifest["history_length"], slots))
        expected = np.argsort(-exact.scores([np.array([3, 8, 21])])[0], kind="stable")
        expected = [r for r in expected if r not in (3, 8, 21)][:10]
        answer = rec.recommend([str(edge.item_ids[r]) for r in (3, 8, 21)], k=10)
        assert [item for item, _ in answer] == [str(edge.item_ids[r]) for r in expected]
