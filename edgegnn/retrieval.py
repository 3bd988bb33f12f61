"""Inverted lists: an approximate retrieval stage for big catalogs (touch a few % of the items).

An exact query scores every item: at 1M items x 64 int8 that is 64 MB streamed per query,
bounded by memory bandwidth. Inverted lists (IVF) score only the items of the lists nearest
the user vector:

Offline (`build_lists`), for item vectors v_i [I, d] and L lists:
    1. k-means (`edgegnn.compress.kmeans`: seeded, deterministic; k-means++ seeding from 16·L
       of them) of a sample of at most `sample` items into centroids c_l [L, d];
    2. every item goes to one list, balanced to a fixed capacity C = ceil(slack · I / L):
       in rounds r = 0 .. choices-1 each unplaced item asks for its r-th nearest centroid and
       the nearest askers take the list's free places; the few left after the rounds go to the
       lists with most room. A fixed C makes the lists one dense [L, C] block: a device
       graph gathers whole lists with one Gather and no ragged shapes.
    Stored: centroids float32 [L, d], rows int32 [L, C] (item rows; -1 pads a list).
On the device (the exported graphs; `keep_candidates` in numpy), for a user vector e_u [d]:
    s_l = e_u · c_l; the `nprobe` lists of largest s_l; the exact score e_u · v_i of each of
    their items (nprobe · C of them); the top k.
Probing by inner product with the centroids serves inner-product scores: a list whose
centroid points along e_u holds the items that score high on it. `overlap` measures what the
approximation costs: the share of the exact top k that the lists return; the retrieval pass
(`edgegnn.compress.inverted`) picks the smallest nprobe that reaches a target overlap on
calibration users (never test users).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from edgegnn.errors import ConfigError

log = logging.getLogger(__name__)
PAD = -1
# An EdgeModel indexed by the retrieval pass holds its lists as two tensors and params["retrieval"].
CENTROIDS, ROWS = "list_centroids", "list_rows"
SEEDING_POINTS_PER_LIST = 16     # k-means++ seeds the lists from a sample this many times L (kmeans)


@dataclass(frozen=True, eq=False)
class InvertedLists:
    """Items grouped into lists for the approximate stage.

    Attributes:
        centroids: float32 [L, d].
        rows: int32 [L, C] item rows of each list, PAD (-1) after the list's last item.
    """

    centroids: np.ndarray
    rows: np.ndarray

    @property
    def num_lists(self) -> int:
        return len(self.centroids)

    @property
    def capacity(self) -> int:
        return int(self.rows.shape[1])

    def probe(self, queries: np.ndarray, nprobe: int) -> np.ndarray:
        """int64 [B, nprobe]: the lists of largest e_u · c_l per query (ties: the lower list)."""
        check_nprobe(nprobe, self.num_lists)
        scores = np.asarray(queries, np.float32) @ self.centroids.T
        return np.argsort(-scores, axis=1, kind="stable")[:, :nprobe]

    def candidates(self, queries: np.ndarray, nprobe: int) -> np.ndarray:
        """int64 [B, nprobe · C]: the item rows of each query's probed lists, PAD where a list is short."""
        return self.rows[self.probe(queries, nprobe)].reshape(len(queries), -1).astype(np.int64)

    def with_items(self, vectors: np.ndarray, first_row: int) -> "InvertedLists":
        """The lists with new items (rows first_row, first_row + 1, ..., vectors [n, d]) placed in
        free slots: each in its nearest list with room (`balanced_assignment` over the free slots,
        at the end of the list); the centroids stay as they are."""
        counts = (self.rows >= 0).sum(axis=1)
        free = self.capacity - counts
        if len(vectors) > free.sum():
            raise ConfigError("lists", f"{int(free.sum())} free slots",
                              f"room for {len(vectors)} new items; index the items again (compress --lists)")
        assignment = balanced_assignment(np.asarray(vectors, np.float32), self.centroids, free,
                                         min(8, self.num_lists))
        rows = self.rows.copy()
        order = np.argsort(assignment, kind="stable")
        owner = assignment[order]
        first = np.searchsorted(owner, np.arange(self.num_lists))
        rows[owner, counts[owner] + np.arange(len(order)) - first[owner]] = first_row + order
        return InvertedLists(self.centroids, rows)

    def renumbered(self, order: np.ndarray) -> "InvertedLists":
        """The lists after the table's rows were reordered to `order` (new row j is old row
        order[j]; old rows not in `order` were removed): each list keeps its items, renumbered,
        the removed ones' slots freed (PAD moved after the list's items)."""
        new_of_old = np.full(max(int(self.rows.max()), int(np.max(order, initial=-1))) + 1, PAD, np.int64)
        new_of_old[np.asarray(order, np.int64)] = np.arange(len(order))
        rows = np.where(self.rows >= 0, new_of_old[np.maximum(self.rows, 0)], PAD)
        packed = np.take_along_axis(rows, np.argsort(rows < 0, axis=1, kind="stable"), axis=1)
        return InvertedLists(self.centroids, packed.astype(np.int32))

    def keep_candidates(self, queries: np.ndarray, nprobe: int, scores: np.ndarray) -> np.ndarray:
        """`scores` [B, I] with every item outside the probed lists of its query at -inf."""
        rows = self.candidates(queries, nprobe)
        out = np.full(scores.shape, -np.inf, np.float32)
        batch = np.repeat(np.arange(len(rows)), rows.shape[1]).reshape(rows.shape)
        real = rows >= 0
        out[batch[real], rows[real]] = scores[batch[real], rows[real]]
        return out


