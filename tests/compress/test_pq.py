"""Product quantization: the stored kind's device math, k-means, the pass, its distillation, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from edgegnn.compress import (
    CONFIG_TYPES,
    REGISTRY,
    ProductQuantizeConfig,
    QuantizeConfig,
    ShareConfig,
    compress,
    configs_from_entries,
    load_edge_model,
    recipe_yaml,
    save_edge_model,
)
from edgegnn.compress.kmeans import kmeans
from edgegnn.edge_model import gather_rows, matmul, matmul_transposed
from edgegnn.errors import ConfigError
from edgegnn.tensors import ProductQuantizedTensor, RowScaledTensor
from tests.compress import DIM, NUM_ITEMS, one_torch_thread, random_calibration, random_edge, same_snapshot, snapshot

single_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)
HISTORIES = [np.array([0, 5, 9]), np.array([3]), np.array([1, 2, 4, 7, 8, 11])]


def _random_pq(rows=50, m=4, k=8, d=3, dtype=np.float32, seed=0) -> ProductQuantizedTensor:
    rng = np.random.default_rng(seed)
    return ProductQuantizedTensor(rng.integers(0, k, (rows, m)).astype(np.uint8),
                                  rng.normal(size=(m, k, d)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_device_math_equals_the_decoded_table(dtype):
    table = _random_pq(dtype=dtype)
    dense = table.to_dense()
    assert table.shape == (50, 12) and dense.dtype == np.float32
    np.testing.assert_array_equal(dense[7, 3:6], table.codebooks[1, table.codes[7, 1]].astype(np.float32))
    index = np.array([4, 0, 49, 4])
    np.testing.assert_array_equal(gather_rows(table, index), dense[index])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 12)).astype(np.float32), rng.normal(size=(5, 50)).astype(np.float32)
    scores = matmul_transposed(x, table)
    np.testing.assert_allclose(scores, x @ dense.T, rtol=1e-5, atol=1e-5)
    # the lookup-table arithmetic itself: LUT[b, m, k] = x_m · codebook[m, k], score = Σ_m LUT[b, m, codes[r, m]]
    lut = np.einsum("bmd,mkd->bmk", x.reshape(5, 4, 3), table.codebooks.astype(np.float32))
    np.testing.assert_allclose(scores, sum(lut[:, m, table.codes[:, m]] for m in range(4)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(matmul(y, table), y @ dense, rtol=1e-5, atol=1e-5)
    assert table.nbytes == 50 * 4 + 4 * 8 * 3 * np.dtype(dtype).itemsize


def test_kmeans_is_seeded_and_finds_separated_clusters():
    rng = np.random.default_rng(2)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.repeat(centers, 40, axis=0) + 0.1 * rng.normal(size=(120, 2))
    found, labels = kmeans(points, 3, seed=5)
    again, labels_again = kmeans(points, 3, seed=5)
    assert np.array_equal(found, again) and np.array_equal(labels, labels_again)
    assert np.abs(np.sort(found[:, 0] + 2 * found[:, 1]) - [0.0, 10.0, 20.0]).max() < 0.1
    assert len(np.unique(labels)) == 3 and (np.bincount(labels) == 40).all()


def test_at_least_as_many_centroids_as_distinct_rows_reconstructs_exactly():
    rng = np.random.default_rng(3)
    distinct = rng.normal(size=(10, DIM)).astype(np.float32)
    edge = random_edge("lightgcn")
    table = distinct[rng.integers(0, 10, NUM_ITEMS)]
    edge = edge.with_tensors(None, item=type(edge.tensors["item"])(table))
    out = compress(edge, ProductQuantizeConfig(subvectors=4, centroids=16, popularity_power=0.0, tensors=("item",),
                                               normalize=False))
    assert isinstance(out.tensors["item"], ProductQuantizedTensor)
    np.testing.assert_array_equal(out.tensors["item"].to_dense(), table)
    assert out.tensors["message"] is edge.tensors["message"]


def test_contract_and_composition_after_share(tmp_path):
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    config = ProductQuantizeConfig(subvectors=4, centroids=16)
    assert CONFIG_TYPES["product_quantize"] is ProductQuantizeConfig and ProductQuantizeConfig in REGISTRY
    assert ProductQuantizeConfig.from_dict(config.to_dict()) == config
    assert configs_from_entries(yaml.safe_load(recipe_yaml([ShareConfig(), config]))["passes"]) == \
        [ShareConfig(), config]
    shared = compress(edge, ShareConfig(), calibration=calibration)
    before = snapshot(shared)
    out = compress(shared, config, calibration=calibration)
    assert same_snapshot(before, snapshot(shared))
    item, message = out.tensors["item"], out.tensors["message"]
    assert isinstance(item, RowScaledTensor) and isinstance(item.base, ProductQuantizedTensor)  # norm-explicit
    np.testing.assert_allclose(item.row_scale.to_dense(), np.linalg.norm(shared.tensors["item"].to_dense(), axis=1),
                               rtol=1e-3)
    assert isinstance(message, RowScaledTensor) and message.base.left is item  # one table ships, quantized once
    assert message.base.right is shared.tensors["message"].base.right  # W keeps its storage
    w_bytes, s_bytes, norm_bytes = 4 * DIM * DIM, 2 * NUM_ITEMS, 2 * NUM_ITEMS
    assert out.nbytes == NUM_ITEMS * 4 + 4 * 16 * (DIM // 4) * 4 + w_bytes + s_bytes + norm_bytes
    plain = compress(shared, ProductQuantizeConfig(subvectors=4, centroids=16, normalize=False),
                     calibration=calibration)
    assert isinstance(plain.tensors["item"], ProductQuantizedTensor) and plain.nbytes == out.nbytes - norm_bytes
    assert plain.tensors["message"].base.left is plain.tensors["item"]
    # int8 rows after PQ would grow the table back: both orders still run the device math
    for model in (out, compress(out, QuantizeConfig(), calibration=calibration)):
        histories, base = calibration.for_model(model)
        assert np.isfinite(model.score(model.encode(histories[:4], base[:4]))).all()


def test_save_load_round_trip_and_determinism(tmp_path):
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    configs = (ShareConfig(), ProductQuantizeConfig(subvectors=4, centroids=16, codebook_dtype="float16",
                                                    finetune_steps=3))
    out = compress(edge, *configs, calibration=calibration)
    save_edge_model(out, tmp_path / "a")
    save_edge_model(compress(edge, *configs, calibration=calibration), tmp_path / "b")
    assert (tmp_path / "a" / "edge.npz").read_bytes() == (tmp_path / "b" / "edge.npz").read_bytes()
    loaded = load_edge_model(tmp_path / "a")
    assert loaded.nbytes == out.nbytes and loaded.tensors["item"].base.codebooks.dtype == np.float16
    assert loaded.tensors["message"].base.left is loaded.tensors["item"]
    np.testing.assert_array_equal(loaded.score(loaded.encode(HISTORIES)), out.score(out.encode(HISTORIES)))
    other_seed = compress(edge, ShareConfig(), ProductQuantizeConfig(subvectors=4, centroids=16, seed=1),
                          calibration=calibration)
    same_seed = compress(edge, ShareConfig(), ProductQuantizeConfig(subvectors=4, centroids=16),
                         calibration=calibration)
    first = compress(edge, ShareConfig(), ProductQuantizeConfig(subvectors=4, centroids=16), calibration=calibration)
    assert np.array_equal(same_seed.tensors["item"].base.codes, first.tensors["item"].base.codes)
    assert np.array_equal(same_seed.tensors["item"].base.codebooks, first.tensors["item"].base.codebooks)
    assert not np.array_equal(other_seed.tensors["item"].base.codebooks, first.tensors["item"].base.codebooks)


def _kl(teacher, student, calibration) -> float:
    """mean_u KL(softmax(t_u/τ_u) ‖ softmax(s_u/τ_u)), history excluded, τ_u = ½ std(t_u) (the distiller's loss)."""
    histories, base = calibration.for_model(teacher)
    total = 0.0
    for row, (t, s) in enumerate(zip(teacher.score(teacher.encode(histories, base)),
                                     student.score(student.encode(histories, base)))):
        keep = np.setdiff1d(np.arange(len(t)), histories[row])
        t, s = t[keep].astype(np.float64), s[keep].astype(np.float64)
        tau = 0.5 * t.std(ddof=1)
        log_p, log_q = t / tau - np.logaddexp.reduce(t / tau), s / tau - np.logaddexp.reduce(s / tau)
        total += float((np.exp(log_p) * (log_p - log_q)).sum())
    return total / len(histories)


def test_distilling_the_codebooks_lowers_the_kl_and_keeps_the_codes():
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    teacher = compress(edge, ShareConfig(), calibration=calibration)
    plain = compress(teacher, ProductQuantizeConfig(subvectors=4, centroids=8), calibration=calibration)
    tuned = compress(teacher, ProductQuantizeConfig(subvectors=4, centroids=8, finetune_steps=60, finetune_lr=0.02),
                     calibration=calibration)
    assert np.array_equal(tuned.tensors["item"].base.codes, plain.tensors["item"].base.codes)
    assert not np.array_equal(tuned.tensors["item"].base.codebooks, plain.tensors["item"].base.codebooks)
    assert tuned.tensors["message"].base.left is tuned.tensors["item"]
    assert _kl(teacher, tuned, calibration) < 0.8 * _kl(teacher, plain, calibration)


@pytest.mark.parametrize("build, fragment", [
    (lambda: ProductQuantizeConfig(centroids=300),
     "product_quantize.centroids=300 is invalid: must satisfy 2 <= centroids <= 256"),
    (lambda: ProductQuantizeConfig(centroids=1), "product_quantize.centroids=1"),
    (lambda: ProductQuantizeConfig(subvectors=0), "product_quantize.subvectors=0"),
    (lambda: ProductQuantizeConfig(codebook_dtype="int8"),
     "product_quantize.codebook_dtype='int8' is invalid: allowed"),
    (lambda: ProductQuantizeConfig(popularity_power=-1.0), "product_quantize.popularity_power=-1.0"),
    (lambda: ProductQuantizeConfig(subvectors="16"), "product_quantize.subvectors='16'"),
    (lambda: ProductQuantizeConfig.from_dict({"codebooks": 4}), "codebooks=4 is invalid: unknown key"),
    (lambda: compress(random_edge("lightgcn"), ProductQuantizeConfig(subvectors=5, popularity_power=0.0)),
     "product_quantize.subvectors=5 is invalid: must divide the table width 16 (allowed: 1, 2, 4, 8, 16)"),
    (lambda: compress(random_edge("lightgcn"), ProductQuantizeConfig(tensors=("w1_self",), popularity_power=0.0)),
     "product_quantize.tensors='w1_self'"),
])
def test_bad_configs_name_the_field(build, fragment):
    with pytest.raises(ConfigError) as error:
        build()
    assert fragment in str(error.value)
