"""The sweep runs each configuration in its own process; the report's table, JSON and PNG."""

from __future__ import annotations

import json
import os

import pytest
from rich.console import Console

from edgegnn.errors import ConfigError
from edgegnn.profile.report import pareto, plot_figure, plot_points, results_table, to_dict, write_json, write_plot
from edgegnn.profile.runner import Sweep, profile


def test_each_configuration_runs_in_a_fresh_process(tiny):
    result = profile([tiny("cpu-x86_64")], sweep=Sweep(batches=(1, 4), iterations=10, warmup=2))
    pids = [row["pid"] for row in result.rows]
    assert [row["batch"] for row in result.rows] == [1, 4]
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_report_table_json_and_png(artifacts, small_split, tmp_path):
    paths = [artifacts("cpu-x86_64", "fp32"), artifacts("android-litert", "int8")]
    result = profile(paths, sweep=Sweep(iterations=10, warmup=2), split=small_split)
    for info in result.artifacts.values():
        assert 0 < info["quality"]["recall@20"] <= 1 and "test split" in info["quality"]["source"]
        # the baseline on the same users: a trained model beats it
        assert 0 < info["quality"]["popularity"]["recall@20"] < info["quality"]["recall@20"]
    data = json.loads(write_json(result, tmp_path / "p.json").read_text())
    defined = set(data["definitions"])
    for row in data["results"]:
        assert set(row) - {"artifact", "path", "status"} <= defined
    png = write_plot(result, tmp_path / "p.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    figure = plot_figure(result)         # the table's units; artifacts named in one legend, not beside points
    size, latency = figure.axes
    assert "KiB" in size.get_xlabel() and "µs" in latency.get_xlabel()
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [*(i["name"] for i in result.artifacts.values()),
                                                                     "Pareto front"]
    assert not size.texts and not latency.texts
    p50_us = sorted(1e3 * p["p50_ms"] for p in plot_points(result))
    assert sorted(float(c.get_offsets()[0][0]) for c in latency.collections) == pytest.approx(p50_us)
    console = Console(record=True, width=160)
    console.print(results_table(result))
    text = console.export_text()
    assert "p50-max: latency of one call" in text and "definitions" in text     # the short legend
    assert all(info["name"] in text for info in result.artifacts.values())
    assert text.count("popularity R@20") == 1        # one source line for the artifacts that share it
    assert to_dict(result)["sweep"]["iterations"] == 10


def test_pareto_keeps_only_unbeaten_points():
    points = [{"name": "a", "recall@20": 0.5, "x": 10}, {"name": "b", "recall@20": 0.4, "x": 5},
              {"name": "c", "recall@20": 0.3, "x": 8}, {"name": "d", "recall@20": 0.5, "x": 12}]
    assert [p["name"] for p in pareto(points, "x")] == ["b", "a"]


def test_a_provider_this_onnxruntime_lacks_is_skipped_with_a_message(tiny):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    result = profile([tiny("cuda"), tiny("cpu-x86_64")], sweep=Sweep(iterations=5, warmup=1))
    info = result.artifacts[str(tiny("cuda"))]
    assert info["status"] == "skipped" and "CUDAExecutionProvider not available" in info["message"]
    assert {row["artifact"] for row in result.rows} == {"cpu-x86_64"}


def test_arm_artifact_without_an_emulator_is_skipped_with_a_message(tiny, monkeypatch):
    monkeypatch.delenv("EDGEGNN_EMULATORS", raising=False)
    result = profile([tiny("arm64-linux")], sweep=Sweep(iterations=5, warmup=1))
    info = result.artifacts[str(tiny("arm64-linux"))]
    assert info["status"] == "skipped" and "no aarch64 emulator" in info["message"] and not result.rows


@pytest.mark.parametrize("field,value", [("batches", (0,)), ("history_lens", (1, 0)), ("threads", ())])
def test_sweep_rejects_empty_or_zero_values(field, value):
    with pytest.raises(ConfigError):
        Sweep(**{field: value})


@pytest.mark.cpu_matrix
def test_arm_artifact_runs_emulated_and_reports_correctness_only(tiny, emulators, monkeypatch):
    from edgegnn.profile.report import LATENCY, config_rows

    monkeypatch.setenv("EDGEGNN_EMULATORS", str(emulators.root))
    result = profile([tiny("arm64-linux")], sweep=Sweep(iterations=5, warmup=1))
    info = result.artifacts[str(tiny("arm64-linux"))]
    assert info["status"] == "emulated" and info["correct"] is True
    assert result.rows[0]["machine"] == "aarch64"
    assert "emu" in config_rows(result, LATENCY)[0]
