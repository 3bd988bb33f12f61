"""The retrieval pass: inverted lists over the final item table, nprobe chosen on calibration
users for a top-k overlap with the exact scan, and the simulation scoring only the probed lists."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from edgegnn.compress import (
    Calibration,
    LowRankConfig,
    ProductQuantizeConfig,
    QuantizeConfig,
    RetrievalConfig,
    compress,
    configs_from_entries,
    load_edge_model,
    recipe_yaml,
    save_edge_model,
)
from edgegnn.compress.inverted import auto_lists
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.retrieval import CENTROIDS, ROWS, exact_top, overlap
from edgegnn.tensors import DenseTensor
from tests.compress import random_calibration, random_edge, same_snapshot, snapshot
from tests.export import models


@pytest.fixture(scope="module")
def clustered():
    """A LightGCN EdgeModel of 4,000 items in 30 uneven clusters (d = 16) and 200 calibration users
    whose histories come from one cluster each (so their e_u point at it)."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((30, 16)) * 3
    owner = rng.choice(30, 4000, p=rng.dirichlet(np.ones(30) * 0.7))
    item = (centers[owner] + rng.standard_normal((4000, 16))).astype(np.float32)
    edge = EdgeModel("lightgcn", {"message": DenseTensor((item * 0.3).astype(np.float32)), "item": DenseTensor(item)},
                     np.array([f"i{i}" for i in range(4000)]), params={"a0": 0.25})
    picked = rng.choice(np.unique(owner), 200)
    histories = tuple(rng.choice(np.flatnonzero(owner == c), rng.integers(1, 6)) for c in picked)
    return edge, Calibration(histories=histories, item_ids=edge.item_ids, popularity=np.ones(4000, np.int64))


def test_nprobe_is_the_smallest_power_of_two_reaching_the_overlap(clustered):
    edge, calibration = clustered
    out = compress(edge, RetrievalConfig(lists=64, overlap=0.95), calibration=calibration)
    record = out.params["retrieval"]
    curve = {int(n): v for n, v in record["curve"].items()}
    assert record["nprobe"] < 64 and curve[record["nprobe"]] >= 0.95 == record["target_overlap"]
    assert all(v < 0.95 for n, v in curve.items() if n < record["nprobe"])
    assert list(curve) == sorted(curve) and all(n & (n - 1) == 0 for n in curve)
    assert record["overlap"] == curve[record["nprobe"]] and record["calibration_users"] == 200
    # the recorded overlap is what the simulation gets: its top 20 against the exact scan's
    histories, base = calibration.for_model(out)
    found = np.argsort(-out.scores(histories, base), axis=1, kind="stable")[:, :20]
    exact = exact_top(edge.tensors["item"].to_dense(), edge.encode(histories, base), 20)
    assert overlap(found, exact) == pytest.approx(record["overlap"], abs=1e-6)


def test_the_simulation_scores_only_the_probed_lists(clustered):
    edge, calibration = clustered
    out = compress(edge, RetrievalConfig(lists=64, nprobe=4))
    histories = list(calibration.histories[:8])
    scores, full = out.scores(histories), edge.scores(histories)
    scored = np.isfinite(scores)
    capacity = out.tensors[ROWS].shape[1]
    assert (scored.sum(axis=1) <= 4 * capacity).all() and (scored.sum(axis=1) > 0).all()
    np.testing.assert_array_equal(scores[scored], full[scored])          # the lists' items keep their scores
    probed = out.tensors[CENTROIDS].to_dense() @ edge.encode(histories).T
    best = np.argmax(probed, axis=0)                                      # the nearest list is always probed
    rows = out.tensors[ROWS].values
    for user, list_ in enumerate(best):
        members = rows[list_][rows[list_] >= 0]
        assert scored[user, members].all()
    probed_all = compress(edge, RetrievalConfig(lists=64, nprobe=64))     # every list: the exact scores
    np.testing.assert_array_equal(probed_all.scores(histories), full)


