"""Pure, vectorized clean-up steps on `Interactions`: each returns a new value and never
touches its input.

`to_implicit` and `drop_duplicates` keep the id space (so their results can be compared
row for row); `k_core` and `reindex` compact it to the ids still in use.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgegnn.data.interactions import Interactions
from edgegnn.errors import DataError

logger = logging.getLogger(__name__)


def to_implicit(inter: Interactions, threshold: float) -> Interactions:
    """Keep the rows with `rating >= threshold` (explicit -> implicit feedback).

    The id space is unchanged; follow with `reindex` to drop ids left without rows.
    """
    if inter.ratings is None:
        raise DataError(f"implicit threshold {threshold} needs ratings, and these "
                        "interactions have none")
    if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise DataError(f"implicit threshold {threshold!r} must be a finite number")
    return inter.select(inter.ratings >= threshold)


def drop_duplicates(inter: Interactions) -> Interactions:
    """Keep one row per (user, item) pair: the latest by timestamp if there are
    timestamps (ties: the later row), else the first. Rows keep their input order."""
    if len(inter) == 0:
        return inter.select(np.zeros(0, dtype=np.int64))
    pair = inter.users * np.int64(inter.num_items) + inter.items
    if inter.timestamps is None:
        _, keep = np.unique(pair, return_index=True)
    else:
        order = np.lexsort((inter.timestamps, pair))  # stable: ties keep row order
        sorted_pair = pair[order]
        is_last = np.r_[sorted_pair[1:] != sorted_pair[:-1], True]
        keep = order[is_last]
    return inter.select(np.sort(keep))


def k_core(inter: Interactions, user_k: int, item_k: int) -> Interactions:
    """The largest subset in which every user has >= `user_k` rows and every item
    >= `item_k` rows, with users/items re-indexed to contiguous (raw ids kept).

    Removing a user can push an item below its bound and vice versa, so the filter
    repeats until nothing changes. Duplicate pairs count as separate rows: call
    `drop_duplicates` first if they should not.
    """
    for name, k in (("user_k", user_k), ("item_k", item_k)):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise DataError(f"{name}={k!r} is invalid: must be an integer >= 0")
    keep = np.ones(len(inter), dtype=bool)
    while True:
        user_deg = np.bincount(inter.users[keep], minlength=inter.num_users)
        item_deg = np.bincount(inter.items[keep], minlength=inter.num_items)
        new_keep = keep & (user_deg[inter.users] >= user_k) & (item_deg[inter.items] >= item_k)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    if len(inter) and not keep.any():
        raise DataError(f"the {user_k}/{item_k}-core (users with >= {user_k} and items "
                        f"with >= {item_k} interactions) is empty; lower the minimum "
                        "degrees")
    logger.info("%d/%d-core kept %d of %d interactions", user_k, item_k, int(keep.sum()),
                len(inter))
    return reindex(inter.select(keep))


def reindex(inter: Interactions) -> Interactions:
    """Drop ids without rows and renumber the rest contiguously, keeping their order
    (index i < j before implies i' < j' after) and their raw ids."""
    used_users, users = np.unique(inter.users, return_inverse=True)
    used_items, items = np.unique(inter.items, return_inverse=True)
    return Interactions(
        users=users.reshape(-1).astype(np.int64),
        items=items.reshape(-1).astype(np.int64),
        user_ids=inter.user_ids[used_users],
        item_ids=inter.item_ids[used_items],
        ratings=None if inter.ratings is None else inter.ratings.copy(),
        timestamps=None if inter.timestamps is None else inter.timestamps.copy(),
    )
