"""Node classification: taste clusters are recovered from the device features, bad labels refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgegnn.classify import Labels, classify, node_features, read_labels
from edgegnn.data import load_dataset
from edgegnn.data.synthetic import taste_clusters
from edgegnn.errors import DataError
from edgegnn.fold import fold
from edgegnn.models import GraphFilterConfig, ModelCard
from edgegnn.train.api import fit

SPEC = dict(num_users=1000, num_items=800, seed=3)


@pytest.fixture(scope="module")
def fitted():
    split = load_dataset("synthetic:users=1000,items=800,seed=3", valid_ratio=0.1, seed=0)
    checkpoint, _ = fit(split, ModelCard(name="gf", model=GraphFilterConfig(rank=32)))
    return checkpoint, fold(checkpoint)


@pytest.mark.parametrize("node", ["item", "user"])
def test_taste_clusters_are_recovered_far_above_the_majority_class(fitted, node):
    checkpoint, edge = fitted
    items, users = taste_clusters(**SPEC)
    ids = checkpoint.train.item_ids if node == "item" else checkpoint.train.user_ids
    truth = items if node == "item" else users
    result = classify(edge, checkpoint.train, Labels(node, np.asarray(ids).astype(str), truth.astype(str)))
    assert result["test"]["accuracy"] > 0.85 and result["test"]["macro_f1"] > 0.85      # 8 clusters
    assert result["majority"]["accuracy"] < 0.2 and result["stratified"]


def test_user_features_are_the_device_encoding_of_the_history(fitted):
    checkpoint, edge = fitted
    ids, features = node_features(edge, checkpoint.train, "user")
    csr = checkpoint.train.to_csr()
    first = int(np.flatnonzero(np.asarray(checkpoint.train.user_ids).astype(str) == ids[0])[0])
    history = csr.indices[csr.indptr[first]:csr.indptr[first + 1]].astype(np.int64)
    np.testing.assert_allclose(features[0], edge.encode([history])[0], rtol=1e-6)


@pytest.mark.parametrize("body, fragment", [
    ("node,label\ni1,a\n", "header must be 'item,label' or 'user,label'"),
    ("item,label\ni1,a\ni2\n", ":3: expected a item id and a label"),
    ("item,label\ni1,a\ni2,a\n", "1 class(es) in 2 rows"),
    ("", "the labels file is empty"),
])
def test_bad_labels_files_are_one_line_naming_the_problem(tmp_path, body, fragment):
    path = tmp_path / "labels.csv"
    path.write_text(body)
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_labels(path)


def test_labels_the_model_does_not_know_are_refused_or_left_out(fitted, caplog):
    checkpoint, edge = fitted
    with pytest.raises(DataError, match="none of the 2 labelled items is in the model"):
        classify(edge, checkpoint.train, Labels("item", np.array(["zz", "yy"]), np.array(["a", "b"])))
    items, _ = taste_clusters(**SPEC)
    ids = np.r_[np.asarray(checkpoint.train.item_ids).astype(str), ["ghost"]]
    result = classify(edge, checkpoint.train, Labels("item", ids, np.r_[items.astype(str), ["0"]]))
    assert result["unknown"] == 1 and "ghost" in caplog.text


def test_the_cli_writes_labels_classifies_and_saves_a_head_that_reproduces_it(fitted, tmp_path):
    from typer.testing import CliRunner

    from edgegnn.cli.app import app
    from edgegnn.train.checkpoint import save_checkpoint

    checkpoint, edge = fitted
    save_checkpoint(checkpoint, tmp_path / "m.pt")
    runner = CliRunner()
    written = runner.invoke(app, ["data", "labels", "synthetic:users=1000,items=800,seed=3", "--node", "item",
                                  "--out", str(tmp_path / "labels.csv")])
    assert written.exit_code == 0, written.output
    result = runner.invoke(app, ["classify", str(tmp_path / "m.pt"), "--labels", str(tmp_path / "labels.csv"),
                                 "--out", str(tmp_path / "head.json"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["test"]["accuracy"] > 0.85
    head = json.loads((tmp_path / "head.json").read_text())
    features = edge.tensors["item"].to_dense()
    logits = ((features - head["mean"]) / head["scale"]) @ np.array(head["weights"]).T + head["bias"]
    labels = read_labels(tmp_path / "labels.csv")
    predicted = np.array(head["classes"])[logits.argmax(axis=1)]
    assert (predicted == labels.classes).mean() > 0.85               # the documented formula is the head
    refused = runner.invoke(app, ["data", "labels", "ratings.csv", "--out", str(tmp_path / "x.csv")])
    assert refused.exit_code == 1 and "only synthetic data knows its classes" in refused.output
