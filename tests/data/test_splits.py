"""Splits: deterministic, disjoint, covering, per-user guarantees, unseen rows counted."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edgegnn.data import Interactions, Split, add_validation, split_leave_last_out, split_random
from edgegnn.errors import DataError


def make(users, items, timestamps=None):
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    return Interactions(users, items,
                        user_ids=np.arange(users.max() + 1).astype(str),
                        item_ids=np.arange(items.max() + 1).astype(str),
                        timestamps=None if timestamps is None else np.asarray(timestamps))


def random_data(n=3000, users=200, items=150, seed=0):
    """Each row has a unique timestamp, which serves as a row id below."""
    rng = np.random.default_rng(seed)
    return make(rng.integers(0, users, n), rng.integers(0, items, n), np.arange(n))


def row_ids(part):
    return [] if part is None else part.timestamps.tolist()


def test_random_split_disjoint_covering_deterministic():
    inter = random_data()
    split = split_random(inter, test_ratio=0.2, valid_ratio=0.1, seed=7)
    ids = [row_ids(split.train), row_ids(split.valid), row_ids(split.test)]
    everything = sum(ids, [])
    assert len(everything) == len(set(everything))  # disjoint
    assert len(everything) + sum(split.skipped.values()) == len(inter)  # covering
    assert 0.17 < len(ids[2]) / len(inter) < 0.23 and 0.07 < len(ids[1]) / len(inter) < 0.13
    again = split_random(inter, test_ratio=0.2, valid_ratio=0.1, seed=7)
    assert row_ids(again.test) == ids[2] and row_ids(again.valid) == ids[1]
    other = split_random(inter, test_ratio=0.2, valid_ratio=0.1, seed=8)
    assert row_ids(other.test) != ids[2]
    assert split.num_items == inter.num_items and split.test.num_users == inter.num_users


def test_random_split_per_user_guarantees():
    # user 0: 1 row; user 1: 2 rows; user 2: 10 rows; users 3..12: one row per item, so
    # every item stays in train and nothing is skipped.
    users = [0, 1, 1] + [2] * 10 + list(range(3, 13))
    items = [0, 0, 1] + list(range(10)) + list(range(10))
    inter = make(users, items, np.arange(len(users)))
    for seed in range(5):
        split = split_random(inter, test_ratio=0.2, seed=seed)
        train_users = Counter(split.train.users.tolist())
        test_users = Counter(split.test.users.tolist())
        assert train_users[0] == 1 and test_users[0] == 0  # a single row stays in train
        assert train_users[1] == 1 and test_users[1] == 1  # >= 2 rows: at least one each
        assert train_users[2] == 8 and test_users[2] == 2  # round(10 * 0.2)
        assert all(train_users[u] == 1 for u in range(3, 13))
        assert split.valid is None and split.skipped == {}


def test_random_split_counts_items_unseen_in_train():
    # Every user has one shared item and one item nobody else has: when the unique item
    # is the held-out one, the test row cannot be scored and must be counted.
    users = np.repeat(np.arange(50), 2)
    items = np.ravel(np.column_stack([np.zeros(50, int), np.arange(1, 51)]))
    inter = make(users, items, np.arange(100))
    split = split_random(inter, test_ratio=0.5, seed=1)
    dropped = split.skipped["test rows with an item unseen in train"]
    assert 0 < dropped < 50 and len(split.test) + dropped == 50
    seen = set(split.train.items.tolist())
    assert set(split.test.items.tolist()) <= seen
    assert split.num_items == 51  # the id space is unchanged


def test_leave_last_out():
    #        user 0: 4 rows        user 1: 2 rows    user 2: 3 rows, tie at t=5
    inter = make([0, 0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 2, 3, 0, 1, 0, 1, 2],
                 [40, 10, 30, 20, 1, 2, 5, 5, 1])
    split = split_leave_last_out(inter)
    assert list(zip(split.test.users, split.test.items)) == [(0, 0), (2, 1)]
    assert list(zip(split.valid.users, split.valid.items)) == [(0, 2), (2, 0)]
    assert sorted(zip(split.train.users, split.train.items)) == [(0, 1), (0, 3), (1, 0),
                                                                 (1, 1), (2, 2)]
    no_valid = split_leave_last_out(inter, valid=False)
    assert no_valid.valid is None
    assert list(zip(no_valid.test.users, no_valid.test.items)) == [(0, 0), (1, 1), (2, 1)]
    with pytest.raises(DataError, match="needs timestamps"):
        split_leave_last_out(make([0], [0]))


def test_add_validation_keeps_test_and_every_train_item():
    base = split_random(random_data(seed=4), test_ratio=0.2, seed=0)
    out = add_validation(base, ratio=0.25, seed=2)
    assert row_ids(out.test) == row_ids(base.test)
    assert sorted(row_ids(out.train) + row_ids(out.valid)) == sorted(row_ids(base.train))
    assert 0.2 < len(out.valid) / len(base.train) < 0.3
    assert set(out.train.items.tolist()) == set(base.train.items.tolist())
    assert np.all(out.train.user_degrees()[base.train.user_degrees() >= 1] >= 1)
    assert row_ids(add_validation(base, ratio=0.25, seed=2).valid) == row_ids(out.valid)
    with pytest.raises(DataError, match="already has a validation set"):
        add_validation(out)


def test_add_validation_never_takes_an_items_last_train_row():
    # Item 1..20 each occur once in train: moving such a row would orphan its test rows.
    train = make(np.repeat(np.arange(20), 2), np.ravel(np.column_stack(
        [np.zeros(20, int), np.arange(1, 21)])), np.arange(40))
    base = Split(train=train, test=train.select(np.arange(0, 40, 2)))
    out = add_validation(base, ratio=0.5, seed=0)
    assert set(out.train.items.tolist()) == set(range(21))
    assert out.skipped == {}


@pytest.mark.parametrize("kwargs", [{"test_ratio": 0}, {"test_ratio": 1.2},
                                    {"valid_ratio": -0.1}, {"test_ratio": 0.6,
                                                            "valid_ratio": 0.4}])
def test_random_split_rejects_bad_ratios(kwargs):
    with pytest.raises(DataError, match="ratio"):
        split_random(random_data(n=10), **kwargs)
