"""The item index: row <-> raw id, memory-mapped, exact for any UTF-8 id."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgegnn.runtime.errors import ArtifactError
from edgegnn.runtime.items import FILES, ItemIndex, write_item_index

IDS = ["b", "a", "ä-café", "10", "1", "", "zz top", "9"]


def _open(directory, ids) -> ItemIndex:
    write_item_index(directory, ids)
    return ItemIndex.open(directory, {"items_file": "items.npy", "num_items": len(ids)})


def test_rows_and_ids_round_trip(tmp_path):
    index = _open(tmp_path, IDS)
    assert len(index) == len(IDS)
    assert [index.id_of(r) for r in range(len(IDS))] == IDS
    assert index.rows_of(IDS).tolist() == list(range(len(IDS)))
    assert index.all_ids().tolist() == IDS


def test_unknown_ids_and_longer_ids_sharing_a_prefix_are_not_found(tmp_path):
    index = _open(tmp_path, IDS)
    assert index.rows_of(["nope", "ä-café-au-lait", "1000000", "b"]).tolist() == [-1, -1, -1, 0]


def test_the_files_are_memory_mapped_and_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    index = _open(tmp_path / "a", IDS)
    assert isinstance(index.ids, np.memmap)
    write_item_index(tmp_path / "b", IDS)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_artifacts_with_items_json_still_open(tmp_path):
    (tmp_path / "items.json").write_text(json.dumps(IDS))
    index = ItemIndex.open(tmp_path, {"num_items": len(IDS)})
    assert index.rows_of(["ä-café", "x"]).tolist() == [2, -1]
    with pytest.raises(ArtifactError, match="expected a list of 3 item ids"):
        ItemIndex.open(tmp_path, {"num_items": 3})


def test_bad_index_files_are_artifact_errors(tmp_path):
    write_item_index(tmp_path, IDS)
    with pytest.raises(ArtifactError, match="do not hold 5 items"):
        ItemIndex.open(tmp_path, {"items_file": "items.npy", "num_items": 5})
    (tmp_path / "items_sorted.npy").write_bytes(b"not numpy")
    with pytest.raises(ArtifactError, match="items_sorted.npy: cannot read the item index"):
        ItemIndex.open(tmp_path, {"items_file": "items.npy", "num_items": len(IDS)})


def test_ids_ending_in_nul_are_refused(tmp_path):
    with pytest.raises(ArtifactError, match="NUL"):
        write_item_index(tmp_path, ["a\0"])


def test_lookups_match_a_dict_of_every_id(tmp_path):
    """rows_of / row_list / ids_of against a plain dict, on known ids, unknown ones, ids longer than
    the catalog's width, prefixes, ids ending in NUL, and integers."""
    rng = np.random.default_rng(0)
    catalog = IDS + [f"id-{i}" for i in rng.permutation(500)]
    index = _open(tmp_path, catalog)
    row_of = {raw: row for row, raw in enumerate(catalog)}
    asked = catalog + ["nope", "id-1000000", "id-", "a\0", "b\0\0", "ä", "ä-caf", 10, 9, "zz top!", "\0"]
    for _ in range(5):
        query = [asked[i] for i in rng.integers(0, len(asked), 40)]
        expected = [row_of.get(str(x), -1) for x in query]
        assert index.rows_of(query).tolist() == expected
        assert index.row_list([str(x) for x in query]) == expected
        rows = rng.integers(0, len(catalog), 30)
        assert index.ids_of(rows.tolist()) == index.ids_of(rows) == [catalog[r] for r in rows] == \
            [index.id_of(r) for r in rows]
    assert index.rows_of([]).tolist() == [] and index.row_list([]) == [] and index.ids_of([]) == []


def test_lookups_copy_nothing_of_the_mapped_files(tmp_path):
    index = _open(tmp_path, IDS)
    for view, mapped in ((index._by_row, index.ids), (index._sorted, None), (index._rows, None)):
        assert type(view) is np.ndarray and not view.flags.owndata
        if mapped is not None:
            assert np.shares_memory(view, mapped)
