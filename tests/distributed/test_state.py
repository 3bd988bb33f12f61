"""Which DCP checkpoints a job may resume from, and where a resharded resume finds its rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgegnn.distributed.context import DistributedError
from edgegnn.distributed.partition import partition_items
from edgegnn.distributed.state import check_resumable, padded_rows

JOB = {"world_size": 2, "partition": "ab12", "card": {"name": "c"}, "data": {"train_pairs": "ff"}}
PATH = Path("/ck/epoch-000004")


def written(**changes) -> dict:
    return {"job": {**JOB, **changes}}


def test_the_same_job_or_another_world_size_may_resume_and_the_writers_world_size_is_returned():
    assert check_resumable(PATH, written(), JOB) == 2
    assert check_resumable(PATH, written(world_size=4, partition="9999"), JOB) == 4     # resharded


@pytest.mark.parametrize("changes,message", [
    ({"card": {"name": "other"}}, "written by a job with another model card \\(card.name: 'c' here, 'other' there\\)"),
    ({"data": {"train_pairs": "00"}}, "written by a job with another data"),
    ({"partition": "9999"}, "another partition of users and items \\(9999 there, ab12 here\\)"),
    ({"world_size": None}, "progress.json names no world size"),
])
def test_a_checkpoint_of_another_job_is_refused_by_what_differs(changes, message):
    with pytest.raises(DistributedError, match=message):
        check_resumable(PATH, written(**changes), JOB)


def test_padded_rows_find_each_original_row_in_the_writers_layout():
    degrees = np.array([5, 1, 4, 0, 3, 2, 9])
    partition = partition_items(degrees, 3)                     # blocks of 3, 2, 2 rows, padded to 3
    padded = padded_rows(partition, np.arange(7)).numpy()
    layout = np.full(3 * partition.block_rows, -1)
    for rank in range(3):
        rows = partition.rows_of(rank)
        layout[rank * partition.block_rows:rank * partition.block_rows + len(rows)] = rows
    np.testing.assert_array_equal(layout[padded], np.arange(7))
