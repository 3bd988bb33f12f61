"""`edgegnn update` end to end: the new artifact, its patch and the next model; bad input is one
line on stderr, a non-zero exit and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgegnn.compress.io import save_edge_model
from edgegnn.export import export
from edgegnn.runtime import Recommender
from tests.catalog.conftest import HELD_OUT
from tests.conftest import REPO


@pytest.fixture(scope="module")
def shipped(base_model, tmp_path_factory):
    """(base artifact, its model folder)."""
    tmp = tmp_path_factory.mktemp("cli")
    return (export(base_model, "cpu-x86_64", out_dir=tmp / "base", cpus=(), emulators=None),
            save_edge_model(base_model, tmp / "model"))


def _update(*args) -> subprocess.CompletedProcess:
    return _cli("update", *args)


def test_update_then_remove_chains_through_the_model_it_writes(shipped, new_csv, held_out, tmp_path):
    base, model = shipped
    first = _update(base, "--model", model, "--items", new_csv, "--out", tmp_path / "v2", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["update"]["added"] == HELD_OUT and (tmp_path / "v2.patch").is_file()
    gone = tmp_path / "gone.txt"
    gone.write_text(f"{held_out[0]}\n\n{held_out[1]}\n")
    second = _update(tmp_path / "v2", "--model", report["model"], "--remove", gone, "--out", tmp_path / "v3")
    assert second.returncode == 0, second.stderr
    assert "added 0 items, removed 2" in second.stdout and "% of the new artifact" in second.stdout
    rec = Recommender.open(tmp_path / "v2", patch=tmp_path / "v3.patch")
    assert rec.num_items == report["update"]["items_after"] - 2
    assert not {held_out[0], held_out[1]} & set(rec.item_ids.tolist())


def test_bad_input_is_one_line_and_nothing_is_written(shipped, new_csv, base_model, small_split, tmp_path):
    base, model = shipped
    present = tmp_path / "present.csv"
    present.write_text(f"user,item\n{small_split.train.user_ids[0]},{base_model.item_ids[2]}\n")
    strangers = tmp_path / "strangers.csv"
    strangers.write_text("user,item\nnobody,brand-new\n")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("no-such-item\n")
    cases = [
        (["--items", present], f"present.csv:2: item '{base_model.item_ids[2]}' is already in the catalog"),
        (["--items", strangers], "names unknown users only"),
        (["--items", new_csv, "--remove", unknown], "unknown.txt:1: item 'no-such-item' is not in the catalog"),
        ([], "names no new items and no items to remove"),
    ]
    in_place = _update(base, "--model", model, "--items", new_csv, "--out", base)
    assert in_place.returncode != 0 and "is the artifact being updated" in in_place.stderr
    for extra, fragment in cases:
        result = _update(base, "--model", model, "--out", tmp_path / "new", *extra)
        assert result.returncode != 0 and fragment in result.stderr, (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
        assert not (tmp_path / "new").exists() and not (tmp_path / "new.patch").exists()


def _cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGEGNN_DEBUG"}
    return subprocess.run([sys.executable, "-m", "edgegnn", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def test_apply_patch_updates_a_copy_in_place_and_refuses_another_artifacts_patch(shipped, new_csv, tmp_path):
    import shutil

    base, model = shipped
    made = _update(base, "--model", model, "--items", new_csv, "--out", tmp_path / "v2")
    assert made.returncode == 0, made.stderr
    device = shutil.copytree(base, tmp_path / "device")
    applied = _cli("apply-patch", device, tmp_path / "v2.patch", "--out", device)
    assert applied.returncode == 0, applied.stderr
    assert {p.name: p.read_bytes() for p in device.iterdir()} == {p.name: p.read_bytes()
                                                                  for p in (tmp_path / "v2").iterdir()}
    again = _cli("apply-patch", device, tmp_path / "v2.patch", "--out", tmp_path / "v3")
    assert again.returncode == 1 and "made for another artifact" in again.stderr
    assert "Traceback" not in again.stderr and not (tmp_path / "v3").exists()
