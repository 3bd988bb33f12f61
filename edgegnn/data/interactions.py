"""The `Interactions` value and the `Split` that bundles train/valid/test.

An `Interactions` holds one (user, item) pair per row, as contiguous 0-based indices,
plus the raw ids those indices stand for. Every split of a data set shares one id space:
index `i` means the same item in train, valid and test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgegnn.data.provenance import DataRecord

from edgegnn.errors import DataError


@dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions in a shared index space.

    Attributes:
        users: int64 [n], user index of each interaction, in [0, num_users).
        items: int64 [n], item index of each interaction, in [0, num_items).
        user_ids: [num_users] raw user ids (str), `user_ids[u]` is the raw id of user `u`.
        item_ids: [num_items] raw item ids (str).
        ratings: float32 [n] or None (explicit feedback, if the source had it).
        timestamps: int64 [n] or None (seconds, if the source had them).
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.users)
        if len(self.items) != n:
            raise DataError(f"users has {n} rows but items has {len(self.items)}")
        for name in ("ratings", "timestamps"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise DataError(f"{name} has {len(column)} rows, expected {n}")
        if n and (self.users.min() < 0 or self.users.max() >= len(self.user_ids)):
            raise DataError(f"user index out of range [0, {len(self.user_ids)})")
        if n and (self.items.min() < 0 or self.items.max() >= len(self.item_ids)):
            raise DataError(f"item index out of range [0, {len(self.item_ids)})")

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    def select(self, rows: np.ndarray) -> "Interactions":
        """A new value with only `rows` (bool mask or int indices); same id space."""
        return Interactions(
            users=self.users[rows],
            items=self.items[rows],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            ratings=None if self.ratings is None else self.ratings[rows],
            timestamps=None if self.timestamps is None else self.timestamps[rows],
        )

    def to_csr(self):
        """Binary user x item matrix as `scipy.sparse.csr_matrix` [num_users, num_items]."""
        import scipy.sparse as sp

        matrix = sp.csr_matrix(
            (np.ones(len(self), dtype=np.float32), (self.users, self.items)),
            shape=(self.num_users, self.num_items),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def user_degrees(self) -> np.ndarray:
        """int64 [num_users]: interactions per user."""
        return np.bincount(self.users, minlength=self.num_users)

    def item_degrees(self) -> np.ndarray:
        """int64 [num_items]: interactions per item."""
        return np.bincount(self.items, minlength=self.num_items)


@dataclass(frozen=True, eq=False)
class Split:
    """Train / optional validation / test interactions over one id space.

    Attributes:
        train: the interactions the model learns from (and the graph it propagates over).
        test: held-out interactions for the final metrics.
        valid: held-out interactions for early stopping, or None.
        source: where the data came from (a path or "synthetic(...)"), for reports.
        skipped: counts of input rows dropped on purpose, by reason (e.g.
            {"test item unseen in train": 12}); reported by `edgegnn data info` and train.
        record: which data and options made this split (`edgegnn.data.provenance.DataRecord`;
            set by `load_dataset`), or None for a split built in code.
        anomalies: counts of what `edgegnn.data.anomalies` found in the loaded rows (set by
            `load_dataset`; the rows are dropped only with drop_anomalies, then in `skipped`).
    """

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    source: str = ""
    skipped: dict[str, int] = field(default_factory=dict)
    record: "DataRecord | None" = None
    anomalies: dict[str, int] = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return self.train.num_users

    @property
    def num_items(self) -> int:
        return self.train.num_items
