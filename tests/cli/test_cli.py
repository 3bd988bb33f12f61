"""The CLI end to end: train -> evaluate with JSON, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgegnn.cli.app import app
from tests.conftest import REPO

runner = CliRunner()
DATA = "synthetic:users=200,items=150,seed=2"


def test_train_then_evaluate_agree(tmp_path):
    model = tmp_path / "m.pt"
    result = runner.invoke(app, ["train", "--data", DATA, "--epochs", "20", "--out", str(model), "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert model.is_file()
    result = runner.invoke(app, ["evaluate", str(model), "--data", DATA, "--k", "20", "--k", "10", "--json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["recall@20"] == pytest.approx(trained["test"]["recall@20"], rel=1e-6)
    assert {"ndcg@10", "ndcg@20", "precision@20", "hitrate@20"} <= set(evaluated)


def test_a_model_is_measured_on_its_own_split_unless_told_otherwise(tmp_path):
    """The checkpoint records its data (source, options, files' sha256): evaluate defaults to it; another
    split is refused, or with --other-data measured and said so; changed files are refused."""
    data = tmp_path / "log.csv"
    data.write_text("user,item\n" + "".join(f"u{u},i{(u * 7 + k * 3) % 60}\n" for u in range(120) for k in range(9)))
    model = tmp_path / "m.pt"
    trained = runner.invoke(app, ["train", "--data", str(data), "--seed", "3", "--epochs", "15", "--out", str(model),
                                  "--json"])
    assert trained.exit_code == 0, trained.output
    own = runner.invoke(app, ["evaluate", str(model), "--json"])
    assert own.exit_code == 0, own.output
    assert json.loads(own.stdout)["recall@20"] == pytest.approx(json.loads(trained.stdout)["test"]["recall@20"])
    assert json.loads(own.stdout)["data"]["same_as_training"] is True
    other = _run("evaluate", str(model), "--seed", "4")
    assert other.returncode == 1 and "not the data the model was trained on (seed 3 -> 4)" in other.stderr
    told = runner.invoke(app, ["evaluate", str(model), "--seed", "4", "--other-data"])
    assert told.exit_code == 0 and "OTHER data than the model was trained on" in told.output.replace("\n", " ")
    data.write_text(data.read_text() + "u1,i59\n")
    changed = _run("evaluate", str(model))
    assert changed.returncode == 1 and "changed since it was trained (log.csv" in changed.stderr


def test_train_prints_a_metrics_table(tmp_path):
    result = runner.invoke(app, ["train", "--data", DATA, "--epochs", "10", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    assert "recall@20" in result.output and "ndcg@20" in result.output


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGEGNN_DEBUG"}
    return subprocess.run([sys.executable, "-m", "edgegnn", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


@pytest.mark.parametrize("args, fragment", [
    (["evaluate", "nope.pt", "--data", DATA], "no such model file"),
    (["train", "--data", "does/not/exist", "--out", "x.pt"], "does/not/exist"),
    (["train", "--data", DATA, "--lr", "-1", "--out", "x.pt"], "learning_rate=-1.0"),

    (["train", "--data", DATA, "--epochs", "0", "--out", "x.pt"], "train.epochs=0 is invalid"),
    (["train", "--data", DATA, "--out", "tests"], "out='tests' is invalid: is a folder"),
    (["train", "--data", DATA, "--implicit-threshold", "high", "--out", "x.pt"], "implicit-threshold='high'"),
])
def test_user_mistakes_are_one_line_errors(args, fragment, tmp_path):
    result = _run(*args)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert not (REPO / "x.pt").exists()         # nothing written: the checks run before training
    assert result.stderr.strip().splitlines()[0].startswith("error:")


@pytest.mark.parametrize("args, fragment", [
    (["train", "--data", DATA, "--loss", "hinge", "--out", "x.pt"], "'hinge' is not one of 'whole-data', 'bpr', 'bce'"),
    (["export", "x.pt", "--target", "cpu-x86_64", "--out", "a", "--variant", "both"], "--variant"),
    (["train", "--out", "x.pt", "--no-such-flag"], "No such option: --no-such-flag"),
])
def test_usage_mistakes_are_one_line_and_exit_2(args, fragment):
    result = _run(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr
    assert "--help" in lines[0] and not (REPO / "x.pt").exists()


def test_list_options_take_commas_or_repeats(tmp_path):
    model = tmp_path / "m.pt"
    assert runner.invoke(app, ["train", "--data", DATA, "--epochs", "2", "--out", str(model)]).exit_code == 0
    comma = runner.invoke(app, ["evaluate", str(model), "--k", "10,20", "--json"])
    repeated = runner.invoke(app, ["evaluate", str(model), "--k", "10", "--k", "20", "--json"])
    assert comma.exit_code == 0 and json.loads(comma.stdout) == json.loads(repeated.stdout)
    assert {"recall@10", "recall@20"} <= set(json.loads(comma.stdout))


def test_bad_data_line_is_reported_with_file_and_line(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("user,item\n1,2\n3\n")
    result = _run("train", "--data", str(data), "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{data}:3" in result.stderr.replace("\n", "")
    assert not (tmp_path / "m.pt").exists()


def test_debug_variable_shows_traceback():
    env = dict(os.environ, EDGEGNN_DEBUG="1")
    result = subprocess.run([sys.executable, "-m", "edgegnn", "evaluate", "nope.pt"], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_quickstart_runs_the_main_job_and_reports(tmp_path):
    result = runner.invoke(app, ["quickstart", "--data", DATA, "--epochs", "5", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["data"]["users"] == 200 and report["data"]["items"] == 150
    assert 0 < report["metrics"]["test"]["recall@20"] <= 1
    assert (tmp_path / "model.pt").is_file()
    classes = report["user_classes"]         # synthetic data knows its taste clusters: a user head
    assert classes["test"]["accuracy"] > classes["majority"]["accuracy"]
    artifact = report["artifacts"]["int8-tflite"]
    shown = runner.invoke(app, ["recommend", artifact, "--history", "i1,i2,i3", "--classes", "--json"])
    assert shown.exit_code == 0, shown.output
    probabilities = [entry["probability"] for entry in json.loads(shown.stdout)["classes"]]
    assert [c["class"] for c in json.loads(shown.stdout)["classes"]][0] in classes["classes"]
    assert abs(sum(probabilities) - 1) < 1e-5 and probabilities == sorted(probabilities, reverse=True)


def test_data_info_json_counts(tmp_path):
    result = runner.invoke(app, ["data", "info", "--data", DATA, "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["users"] == 200 and stats["items"] == 150
    positional = runner.invoke(app, ["data", "info", DATA, "--json"])
    assert json.loads(positional.stdout) == stats
    assert stats["interactions"] == stats["train"] + stats["valid"] + stats["test"]


def test_a_model_without_a_data_record_needs_data_to_be_measured(tmp_path):
    """Checkpoints from before data records: evaluate asks for --data instead of guessing."""
    import dataclasses

    from edgegnn.train.checkpoint import load_checkpoint, save_checkpoint

    model = tmp_path / "m.pt"
    assert runner.invoke(app, ["train", "--data", DATA, "--epochs", "3", "--out", str(model)]).exit_code == 0
    save_checkpoint(dataclasses.replace(load_checkpoint(model), data=None), model)
    result = _run("evaluate", str(model))
    assert result.returncode == 1 and "records no training data" in result.stderr
    given = runner.invoke(app, ["evaluate", str(model), "--data", DATA, "--json"])
    assert given.exit_code == 0 and json.loads(given.stdout)["data"]["same_as_training"] is None
