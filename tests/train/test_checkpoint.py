"""Checkpoints round-trip, are written atomically, and reject damaged or foreign files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgegnn.errors import CheckpointError
from edgegnn.models import LightGCNConfig, ModelCard, TrainConfig
from edgegnn.train.api import evaluate, fit
from edgegnn.train.checkpoint import import_pyg_lightgcn, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def trained(small_split):
    card = ModelCard(name="t", model=LightGCNConfig(embedding_dim=16), training=TrainConfig(epochs=20))
    checkpoint, _ = fit(small_split, card)
    return checkpoint


def test_round_trip_gives_same_model_and_metrics(trained, small_split, tmp_path):
    path = save_checkpoint(trained, tmp_path / "m.pt")
    loaded = load_checkpoint(path)
    assert loaded.card == trained.card
    assert np.array_equal(loaded.train.items, trained.train.items)
    assert list(loaded.train.item_ids) == list(trained.train.item_ids)
    assert loaded.metrics == trained.metrics
    assert loaded.versions["torch"] == torch.__version__
    again = evaluate(loaded, small_split)
    assert again["recall@20"] == pytest.approx(trained.metrics["test"]["recall@20"], rel=1e-6)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_failed_write_leaves_old_file_and_no_temp(trained, tmp_path, monkeypatch):
    path = save_checkpoint(trained, tmp_path / "m.pt")
    before = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(trained, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_truncated_file_is_a_clear_error(trained, tmp_path):
    path = save_checkpoint(trained, tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable model file"):
        load_checkpoint(path)


def test_foreign_files_are_rejected(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable model file"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not an edgegnn checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such model file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_newer_format_version_is_refused(trained, tmp_path):
    payload = trained.to_payload()
    payload["format_version"] = 99
    path = tmp_path / "future.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)


def test_import_pyg_lightgcn_state_dict(small_split, tmp_path):
    from torch_geometric.nn.models import LightGCN

    from edgegnn.models.graph import BipartiteGraph

    torch.manual_seed(5)
    pyg = LightGCN(small_split.num_users + small_split.num_items, embedding_dim=12, num_layers=2)
    path = tmp_path / "pyg.pt"
    torch.save(pyg.state_dict(), path)
    checkpoint = import_pyg_lightgcn(path, small_split)
    assert checkpoint.card.model == LightGCNConfig(embedding_dim=12, num_layers=2)
    model, graph = checkpoint.build()
    users, items = model(graph)
    expected = pyg.get_embedding(BipartiteGraph.from_interactions(small_split.train).edge_index)
    torch.testing.assert_close(torch.cat([users, items]), expected, rtol=1e-5, atol=1e-6)

    wrong = LightGCN(10, embedding_dim=4, num_layers=1)
    torch.save(wrong.state_dict(), path)
    with pytest.raises(CheckpointError, match="10 rows but the data has"):
        import_pyg_lightgcn(path, small_split)
