"""Synthetic data: determinism, shape, power law, and a signal beyond popularity."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.data import make_synthetic, split_random
from edgegnn.errors import DataError


@pytest.fixture(scope="module")
def default():
    return make_synthetic()


def test_deterministic_for_a_seed(default):
    again = make_synthetic()
    assert np.array_equal(default.users, again.users)
    assert np.array_equal(default.items, again.items)
    assert np.array_equal(default.timestamps, again.timestamps)
    other = make_synthetic(seed=1)
    assert len(other) != len(default) or not np.array_equal(other.items, default.items)


def test_shape_ids_degrees_and_no_duplicates(default):
    assert default.num_users == 2000 and default.num_items == 1000
    assert default.user_ids[:2].tolist() == ["u0", "u1"]
    assert default.item_ids[-1] == "i999"
    degrees = default.user_degrees()
    assert degrees.min() >= 3 and 18 < degrees.mean() < 22
    assert np.percentile(degrees, 99) > 3 * np.median(degrees)  # a heavy tail
    pairs = default.users * default.num_items + default.items
    assert len(np.unique(pairs)) == len(default)


def test_timestamps_increase_per_user(default):
    assert np.all(np.diff(default.users) >= 0)  # rows sorted by user
    same_user = default.users[1:] == default.users[:-1]
    assert np.all(np.diff(default.timestamps)[same_user] > 0)
    assert default.timestamps.dtype == np.int64


def test_item_popularity_is_a_power_law(default):
    degrees = np.sort(default.item_degrees())[::-1]
    top_share = degrees[:100].sum() / degrees.sum()
    assert top_share > 0.4  # uniform popularity would give ~0.1
    flat = make_synthetic(num_users=300, num_items=200, popularity_exponent=0.0)
    flat_degrees = np.sort(flat.item_degrees())[::-1]
    assert flat_degrees[:20].sum() / flat_degrees.sum() < 0.25


def test_collaborative_signal_beats_popularity():
    """Item-kNN (a stand-in for a graph model) must clearly beat popularity."""
    split = split_random(make_synthetic(num_users=600, num_items=400), seed=0)
    train, test = split.train.to_csr(), split.test.to_csr().toarray()
    popularity = np.asarray(train.sum(0)).ravel()
    norm = np.sqrt(popularity) + 1e-9
    similarity = (train.T @ train).toarray() / norm[:, None] / norm[None, :]
    np.fill_diagonal(similarity, 0)

    def recall_at_20(scores):
        scores = np.where(train.toarray() > 0, -np.inf, scores)
        top = np.argsort(-scores, axis=1)[:, :20]
        hits = np.take_along_axis(test, top, axis=1).sum(1)
        relevant = test.sum(1)
        has = relevant > 0
        return float(np.mean(hits[has] / np.minimum(relevant[has], 20)))

    pop = recall_at_20(np.broadcast_to(popularity, train.shape).astype(float))
    knn = recall_at_20(np.asarray(train @ similarity))
    assert knn > 1.5 * pop


@pytest.mark.parametrize("kwargs, fragment", [
    ({"num_users": 0}, "num_users=0"),
    ({"num_items": 20, "num_clusters": 30}, "num_clusters=30"),
    ({"mean_degree": 1}, "mean_degree=1"),
    ({"num_users": 2.5}, "must be an integer"),
])
def test_rejects_bad_parameters(kwargs, fragment):
    with pytest.raises(DataError, match=fragment):
        make_synthetic(**kwargs)


def test_tiny_catalogue_still_gives_three_distinct_items():
    inter = make_synthetic(num_users=5, num_items=3, num_clusters=1)
    assert inter.user_degrees().tolist() == [3] * 5
