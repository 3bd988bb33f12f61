"""`edgegnn profile` and the whole-pipeline `edgegnn quickstart` end to end; one-line errors."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from edgegnn.cli.app import app

runner = CliRunner()


def test_profile_writes_json_and_plot(tiny, tmp_path):
    result = runner.invoke(app, ["profile", str(tiny("cpu-x86_64")), str(tiny("android-litert")), "--batch", "1,2",
                                 "--history-length", "10", "--threads", "1", "--iterations", "10", "--warmup", "2",
                                 "--report", str(tmp_path / "p.json"), "--plot", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "p.json").read_text())
    assert len(data["results"]) == 4 and "definitions" in data
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"        # the suffix it said it would add
    assert "p50" in result.stdout and f"wrote {tmp_path / 'p.png'}" in result.stdout.replace("\n", "")


def test_one_dialect_lists_are_comma_separated_or_repeated_and_json_is_a_flag(tiny):
    args = ["profile", str(tiny("cpu-x86_64")), "--history-len", "10", "--threads", "1", "--iterations", "5",
            "--warmup", "1", "--json"]
    comma = runner.invoke(app, args + ["--batch", "1,2"])
    repeated = runner.invoke(app, args + ["--batch", "1", "--batch", "2"])
    assert comma.exit_code == 0 and repeated.exit_code == 0, comma.output + repeated.output
    batches = [sorted({row["batch"] for row in json.loads(r.stdout)["results"]}) for r in (comma, repeated)]
    assert batches == [[1, 2], [1, 2]]


def _one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and fragment in lines[0], result.stderr
    assert len(lines) <= 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("args,fragment", [
    (["--batch", "0"], "batch='0'"), (["--history-length", "5,0"], "history-length='0'"),
    (["--threads", "x"], "threads"),
])
def test_bad_sweep_values_are_one_line_errors(tiny, args, fragment):
    _one_line_error(runner.invoke(app, ["profile", str(tiny("cpu-x86_64")), *args]), 1, fragment)


def test_a_folder_that_is_not_an_artifact_is_a_one_line_error(tmp_path):
    _one_line_error(runner.invoke(app, ["profile", str(tmp_path), "--iterations", "5"]), 1, "not an edgegnn artifact")


def test_a_runtime_that_is_not_installed_is_exit_3(tiny, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ai_edge_litert" else real(name, *a))
    _one_line_error(runner.invoke(app, ["profile", str(tiny("android-litert"))]), 3, "ai-edge-litert")


def test_quickstart_runs_the_whole_pipeline(tmp_path):
    result = runner.invoke(app, ["quickstart", "--data", "synthetic:users=120,items=90,seed=1", "--epochs", "2",
                                 "--iterations", "10", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["variants"]) == {"fp32", "int8", "lr-int8"}
    assert len(report["artifacts"]) == 6 and len(report["profile"]["results"]) == 6
    assert (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "profile.json").read_text())
    assert {a["name"] for a in saved["artifacts"]} == set(report["artifacts"])
    assert all(a["quality"] and 0 <= a["quality"]["recall@20"] <= 1 for a in saved["artifacts"])


def test_a_damaged_artifact_is_refused_before_any_run_even_without_data(tiny, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny("cpu-x86_64"), copy)
    model = copy / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + bytes([model.read_bytes()[-1] ^ 1]))
    _one_line_error(runner.invoke(app, ["profile", str(copy), "--iterations", "5"]), 3, "sha256 does not match")


def test_output_paths_are_checked_before_the_sweep(tiny, tmp_path):
    _one_line_error(runner.invoke(app, ["profile", str(tiny("cpu-x86_64")), "--report", str(tmp_path)]), 1,
                    "report=")
    _one_line_error(runner.invoke(app, ["profile", str(tiny("cpu-x86_64")), "--plot", str(tmp_path)]), 1,
                    "is a folder")


@pytest.mark.parametrize("command", [["profile"], ["inspect"], ["recommend", "--history", "i1"]])
def test_a_missing_artifact_is_a_user_error(command, tmp_path):
    args = [command[0], str(tmp_path / "nothing"), *command[1:]]
    _one_line_error(runner.invoke(app, args), 1, "no such artifact directory")


def test_the_quickstart_reads_well_at_80_columns(tmp_path):
    """On an 80-column terminal: no line wider, every artifact name whole in the tables, ratios
    against fp32, the next command, and a quiet stderr (no LiteRT banner, no repeated line)."""
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if k != "EDGEGNN_DEBUG"}, "COLUMNS": "80", "TERM": "dumb"}
    done = subprocess.run([sys.executable, "-m", "edgegnn", "quickstart",
                           "--data", "synthetic:users=120,items=90,seed=1",
                           "--epochs", "2", "--iterations", "10", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # a command to run next stays whole (copy-paste), however long its paths; nothing else is wider
    assert max(len(line) for line in lines if not line.startswith("next:")) <= 80
    for name in ("fp32-onnx", "int8-onnx", "lr-int8-onnx", "fp32-tflite", "int8-tflite", "lr-int8-tflite"):
        rows = [line for line in lines if line.split()[:1] == [name] and "vs" not in line.split()[1:2]]
        assert len(rows) == 3, name          # its row in each of the 3 tables, whole
    text = " ".join(done.stdout.split())
    assert "int8-onnx vs fp32-onnx:" in text and "x smaller" in text and "next: edgegnn recommend" in text
    assert "XNNPACK" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == len(set(errors)), done.stderr
