"""The item index of an artifact: table row <-> raw item id, memory-mapped.

Three .npy files (numpy's own format: a header, then the raw array; `np.load(mmap_mode="r")`
maps it without copying, so opening costs no memory and a lookup touches a few pages):

    items.npy               S{w} [I]  the raw id of table row r, UTF-8, NUL-padded to w bytes
    items_sorted.npy        S{w} [I]  the same ids in byte order (binary search)
    items_sorted_rows.npy   int32 [I] the row of each sorted id

Row -> id reads items.npy; id -> row is `np.searchsorted` over items_sorted.npy (log2(I) pages
touched per id). A JSON list of Python strings, as artifacts had before (items.json, still read), costs ~65
bytes per id in memory: 65 MB of a 1M-item catalog, a third of its int8 model.
Ids must not end in NUL characters (fixed-width bytes drop them); exports check it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgegnn.runtime.errors import ArtifactError

IDS, SORTED, SORTED_ROWS = "items.npy", "items_sorted.npy", "items_sorted_rows.npy"
FILES = (IDS, SORTED, SORTED_ROWS)
LEGACY = "items.json"


def encode_ids(item_ids) -> np.ndarray:
    """S{w} [I]: the ids as UTF-8 bytes (w = the longest, at least 1)."""
    encoded = [str(x).encode("utf-8") for x in item_ids]
    if any(e.endswith(b"\0") for e in encoded):
        raise ArtifactError("an item id ends in a NUL character, which the item index cannot store")
    width = max([len(e) for e in encoded] + [1])
    return np.array(encoded, dtype=f"S{width}")


def write_item_index(directory: Path, item_ids) -> list[str]:
    """Write the three index files into `directory`; returns their names (deterministic bytes)."""
    ids = encode_ids(item_ids)
    order = np.argsort(ids, kind="stable").astype(np.int32)
    for name, array in ((IDS, ids), (SORTED, ids[order]), (SORTED_ROWS, order)):
        np.save(directory / name, array, allow_pickle=False)
    return list(FILES)


class ItemIndex:
    """Row <-> raw id lookups over the (memory-mapped) index files.

    Lookups are vectorized over a query's ids and hold no state: safe to share between threads.
    (No cache of recent ids: measured, benchmarks/bench_runtime_overhead.py, a 4096-id cache saved
    ~23 µs a call for a returning user and cost ~40 µs for a new one, its dicts cold in memory
    after each graph run.)

    Attributes:
        ids: S{w} [I] (bytes) raw id by row; decode with `id_of`.
    """

    def __init__(self, ids: np.ndarray, sorted_ids: np.ndarray, sorted_rows: np.ndarray) -> None:
        self.ids = ids
        # Lookups go through plain ndarray views of the same (mapped) buffers: numpy.memmap runs
        # Python code (__getitem__, __array_finalize__) on every index and every ufunc result, a
        # few microseconds each, several times per query. The views copy nothing.
        self._by_row, self._sorted, self._rows = (a.view(np.ndarray) for a in (ids, sorted_ids, sorted_rows))

    @classmethod
    def open(cls, directory: str | Path, manifest: dict) -> "ItemIndex":
        directory = Path(directory)
        if manifest.get("items_file", LEGACY) == LEGACY:
            return cls.from_ids(_read_legacy(directory / LEGACY, manifest["num_items"]))
        arrays = [_load(directory / name) for name in FILES]
        ids, sorted_ids, rows = arrays
        if not (len(ids) == len(sorted_ids) == len(rows) == manifest["num_items"]):
            raise ArtifactError(f"{directory}: the item index files do not hold {manifest['num_items']} items each")
        return cls(ids, sorted_ids, rows)

    @classmethod
    def from_ids(cls, item_ids) -> "ItemIndex":
        """An in-memory index of `item_ids` (row order)."""
        ids = encode_ids(item_ids)
        order = np.argsort(ids, kind="stable").astype(np.int32)
        return cls(ids, ids[order], order)

    def __len__(self) -> int:
        return len(self.ids)

    def id_of(self, row: int) -> str:
        return self._by_row[row].decode("utf-8")

    def ids_of(self, rows) -> list[str]:
        """The raw id of each row (a list of ints or int [N]), in one gather."""
        return list(map(bytes.decode, self._by_row[rows].tolist()))      # tolist drops the NUL padding

    def rows_of(self, item_ids) -> np.ndarray:
        """int64 [N]: the row of each raw id (str or int), -1 for ids not in the catalog."""
        return np.array(self.row_list([str(x) for x in item_ids]), dtype=np.int64)

    def row_list(self, item_ids: list[str]) -> list[int]:
        """`rows_of` for ids that are already strings, as a list (what a query loops over): one
        binary search over the sorted ids for all of them.

        The candidate each id lands on is compared with the id's own bytes in Python, where
        `tolist` has stripped the NUL padding: an id cut to the catalog's width (longer than every
        catalog id) or one ending in NUL cannot match.
        """
        encoded = [x.encode("utf-8") for x in item_ids]
        if len(self) == 0 or not encoded:
            return [-1] * len(encoded)
        position = self._sorted.searchsorted(np.array(encoded, dtype=self._sorted.dtype))   # [N] in [0, I]
        found = self._sorted.take(position, mode="clip").tolist()           # clip: past the end is a miss
        rows = self._rows.take(position, mode="clip").tolist()
        return [row if match == raw else -1 for row, match, raw in zip(rows, found, encoded)]

    def all_ids(self) -> np.ndarray:
        """str [I]: every raw id by row (materialized: for evaluation, not for queries)."""
        return np.char.decode(np.asarray(self.ids), "utf-8")


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read the item index ({exc.__class__.__name__})") from None


def _read_legacy(path: Path, num_items: int) -> list[str]:
    """items.json of earlier artifacts: a JSON list of the raw ids by row."""
    try:
        items = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: cannot read the item map ({exc.__class__.__name__})") from None
    if not isinstance(items, list) or len(items) != num_items:
        raise ArtifactError(f"{path}: expected a list of {num_items} item ids")
    return [str(x) for x in items]
