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
