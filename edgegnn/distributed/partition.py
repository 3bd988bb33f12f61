"""Which rank owns which users: contiguous blocks of renumbered user ids, balanced by edges.

Users are dealt to ranks in a snake order of falling degree (rank 0, 1, ..., W-1, W-1, ..., 0,
...), so every rank gets ⌈U/W⌉ or ⌊U/W⌋ users and nearly |R|/W edges, and are then renumbered
so that rank r's users are the contiguous ids bounds[r]..bounds[r+1]-1, in their original
order (a rank's training pairs stay sorted as in the whole data). With one rank the
renumbering is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegnn.distributed.context import DistributedError


@dataclass(frozen=True, eq=False)
class UserPartition:
    """A split of U users over W ranks.

    Attributes:
        order: int64 [U]; order[v] is the original index of renumbered user v.
        bounds: int64 [W+1]; rank r owns renumbered users bounds[r]..bounds[r+1]-1.
        edges: int64 [W]; training pairs per rank.
    """

    order: np.ndarray
    bounds: np.ndarray
    edges: np.ndarray

    @property
    def world_size(self) -> int:
        return len(self.bounds) - 1

    @property
    def block_rows(self) -> int:
        """The largest block: every rank's rows are padded to it in a checkpoint."""
        return int(np.diff(self.bounds).max())

    def users_of(self, rank: int) -> np.ndarray:
        """int64 [U_r]: the original indices of rank r's users, in renumbered order."""
        return self.order[self.bounds[rank]:self.bounds[rank + 1]]

    def owners(self) -> np.ndarray:
        """int64 [U]: the rank owning each original user index."""
        owner = np.empty(len(self.order), dtype=np.int64)
        for rank in range(self.world_size):
            owner[self.users_of(rank)] = rank
        return owner


def partition_users(user_degrees: np.ndarray, world_size: int) -> UserPartition:
    """Deal users to `world_size` ranks (module docstring); a DistributedError when some rank
    would be left without users or without training pairs.

    Args:
        user_degrees: int64 [U], training pairs per user.
    """
    num_users = len(user_degrees)
    if world_size > num_users:
        raise DistributedError(f"{world_size} ranks for {num_users} user{'s' if num_users != 1 else ''}: "
                               "a rank would own no users",
                               hint=f"use at most {num_users} rank{'s' if num_users != 1 else ''}")
    by_degree = np.argsort(-user_degrees, kind="stable")
    position = np.arange(num_users)
    lap, seat = np.divmod(position, world_size)
    rank_of_sorted = np.where(lap % 2 == 0, seat, world_size - 1 - seat)
    owner = np.empty(num_users, dtype=np.int64)
    owner[by_degree] = rank_of_sorted
    order = np.argsort(owner, kind="stable")              # by rank, then by original index
    counts = np.bincount(owner, minlength=world_size)
    edges = np.bincount(owner, weights=user_degrees, minlength=world_size).astype(np.int64)
    if (edges == 0).any():
        empty = int(np.flatnonzero(edges == 0)[0])
        raise DistributedError(f"{world_size} ranks for {int(user_degrees.sum())} training pairs: rank {empty} "
                               "would own none", hint="use fewer ranks")
    return UserPartition(order=order, bounds=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                         edges=edges)
