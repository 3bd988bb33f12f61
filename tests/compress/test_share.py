"""The share pass: LightGCN's message table as a (row-scaled) linear map of the item table (one table ships)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from edgegnn.compress import (
    CONFIG_TYPES,
    REGISTRY,
    Calibration,
    LowRankConfig,
    ProductQuantizeConfig,
    PruneConfig,
    QuantizeConfig,
    ShareConfig,
    compress,
    configs_from_entries,
    load_edge_model,
    measure,
    recipe_yaml,
    save_edge_model,
)
from edgegnn.edge_model import gather_rows, matmul, matmul_transposed
from edgegnn.errors import ConfigError
from edgegnn.tensors import DenseTensor, LowRankTensor, RowScaledTensor
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
    assert isinstance(message, RowScaledTensor) and isinstance(message.base, LowRankTensor)
    assert message.base.left is out.tensors["item"] and message.row_scale.values.dtype == np.float16
    assert out.nbytes == edge.nbytes // 2 + 4 * edge.embedding_dim ** 2 + 2 * edge.num_items  # table + W + s
    save_edge_model(out, tmp_path / "a")
    save_edge_model(compress(edge, config, calibration=calibration), tmp_path / "b")
    assert (tmp_path / "a" / "edge.npz").read_bytes() == (tmp_path / "b" / "edge.npz").read_bytes()
    loaded = load_edge_model(tmp_path / "a")
    histories, base = calibration.for_model(out)
    np.testing.assert_allclose(loaded.encode(histories[:5], base[:5]), out.encode(histories[:5], base[:5]), rtol=1e-6)
    assert loaded.nbytes == out.nbytes
    assert isinstance(loaded.tensors["message"], RowScaledTensor)
    assert loaded.tensors["message"].base.left is loaded.tensors["item"]


def test_row_scaled_share_recovers_a_per_item_norm_exactly():
    """message = diag(1/sqrt(deg)) · item · W0 is out of reach of W alone, exact with the row scale."""
    rng = np.random.default_rng(4)
    edge = random_edge("lightgcn")
    items = edge.tensors["item"].to_dense()
    norm = 1.0 / np.sqrt(rng.integers(1, 200, edge.num_items)).astype(np.float32)
    w0 = rng.normal(size=(edge.embedding_dim, edge.embedding_dim)).astype(np.float32)
    truth = norm[:, None] * (items @ w0)
    edge = edge.with_tensors(None, message=DenseTensor(truth))
    scaled = compress(edge, ShareConfig(scale_dtype="float32")).tensors["message"].to_dense()
    plain = compress(edge, ShareConfig(row_scale=False)).tensors["message"].to_dense()
    np.testing.assert_allclose(scaled, truth, rtol=1e-3, atol=1e-4)
    assert np.linalg.norm(plain - truth) > 0.1 * np.linalg.norm(truth)
    half = compress(edge, ShareConfig()).tensors["message"]  # float16 s: about 3 significant digits
    assert np.linalg.norm(half.to_dense() - truth) < 2e-3 * np.linalg.norm(truth)


def test_row_scaled_device_math_equals_the_dense_reconstruction():
    rng = np.random.default_rng(5)
    base = LowRankTensor(DenseTensor(rng.normal(size=(30, 6)).astype(np.float32)),
                         DenseTensor(rng.normal(size=(8, 6)).astype(np.float32)))
    table = RowScaledTensor(base, DenseTensor(rng.normal(size=30).astype(np.float16)))
    dense = table.to_dense()
    np.testing.assert_allclose(dense, table.row_scale.values.astype(np.float32)[:, None] * base.to_dense())
    index = np.array([3, 0, 29, 3])
    np.testing.assert_allclose(gather_rows(table, index), dense[index], rtol=1e-5, atol=1e-5)
    x, y = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(4, 30)).astype(np.float32)
    np.testing.assert_allclose(matmul_transposed(x, table), x @ dense.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(matmul(y, table), y @ dense, rtol=1e-4, atol=1e-4)
    assert table.nbytes == base.nbytes + 60 and table.shape == (30, 8)
    with pytest.raises(ConfigError, match="row_scale.shape"):
        RowScaledTensor(base, DenseTensor(np.ones(29, np.float32)))


def test_message_is_the_least_squares_map_of_the_item_table():
    edge = random_edge("lightgcn")
    out = compress(edge, ShareConfig(row_scale=False))
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
    message = shared_then_int8.tensors["message"]
    assert message.base.left is shared_then_int8.tensors["item"]
    assert message.row_scale is compress(edge, ShareConfig()).tensors["message"].row_scale or \
        np.array_equal(message.row_scale.values, compress(edge, ShareConfig()).tensors["message"].row_scale.values)


def test_sage_has_no_message_table():
    with pytest.raises(ConfigError, match="only a lightgcn EdgeModel"):
        compress(random_edge("sage"), ShareConfig())
    with pytest.raises(ConfigError, match="share.ridge=-1.0"):
        ShareConfig(ridge=-1.0)
    with pytest.raises(ConfigError, match="share.scale_dtype"):
        ShareConfig(scale_dtype="int8")
    with pytest.raises(ConfigError, match="share.row_scale"):
        ShareConfig(row_scale="yes")


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
    pq = compress(edge, ShareConfig(), ProductQuantizeConfig(subvectors=8, centroids=64, finetune_steps=20),
                  calibration=calibration)
    base = measure(edge, small_split, user_base=bases)["recall@20"]
    ours = measure(shared, small_split, user_base=bases)["recall@20"]
    assert ours >= 0.98 * base
    assert shared.nbytes < 0.6 * int8.nbytes
    for target, model_file in (("cpu-x86_64", "model.onnx"), ("android-litert", "model.tflite")):
        sizes = {}
        for name, model in (("int8", int8), ("shared", shared), ("pq", pq)):
            path = export(model, target, out_dir=tmp_path / f"{target}-{name}", split=small_split, max_users=300)
            manifest = json.loads((path / "manifest.json").read_text())
            assert abs(manifest["metrics"]["delta"]["recall@20"]) <= manifest["metrics"]["tolerance"]
            sizes[name] = (path / model_file).stat().st_size
        assert sizes["pq"] < sizes["shared"] < 0.7 * sizes["int8"], (target, sizes)
