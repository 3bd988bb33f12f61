"""Train / validation / test splits of one `Interactions`.

All splits are per user, so every user the model is evaluated on has training history,
and all share the input's id space. A held-out row whose item (or user) never occurs in
train cannot be scored by a model that learned from train: such rows are dropped and
counted in `Split.skipped` (never silently removed from the id space).
"""

from __future__ import annotations

import logging

import numpy as np

from edgegnn.data.interactions import Interactions, Split
from edgegnn.errors import DataError

logger = logging.getLogger(__name__)


def split_random(inter: Interactions, *, test_ratio: float = 0.2, valid_ratio: float = 0.0,
                 seed: int = 0) -> Split:
    """Hold out a random share of each user's interactions.

    Per user with n interactions: `round(n * test_ratio)` rows go to test and
    `round(n * valid_ratio)` to valid, at least one each (when the ratio is > 0) as long
    as one row stays in train. Users with a single interaction stay wholly in train.
    The same `seed` gives the same split.

    Returns:
        `Split` with `valid=None` when `valid_ratio == 0`.
    """
    _check_ratio("test_ratio", test_ratio, allow_zero=False)
    _check_ratio("valid_ratio", valid_ratio, allow_zero=True)
    if test_ratio + valid_ratio >= 1:
        raise DataError(f"test_ratio + valid_ratio = {test_ratio + valid_ratio:g} must be "
                        "< 1 (some rows must stay in train)")
    rng = np.random.default_rng(seed)
    rank, degree = _rank_within_user(inter.users, rng.random(len(inter)))
    n_test = _holdout_counts(degree, test_ratio, room=degree - 1)
    n_valid = _holdout_counts(degree, valid_ratio, room=degree - 1 - n_test)
    is_test = rank < n_test
    is_valid = ~is_test & (rank < n_test + n_valid)
    return _assemble(inter, is_test, is_valid if valid_ratio > 0 else None)


def split_leave_last_out(inter: Interactions, *, valid: bool = True) -> Split:
    """Hold out each user's latest interaction (test) and the one before it (valid).

    Users with fewer than 3 interactions (2 when `valid=False`) stay wholly in train.
    Equal timestamps keep file order: the later row counts as the later interaction.
    """
    if inter.timestamps is None:
        raise DataError("leave-last-out needs timestamps, and these interactions have "
                        "none; use the random split instead")
    rank, degree = _rank_within_user(inter.users, inter.timestamps)
    from_end = degree - 1 - rank
    min_degree = 3 if valid else 2
    is_test = (from_end == 0) & (degree >= min_degree)
    is_valid = (from_end == 1) & (degree >= min_degree) if valid else None
    return _assemble(inter, is_test, is_valid)


def add_validation(split: Split, *, ratio: float = 0.1, seed: int = 0) -> Split:
    """Carve a per-user random validation set out of `split.train`; test is untouched.

    For formats that ship only train/test (LightGCN text). Per user, `round(n * ratio)`
    train rows (at least one, as long as one stays) move to valid. If that would take
    every train row of an item, one of them stays in train, so that no test row loses its
    item: the published test set keeps every row.
    """
    if split.valid is not None:
        raise DataError("the split already has a validation set")
    _check_ratio("valid ratio", ratio, allow_zero=False)
    train = split.train
    rng = np.random.default_rng(seed)
    rank, degree = _rank_within_user(train.users, rng.random(len(train)))
    is_valid = rank < _holdout_counts(degree, ratio, room=degree - 1)
    is_valid &= ~_last_rows_of_lost_items(train.items, is_valid, train.num_items)
    return Split(train=train.select(~is_valid), valid=train.select(is_valid),
                 test=split.test, source=split.source, skipped=dict(split.skipped))


def drop_unseen(train: Interactions, held: Interactions, name: str
                ) -> tuple[Interactions, dict[str, int]]:
    """Drop rows of `held` whose user or item never occurs in `train`.

    Returns:
        (the kept rows, counts by reason): keys "{name} rows with a user unseen in train"
        and "{name} rows with an item unseen in train" (a row with both counts as the
        user), present only when non-zero.
    """
    seen_users = np.bincount(train.users, minlength=held.num_users) > 0
    seen_items = np.bincount(train.items, minlength=held.num_items) > 0
    bad_user = ~seen_users[held.users]
    bad_item = ~seen_items[held.items] & ~bad_user
    counts = {}
    for reason, mask in (("a user", bad_user), ("an item", bad_item)):
        if mask.any():
            key = f"{name} rows with {reason} unseen in train"
            counts[key] = int(mask.sum())
            logger.info("dropped %d %s", counts[key], key)     # `data info` shows the counts; not per command
    if not counts:
        return held, counts
    return held.select(~(bad_user | bad_item)), counts


# ----------------------------------------------------------------------------- helpers

def _check_ratio(name: str, value: float, *, allow_zero: bool) -> None:
    low = 0 <= value if allow_zero else 0 < value
    if not (isinstance(value, (int, float)) and low and value < 1):
        allowed = "[0, 1)" if allow_zero else "(0, 1)"
        raise DataError(f"{name}={value!r} is invalid: must be in {allowed}")


def _rank_within_user(users: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its 0-based rank by `keys` among its user's rows (ties: row order), and
    its user's number of rows. Both int64 [n]."""
    n = len(users)
    order = np.lexsort((keys, users))  # stable: equal keys keep row order
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    degree = np.bincount(users)[users]
    return rank, degree


def _holdout_counts(degree: np.ndarray, ratio: float, *, room: np.ndarray) -> np.ndarray:
    """Rows to hold out per row's user: round(n * ratio), at least 1 if ratio > 0,
    at most `room` (so that train keeps a row)."""
    if ratio == 0:
        return np.zeros_like(degree)
    wanted = np.maximum(np.floor(degree * ratio + 0.5).astype(np.int64), 1)
    return np.clip(wanted, 0, np.maximum(room, 0))


def _last_rows_of_lost_items(items: np.ndarray, held: np.ndarray, num_items: int
                             ) -> np.ndarray:
    """bool [n]: one held row per item that would otherwise have no row left outside
    `held` (so the item keeps a train row)."""
    left = np.bincount(items[~held], minlength=num_items)
    lost_rows = np.flatnonzero(held & (left[items] == 0))
    _, first = np.unique(items[lost_rows], return_index=True)
    keep = np.zeros(len(items), dtype=bool)
    keep[lost_rows[first]] = True
    return keep


def _assemble(inter: Interactions, is_test: np.ndarray, is_valid: np.ndarray | None
              ) -> Split:
    """Build the Split from row masks, dropping held-out rows unseen in train."""
    held = is_test if is_valid is None else is_test | is_valid
    train = inter.select(~held)
    skipped: dict[str, int] = {}
    valid = None
    if is_valid is not None:
        valid, counts = drop_unseen(train, inter.select(is_valid), "valid")
        skipped.update(counts)
    test, counts = drop_unseen(train, inter.select(is_test), "test")
    skipped.update(counts)
    return Split(train=train, test=test, valid=valid, skipped=skipped)
