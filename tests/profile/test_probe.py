"""The probe: one configuration in one process, every defined figure, sane relations between them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgegnn.profile.probe import FIELDS, percentile
from tests.conftest import REPO


@pytest.mark.parametrize("target", ["cpu-x86_64", "android-litert"])
def test_probe_prints_every_defined_figure_with_sane_relations(tiny, target):
    done = subprocess.run([sys.executable, "-m", "edgegnn.profile.probe", str(tiny(target)), "--batch", "2",
                           "--history-len", "30", "--iterations", "40", "--warmup", "5"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("{"), done.stdout
    row = json.loads(lines[0])
    assert set(FIELDS) <= set(row), set(FIELDS) - set(row)
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["peak_rss"] >= row["rss"] > 0 and row["baseline_rss"] > 0
    assert row["load_peak_growth"] >= row["load_rss_growth"]
    assert row["throughput_users_per_s"] > 0 and row["load_ms"] > 0 and row["first_inference_ms"] > 0
    assert (row["batch"], row["history_len"], row["iterations"]) == (2, 30, 40)
    manifest = json.loads((tiny(target) / "manifest.json").read_text())
    assert row["disk_bytes"] == manifest["files"][manifest["model_file"]]["bytes"]
    assert len(row["check"]) == 20


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99), percentile(values, 100)) == \
        (50.0, 90.0, 99.0, 100.0)
    assert percentile([3.0], 99) == 3.0
