"""`edgegnn.runtime.Recommender`: torch-free, verified loading, and the history rules of `recommend`."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgegnn.edge_eval import histories_from_csr
from edgegnn.export import export
from edgegnn.runtime import ArtifactError, Recommendation, Recommender, RecommendError
from tests.export import models

TARGETS = ["cpu-x86_64", "android-litert"]


def test_importing_and_running_the_runtime_loads_no_torch(artifacts):
    """In a fresh interpreter: the runtime, an ONNX query and a TFLite query, and then sys.modules."""
    script = f"""
import sys, edgegnn.runtime
assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'ai_edge_litert')], 'import'
from edgegnn.runtime import Recommender
Recommender.open({str(artifacts('cpu-x86_64'))!r}).recommend(['i1', 'i2'], k=3)
assert 'ai_edge_litert' not in sys.modules, 'an ONNX artifact needs no LiteRT'
Recommender.open({str(artifacts('android-litert'))!r}).recommend(['i1', 'i2'], k=3)
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'torch_geometric', 'scipy', 'onnx', 'yaml',
                                                         'typer', 'rich', 'flatbuffers'}})
print(heavy)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("target", TARGETS)
def test_recommend_returns_the_simulation_s_top_items_by_raw_id(artifacts, trained, target):
    checkpoint, _ = trained
    from edgegnn.fold import fold

    edge = fold(checkpoint)
    rec = Recommender.open(artifacts(target))
    history_rows = [5, 17, 230, 42]
    result = rec.recommend([edge.item_ids[r] for r in history_rows], k=10)
    assert isinstance(result, Recommendation) and len(result) == 10
    assert not result.skipped and not result.fallback and result.truncated == 0
    scores = edge.score(edge.encode([np.array(history_rows)]))[0]
    scores[history_rows] = -np.inf
    assert result.ids == [str(edge.item_ids[r]) for r in np.argsort(-scores, kind="stable")[:10]]
    np.testing.assert_allclose([s for _, s in result], np.sort(scores)[::-1][:10], rtol=1e-5)


def test_unknown_ids_are_skipped_logged_and_reported(artifacts, caplog):
    rec = Recommender.open(artifacts("cpu-x86_64"))
    with caplog.at_level(logging.DEBUG, logger="edgegnn.runtime"):
        result = rec.recommend(["i3", "nope", 7, "i9"], k=5)
    assert result.skipped == ("nope", "7")
    assert "skipped 2 item id(s)" in caplog.text and "nope" in caplog.text
    assert result.ids == rec.recommend(["i3", "i9"], k=5).ids


def test_seen_items_are_excluded_unless_asked_and_repeats_count_once(artifacts):
    rec = Recommender.open(artifacts("cpu-x86_64"))
    history = ["i632", "i397", "i319"]           # popular items: they would rank high
    assert not set(history) & set(rec.recommend(history, k=20).ids)
    assert set(history) & set(rec.recommend(history, k=20, exclude_seen=False).ids)
    assert rec.recommend(history + ["i397", "i632"], k=5).items == rec.recommend(["i319", "i397", "i632"], k=5).items


def test_overlong_histories_keep_the_newest_items(tmp_path, trained):
    checkpoint, _ = trained
    out = export(checkpoint, "android-litert", history_length=4, out_dir=tmp_path / "h4")
    rec = Recommender.open(out)
    history = [f"i{i}" for i in (1, 2, 3, 10, 20, 30, 40)]
    result = rec.recommend(history, k=5, exclude_seen=False)
    assert result.truncated == 3
    assert result.items == rec.recommend(history[-4:], k=5, exclude_seen=False).items


@pytest.mark.parametrize("target", TARGETS)
def test_an_empty_history_falls_back_to_popularity(artifacts, small_split, target):
    rec = Recommender.open(artifacts(target))
    result = rec.recommend([], k=5)
    degrees = small_split.train.item_degrees()
    assert result.fallback and result.ids == [f"i{r}" for r in np.argsort(-degrees, kind="stable")[:5]]
    assert rec.recommend(["unknown-only"], k=3).fallback


def test_a_known_user_with_no_history_is_scored_from_user_base(artifacts, trained):
    from edgegnn.fold import fold, user_bases

    checkpoint, _ = trained
    edge, base = fold(checkpoint), user_bases(checkpoint)[3]
    result = Recommender.open(artifacts("cpu-x86_64")).recommend([], k=5, user_base=base)
    expected = np.argsort(-(float(edge.params["a0"]) * base @ edge.tensors["item"].values.T), kind="stable")[:5]
    assert not result.fallback and result.ids == [f"i{r}" for r in expected]


@pytest.mark.parametrize("target", TARGETS)
def test_recommend_batch_matches_one_by_one(artifacts, small_split, target):
    rec = Recommender.open(artifacts(target))
    histories = [[f"i{r}" for r in h[:6]] for h in histories_from_csr(small_split.train.to_csr())[:7]] + [[]]
    batch = rec.recommend_batch(histories, k=8)
    single = [rec.recommend(h, k=8) for h in histories]
    assert [r.ids for r in batch] == [r.ids for r in single]      # padding changes float rounding only
    np.testing.assert_allclose([[s for _, s in r] for r in batch], [[s for _, s in r] for r in single], rtol=1e-6)
    assert batch[-1].fallback