def in_lists(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values [I, ...] laid out list by list, [L, C, ...]: slot (l, c) holds values[rows[l, c]],
    zeros where the list is padded (a device graph gathers whole lists in one contiguous read)."""
    out = np.zeros(rows.shape + values.shape[1:], values.dtype)
    real = rows >= 0
    out[real] = values[rows[real]]
    return out


def model_lists(tensors, params) -> tuple[InvertedLists, int] | None:
    """The lists and nprobe of an EdgeModel's tensors and params (retrieval pass), or None."""
    if ROWS not in tensors:
        return None
    lists = InvertedLists(np.asarray(tensors[CENTROIDS].values, np.float32),
                          np.asarray(tensors[ROWS].values, np.int32))      # .values: to_dense() is float
    return lists, int(params["retrieval"]["nprobe"])


def check_nprobe(nprobe, num_lists: int) -> None:
    if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or not 1 <= nprobe <= num_lists:
        raise ConfigError("nprobe", nprobe, f"an integer in [1, {num_lists}] (the number of lists)")


def build_lists(vectors: np.ndarray, lists: int, *, slack: float = 1.25, sample: int = 131_072,
                choices: int = 8, iterations: int = 10, seed: int = 0) -> InvertedLists:
    """Inverted lists of `vectors` [I, d] (module docstring).

    Args:
        lists: L, 1 <= L <= I.
        slack: capacity C = ceil(slack · I / L); > 1 lets the lists follow the clusters' sizes.
        sample: k-means runs on at most this many items (seeded draw).
        choices: nearest centroids an item may be placed in before the fallback.
    """
    vectors = np.asarray(vectors, np.float32)
    count = len(vectors)
    if isinstance(lists, bool) or not isinstance(lists, (int, np.integer)) or not 1 <= lists <= max(count, 1):
        raise ConfigError("lists", lists, f"an integer in [1, {count}] (the number of items)")
    if not slack >= 1.0:
        raise ConfigError("slack", slack, "at least 1.0 (the lists must hold every item)")
    from edgegnn.compress.kmeans import kmeans  # here: edge_model imports this module

    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(count, min(sample, count), replace=False))
    centroids, _ = kmeans(vectors[picked], int(lists), seed=seed, iterations=iterations,
                          seeding_points=SEEDING_POINTS_PER_LIST * int(lists))
    capacity = math.ceil(slack * count / lists)
    assignment = balanced_assignment(vectors, centroids, capacity, choices)
    return InvertedLists(centroids, _list_rows(assignment, int(lists), capacity))


