"""Transforms: exact results, purity (inputs untouched), k-core bounds."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.data import Interactions, drop_duplicates, k_core, to_implicit
from edgegnn.data.transforms import reindex
from edgegnn.errors import DataError


def make(users, items, *, ratings=None, timestamps=None, num_users=None, num_items=None):
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    nu = num_users or int(users.max()) + 1
    ni = num_items or int(items.max()) + 1
    return Interactions(
        users, items,
        user_ids=np.array([f"u{k}" for k in range(nu)]),
        item_ids=np.array([f"i{k}" for k in range(ni)]),
        ratings=None if ratings is None else np.asarray(ratings, np.float32),
        timestamps=None if timestamps is None else np.asarray(timestamps, np.int64))


def snapshot(inter):
    return [None if a is None else a.copy() for a in
            (inter.users, inter.items, inter.user_ids, inter.item_ids, inter.ratings,
             inter.timestamps)]


def assert_untouched(inter, before):
    after = snapshot(inter)
    for a, b in zip(after, before):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_to_implicit_keeps_rows_at_or_above_threshold():
    inter = make([0, 0, 1, 2], [0, 1, 1, 2], ratings=[5, 3.5, 4, 1])
    before = snapshot(inter)
    out = to_implicit(inter, 4.0)
    assert out.users.tolist() == [0, 1] and out.items.tolist() == [0, 1]
    assert out.ratings.tolist() == [5, 4]
    assert out.num_users == 3 and out.num_items == 3  # id space kept
    assert_untouched(inter, before)
    with pytest.raises(DataError, match="needs ratings"):
        to_implicit(make([0], [0]), 4.0)


def test_drop_duplicates_keeps_latest_by_time_else_first():
    inter = make([0, 1, 0, 0, 1], [5, 2, 5, 3, 2], ratings=[1, 2, 3, 4, 5],
                 timestamps=[10, 50, 30, 20, 40])
    before = snapshot(inter)
    out = drop_duplicates(inter)
    # (0,5): rows 0 (t=10) and 2 (t=30) -> row 2; (1,2): rows 1 (t=50), 4 (t=40) -> row 1
    assert out.ratings.tolist() == [2, 3, 4]
    assert out.users.tolist() == [1, 0, 0] and out.items.tolist() == [2, 5, 3]
    assert_untouched(inter, before)
    untimed = drop_duplicates(make([0, 1, 0, 0, 1], [5, 2, 5, 3, 2], ratings=[1, 2, 3, 4, 5]))
    assert untimed.ratings.tolist() == [1, 2, 4]


def test_k_core_iterates_until_stable_and_reindexes():
    # Item 3 has 2 rows but one is from user 2, who has only 1 row: removing user 2
    # drops item 3 below 2, which then drops user 1 below 2 (a cascade).
    inter = make([0, 0, 0, 1, 1, 2, 3, 3], [0, 1, 2, 1, 3, 3, 0, 2], num_items=5)
    before = snapshot(inter)
    out = k_core(inter, 2, 2)
    assert sorted(zip(out.user_ids[out.users], out.item_ids[out.items])) == [
        ("u0", "i0"), ("u0", "i2"), ("u3", "i0"), ("u3", "i2")]
    assert out.user_ids.tolist() == ["u0", "u3"] and out.item_ids.tolist() == ["i0", "i2"]
    assert_untouched(inter, before)


def naive_core(pairs, user_k, item_k):
    """Reference: remove one violating row at a time until none is left."""
    pairs = list(pairs)
    while True:
        users, items = {}, {}
        for u, i in pairs:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        bad = next((p for p in pairs if users[p[0]] < user_k or items[p[1]] < item_k), None)
        if bad is None:
            return pairs
        pairs.remove(bad)


def test_k_core_bounds_hold_on_random_data():
    rng = np.random.default_rng(3)
    inter = make(rng.integers(0, 300, 4000), rng.zipf(1.6, 4000) % 500, num_items=500)
    out = k_core(inter, 5, 4)
    assert len(out) > 1000
    assert out.user_degrees().min() >= 5 and out.item_degrees().min() >= 4
    kept = sorted(zip(out.user_ids[out.users], out.item_ids[out.items]))
    pairs = list(zip(inter.user_ids[inter.users], inter.item_ids[inter.items]))
    assert kept == sorted(naive_core(pairs, 5, 4))  # the maximal core, not just some subset
    with pytest.raises(DataError, match="empty"):
        k_core(inter, 10_000, 1)
    with pytest.raises(DataError, match="user_k=-1"):
        k_core(inter, -1, 1)


def test_reindex_is_contiguous_and_keeps_raw_ids():
    inter = make([4, 1, 4], [7, 2, 2], ratings=[1, 2, 3], num_users=6, num_items=9)
    out = reindex(inter)
    assert out.users.tolist() == [1, 0, 1] and out.items.tolist() == [1, 0, 0]
    assert out.user_ids.tolist() == ["u1", "u4"] and out.item_ids.tolist() == ["i2", "i7"]
    assert out.ratings.tolist() == [1, 2, 3]
