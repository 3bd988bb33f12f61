"""`edgegnn export | inspect | recommend` end to end, and one-line errors with the right exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgegnn.cli.app import app
from tests.conftest import REPO

runner = CliRunner()
DATA = "synthetic:users=1000,items=800,seed=3"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGEGNN_DEBUG"}
    return subprocess.run([sys.executable, "-m", "edgegnn", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


def test_export_inspect_recommend(trained, tmp_path):
    _, model = trained
    out = tmp_path / "android"
    result = runner.invoke(app, ["export", str(model), "--target", "android-litert", "--data", DATA,
                                 "--max-users", "200", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert exported["out"] == str(out) and exported["manifest"]["metrics"]["users"] == 200
    result = runner.invoke(app, ["inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verified"] is True
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0 and "android-litert" in result.output and "checksums verified" in result.output
    from edgegnn.cpu import host_cpu
    assert "verified on CPUs" in result.output and host_cpu()["level"] in result.output
    assert "armv8.0" in result.output and "not verified" in result.output      # no emulator in this test
    result = runner.invoke(app, ["recommend", str(out), "--history", "i12,i55,i301,unknown", "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert len(answer["items"]) == 5 and answer["skipped"] == ["unknown"] and not answer["fallback"]
    assert not {"i12", "i55", "i301"} & {row["item"] for row in answer["items"]}
    result = runner.invoke(app, ["recommend", str(out), "--history", "", "--k", "3"])
    assert result.exit_code == 0 and "most popular" in result.output


def test_export_without_data_measures_on_the_model_s_own_split(trained, tmp_path):
    _, model = trained
    result = runner.invoke(app, ["export", str(model), "--target", "cpu-x86_64", "--max-users", "100",
                                 "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["metrics"]["users"] == 100 and manifest["metrics"]["data"]["same_as_training"] is True
    assert manifest["data"]["spec"] == DATA and manifest["popularity"] is not None
    other = runner.invoke(app, ["export", str(model), "--target", "cpu-x86_64", "--data", DATA, "--seed", "9",
                                "--out", str(tmp_path / "b")])
    assert other.exit_code == 1 and "not the data the model was trained on (seed 0 -> 9)" in other.stderr
    assert not (tmp_path / "b").exists()


def test_export_of_a_model_without_a_data_record_warns_that_it_has_no_popularity(tmp_path):
    from edgegnn.compress import save_edge_model
    from tests.export import models

    save_edge_model(models.lightgcn("fp32"), tmp_path / "edge")
    result = runner.invoke(app, ["export", str(tmp_path / "edge"), "--target", "cpu-x86_64",
                                 "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "no popularity fallback" in result.stderr
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["metrics"] is None


@pytest.mark.parametrize("args, code, fragment", [
    (["export", "nope.pt", "--target", "tpu-v9", "--out", "OUT"], 1, "target='tpu-v9' is invalid: unknown target"),
    (["export", "nope.pt", "--target", "cpu-x86_64", "--out", "OUT"], 1, "no such model file"),
    (["recommend", "ART", "--history", "i1", "--k", "0"], 1, "k=0 is invalid"),
])
def test_bad_input_is_one_line_and_writes_nothing(args, code, fragment, tmp_path, artifacts):
    args = [str(tmp_path / "out") if a == "OUT" else str(artifacts("cpu-x86_64")) if a == "ART" else a for a in args]
    result = _run(*args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and fragment in result.stderr
    assert result.stderr.strip().splitlines()[0].startswith("error:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage, fragment", [
    ("flip", "model.onnx: sha256 does not match"),
    ("truncate", "model.onnx: size"),
    ("newer", "manifest schema version 9 is newer"),
])
def test_damaged_artifacts_exit_3_with_one_line(damage, fragment, tmp_path, artifacts):
    directory = shutil.copytree(artifacts("cpu-x86_64"), tmp_path / "art")
    model = directory / "model.onnx"
    if damage == "flip":
        data = bytearray(model.read_bytes())
        data[-100] ^= 1
        model.write_bytes(bytes(data))
    elif damage == "truncate":
        model.write_bytes(model.read_bytes()[:1000])
    else:
        manifest = json.loads((directory / "manifest.json").read_text())
        (directory / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 9}))
    for command in (["inspect", str(directory)], ["recommend", str(directory), "--history", "i1"]):
        result = _run(*command)
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr and fragment in result.stderr
        assert result.stderr.strip().splitlines()[0].startswith("error:")
