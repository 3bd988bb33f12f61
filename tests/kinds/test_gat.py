"""The graph-attention kind: PyG's layer trained, the device attends exactly as training did."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgegnn.errors import ConfigError, ExportError
from edgegnn.fold import fold
from edgegnn.models import GATConfig, ModelCard, TrainConfig
from edgegnn.train.api import fit


@pytest.fixture(scope="module", params=["gat", "gatv2"])
def trained(request, small_split):
    card = ModelCard(name="gat", model=GATConfig(embedding_dim=32, attention=request.param),
                     training=TrainConfig(epochs=200, learning_rate=0.02, l2=0.0, eval_every=10, patience=5))
    checkpoint, _ = fit(small_split, card)
    return checkpoint


def test_the_device_model_is_the_trained_layer_for_every_user(trained):
    """Users have no parameters: the fold's scores from the history are the trained model's."""
    edge = fold(trained)
    model, graph = trained.build()
    with torch.no_grad():
        users, items = model(graph)
    csr = trained.train.to_csr()
    rows = np.flatnonzero(np.diff(csr.indptr) > 0)[:200]
    histories = [csr.indices[csr.indptr[u]:csr.indptr[u + 1]].astype(np.int64) for u in rows]
    np.testing.assert_allclose(edge.scores(histories), (users[rows] @ items.T).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert edge.tensors["message"].shape == (trained.train.num_items, 33)     # messages + the logit column


def test_attention_is_not_uniform_and_training_beats_popularity(trained):
    logits = fold(trained).tensors["message"].to_dense()[:, -1]
    assert logits.std() > 1e-3                             # not a mean pool in disguise
    assert trained.metrics["test"]["recall@20"] > trained.metrics["popularity"]["recall@20"]


@pytest.mark.parametrize("setting, fragment", [({"attention": "transformer"}, "allowed: gat, gatv2"),
                                               ({"negative_slope": 2.0}, "negative_slope <= 1.0"),
                                               ({"embedding_dim": 0}, "1 <= embedding_dim")])
def test_bad_settings_name_the_field(setting, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ModelCard.from_dict({"model": {"type": "gat", **setting}})


def test_a_target_without_softmax_refuses_the_kind_in_one_line(trained, tmp_path):
    from edgegnn.export import export

    with pytest.raises(ExportError, match="Softmax"):
        export(fold(trained), "cuda", out_dir=tmp_path / "gpu")
    assert not (tmp_path / "gpu").exists()


def test_the_cli_trains_compresses_exports_and_serves_gat(tmp_path):
    """train --model models/gat.yaml, compress to int8, export for ONNX Runtime and LiteRT,
    recommend: the artifact's metrics are its simulation's; a new user gets items."""
    from typer.testing import CliRunner

    from edgegnn.cli.app import app
    from tests.conftest import REPO
    from tests.kinds.journey import compress_export_serve

    runner = CliRunner()
    card = tmp_path / "gat.yaml"
    card.write_text((REPO / "models" / "gat.yaml").read_text().replace("embedding_dim: 64", "embedding_dim: 16"))
    model = tmp_path / "gat.pt"
    data = "synthetic:users=300,items=160,seed=4"
    trained = runner.invoke(app, ["train", "--data", data, "--model", str(card), "--epochs", "40", "--out", str(model),
                                  "--json"])
    assert trained.exit_code == 0, trained.output
    compress_export_serve(runner, app, model, tmp_path)
