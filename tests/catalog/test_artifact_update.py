"""`update_artifact` and patches, on real ONNX Runtime and LiteRT artifacts: the patch rebuilds
the new artifact byte for byte, the runtime serves it, and a wrong or damaged patch is refused."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from edgegnn.catalog.update import update_artifact
from edgegnn.compress.io import save_edge_model
from edgegnn.errors import ConfigError
from edgegnn.export import export
from edgegnn.runtime import Recommender
from edgegnn.runtime.manifest import read_manifest
from edgegnn.runtime.patch import PatchError, apply_patch
from tests.catalog.conftest import HELD_OUT

TARGETS = ["cpu-x86_64", "android-litert"]


@pytest.fixture(scope="module", params=TARGETS)
def updated(request, base_model, new_csv, tmp_path_factory):
    """(base artifact, model folder, UpdateResult) for one target."""
    tmp = tmp_path_factory.mktemp(request.param)
    base = export(base_model, request.param, out_dir=tmp / "base", cpus=(), emulators=None)
    model = save_edge_model(base_model, tmp / "model")
    result = update_artifact(base, model, items=new_csv, out=tmp / "new", cpus=(), emulators=None)
    return base, model, result


def _files(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_the_patch_rebuilds_the_new_artifact_byte_for_byte(updated, tmp_path):
    base, _, result = updated
    applied = apply_patch(base, result.patch, tmp_path / "applied")
    assert _files(applied) == _files(result.artifact)
    assert result.patch_bytes == result.patch.stat().st_size < 0.5 * result.artifact_bytes
    assert result.record["added"] == HELD_OUT and result.record["patch"]["bytes"] == result.patch_bytes


def test_the_new_artifact_says_what_changed_and_serves_the_new_items(updated, base_model, held_out):
    base, _, result = updated
    manifest, old = read_manifest(result.artifact), read_manifest(base)
    assert manifest["update"]["added"] == HELD_OUT and manifest["update"]["items_after"] == base_model.num_items + 40
    assert manifest["target"] == old["target"] and manifest["top_k"] == old["top_k"]
    assert manifest["model"]["digest"] != old["model"]["digest"]
    rec = Recommender.open(result.artifact)
    assert rec.num_items == base_model.num_items + HELD_OUT and set(held_out) <= set(rec.item_ids.tolist())
    ranked = [rec.recommend([item], k=rec.max_k - 1).ids for item in held_out[:10]]
    assert any(set(ids) & set(held_out) for ids in ranked)      # new items rank among their neighbours' items


def test_a_patched_open_answers_like_the_new_artifact(updated, held_out):
    base, _, result = updated
    patched, fresh = Recommender.open(base, patch=result.patch), Recommender.open(result.artifact)
    histories = [[held_out[0], str(fresh.item_ids[3])], [str(fresh.item_ids[7])], held_out[5:9]]
    for a, b in zip(patched.recommend_batch(histories, k=10), fresh.recommend_batch(histories, k=10)):
        assert a.ids == b.ids
        np.testing.assert_array_equal([s for _, s in a], [s for _, s in b])


def test_the_same_update_gives_the_same_bytes(updated, new_csv, tmp_path):
    base, model, result = updated
    again = update_artifact(base, model, items=new_csv, out=tmp_path / "again", cpus=(), emulators=None)
    assert again.patch.read_bytes() == result.patch.read_bytes()
    assert _files(again.artifact) == _files(result.artifact)


def test_a_patch_for_another_artifact_is_refused_and_nothing_is_written(updated, tmp_path):
    _, _, result = updated
    with pytest.raises(PatchError, match="made for another artifact"):
        apply_patch(result.artifact, result.patch, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_patch_is_refused_and_nothing_is_written(updated, tmp_path):
    base, _, result = updated
    damaged = tmp_path / "damaged.patch"
    with zipfile.ZipFile(result.patch) as source, zipfile.ZipFile(damaged, "w") as sink:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith(".zst"):
                data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
            sink.writestr(info, data)
    with pytest.raises(PatchError, match="damaged patch|does not match"):
        apply_patch(base, damaged, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "not-a-patch").write_bytes(b"hello")
    with pytest.raises(PatchError, match="not an edgegnn patch"):
        apply_patch(base, tmp_path / "not-a-patch", tmp_path / "out")


def test_an_artifact_of_another_model_is_refused(updated, full_model, new_csv, tmp_path):
    base, _, _ = updated
    other = save_edge_model(full_model, tmp_path / "other")
    with pytest.raises(ConfigError, match="is not the model .* was exported from"):
        update_artifact(base, other, items=new_csv, out=tmp_path / "new", cpus=(), emulators=None)
    assert not (tmp_path / "new").exists()


def test_an_artifact_without_a_model_digest_is_refused(updated, new_csv, tmp_path):
    import shutil

    base, model, _ = updated
    old = shutil.copytree(base, tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["model"]["digest"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="records no model digest"):
        update_artifact(old, model, items=new_csv, out=tmp_path / "new", cpus=(), emulators=None)


def test_an_artifact_with_inverted_lists_gets_its_overlap_measured_again(tmp_path):
    """A model with inverted lists (and no data record: --data gives its training interactions):
    the new artifact's lists hold the new items, and its retrieval record is measured anew."""
    from tests.export import models

    edge = models.indexed(models.lightgcn("int8"), lists=16, nprobe=4)
    rng = np.random.default_rng(5)
    train = tmp_path / "train.csv"
    train.write_text("user,item\n" + "".join(f"u{u},{edge.item_ids[i]}\n" for u in range(120)
                                            for i in rng.choice(edge.num_items, 6, replace=False)))
    new = tmp_path / "new.csv"
    new.write_text("user,item\n" + "".join(f"u{u},fresh{u % 5}\n" for u in range(0, 120, 3)))
    base = export(edge, "cpu-x86_64", out_dir=tmp_path / "base", cpus=(), emulators=None)
    model = save_edge_model(edge, tmp_path / "model")
    result = update_artifact(base, model, items=new, out=tmp_path / "new", data=train, cpus=(), emulators=None)
    manifest = read_manifest(result.artifact)
    assert manifest["update"]["added"] == 5 and manifest["num_items"] == edge.num_items + 5
    record = manifest["retrieval"]
    assert record["measured"] == "after the catalog update" and record["nprobe"] == 4
    assert record["overlap"] == result.record["retrieval_overlap"] and 0.0 < record["overlap"] <= 1.0
    rec = Recommender.open(base, patch=result.patch)
    assert {f"fresh{k}" for k in range(5)} <= set(rec.item_ids.tolist())


