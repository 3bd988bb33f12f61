"""How users and items are dealt to ranks: contiguous renumbered blocks, balanced by edges."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.distributed.context import DistributedError, rendezvous_from_env
from edgegnn.distributed.partition import partition_items, partition_users


def test_one_rank_keeps_the_original_numbering():
    degrees = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    partition = partition_users(degrees, 1)
    np.testing.assert_array_equal(partition.order, np.arange(8))
    assert partition.bounds.tolist() == [0, 8] and partition.edges.tolist() == [degrees.sum()]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_blocks_are_contiguous_sorted_and_balanced(world):
    degrees = np.random.default_rng(0).zipf(1.8, size=5000).clip(max=400)
    partition = partition_users(degrees, world)
    np.testing.assert_array_equal(np.sort(partition.order), np.arange(5000))      # a permutation
    sizes = np.diff(partition.bounds)
    assert sizes.max() - sizes.min() <= 1
    for rank in range(world):
        users = partition.rows_of(rank)
        assert np.all(np.diff(users) > 0)                   # original order kept inside a block
        assert partition.edges[rank] == degrees[users].sum()
        assert (partition.owners()[users] == rank).all()
    assert partition.edges.max() / partition.edges.mean() < 1.05


def test_a_rank_without_users_or_pairs_is_refused():
    with pytest.raises(DistributedError, match="3 ranks for 2 users: a rank would own no users"):
        partition_users(np.array([4, 2]), 3)
    with pytest.raises(DistributedError, match="rank 1 would own none"):
        partition_users(np.array([5, 0]), 2)


def test_items_are_dealt_like_users_and_a_rank_may_own_only_untrained_items():
    degrees = np.array([7, 0, 3, 0, 5, 1])
    partition = partition_items(degrees, 2)
    assert np.diff(partition.bounds).tolist() == [3, 3]
    np.testing.assert_array_equal(partition.order[partition.renumbered()], np.arange(6))
    assert partition.edges.sum() == degrees.sum()
    assert partition_items(np.array([4, 0, 0]), 3).edges.tolist() == [4, 0, 0]      # not refused
    with pytest.raises(DistributedError, match="3 ranks for 2 items: a rank would own no items"):
        partition_items(np.array([4, 2]), 3)


def test_rendezvous_variables_are_checked_by_name():
    good = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "RANK": "1", "WORLD_SIZE": "2"}
    assert rendezvous_from_env(good) == (1, 2)
    with pytest.raises(DistributedError, match="RANK, WORLD_SIZE are not set"):
        rendezvous_from_env({"MASTER_ADDR": "h", "MASTER_PORT": "1"})
    with pytest.raises(DistributedError, match="WORLD_SIZE='two' is not an integer"):
        rendezvous_from_env({**good, "WORLD_SIZE": "two"})
    with pytest.raises(DistributedError, match="RANK=2 and WORLD_SIZE=2"):
        rendezvous_from_env({**good, "RANK": "2"})


def test_the_first_difference_between_two_ranks_is_named_by_its_key():
    from edgegnn.distributed.context import first_difference

    here = {"record": {"files": {"a.csv": "1f" * 32}, "spec": "/d/a.csv"}, "users": 40}
    there = {"record": {"files": {"a.csv": "2e" * 32}, "spec": "/d/a.csv"}, "users": 40}
    assert first_difference(here, there) == ("record.files.a.csv: '1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f..."
                                             " here, '2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e... on rank 0")
    assert first_difference({"users": 41}, {"users": 40}) == "users: 41 here, 40 on rank 0"
