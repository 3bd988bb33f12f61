"""Anomalous interactions: users and items of extreme degree, duplicate floods, bursts.

Found on the interactions as loaded (after the implicit threshold, before duplicate rows are
collapsed, so a flood is still visible), reported by `edgegnn data info` and removed by
`--drop-anomalies`:

    extreme user     a user with more than DEGREE_FACTOR x the 99th percentile of the users'
                     degrees (distinct items), and at least MIN_EXTREME: a crawler, a bot. The rule
                     is relative to the tail, not the median: real degrees are heavy-tailed.
    extreme item     an item touched by more than ITEM_SHARE of the users (and at least
                     MIN_EXTREME): an onboarding or default item carries no preference. Popularity
                     alone is no anomaly: item degrees are Zipf-like (on Gowalla a robust z-score
                     of log-degree > 5 flags 804 ordinary items, and the top item has 10x the
                     p99 degree).
    flood            a (user, item) pair repeated in at least FLOOD_REPEATS rows.
    burst            at least BURST_ROWS rows of one user within BURST_SECONDS (timestamps only):
                     faster than a person clicks.

A row can be anomalous for several reasons; `drop_anomalies` counts each dropped row once, under
the first reason in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegnn.data.interactions import Interactions

DEGREE_FACTOR = 10.0
ITEM_SHARE = 0.9
MIN_EXTREME = 100
FLOOD_REPEATS = 20
BURST_ROWS = 30
BURST_SECONDS = 60


@dataclass(frozen=True)
class Anomalies:
    """Which rows are anomalous, by reason (bool [n] each), and the ids behind them."""

    extreme_users: np.ndarray
    extreme_items: np.ndarray
    flood_rows: np.ndarray
    burst_rows: np.ndarray
    user_rows: np.ndarray      # rows of an extreme user
    item_rows: np.ndarray      # rows of an extreme item
    flooded_pairs: int

    def reasons(self) -> dict[str, np.ndarray]:
        """Row masks by reason, in the order rows are attributed."""
        return {f"rows of users with > {DEGREE_FACTOR:g}x the p99 degree": self.user_rows,
                f"rows of items touched by > {ITEM_SHARE:.0%} of users": self.item_rows,
                f"rows of user-item pairs repeated >= {FLOOD_REPEATS} times": self.flood_rows,
                f"rows in bursts (>= {BURST_ROWS} rows of a user within {BURST_SECONDS} s)": self.burst_rows}

    @property
    def any_row(self) -> np.ndarray:
        return self.user_rows | self.item_rows | self.flood_rows | self.burst_rows

    def summary(self) -> dict[str, int]:
        """Counts for a report: ids and rows per reason (JSON-ready ints)."""
        return {"extreme-degree users": int(len(self.extreme_users)),
                "extreme-degree items": int(len(self.extreme_items)),
                "flooded user-item pairs": int(self.flooded_pairs),
                "rows in floods": int(self.flood_rows.sum()),
                "rows in bursts": int(self.burst_rows.sum()),
                "anomalous rows": int(self.any_row.sum())}


def find_anomalies(inter: Interactions) -> Anomalies:
    """The anomalies of `inter` (module docstring): masks over its rows."""
    pair = inter.users * np.int64(inter.num_items) + inter.items
    unique_pairs, pair_index, repeats = np.unique(pair, return_inverse=True, return_counts=True)
    distinct_users = unique_pairs // np.int64(inter.num_items)
    distinct_items = unique_pairs % np.int64(inter.num_items)
    user_degrees = np.bincount(distinct_users, minlength=inter.num_users)
    extreme_users = extreme_degree(user_degrees)
    item_degrees = np.bincount(distinct_items, minlength=inter.num_items)
    limit = max(ITEM_SHARE * (user_degrees > 0).sum(), MIN_EXTREME)
    extreme_items = np.flatnonzero(item_degrees > limit).astype(np.int64)
    flood = repeats[pair_index] >= FLOOD_REPEATS
    return Anomalies(extreme_users=extreme_users, extreme_items=extreme_items, flood_rows=flood,
                     burst_rows=burst_rows(inter), user_rows=np.isin(inter.users, extreme_users),
                     item_rows=np.isin(inter.items, extreme_items),
                     flooded_pairs=int((repeats >= FLOOD_REPEATS).sum()))


def extreme_degree(degrees: np.ndarray) -> np.ndarray:
    """Indices with degree > DEGREE_FACTOR x p99 of the non-zero degrees and > MIN_EXTREME."""
    present = degrees[degrees > 0]
    if len(present) == 0:
        return np.zeros(0, np.int64)
    limit = max(DEGREE_FACTOR * np.percentile(present, 99), MIN_EXTREME)
    return np.flatnonzero(degrees > limit).astype(np.int64)


def burst_rows(inter: Interactions) -> np.ndarray:
    """Rows inside a burst: a window of BURST_ROWS consecutive rows of one user (by time) that
    spans less than BURST_SECONDS. All False without timestamps."""
    rows = np.zeros(len(inter), bool)
    span = BURST_ROWS - 1
    if inter.timestamps is None or len(inter) <= span:
        return rows
    order = np.lexsort((inter.timestamps, inter.users))
    users, times = inter.users[order], inter.timestamps[order]
    starts = np.flatnonzero((users[span:] == users[:-span]) & (times[span:] - times[:-span] < BURST_SECONDS))
    cover = np.zeros(len(inter) + 1, np.int64)          # each window covers rows start .. start + span
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + span + 1, -1)
    rows[order] = np.cumsum(cover[:-1]) > 0
    return rows


def drop_anomalies(inter: Interactions, anomalies: Anomalies | None = None) -> tuple[Interactions, dict[str, int]]:
    """`inter` without its anomalous rows (`anomalies`, found now if not given), and the rows
    dropped per reason (each row once)."""
    anomalies = find_anomalies(inter) if anomalies is None else anomalies
    taken = np.zeros(len(inter), bool)
    dropped = {}
    for reason, mask in anomalies.reasons().items():
        fresh = mask & ~taken
        if fresh.any():
            dropped[reason] = int(fresh.sum())
        taken |= mask
    return inter.select(np.flatnonzero(~taken)), dropped

