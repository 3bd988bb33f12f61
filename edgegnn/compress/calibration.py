"""`Calibration`: representative users whose histories calibrate and check the compression passes.

Static int8 activation scales, items pruning, mixed precision (item popularity) and the
low-rank distillation need to see what real users send to the device. A Calibration holds
a sample of training users' histories (item indices of its own id space), optionally their
base embeddings e_u⁰, and the training popularity of every item. It is an argument of
`compress`, never a config field: a recipe is data-independent, calibration is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegnn.edge_eval import histories_from_csr
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import ConfigError


@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration users.

    Attributes:
        histories: n int64 arrays, each user's items as indices into `item_ids` (non-empty).
        item_ids: [I] raw item ids of the id space the histories use.
        popularity: int64 [I] training interactions per item (mixed precision ranks by it).
        user_base: float32 [n, d] e_u⁰ of these users, or None (encode them as new users).
        users: int64 [n] the users' indices in the split they came from (for reports).
    """

    histories: tuple[np.ndarray, ...]
    item_ids: np.ndarray
    popularity: np.ndarray
    user_base: np.ndarray | None = None
    users: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.histories) == 0:
            raise ConfigError("calibration.users", 0, "need at least one user with a training history")
        if self.user_base is not None and len(self.user_base) != len(self.histories):
            raise ConfigError("calibration.user_base", f"{len(self.user_base)} rows",
                              f"need one row per calibration user ({len(self.histories)})")

    @classmethod
    def from_split(cls, split, num_users: int = 512, seed: int = 0,
                   user_base: np.ndarray | None = None) -> "Calibration":
        """A seeded random sample of `num_users` training users with a history (all if fewer).

        Args:
            split: an `edgegnn.data.Split` (its train interactions are the histories).
            num_users: how many users, >= 1.
            seed: the sample's seed.
            user_base: float32 [U, d] e_u⁰ of every user of the split, or None.
        """
        check_num_users(num_users)
        train_csr = split.train.to_csr()
        candidates = np.flatnonzero(np.diff(train_csr.indptr) > 0)
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(candidates, min(num_users, len(candidates)), replace=False))
        histories = histories_from_csr(train_csr)
        return cls(histories=tuple(histories[u] for u in chosen), item_ids=np.asarray(split.train.item_ids),
                   popularity=split.train.item_degrees(),
                   user_base=None if user_base is None else np.asarray(user_base, np.float32)[chosen],
                   users=chosen)

    @property
    def num_users(self) -> int:
        return len(self.histories)

    def for_model(self, edge: EdgeModel) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Histories as row indices of `edge` (items it dropped are left out) and matching e_u⁰.

        Users left with an empty history are skipped (with their e_u⁰).
        """
        rows = item_rows(self.item_ids, edge.item_ids)
        if rows is None:
            return list(self.histories), self.user_base
        mapped = [rows[h][rows[h] >= 0] for h in self.histories]
        keep = np.array([len(h) > 0 for h in mapped])
        if not keep.any():
            raise ConfigError("calibration.users", 0, "no calibration user has an item this model knows")
        base = None if self.user_base is None else self.user_base[keep]
        return [h for h, k in zip(mapped, keep) if k], base

    def popularity_for(self, edge: EdgeModel) -> np.ndarray:
        """int64 [edge.num_items]: training popularity of each of the model's rows (0 if unknown)."""
        rows = item_rows(self.item_ids, edge.item_ids)
        if rows is None:
            return self.popularity
        out = np.zeros(edge.num_items, dtype=np.int64)
        known = rows >= 0
        out[rows[known]] = self.popularity[known]
        return out


def check_num_users(num_users: int) -> None:
    """A calibration sample needs at least one user."""
    if isinstance(num_users, bool) or not isinstance(num_users, int) or num_users < 1:
        raise ConfigError("calibration.users", num_users, "must be an integer >= 1 (the passes calibrate on them)")


def item_rows(source_ids: np.ndarray, model_ids: np.ndarray) -> np.ndarray | None:
    """int64 [len(source_ids)]: the model row of each source item (-1: not in the model).

    None when both id lists are the same (the common case: no remapping needed).
    """
    if source_ids is model_ids or (len(source_ids) == len(model_ids)
                                   and np.array_equal(np.asarray(source_ids, str), np.asarray(model_ids, str))):
        return None
    index = {str(raw): row for row, raw in enumerate(model_ids)}
    return np.array([index.get(str(raw), -1) for raw in source_ids], dtype=np.int64)