def balanced_assignment(vectors: np.ndarray, centroids: np.ndarray, capacity, choices: int) -> np.ndarray:
    """int64 [I]: a list for every item, none holding more than `capacity` (module docstring;
    an int, or int [L] slots free in each list)."""
    nearest, distance = _nearest_centroids(vectors, centroids, min(choices, len(centroids)))
    assignment = np.full(len(vectors), -1, np.int64)
    free = np.broadcast_to(np.asarray(capacity, np.int64), (len(centroids),)).copy()
    for r in range(nearest.shape[1]):
        asking = np.flatnonzero(assignment < 0)
        if not len(asking):
            break
        wanted = nearest[asking, r]
        order = np.lexsort((asking, distance[asking, r], wanted))           # by list, nearest first
        asking, wanted = asking[order], wanted[order]
        first = np.r_[0, np.flatnonzero(wanted[1:] != wanted[:-1]) + 1]
        rank = np.arange(len(wanted)) - np.repeat(first, np.diff(np.r_[first, len(wanted)]))
        taken = rank < free[wanted]
        assignment[asking[taken]] = wanted[taken]
        free -= np.bincount(wanted[taken], minlength=len(centroids))
    left = np.flatnonzero(assignment < 0)
    if len(left):
        log.info("%d of %d items found no room among their %d nearest lists", len(left), len(vectors), choices)
        slots = np.repeat(np.argsort(-free, kind="stable"), np.sort(free)[::-1])[:len(left)]
        assignment[left] = slots
    return assignment


def _nearest_centroids(vectors: np.ndarray, centroids: np.ndarray, choices: int, chunk: int = 16_384):
    """(lists int64 [I, choices], squared distances float32 [I, choices]), nearest first."""
    norms = (centroids ** 2).sum(1)[None, :]
    lists, distances = [], []
    for start in range(0, len(vectors), chunk):
        part = vectors[start:start + chunk]
        d2 = norms - 2.0 * (part @ centroids.T) + (part ** 2).sum(1)[:, None]
        near = np.argpartition(d2, choices - 1, axis=1)[:, :choices] if choices < d2.shape[1] else \
            np.tile(np.arange(d2.shape[1]), (len(part), 1))
        near_d = np.take_along_axis(d2, near, axis=1)
        order = np.lexsort((near, near_d), axis=1)
        lists.append(np.take_along_axis(near, order, axis=1))
        distances.append(np.take_along_axis(near_d, order, axis=1))
    return np.concatenate(lists).astype(np.int64), np.concatenate(distances).astype(np.float32)


def _list_rows(assignment: np.ndarray, lists: int, capacity: int) -> np.ndarray:
    """int32 [L, C]: each list's items in row order, PAD after them."""
    order = np.argsort(assignment, kind="stable")
    owner = assignment[order]
    first = np.searchsorted(owner, np.arange(lists))
    slot = np.arange(len(order)) - first[owner]
    rows = np.full((lists, capacity), PAD, np.int32)
    rows[owner, slot] = order
    return rows


def exact_top(table: np.ndarray, queries: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """int64 [B, k]: the exact top k rows of queries [B, d] · table [I, d]ᵀ (best first)."""
    table = np.asarray(table, np.float32)
    out = []
    for start in range(0, len(queries), chunk):
        scores = np.asarray(queries[start:start + chunk], np.float32) @ table.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(out).astype(np.int64)


def overlap(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / k (rows [B, k] each; PAD never counts)."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[f >= 0].tolist()) & set(e.tolist())) / k for f, e in zip(found, exact)]))

