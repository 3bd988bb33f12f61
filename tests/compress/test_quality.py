"""Compression of a trained LightGCN on small_split: quality gates, the search, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgegnn.cli.app import app
from edgegnn.compress import (
    Calibration,
    LowRankConfig,
    QuantizeConfig,
    compress,
    load_edge_model,
    load_recipe,
    measure,
    save_recipe,
    search,
)
from edgegnn.fold import fold, user_bases
from tests.compress import one_torch_thread
from tests.conftest import REPO

single_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)
DATA = "synthetic:users=1000,items=800,seed=3"  # small_split's data: the CLI rebuilds the same split
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(small_split):
    from edgegnn.models import LightGCNConfig, ModelCard, TrainConfig
    from edgegnn.train.api import fit

    card = ModelCard(name="lightgcn-32", model=LightGCNConfig(embedding_dim=32), training=TrainConfig(epochs=150))
    checkpoint, _ = fit(small_split, card)
    return checkpoint


@pytest.fixture(scope="module")
def edge(trained):
    return fold(trained)


@pytest.fixture(scope="module")
def base(trained):
    return user_bases(trained)


@pytest.fixture(scope="module")
def calibration(small_split, base):
    return Calibration.from_split(small_split, num_users=512, user_base=base)


@pytest.fixture(scope="module")
def fp32(edge, small_split, base):
    return measure(edge, small_split, user_base=base)


def test_measure_matches_the_checkpoint_and_counts_bytes(fp32, trained, edge):
    assert fp32["recall@20"] == pytest.approx(trained.metrics["test"]["recall@20"], rel=1e-4)
    assert fp32["bytes"] == edge.nbytes == 2 * 800 * 32 * 4 and fp32["params"] == 2 * 800 * 32


def test_static_int8_keeps_recall_within_two_percent(edge, small_split, base, calibration, fp32):
    int8 = compress(edge, QuantizeConfig(precision="int8"), calibration=calibration)
    metrics = measure(int8, small_split, user_base=base)
    assert metrics["bytes"] < fp32["bytes"] / 3.5
    assert metrics["recall@20"] >= 0.98 * fp32["recall@20"], (metrics["recall@20"], fp32["recall@20"])


def test_distillation_recovers_recall_lost_by_the_svd(edge, small_split, base, calibration, fp32):
    plain = compress(edge, LowRankConfig(rank=4), calibration=calibration)
    tuned = compress(edge, LowRankConfig(rank=4, finetune_steps=100), calibration=calibration)
    assert tuned.nbytes == plain.nbytes
    before = measure(plain, small_split, user_base=base)["recall@20"]
    after = measure(tuned, small_split, user_base=base)["recall@20"]
    assert before < 0.95 * fp32["recall@20"]  # rank 4 of 32 costs real recall ...
    assert after > before + 0.005, (before, after)  # ... and distillation wins a clear share back


def test_search_front_is_monotone_and_its_choice_reproduces_from_recipe_yaml(edge, small_split, base,
                                                                             calibration, tmp_path):
    result = search(edge, small_split, calibration=calibration, max_drop=0.02, max_users=600, user_base=base,
                    finetune_steps=50)
    assert len(result.points) >= 10 and result.seconds > 0 and result.users == 600
    front = result.pareto
    assert [p.bytes for p in front] == sorted(p.bytes for p in front)
    assert all(a.recall < b.recall and a.bytes < b.bytes for a, b in zip(front, front[1:]))
    for point in result.points:  # nothing beats a front point on both axes
        assert not any(p.bytes <= point.bytes and p.recall > point.recall for p in front if p is not point) \
            or point not in front
    chosen = result.chosen
    assert chosen is not None and chosen.relative_drop <= 0.02 and chosen in front
    assert all(p.bytes >= chosen.bytes for p in result.points if p.relative_drop <= 0.02)
    assert chosen.bytes < result.baseline.bytes / 4
    configs = load_recipe(save_recipe(chosen.configs, tmp_path / "recipe.yaml"))
    again = measure(compress(edge, *configs, calibration=calibration), small_split, user_base=base, max_users=600)
    assert again["recall@20"] == chosen.metrics["recall@20"] and again["bytes"] == chosen.bytes
    assert json.loads(json.dumps(result.to_dict()))["chosen"]["name"] == chosen.name

    nothing = search(edge, small_split, calibration=calibration, max_drop=None, size_budget=100, max_users=200,
                     grid=[("int8", (QuantizeConfig(),))])
    assert nothing.chosen is None and nothing.model is None and "no recipe meets at most 100 bytes" in nothing.reason


@pytest.fixture(scope="module")
def model_file(trained, tmp_path_factory):
    from edgegnn.train.checkpoint import save_checkpoint

    return save_checkpoint(trained, tmp_path_factory.mktemp("model") / "m.pt")


def test_cli_compresses_with_flags_then_reproduces_from_the_recipe(model_file, tmp_path, fp32):
    out = tmp_path / "edge"
    args = ["compress", str(model_file), "--data", DATA, "--rank", "16", "--finetune-steps", "20",
            "--quantize", "int8", "--out", str(out), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    names = [v["variant"] for v in report["variants"]]
    assert names[0] == "fp32" and len(names) == 4  # fp32, rank 16, rank 16 + finetune, + int8
    assert report["variants"][0]["recall@20"] == pytest.approx(fp32["recall@20"])
    final = report["variants"][-1]
    assert final["chosen"] and final["x_smaller"] > 5
    assert sorted(p.name for p in out.iterdir()) == ["edge.json", "edge.npz", "recipe.yaml"]
    assert load_edge_model(out).nbytes == final["bytes"]
    assert [c.PASS for c in load_recipe(out / "recipe.yaml")] == ["low_rank", "quantize"]

    again = runner.invoke(app, ["compress", str(model_file), "--data", DATA, "--recipe", str(out / "recipe.yaml"),
                                "--out", str(tmp_path / "again"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["variants"][-1]["recall@20"] == final["recall@20"]
    assert (tmp_path / "again" / "edge.npz").read_bytes() == (out / "edge.npz").read_bytes()


def test_cli_one_scale_per_table_exports_a_graph_that_ranks_integers(model_file, tmp_path):
    """compress --quantize int8 --granularity tensor -> export: one scale per item table in the
    recipe and the model, TopK over MatMulInteger's int32 output, and the artifact's metrics
    within the int8 tolerance of the simulation."""
    import onnx

    from edgegnn.export import TOLERANCE

    out = tmp_path / "edge"
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, "--quantize", "int8",
                                 "--granularity", "tensor", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    (config,) = load_recipe(out / "recipe.yaml")
    assert config.granularity == "tensor"
    edge = load_edge_model(out)
    for name in ("message", "item"):
        assert len(set(edge.tensors[name].scale.tolist())) == 1, name
    artifact = tmp_path / "artifact"
    done = runner.invoke(app, ["export", str(out), "--target", "cpu-x86_64", "--data", DATA, "--out", str(artifact)])
    assert done.exit_code == 0, done.output
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(artifact / "model.onnx"))).graph
    dtypes = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    ranked = [dtypes[n.input[0]] for n in graph.node if n.op_type == "TopK"]
    assert ranked and set(ranked) == {onnx.TensorProto.INT32}
    metrics = json.loads((artifact / "manifest.json").read_text())["metrics"]
    for name in ("recall@20", "ndcg@20"):
        assert abs(metrics["artifact"][name] - metrics["simulation"][name]) <= TOLERANCE["int8"]


def test_cli_share_flag_ships_one_table(model_file, tmp_path):
    out = tmp_path / "edge"
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, "--share", "--quantize", "int8",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    names = [v["variant"] for v in json.loads(result.stdout)["variants"]]
    assert names == ["fp32", "shared table", "shared table, int8"]
    assert [c.PASS for c in load_recipe(out / "recipe.yaml")] == ["share", "quantize"]
    model = load_edge_model(out)
    assert model.tensors["message"].base.left is model.tensors["item"]  # message = diag(s) · item · W


def test_cli_pq_flag_then_export_runs_the_lookup_tables(model_file, tmp_path):
    out = tmp_path / "edge"
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, "--share", "--pq", "8",
                                 "--finetune-steps", "20", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    variants = json.loads(result.stdout)["variants"]
    assert [v["variant"] for v in variants] == ["fp32", "shared table", "shared table, PQ M=8",
                                                 "shared table, PQ M=8 +ft"]
    assert variants[-1]["bytes"] < variants[1]["bytes"] / 2     # (tiny catalog: the codebooks weigh in)
    assert [c.PASS for c in load_recipe(out / "recipe.yaml")] == ["share", "product_quantize"]
    exported = runner.invoke(app, ["export", str(out), "--target", "cpu-x86_64", "--data", DATA,
                                   "--out", str(tmp_path / "artifact"), "--json"])
    assert exported.exit_code == 0, exported.output
    metrics = json.loads((tmp_path / "artifact" / "manifest.json").read_text())["metrics"]
    assert metrics["artifact"]["recall@20"] == pytest.approx(metrics["reference"]["recall@20"], abs=0.005)


def test_cli_search_under_a_size_budget_prints_a_table(model_file, tmp_path):
    out = tmp_path / "edge"
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, "--size-budget", "20KB",
                                 "--max-users", "300", "--out", str(out)])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    for column in ("variant", "bytes", "smaller", "R@20", "N@20", "R@20 vs fp32", "chosen"):
        assert column in shown
    assert "validation users" in shown and "on test (" in shown and "not used to choose" in shown
    assert "next: edgegnn export" in shown
    saved = json.loads((out / "search.json").read_text())
    assert saved["chosen"]["bytes"] <= 20_000 and saved["size_budget"] == 20_000
    assert load_edge_model(out).nbytes == saved["chosen"]["bytes"]


@pytest.mark.parametrize("args, fragment", [
    (["--rank", "96"], "rank 96 must be <= embedding dim 32"),
    (["--prune", "1.5"], "prune.sparsity=1.5 is invalid: must satisfy 0.0 <= sparsity < 1.0"),
    (["--quantize", "int3"], "'int3' is not one of 'int8', 'int4', 'mixed'"),
    (["--recipe", "RECIPE"], "precison='int8' is invalid: unknown key"),
    (["--calibration-users", "0"], "calibration.users=0"),
    (["--size-budget", "2XB"], "size-budget='2XB' is invalid: expected a positive size like 2MB"),
    (["--max-drop", "0.01", "--quantize", "int8"], "the search picks the passes itself; drop --quantize"),
    (["--pq", "5"], "product_quantize.subvectors=5"),
    (["--pq", "8", "--quantize", "int8"], "give --pq or --quantize, not both"),
    (["--granularity", "tensor"], "granularity='tensor' is invalid: needs --quantize int8|int4"),
    (["--quantize", "int8", "--granularity", "column"], "'column' is not one of 'row', 'tensor'"),
    (["--quantize", "mixed", "--granularity", "tensor"], "one scale per table needs one precision"),
], ids=["rank", "sparsity", "precision", "recipe", "calibration", "size", "search-and-flags", "pq-width",
        "pq-and-quantize", "granularity-alone", "granularity-value", "granularity-mixed"])
def test_cli_bad_input_is_one_error_and_writes_nothing(args, fragment, model_file, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("passes:\n  - {pass: quantize, precison: int8}\n")
    args = [str(recipe) if a == "RECIPE" else a for a in args]
    out = tmp_path / "edge"
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, *args, "--out", str(out)])
    assert result.exit_code == (2 if "is not one of" in fragment else 1), result.output    # 2: a usage error
    assert fragment in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_cli_wrong_model_file_is_a_one_line_error_without_traceback(tmp_path):
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("hello")
    env = {k: v for k, v in os.environ.items() if k != "EDGEGNN_DEBUG"}
    result = subprocess.run([sys.executable, "-m", "edgegnn", "compress", str(not_a_model), "--data", DATA,
                             "--quantize", "int8", "--out", str(tmp_path / "edge")],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and "notes.pt" in lines[0] and "not a readable model file" in lines[0]
    assert not (tmp_path / "edge").exists()


def test_size_strings():
    from edgegnn.cli.compress_cmd import parse_size

    assert parse_size("2MB") == 2_000_000 and parse_size("500KB") == 500_000 and parse_size("1.5MiB") == 1_572_864
    assert parse_size("123456") == 123_456 and parse_size("2 mb") == 2_000_000


def test_cli_lists_flag_indexes_last_and_export_records_it(model_file, tmp_path):
    """compress --quantize int8 --lists 16 --overlap 0.8: the retrieval pass runs last, its nprobe
    chosen on the calibration users, its Recall measured through the lists; export records it."""
    out = tmp_path / "edge"
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, "--quantize", "int8", "--lists", "16",
                                 "--overlap", "0.8", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    variants = json.loads(result.stdout)["variants"]
    assert variants[-1]["bytes"] > variants[-2]["bytes"]          # the lists cost bytes; they save work
    assert [c.PASS for c in load_recipe(out / "recipe.yaml")] == ["quantize", "retrieval"]
    chosen = load_edge_model(out).params["retrieval"]
    assert chosen["overlap"] >= 0.8 and chosen["nprobe"] <= 16
    assert [v["variant"] for v in variants] == ["fp32", "int8", "int8, lists 16, nprobe for overlap 0.8: 16 lists, "
                                                f"nprobe {chosen['nprobe']}, overlap {chosen['overlap']:.3f}"]
    artifact = tmp_path / "artifact"
    done = runner.invoke(app, ["export", str(out), "--target", "cpu-x86_64", "--data", DATA, "--out", str(artifact)])
    assert done.exit_code == 0, done.output
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["retrieval"]["nprobe"] == chosen["nprobe"] and manifest["retrieval"]["lists"] == 16
    shown = " ".join(runner.invoke(app, ["inspect", str(artifact)]).stdout.split())
    assert f"16 inverted lists of {manifest['retrieval']['capacity']}, nprobe {chosen['nprobe']}" in shown


@pytest.mark.parametrize("flags, fragment", [
    (["--nprobe", "4"], "nprobe=4 is invalid: needs --lists"),
    (["--lists", "16", "--nprobe", "4", "--overlap", "0.9"], "give --nprobe or --overlap, not both"),
    (["--lists", "16", "--nprobe", "17"], "retrieval.nprobe=17 is invalid: at most lists (16)"),
    (["--lists", "16", "--nprobe", "0"], "nprobe=0 is invalid: must be >= 1"),
    (["--lists", "-1"], "retrieval.lists=-1 is invalid"),
])
def test_cli_lists_flags_refuse_bad_combinations_in_one_line(model_file, tmp_path, flags, fragment):
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, *flags, "--out", str(tmp_path / "e")])
    assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "e").exists()


def test_cli_search_then_lists_measures_the_indexed_model(model_file, tmp_path):
    out = tmp_path / "edge"
    result = runner.invoke(app, ["compress", str(model_file), "--data", DATA, "--max-drop", "0.05", "--max-users",
                                 "300", "--lists", "8", "--overlap", "0.8", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    chosen = [v for v in report["variants"] if v["chosen"]]
    assert len(chosen) == 1 and chosen[0] is report["variants"][-1] and chosen[0]["variant"].endswith(
        f"lists 8, nprobe for overlap 0.8: 8 lists, nprobe {load_edge_model(out).params['retrieval']['nprobe']}, "
        f"overlap {load_edge_model(out).params['retrieval']['overlap']:.3f}")
    assert [c.PASS for c in load_recipe(out / "recipe.yaml")][-1] == "retrieval"
    assert load_edge_model(out).nbytes == chosen[0]["bytes"]
    assert report["test"]["chosen"]["recall@20"] == pytest.approx(chosen[0]["recall@20"], abs=0.1)