def test_class_heads_are_carried_over_and_new_items_get_item_logits(base_model, small_split, new_csv, held_out,
                                                                   tmp_path):
    """An artifact exported with a user and an item head: update wants the head files again, refuses
    a missing or foreign one, and the new artifact answers interests and the new items' classes."""
    from edgegnn.class_head import ClassHead

    rng = np.random.default_rng(3)
    width = base_model.embedding_dim

    def head(node, classes):
        return ClassHead(node, tuple(f"{node}{c}" for c in range(classes)), mean=np.zeros(width),
                         scale=np.ones(width), weights=rng.standard_normal((classes, width)),
                         bias=rng.standard_normal(classes), metrics={})

    user, item = head("user", 4), head("item", 3)
    base = export(base_model, "cpu-x86_64", out_dir=tmp_path / "base", heads=[user, item], cpus=(), emulators=None)
    model = save_edge_model(base_model, tmp_path / "model")
    with pytest.raises(ConfigError, match="has a class head on items; give its head file again"):
        update_artifact(base, model, items=new_csv, out=tmp_path / "new", heads=[user], cpus=(), emulators=None)
    with pytest.raises(ConfigError, match="has classes"):
        update_artifact(base, model, items=new_csv, out=tmp_path / "new", heads=[user, head("item", 5)], cpus=(),
                        emulators=None)
    assert not (tmp_path / "new").exists()
    result = update_artifact(base, model, items=new_csv, out=tmp_path / "new", heads=[user, item], cpus=(),
                             emulators=None)
    old, new = Recommender.open(base), Recommender.open(base, patch=result.patch)
    history = [str(base_model.item_ids[k]) for k in (1, 2, 3)]
    np.testing.assert_allclose(new.class_probabilities([history]), old.class_probabilities([history]), atol=1e-6)
    logits = new.item_class_probabilities(held_out[:5])
    assert logits.shape == (5, 3) and np.allclose(logits.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(new.item_class_probabilities(history), old.item_class_probabilities(history),
                               atol=1e-6)
