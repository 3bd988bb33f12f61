"""Class heads on the device: user interests from the graph, item categories from per-item logits.

A head fitted by `edgegnn classify` is exported with the recommender; its probabilities come
back from ONNX Runtime and LiteRT as the simulation computes them (verified per CPU at export),
and recover the synthetic data's taste clusters for users the model never saw a label of.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgegnn.class_head import attach_user_head, read_head, simulate
from edgegnn.classify import Labels, classify, write_head
from edgegnn.compress import Calibration, QuantizeConfig, compress
from edgegnn.data import load_dataset
from edgegnn.data.synthetic import taste_clusters
from edgegnn.errors import ConfigError, DataError
from edgegnn.export import export
from edgegnn.fold import fold
from edgegnn.models import GraphFilterConfig, ModelCard
from edgegnn.runtime import Recommender
from edgegnn.runtime.errors import RecommendError
from edgegnn.train.api import fit

SPEC = "synthetic:users=600,items=400,seed=5"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(split, checkpoint, {node: head.json}) of a graph filter on synthetic data and both heads."""
    split = load_dataset(SPEC, valid_ratio=0.1, seed=0)
    checkpoint, _ = fit(split, ModelCard(name="gf", model=GraphFilterConfig(rank=32)))
    edge = fold(checkpoint)
    items, users = taste_clusters(num_users=600, num_items=400, seed=5)
    out = tmp_path_factory.mktemp("heads")
    heads = {}
    for node, ids, truth in (("user", checkpoint.train.user_ids, users), ("item", checkpoint.train.item_ids, items)):
        result = classify(edge, checkpoint.train, Labels(node, np.asarray(ids).astype(str),
                                                         np.char.add("c", truth.astype(str))))
        heads[node] = write_head(result, out / f"{node}.json")
    return split, checkpoint, heads


def quantized(split, checkpoint):
    """The int8 model (static activation scales calibrated on training users)."""
    return compress(fold(checkpoint), QuantizeConfig(), calibration=Calibration.from_split(split, num_users=128))


@pytest.fixture(scope="module")
def artifacts(fitted, tmp_path_factory):
    """{target: artifact folder} of the int8 model with both heads, ONNX and LiteRT."""
    split, checkpoint, heads = fitted
    out = tmp_path_factory.mktemp("artifacts")
    edge = quantized(split, checkpoint)
    return {name: export(edge, name, out_dir=out / name, split=split, heads=list(heads.values()), cpus=(),
                         emulators=None, max_users=100)
            for name in ("cpu-x86_64", "android-litert")}


@pytest.mark.parametrize("target", ["cpu-x86_64", "android-litert"])
def test_the_artifact_gives_the_simulations_class_probabilities(fitted, artifacts, target):
    split, checkpoint, heads = fitted
    recommender = Recommender.open(artifacts[target])
    manifest = recommender.manifest
    assert manifest["class_heads"]["user"]["classes"] == recommender.classes("user")
    assert manifest["cpus"]["verified"][0]["class_probabilities_checked"] > 0
    csr = checkpoint.train.to_csr()
    ids = np.asarray(checkpoint.train.item_ids).astype(str)
    rows = [csr.indices[csr.indptr[u]:csr.indptr[u + 1]] for u in range(5)]
    got = recommender.class_probabilities([ids[r].tolist() for r in rows])
    edge = attach_user_head(quantized(split, checkpoint), read_head(heads["user"]))
    expected = simulate(edge, [np.sort(r).astype(np.int64) for r in rows])
    np.testing.assert_allclose(got, expected, atol=2e-3)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_a_new_users_clicks_name_their_taste_cluster(fitted, artifacts):
    """Users the head never saw: histories drawn from one cluster's items get that cluster."""
    _, checkpoint, _ = fitted
    recommender = Recommender.open(artifacts["cpu-x86_64"])
    items, _ = taste_clusters(num_users=600, num_items=400, seed=5)
    ids = np.asarray(checkpoint.train.item_ids).astype(str)
    cluster_of = dict(zip([f"i{i}" for i in range(len(items))], items))
    right = 0
    for cluster in range(3):
        members = [raw for raw in ids if cluster_of[raw] == cluster][:6]
        best, probability = recommender.classify(members)[0]
        right += best == f"c{cluster}"
        assert 0.0 < probability <= 1.0
    assert right == 3
    assert recommender.classify(["nobody-knows-this"]) == []
    assert np.isnan(recommender.class_probabilities([[]])).all()


@pytest.mark.parametrize("target", ["cpu-x86_64", "android-litert"])
def test_item_categories_come_from_the_shipped_logits(fitted, artifacts, target):
    _, checkpoint, _ = fitted
    recommender = Recommender.open(artifacts[target])
    items, _ = taste_clusters(num_users=600, num_items=400, seed=5)
    probabilities = recommender.item_class_probabilities([f"i{i}" for i in range(len(items))])
    predicted = np.array(recommender.classes("item"))[probabilities.argmax(axis=1)]
    assert (predicted == np.char.add("c", items.astype(str))).mean() > 0.85
    with pytest.raises(RecommendError, match="'ghost' is not in this artifact"):
        recommender.item_class_probabilities(["ghost"])


def test_heads_that_do_not_fit_are_refused(fitted, tmp_path):
    split, checkpoint, heads = fitted
    record = json.loads(heads["user"].read_text())
    for field, value, fragment in (("weights", [[1.0]], "weights has shape"), ("node", "edge", "node is 'edge'"),
                                   ("scale", [0.0] * len(record["mean"]), "positive scales")):
        path = tmp_path / f"{field}.json"
        path.write_text(json.dumps({**record, field: value}))
        with pytest.raises(DataError, match=fragment):
            read_head(path)
    narrow = {**record, "mean": record["mean"][:4], "scale": record["scale"][:4],
              "weights": [w[:4] for w in record["weights"]]}
    (tmp_path / "narrow.json").write_text(json.dumps(narrow))
    with pytest.raises(ConfigError, match="fit the head on this model"):
        export(checkpoint, "cpu-x86_64", out_dir=tmp_path / "a", heads=[tmp_path / "narrow.json"], cpus=(),
               emulators=None)
    with pytest.raises(ConfigError, match="at most one user head"):
        export(checkpoint, "cpu-x86_64", out_dir=tmp_path / "a", heads=[heads["user"], heads["user"]], cpus=(),
               emulators=None)
    assert not (tmp_path / "a").exists()


def test_the_cli_exports_a_head_and_refuses_a_bad_one(fitted, tmp_path):
    from typer.testing import CliRunner

    from edgegnn.cli.app import app
    from edgegnn.train.checkpoint import save_checkpoint

    _, checkpoint, heads = fitted
    save_checkpoint(checkpoint, tmp_path / "m.pt")
    runner = CliRunner()
    (tmp_path / "bad.json").write_text('{"node": "user"}')
    refused = runner.invoke(app, ["export", str(tmp_path / "m.pt"), "--target", "cpu-x86_64", "--out",
                                  str(tmp_path / "a"), "--head", str(tmp_path / "bad.json")])
    assert refused.exit_code == 1 and "missing classes, mean, scale, weights, bias" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not (tmp_path / "a").exists()
    done = runner.invoke(app, ["export", str(tmp_path / "m.pt"), "--target", "cpu-x86_64", "--out",
                               str(tmp_path / "a"), "--head", str(heads["user"]), "--head", str(heads["item"])])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["inspect", str(tmp_path / "a")])
    assert "user classes" in shown.output and "item classes" in shown.output and "class_probabilities" in shown.output
