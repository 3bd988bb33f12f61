"""Which rank owns which users and which items: contiguous blocks of renumbered ids, balanced by edges.

Users (and, separately, items) are dealt to ranks in a snake order of falling degree (rank 0,
1, ..., W-1, W-1, ..., 0, ...), so every rank gets ⌈N/W⌉ or ⌊N/W⌋ of them and nearly |R|/W
edges, and are then renumbered so that rank r's are the contiguous ids
bounds[r]..bounds[r+1]-1, in their original order (a rank's training pairs stay sorted as in
the whole data). With one rank the renumbering is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegnn.distributed.context import DistributedError


@dataclass(frozen=True, eq=False)
class BlockPartition:
    """A split of N rows (users, or items) over W ranks.

    Attributes:
        order: int64 [N]; order[v] is the original index of renumbered row v.
        bounds: int64 [W+1]; rank r owns renumbered rows bounds[r]..bounds[r+1]-1.
        edges: int64 [W]; training pairs per rank (the pairs of its rows).
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

    def rows_of(self, rank: int) -> np.ndarray:
        """int64 [N_r]: the original indices of rank r's rows, in renumbered order."""
        return self.order[self.bounds[rank]:self.bounds[rank + 1]]

    def size_of(self, rank: int) -> int:
        """N_r, the rows rank r owns."""
        return int(self.bounds[rank + 1] - self.bounds[rank])

    def owners(self) -> np.ndarray:
        """int64 [N]: the rank owning each original index."""
        owner = np.empty(len(self.order), dtype=np.int64)
        for rank in range(self.world_size):
            owner[self.rows_of(rank)] = rank
        return owner

    def renumbered(self) -> np.ndarray:
        """int64 [N]: the renumbered id of each original index (the inverse of `order`)."""
        inverse = np.empty(len(self.order), dtype=np.int64)
        inverse[self.order] = np.arange(len(self.order))
        return inverse


def partition_users(user_degrees: np.ndarray, world_size: int) -> BlockPartition:
    """Deal users to `world_size` ranks (module docstring); a DistributedError when some rank
    would be left without users or without training pairs.

    Args:
        user_degrees: int64 [U], training pairs per user.
    """
    partition = _deal(user_degrees, world_size, "user")
    if (partition.edges == 0).any():
        empty = int(np.flatnonzero(partition.edges == 0)[0])
        raise DistributedError(f"{world_size} ranks for {int(user_degrees.sum())} training pairs: rank {empty} "
                               "would own none", hint="use fewer ranks")
    return partition


def partition_items(item_degrees: np.ndarray, world_size: int) -> BlockPartition:
    """Deal items to `world_size` ranks as users are dealt; a DistributedError when some rank
    would be left without items (a rank may own items no training pair names).

    Args:
        item_degrees: int64 [I], training pairs per item.
    """
    return _deal(item_degrees, world_size, "item")


def _deal(degrees: np.ndarray, world_size: int, what: str) -> BlockPartition:
    count = len(degrees)
    if world_size > count:
        raise DistributedError(f"{world_size} ranks for {count} {what}{'s' if count != 1 else ''}: "
                               f"a rank would own no {what}s",
                               hint=f"use at most {count} rank{'s' if count != 1 else ''}")
    by_degree = np.argsort(-degrees, kind="stable")
    position = np.arange(count)
    lap, seat = np.divmod(position, world_size)
    rank_of_sorted = np.where(lap % 2 == 0, seat, world_size - 1 - seat)
    owner = np.empty(count, dtype=np.int64)
    owner[by_degree] = rank_of_sorted
    order = np.argsort(owner, kind="stable")              # by rank, then by original index
    counts = np.bincount(owner, minlength=world_size)
    edges = np.bincount(owner, weights=degrees, minlength=world_size).astype(np.int64)
    return BlockPartition(order=order, bounds=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                         edges=edges)


def halo_rows(pair_users: np.ndarray, pair_items: np.ndarray, users: BlockPartition,
              items: BlockPartition) -> tuple[np.ndarray, np.ndarray]:
    """Rows each rank sends to and receives from the other ranks in one halo exchange of the
    propagation (`edgegnn.distributed.halo`): (sent [W], received [W]).

    Rank r receives its halo H_r (the items of its users' pairs) less the items it owns, and
    sends the rows of its own items that the other ranks' halos hold.

    Args:
        pair_users, pair_items: int64 [E] original indices of the unique training pairs.
    """
    world, num_items = users.world_size, len(items.order)
    needed = np.unique(users.owners()[pair_users] * num_items + pair_items)      # (rank, item) halo entries
    wanting, owning = needed // num_items, items.owners()[needed % num_items]
    foreign = wanting != owning
    return (np.bincount(owning[foreign], minlength=world).astype(np.int64),
            np.bincount(wanting[foreign], minlength=world).astype(np.int64))