def test_bad_calls_are_clear_errors(artifacts):
    rec = Recommender.open(artifacts("cpu-x86_64"))
    for k in (0, -3, rec.max_k + 1, 2.5, True):
        with pytest.raises(RecommendError, match="k="):
            rec.recommend(["i1"], k=k)
    with pytest.raises(RecommendError, match="NaN"):
        rec.recommend(["i1"], user_base=np.full(16, np.nan, np.float32))
    with pytest.raises(RecommendError, match="shape"):
        rec.recommend(["i1"], user_base=np.zeros(5, np.float32))
    with pytest.raises(RecommendError, match="numbers"):
        rec.recommend(["i1"], user_base=np.array(["a"] * 16))
    with pytest.raises(RecommendError, match="not one string"):
        rec.recommend("i1,i2")
    with pytest.raises(RecommendError, match="rows for 2 histories"):
        rec.recommend_batch([["i1"], ["i2"]], user_base=np.zeros((3, 16), np.float32))
    with pytest.raises(RecommendError, match="takes histories"):
        rec.recommend_embedding(np.zeros(16, np.float32))
    assert isinstance(RecommendError("x"), ValueError)


def test_user_embedding_artifacts(tmp_path):
    edge = models.lightgcn("fp32")
    rec = Recommender.open(export(edge, "cpu-x86_64", variant="user", top_k=6, out_dir=tmp_path / "u"))
    user = np.random.default_rng(0).standard_normal((2, models.DIM)).astype(np.float32)
    results = rec.recommend_embedding(user, k=4)
    expected = np.argsort(-(user @ edge.tensors["item"].values.T), axis=1)[:, :4]
    assert [r.ids for r in results] == [[f"item{i}" for i in row] for row in expected]
    with pytest.raises(RecommendError, match="takes user embeddings"):
        rec.recommend(["item1"])


# ---- damaged artifacts -------------------------------------------------------------------------

@pytest.fixture
def copy(artifacts, tmp_path):
    def make(target="cpu-x86_64"):
        return shutil.copytree(artifacts(target), tmp_path / target)
    return make


@pytest.mark.parametrize("target", TARGETS)
def test_a_changed_or_truncated_model_file_is_refused_naming_the_file(copy, target):
    directory = copy(target)
    model = directory / ("model.onnx" if target == "cpu-x86_64" else "model.tflite")
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"{model.name}: sha256 does not match"):
        Recommender.open(directory)
    model.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ArtifactError, match=f"{model.name}: size"):
        Recommender.open(directory)
    with pytest.raises(ArtifactError, match="cannot load the model"):   # unverified: the runtime says it
        Recommender.open(directory, verify=False)


def test_a_newer_or_foreign_manifest_is_refused(copy):
    directory = copy()
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 2}))
    with pytest.raises(ArtifactError, match="schema version 2 is newer") as error:
        Recommender.open(directory)
    assert error.value.hint == "upgrade edgegnn to open this artifact"
    (directory / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="damaged manifest"):
        Recommender.open(directory)
    (directory / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="not an edgegnn artifact"):
        Recommender.open(directory)
    with pytest.raises(ArtifactError, match="no such artifact"):
        Recommender.open(directory / "nowhere")


def test_a_folder_holding_artifacts_points_at_them(copy):
    directory = copy()
    with pytest.raises(ArtifactError, match="not an edgegnn artifact") as error:
        Recommender.open(directory.parent)
    assert error.value.hint.startswith("artifacts inside it: ") and directory.name in error.value.hint


def test_a_missing_file_is_named(copy):
    directory = copy()
    (directory / "items_sorted.npy").unlink()
    with pytest.raises(ArtifactError, match="items_sorted.npy: listed in the manifest but missing"):
        Recommender.open(directory)


@pytest.mark.parametrize("target", ["android-litert", "arm64-linux"])
def test_a_history_longer_than_the_window_still_gets_k_unseen_items(trained, tmp_path, target):
    """H is 64 (android-litert) or 256 (arm64-linux); a 700-item history keeps its newest H rows in
    the graph, and every one of its 700 items is left out: k = 50 still come back (the TFLite graph's
    scores output ranks the rest; ONNX is fed one masked slot per seen item), the simulation's 50."""
    from edgegnn.fold import fold

    checkpoint, _ = trained
    edge = fold(checkpoint)
    rec = Recommender.open(export(checkpoint, target, out_dir=tmp_path / target))
    rows = np.random.default_rng(0).permutation(edge.num_items)[:700]
    result = rec.recommend([edge.item_ids[r] for r in rows], k=50)
    assert len(result) == 50 and result.truncated == 700 - rec.history_length
    assert not set(result.ids) & {str(edge.item_ids[r]) for r in rows}
    scores = edge.score(edge.encode([rows[-rec.history_length:]]))[0]
    scores[rows] = -np.inf
    expected = [str(edge.item_ids[r]) for r in np.argsort(-scores, kind="stable")[:50]]
    assert len(set(result.ids) ^ set(expected)) <= 2           # ties at the cut may swap one pair
