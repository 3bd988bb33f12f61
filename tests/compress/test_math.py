"""The arithmetic of the passes: quantization error bounds, shapes after pruning, rank-space
scoring, shared factors, exactness of the rotation, and byte-identical save/load."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.compress import (
    Calibration,
    LowRankConfig,
    PruneConfig,
    QuantizeConfig,
    compress,
    load_edge_model,
    save_edge_model,
)
from edgegnn.compress.io import pack_int4, unpack_int4
from edgegnn.edge_model import ACTIVATION_LEVELS, gather_rows, matmul, matmul_transposed
from edgegnn.errors import CheckpointError, ConfigError
from edgegnn.tensors import LowRankTensor, MixedQuantizedTensor, QuantizedTensor
from tests.compress import DIM, HIDDEN, NUM_ITEMS, random_calibration, random_edge

USERS = [np.array([0, 5, 9]), np.array([3]), np.array([1, 2, 4, 7, 8, 11])]


@pytest.mark.parametrize("precision, qmax", [("int8", 127), ("int4", 7), ("mixed", None)])
def test_per_row_reconstruction_error_is_at_most_half_a_step(precision, qmax):
    edge = random_edge("sage")
    calibration = random_calibration(edge)
    out = compress(edge, QuantizeConfig(precision=precision), calibration=calibration)
    for name in ("ego", "hidden", "item", "w1_self", "w2_neigh"):
        stored, original = out.tensors[name], edge.tensors[name].to_dense()
        assert isinstance(stored, QuantizedTensor)
        error = np.abs(stored.to_dense() - original)
        assert (error <= stored.scale[:, None] / 2 * (1 + 1e-5) + 1e-7).all(), name
        if qmax is not None:
            np.testing.assert_allclose(stored.scale, np.abs(original).max(axis=1) / qmax, rtol=1e-6)
            assert stored.nbytes == stored.q.size * {127: 8, 7: 4}[qmax] // 8 + 4 * stored.shape[0]
    assert out.tensors["b1"] is edge.tensors["b1"]  # biases stay float32


@pytest.mark.parametrize("kind, items, weights", [("sage", ("ego", "hidden", "item"), ("w1_self", "w2_neigh")),
                                                  ("lightgcn", ("message", "item"), ())])
def test_one_scale_per_item_table_and_per_row_scales_for_weights(kind, items, weights):
    """granularity "tensor": every row of an item table shares max|table| / 127 (error <= half of
    it); dense weights keep one scale per output row."""
    edge = random_edge(kind)
    out = compress(edge, QuantizeConfig(precision="int8", granularity="tensor"), calibration=random_calibration(edge))
    for name in items:
        stored, original = out.tensors[name], edge.tensors[name].to_dense()
        np.testing.assert_allclose(stored.scale, np.full(len(original), np.abs(original).max() / 127), rtol=1e-6)
        assert (np.abs(stored.to_dense() - original) <= stored.scale[0] / 2 * (1 + 1e-5) + 1e-7).all(), name
    for name in weights:
        np.testing.assert_allclose(out.tensors[name].scale, np.abs(edge.tensors[name].to_dense()).max(axis=1) / 127,
                                   rtol=1e-6)


def test_mixed_precision_puts_the_unpopular_tail_in_int4():
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    out = compress(edge, QuantizeConfig(precision="mixed", tail_fraction=0.25), calibration=calibration)
    item = out.tensors["item"]
    assert isinstance(item, MixedQuantizedTensor)
    tail = item.int4_rows
    assert tail.sum() == NUM_ITEMS // 4
    assert calibration.popularity[tail].max() <= calibration.popularity[~tail].min()
    assert np.abs(item.q[tail]).max() <= 7
    assert item.nbytes == (NUM_ITEMS - tail.sum()) * DIM + tail.sum() * DIM // 2 + 4 * NUM_ITEMS + NUM_ITEMS // 8


def test_static_activation_scales_are_calibrated_and_used():
    edge = random_edge("sage")
    calibration = random_calibration(edge)
    minmax = compress(edge, QuantizeConfig(), calibration=calibration)
    clipped = compress(edge, QuantizeConfig(calibration_method="percentile", percentile=90.0), calibration=calibration)
    assert set(minmax.activation_scales) == {"h1", "user"}
    assert clipped.activation_scales["user"] < minmax.activation_scales["user"]
    histories, base = calibration.for_model(minmax)
    user = minmax.encode(histories, base)
    levels = ACTIVATION_LEVELS["user"]                 # 7 bits: exact on every MatMulInteger kernel
    assert np.abs(user).max() == pytest.approx(levels * minmax.activation_scales["user"], rel=1e-6)
    np.testing.assert_allclose(minmax.score(user), matmul_transposed(
        np.clip(np.rint(user / minmax.activation_scales["user"]), -levels, levels) * minmax.activation_scales["user"],
        minmax.tensors["item"]), rtol=1e-6)


def test_edge_models_of_format_1_load_with_their_clip_range(tmp_path):
    """Format 1 calibrated every activation for 127 levels; loaded, "user" keeps max|x| as its clip
    range at 63 levels (scale x 127/63), "h1" is unchanged."""
    import json

    edge = compress(random_edge("sage"), QuantizeConfig(), calibration=random_calibration(random_edge("sage")))
    save_edge_model(edge, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "edge.json").read_text())
    assert spec["format_version"] == 2 and spec["activation_levels"] == {"h1": 127, "user": 63}
    old = {name: scale * spec["activation_levels"][name] / 127 for name, scale in spec["activation_scales"].items()}
    spec.update(format_version=1, activation_scales=old)
    del spec["activation_levels"]
    (tmp_path / "m" / "edge.json").write_text(json.dumps(spec))
    loaded = load_edge_model(tmp_path / "m")
    for name, scale in edge.activation_scales.items():
        assert loaded.activation_scales[name] == pytest.approx(scale, rel=1e-9)


def test_structured_pruning_shrinks_shapes():
    edge = random_edge("lightgcn")
    for rotate in (True, False):
        out = compress(edge, PruneConfig(method="structured", sparsity=0.5, rotate=rotate))
        assert out.tensors["message"].shape == out.tensors["item"].shape == (NUM_ITEMS, DIM // 2)
        assert out.tensors["base_projection"].shape == (DIM, DIM // 2)
        assert out.encode(USERS, np.ones((3, DIM), np.float32)).shape == (3, DIM // 2)
    sage = compress(random_edge("sage"), PruneConfig(method="structured", sparsity=0.25))
    kept = HIDDEN - HIDDEN // 4
    shapes = {n: t.shape for n, t in sage.tensors.items()}
    assert shapes["w1_self"] == shapes["w1_neigh"] == (kept, DIM) and shapes["b1"] == (kept,)
    assert shapes["w2_self"] == shapes["w2_neigh"] == (DIM, kept) and shapes["hidden"] == (NUM_ITEMS, kept)
    assert sage.nbytes < random_edge("sage").nbytes


def test_the_rotation_of_structured_pruning_is_exact():
    """Rotating both tables and e_u⁰ by the same orthogonal V keeps every score (sparsity 0)."""
    edge = random_edge("lightgcn")
    base = np.random.default_rng(3).normal(size=(3, DIM)).astype(np.float32)
    rotated = compress(edge, PruneConfig(method="structured", sparsity=0.0))
    assert not np.allclose(rotated.tensors["item"].to_dense(), edge.tensors["item"].to_dense())
    np.testing.assert_allclose(rotated.score(rotated.encode(USERS, base)), edge.score(edge.encode(USERS, base)),
                               rtol=1e-4, atol=1e-4)


def test_low_rank_scoring_in_rank_space_equals_dense_scoring_of_the_reconstruction():
    edge = random_edge("lightgcn")
    out = compress(edge, LowRankConfig(rank=5))
    message, item = out.tensors["message"], out.tensors["item"]
    assert isinstance(item, LowRankTensor) and item.rank == 5
    assert message.left is item.left  # joint: one shared left factor ...
    assert out.nbytes == 4 * (NUM_ITEMS * 5 + 2 * DIM * 5)  # ... stored and counted once
    user = out.encode(USERS, np.ones((3, DIM), np.float32))
    reconstructed = item.to_dense()
    np.testing.assert_allclose(out.score(user), user @ reconstructed.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gather_rows(message, USERS[0]), message.to_dense()[USERS[0]], rtol=1e-5, atol=1e-6)
    x = np.random.default_rng(0).normal(size=(2, NUM_ITEMS)).astype(np.float32)
    np.testing.assert_allclose(matmul(x, item), x @ reconstructed, rtol=1e-4, atol=1e-4)
    quantized = compress(out, QuantizeConfig(activations=False)).tensors["item"]
    assert isinstance(quantized.left, QuantizedTensor) and isinstance(quantized.right, QuantizedTensor)
    np.testing.assert_allclose(matmul_transposed(user, quantized), user @ quantized.to_dense().T, rtol=1e-4, atol=1e-4)


def test_full_rank_factorization_of_one_table_is_exact_and_energy_picks_the_rank():
    edge = random_edge("lightgcn")
    full = compress(edge, LowRankConfig(rank=DIM, tensors=("item",)))
    np.testing.assert_allclose(full.tensors["item"].to_dense(), edge.tensors["item"].to_dense(), atol=1e-4)
    assert full.tensors["message"] is edge.tensors["message"]
    s = np.linalg.svd(edge.tensors["item"].to_dense(), compute_uv=False)
    kept = np.cumsum(s ** 2) / (s ** 2).sum()
    rank = compress(edge, LowRankConfig(energy=0.7, tensors=("item",))).tensors["item"].rank
    assert kept[rank - 1] >= 0.7 > kept[rank - 2]


def test_rank_above_the_embedding_dim_is_an_error_naming_both():
    edge = random_edge("lightgcn", dim=64)
    with pytest.raises(ConfigError, match="rank 96 must be <= embedding dim 64"):
        compress(edge, LowRankConfig(rank=96))
    with pytest.raises(ConfigError, match=r"rank 13 must be <= min\(shape\) of w1_self 12"):
        compress(random_edge("sage"), LowRankConfig(rank=13, tensors=("w1_self",)))
    with pytest.raises(ConfigError, match="allowed for a lightgcn model: message, item"):
        compress(edge, LowRankConfig(rank=4, tensors=("w1_self",)))


def test_magnitude_pruning_is_honest_about_bytes():
    edge = random_edge("lightgcn")
    half = compress(edge, PruneConfig(method="magnitude", sparsity=0.5))
    dense = edge.tensors["item"].to_dense()
    kept = half.tensors["item"].to_dense()
    assert (kept != 0).sum() == dense.size // 2
    assert np.abs(dense[kept == 0]).max() <= np.abs(dense[kept != 0]).min()
    assert half.nbytes > edge.nbytes  # CSR costs 8 bytes per kept float: no saving at 50 %
    assert compress(edge, PruneConfig(method="magnitude", sparsity=0.9)).nbytes < edge.nbytes / 3


def test_items_pruning_keeps_every_top_k_item_and_shrinks_the_catalog():
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    out = compress(edge, PruneConfig(method="items", sparsity=0.9, top_k=5), calibration=calibration)
    histories, base = calibration.for_model(edge)
    scores = edge.score(edge.encode(histories, base))
    for row, history in enumerate(histories):
        scores[row, history] = -np.inf
    needed = set(np.argsort(-scores, axis=1)[:, :5].ravel())
    kept = {int(i[1:]) for i in out.item_ids}
    assert needed <= kept and len(kept) < NUM_ITEMS
    assert out.tensors["message"].shape[0] == out.tensors["item"].shape[0] == len(out.item_ids)
    capped = compress(edge, PruneConfig(method="items", sparsity=0.1, top_k=5), calibration=calibration)
    assert capped.num_items == NUM_ITEMS - int(0.1 * NUM_ITEMS)


@pytest.mark.parametrize("kind", ["lightgcn", "sage"])
def test_save_load_is_byte_identical_and_exact(kind, tmp_path):
    edge = random_edge(kind)
    calibration = random_calibration(edge)
    models = [compress(edge, LowRankConfig(rank=4), QuantizeConfig(precision="mixed"), calibration=calibration),
              compress(edge, PruneConfig(method="magnitude", sparsity=0.7), QuantizeConfig(precision="int4"),
                       calibration=calibration),
              compress(edge, PruneConfig(method="items", sparsity=0.3), PruneConfig(method="structured", sparsity=0.5),
                       calibration=calibration)]
    for i, model in enumerate(models):
        first, second, third = tmp_path / f"{i}a", tmp_path / f"{i}b", tmp_path / f"{i}c"
        save_edge_model(model, first)
        save_edge_model(model, second)
        loaded = load_edge_model(first)
        save_edge_model(loaded, third)
        for name in ("edge.npz", "edge.json"):
            assert (first / name).read_bytes() == (second / name).read_bytes() == (third / name).read_bytes()
        assert loaded.nbytes == model.nbytes and loaded.recipe == model.recipe
        assert list(loaded.item_ids) == list(model.item_ids) and loaded.activation_scales == model.activation_scales
        histories, base = calibration.for_model(model)
        np.testing.assert_array_equal(loaded.score(loaded.encode(histories, base)),
                                      model.score(model.encode(histories, base)))
        arrays = len(np.load(first / "edge.npz").files)
        assert (first / "edge.npz").stat().st_size <= model.nbytes + 400 * arrays  # int4 packed: no hidden bytes
    shared = load_edge_model(tmp_path / "0a")
    assert shared.tensors["item"].left is shared.tensors["message" if kind == "lightgcn" else "ego"].left


def test_save_overwrites_an_existing_folder_and_load_rejects_foreign_ones(tmp_path):
    edge = random_edge("lightgcn")
    save_edge_model(edge, tmp_path / "m")
    (tmp_path / "m" / "recipe.yaml").write_text("passes: []\n")
    save_edge_model(compress(edge, QuantizeConfig(activations=False)), tmp_path / "m")
    assert load_edge_model(tmp_path / "m").nbytes < edge.nbytes and (tmp_path / "m" / "recipe.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folders left behind
    with pytest.raises(CheckpointError, match="not an edge model folder"):
        load_edge_model(tmp_path / "nothing")
    (tmp_path / "m" / "edge.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not an edgegnn edge model"):
        load_edge_model(tmp_path / "m")


def test_int4_packing_round_trips():
    codes = np.random.default_rng(0).integers(-7, 8, size=101).astype(np.int8)
    packed = pack_int4(codes)
    assert packed.dtype == np.uint8 and packed.size == 51
    np.testing.assert_array_equal(unpack_int4(packed, 101), codes)


def test_calibration_needs_users(small_split):
    with pytest.raises(ConfigError) as error:
        Calibration.from_split(small_split, num_users=0)
    assert error.value.field == "calibration.users" and error.value.value == 0
    with pytest.raises(ConfigError, match="calibration.users"):
        Calibration(histories=(), item_ids=np.array(["a"]), popularity=np.zeros(1))
    calibration = Calibration.from_split(small_split, num_users=50, seed=1)
    assert calibration.num_users == 50 and all(len(h) > 0 for h in calibration.histories)
    assert np.array_equal(calibration.users, Calibration.from_split(small_split, num_users=50, seed=1).users)


@pytest.mark.parametrize("precision, code_bytes", [("int8", DIM), ("int4", DIM // 2)])
def test_float16_scales_are_what_the_device_multiplies_by(precision, code_bytes, tmp_path):
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    out = compress(edge, QuantizeConfig(precision=precision, scale_dtype="float16"), calibration=calibration)
    item = out.tensors["item"]
    assert item.scale.dtype == np.float16 and item.nbytes == NUM_ITEMS * (code_bytes + 2)
    scale = item.scale.astype(np.float32)
    error = np.abs(item.to_dense() - edge.tensors["item"].to_dense())
    assert (error <= scale[:, None] / 2 * (1 + 1e-5) + 1e-7).all()  # codes fit the rounded scale
    np.testing.assert_array_equal(item.to_dense(), item.q.astype(np.float32) * scale[:, None])
    np.testing.assert_array_equal(gather_rows(item, USERS[2]), item.to_dense()[USERS[2]])
    user = np.random.default_rng(0).normal(size=(3, DIM)).astype(np.float32)
    np.testing.assert_allclose(matmul_transposed(user, item), user @ item.to_dense().T, rtol=1e-5, atol=1e-5)
    save_edge_model(out, tmp_path / "m")
    loaded = load_edge_model(tmp_path / "m")
    assert loaded.tensors["item"].scale.dtype == np.float16 and loaded.nbytes == out.nbytes
    np.testing.assert_array_equal(loaded.score(loaded.encode(USERS)), out.score(out.encode(USERS)))
    with pytest.raises(ConfigError, match="quantize.scale_dtype"):
        QuantizeConfig(scale_dtype="bfloat16")