def test_the_pass_is_pure_deterministic_and_saves(clustered, tmp_path):
    edge, calibration = clustered
    config = RetrievalConfig(lists=32, overlap=0.9, seed=3)
    assert configs_from_entries(yaml.safe_load(recipe_yaml([config]))["passes"]) == [config]
    before = snapshot(edge)
    out = compress(edge, config, calibration=calibration)
    assert same_snapshot(before, snapshot(edge)) and out.recipe == (config.recipe_entry(),)
    again = compress(edge, config, calibration=calibration)
    save_edge_model(out, tmp_path / "a")
    save_edge_model(again, tmp_path / "b")
    for name in ("edge.npz", "edge.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    loaded = load_edge_model(tmp_path / "a")
    np.testing.assert_array_equal(loaded.scores(list(calibration.histories[:5])),
                                  out.scores(list(calibration.histories[:5])))
    assert loaded.params["retrieval"] == out.params["retrieval"]


def test_it_indexes_a_low_rank_table_in_its_left_factor():
    edge = random_edge("lightgcn")
    calibration = random_calibration(edge)
    low = compress(edge, LowRankConfig(rank=4), QuantizeConfig(precision="int8"), RetrievalConfig(lists=8, nprobe=8),
                   calibration=calibration)
    plain = compress(edge, LowRankConfig(rank=4), QuantizeConfig(precision="int8"), calibration=calibration)
    histories, base = calibration.for_model(low)
    np.testing.assert_array_equal(low.scores(histories, base), plain.scores(histories, base))   # all lists probed


def test_it_indexes_int8_rows_and_must_come_last():
    edge, calibration = random_edge("lightgcn"), None
    calibration = random_calibration(edge)
    int8 = compress(edge, QuantizeConfig(precision="int8"), RetrievalConfig(lists=8, nprobe=2),
                    calibration=calibration)
    histories, base = calibration.for_model(int8)
    scores = int8.score(int8.encode(histories[:4], base[:4]))
    assert np.isfinite(scores).any(axis=1).all() and not np.isfinite(scores).all()
    with pytest.raises(ConfigError, match="the retrieval pass must be the last pass"):
        compress(int8, QuantizeConfig(precision="int4"), calibration=calibration)
    with pytest.raises(ConfigError, match="the retrieval pass must be the last pass"):
        compress(int8, RetrievalConfig(lists=8, nprobe=2))


@pytest.mark.parametrize("make, config, fragment", [
    (lambda: random_edge("lightgcn"), RetrievalConfig(), "choosing nprobe needs calibration users"),
    (lambda: random_edge("lightgcn"), RetrievalConfig(lists=500, nprobe=1), "retrieval.lists=500 is invalid: at most"),
    (lambda: random_edge("lightgcn"), RetrievalConfig(lists=0, nprobe=999), "nprobe=999 is invalid: an integer in"),
    (lambda: models.graph_filter("fp32"), RetrievalConfig(nprobe=1), "scores items outside the lists"),
])
def test_bad_settings_are_one_line(make, config, fragment):
    with pytest.raises(ConfigError) as error:
        compress(make(), config)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_bad_configs_name_the_field():
    for build, fragment in ((lambda: RetrievalConfig(overlap=0.0), "retrieval.overlap=0.0"),
                            (lambda: RetrievalConfig(slack=0.9), "retrieval.slack=0.9"),
                            (lambda: RetrievalConfig(nprobe=-1), "retrieval.nprobe=-1"),
                            (lambda: RetrievalConfig(lists=2.5), "retrieval.lists=2.5"),
                            (lambda: RetrievalConfig(lists=8, nprobe=9), "retrieval.nprobe=9 is invalid: at most")):
        with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
            build()
    with pytest.raises(ConfigError, match="the item rows must be dense or int8/int4"):
        compress(random_edge("lightgcn"), ProductQuantizeConfig(subvectors=4, centroids=8),
                 RetrievalConfig(nprobe=1), calibration=random_calibration(random_edge("lightgcn")))


def test_auto_lists_grow_as_the_root_of_the_catalog():
    assert [auto_lists(n) for n in (1, 100, 41_000, 1_000_000)] == [1, 16, 512, 2048]
    assert dataclasses.replace(RetrievalConfig(), lists=0).lists == 0
