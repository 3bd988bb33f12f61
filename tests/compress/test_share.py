"""The share pass: LightGCN's message table as a linear map of the item table (one table ships)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from edgegnn.compress import (CONFIG_TYPES, REGISTRY, Calibration, LowRankConfig, PruneConfig, QuantizeConfig,
                              ShareConfig, compress, configs_from_entries, load_edge_model, measure, recipe_yaml,
                              save_edge_model)
from edgegnn.errors import ConfigError
from edgegnn.tensors import LowRankTensor
from tests.compress import one_torch_thread, random_calibration, random_edge, same_snapshot, snapshot

single_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)
OTHERS = [PruneConfig(method="structured", sparsity=0.25), PruneConfig(method="items", sparsity=0.3),
          LowRankConfig(rank=4), QuantizeConfig(precision="int8"), QuantizeConfig(precision="mixed")]


def test_contract_on_lightgcn(tmp_path):
    edge, config = random_edge("lightgcn"), ShareConfig(ridge=0.5)
    calibration = random_calibration(edge)
    assert CONFIG_TYPES["share"] is ShareConfig and ShareConfig in REGISTRY
    assert ShareConfig.from_dict(config.to_dict()) == config
    assert configs_from_entries(yaml.safe_load(recipe_yaml([config]))["passes"]) == [config]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.ridge = 1.0  # type: ignore[misc]
    before = snapshot(edge)
    out = compress(edge, config, calibration=calibration)
    assert same_snapshot(before, snapshot(edge))
    assert out.recipe == (config.recipe_entry(),)
    message = out.tensors["message"]
    assert isinstance(message, LowRankTensor) and message.left is out.tensors["item"]
    assert out.nbytes == edge.nbytes // 2 + 4 * edge.embedding_dim ** 2  # one table + W
    save_edge_model(out, tmp_path / "a")
    save_edge_model(compress(edge, config, calibration=calibration), tmp_path / "b")
    assert (tmp_path / "a" / "edge.npz").read_bytes() == (tmp_path / "b" / "edge.npz").read_bytes()
    loaded = load_edge_model(tmp_path / "a")
    histories, base = calibration.for_model(out)
    np.testing.assert_allclose(loaded.encode(histories[:5], base[:5]), out.encode(histories[:5], base[:5]), rtol=1e-6)
    assert loaded.nbytes == out.nbytes


def test_message_is_the_least_squares_map_of_the_item_table():
    edge = random_edge("lightgcn")
    out = compress(edge, ShareConfig())
    items, messages = edge.tensors["item"].to_dense(), edge.tensors["message"].to_dense()
    weight, *_ = np.linalg.lstsq(items.astype(np.float64), messages.astype(np.float64), rcond=None)
    np.testing.assert_allclose(out.tensors["message"].to_dense(), items @ weight, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("other", OTHERS, ids=lambda c: f"{c.PASS}")
def test_composes_both_ways_and_quantization_keeps_the_table_shared(other):
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    for configs in ((ShareConfig(), other), (other, ShareConfig())):
        model = compress(edge, *configs, calibration=calibration)
        histories, base = calibration.for_model(model)
        assert np.isfinite(model.score(model.encode(histories[:3], base[:3]))).all()
    shared_then_int8 = compress(edge, ShareConfig(), QuantizeConfig(precision="int8"), calibration=calibration)
    assert shared_then_int8.tensors["message"].left is shared_then_int8.tensors["item"]


def test_sage_has_no_message_table():
    with pytest.raises(ConfigError, match="only a lightgcn EdgeModel"):
        compress(random_edge("sage"), ShareConfig())
    with pytest.raises(ConfigError, match="share.ridge=-1.0"):
        ShareConfig(ridge=-1.0)


def test_trained_model_keeps_recall_and_exports_with_one_table(small_split, tmp_path):
    from edgegnn.export import export
    from edgegnn.fold import fold, user_bases
    from edgegnn.models import LightGCNConfig, ModelCard, TrainConfig
    from edgegnn.train.api import fit

    checkpoint, _ = fit(small_split, ModelCard(name="t", model=LightGCNConfig(embedding_dim=32),
                                               training=TrainConfig(epochs=150)))
    edge = fold(checkpoint)
    bases = user_bases(checkpoint)
    calibration = Calibration.from_split(small_split, num_users=256, user_base=bases)
    int8 = compress(edge, QuantizeConfig(precision="int8"), calibration=calibration)
    shared = compress(edge, ShareConfig(), QuantizeConfig(precision="int8"), calibration=calibration)
    base = measure(edge, small_split, user_base=bases)["recall@20"]
    ours = measure(shared, small_split, user_base=bases)["recall@20"]
    assert ours >= 0.98 * base
    assert shared.nbytes < 0.6 * int8.nbytes
    for target, model_file in (("cpu-x86_64", "model.onnx"), ("android-litert", "model.tflite")):
        sizes = {}
        for name, model in (("int8", int8), ("shared", shared)):
            path = export(model, target, out_dir=tmp_path / f"{target}-{name}", split=small_split, max_users=300)
            manifest = json.loads((path / "manifest.json").read_text())
            assert abs(manifest["metrics"]["delta"]["recall@20"]) <= manifest["metrics"]["tolerance"]
            sizes[name] = (path / model_file).stat().st_size
        assert sizes["shared"] < 0.7 * sizes["int8"], (target, sizes)
