"""Graph filters (GF-CF): the fit is the paper's formula, the device model scores it, and the
CLI trains, evaluates, compresses and exports it like any kind."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from edgegnn.data.splits import split_random
from edgegnn.data.synthetic import make_synthetic
from edgegnn.errors import ConfigError
from edgegnn.fold import fold
from edgegnn.kinds import graph_filter
from edgegnn.models import GraphFilterConfig, ModelCard
from edgegnn.models.graph_filter import fit_graph_filter, normalized_interactions, top_neighbors
from edgegnn.train.api import evaluate, fit
from edgegnn.train.checkpoint import load_checkpoint, save_checkpoint


def _interactions(users: int = 80, items: int = 50, density: float = 0.12, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < density).astype(np.float32)
    dense[np.arange(users), rng.integers(0, items, users)] = 1.0     # every user has an item
    return sp.csr_matrix(dense)


def _gf_cf_reference(train: sp.csr_matrix, rank: int, weight: float) -> np.ndarray:
    """GF-CF's scores, dense, from numpy's exact SVD: R P̃ + weight · R D^-½ V Vᵀ D^½ [U, I]."""
    r = train.toarray().astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    inv = lambda d: np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-300)), 0.0)   # noqa: E731
    normalized = inv(du)[:, None] * r * inv(di)[None, :]
    v = np.linalg.svd(normalized)[2][:rank].T
    low_pass = (inv(di)[:, None] * v) @ (np.sqrt(di)[:, None] * v).T
    gram = normalized.T @ normalized
    np.fill_diagonal(gram, 0.0)        # the fit leaves the diagonal out: it only scores seen items
    return r @ gram + weight * r @ low_pass


def test_the_device_model_scores_the_papers_formula():
    """With every neighbour kept and enough power iterations, the EdgeModel's scores are GF-CF's."""
    train = _interactions()
    config = GraphFilterConfig(rank=6, low_pass_weight=0.3, neighbors=49, svd_iterations=30)
    module = graph_filter.fit(config, train, seed=0)
    edge = graph_filter.fold(module, None, np.array([f"i{i}" for i in range(50)]))
    histories = np.split(train.indices.astype(np.int64), train.indptr[1:-1])
    np.testing.assert_allclose(edge.scores(histories), _gf_cf_reference(train, 6, 0.3), rtol=1e-3, atol=1e-4)


def _spectrum(train):
    """(item degrees, P̃ dense float64, (all eigenvalues, eigenvectors), (the non-zero ones))."""
    normalized, degree = normalized_interactions(train)
    gram = (normalized.T @ normalized).toarray().astype(np.float64)
    eigenvalues, vectors = np.linalg.eigh(gram)
    keep = eigenvalues > 1e-9
    return degree, gram, (eigenvalues, vectors), (vectors[:, keep], eigenvalues[keep])


def test_chebycf_is_its_polynomial_filter_when_the_rank_holds_the_whole_spectrum():
    """With every neighbour and every non-zero eigenvalue kept (item 49 duplicates item 48: P̃ has
    rank 49), c·P̃ + V diag(h(λ) - cλ + α) Vᵀ is h(P̃) + α V Vᵀ: the device scores are
    (r D^-β) [h(P̃) + α V Vᵀ] D^β computed densely from numpy's eigendecomposition."""
    from edgegnn.models.graph_filter import plateau_filter

    dense = _interactions(users=90, items=50, density=0.15, seed=6).toarray()
    dense[:, 49] = dense[:, 48]
    train = sp.csr_matrix(dense)
    config = GraphFilterConfig(filter="chebycf", rank=49, low_pass_weight=0.2, neighbors=49, svd_iterations=30,
                               order=8, flatness=1.5, degree_power=0.4)
    edge = graph_filter.fold(graph_filter.fit(config, train, seed=0), None, np.arange(50).astype(str))
    degree, gram, (eigenvalues, vectors), (v, lam) = _spectrum(train)
    polynomial = v @ np.diag(plateau_filter(lam, 8, 1.5) + 0.2) @ v.T
    slope = plateau_filter(lam[:1], 8, 1.5)[0] / lam[0]              # the secant at the smallest kept λ
    np.fill_diagonal(polynomial, np.diag(polynomial) - slope * np.diag(gram))   # the lists leave the diagonal out
    expected = (dense * degree ** -0.4) @ polynomial * degree[None, :] ** 0.4
    histories = np.split(train.indices.astype(np.int64), train.indptr[1:-1])
    assert edge.tensors["message"].describe()["storage"] == "dense"      # columns weighed: no row-scaled form
    np.testing.assert_allclose(edge.scores(histories), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_bspm_is_its_sharpened_filter_when_the_rank_holds_the_whole_spectrum():
    """BSPM's device scores are r [β D^-½ V Vᵀ D^½ + P̃] g(P̃), g(λ) = q(2.5 λ) (one RK4 step),
    computed densely from numpy's eigendecomposition: with every neighbour and every non-zero
    eigenvalue kept, the lists plus the compensated spectral part are f(P̃) = P̃ g(P̃) except
    along P̃'s null direction (item 49 duplicates item 48), which only reaches items 48 and 49."""
    from edgegnn.models.graph_filter import sharpening_response

    dense = _interactions(users=90, items=50, density=0.15, seed=7).toarray()
    dense[:, 49] = dense[:, 48]
    train = sp.csr_matrix(dense)
    config = GraphFilterConfig(filter="bspm", rank=49, low_pass_weight=0.2, neighbors=49, svd_iterations=30,
                               sharpen_time=2.5, sharpen_steps=1)
    edge = graph_filter.fold(graph_filter.fit(config, train, seed=0), None, np.arange(50).astype(str))
    degree, gram, (eigenvalues, vectors), (v, lam) = _spectrum(train)
    sharpening = vectors @ np.diag(sharpening_response(np.clip(eigenvalues, 0, None), 2.5, 1)) @ vectors.T
    ideal = (degree ** -0.5)[:, None] * (v @ v.T) * (degree ** 0.5)[None, :]
    expected = dense @ (0.2 * ideal + gram) @ sharpening
    histories = np.split(train.indices.astype(np.int64), train.indptr[1:-1])
    assert edge.tensors["item"].shape == (50, 98)                       # ideal and spectral columns
    scores = edge.scores(histories)
    np.testing.assert_allclose(scores[:, :48], expected[:, :48], rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_bspm_lists_lose_nothing_within_the_kept_eigenspace():
    """With few neighbours the lists L are far from c·P̃, yet Vᵀ (L + spectral part) V = f(Λ)."""
    from edgegnn.models.graph_filter import fit_graph_filter, neighbor_matrix, sharpening_response

    train = _interactions(users=120, items=60, density=0.1, seed=8)
    config = GraphFilterConfig(filter="bspm", rank=12, neighbors=4, svd_iterations=30)
    tables = fit_graph_filter(config, train, seed=0)
    normalized, _ = normalized_interactions(train)
    eigenvalues, vectors = np.linalg.eigh((normalized.T @ normalized).toarray().astype(np.float64))
    v, lam = vectors[:, ::-1][:, :12], eigenvalues[::-1][:12]
    operator = tables.message[:, 12:].astype(np.float64) @ tables.item[:, 12:].T + \
        neighbor_matrix(tables.neighbor_items, tables.neighbor_weights).toarray()
    np.testing.assert_allclose(v.T @ operator @ v, np.diag(lam * sharpening_response(lam, 2.5, 1)), atol=2e-4)


def test_top_neighbors_are_each_rows_largest_off_diagonal_entries():
    normalized, _ = normalized_interactions(_interactions(seed=3))
    gram = (normalized.T @ normalized).toarray()
    np.fill_diagonal(gram, -np.inf)
    ids, weights = top_neighbors(normalized, 7, block_bytes=4 * 50 * 3)     # blocks of 3 rows
    expected = np.sort(gram, axis=1)[:, ::-1][:, :7]
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(gram, ids.astype(np.int64), 1), weights, rtol=1e-6)
    assert (ids != np.arange(50)[:, None]).all()
    assert (np.diff(weights, axis=1) <= 0).all()                            # largest first


def test_the_fit_is_deterministic_and_ids_fit_uint16():
    train = _interactions(seed=4)
    config = GraphFilterConfig(rank=5, neighbors=10)
    first, second = fit_graph_filter(config, train, seed=1), fit_graph_filter(config, train, seed=1)
    for name in ("message", "item", "neighbor_items", "neighbor_weights"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    edge = graph_filter.fold(graph_filter.fit(config, train, seed=1), None, np.arange(50).astype(str))
    assert edge.tensors["neighbor_items"].values.dtype == np.uint16
    assert graph_filter.neighbor_id_dtype(70_000) == np.int32


def test_a_new_user_is_scored_from_the_first_click():
    train = _interactions(seed=5)
    edge = graph_filter.fold(graph_filter.fit(GraphFilterConfig(rank=4, neighbors=8), train, 0), None,
                             np.arange(50).astype(str))
    scores = edge.scores([np.array([3])])[0]
    assert np.isfinite(scores).all() and scores.max() > scores.min()


@pytest.fixture(scope="module")
def split():
    return split_random(make_synthetic(num_users=400, num_items=200, seed=0), valid_ratio=0.1, seed=0)


def test_fit_measures_the_model_and_beats_popularity(split):
    card = ModelCard(name="gf-cf", model=GraphFilterConfig(rank=32, neighbors=64))
    checkpoint, result = fit(split, card)
    assert result.epochs_run == 0 and result.stopped_because == "closed-form fit"
    test, popularity = checkpoint.metrics["test"], checkpoint.metrics["popularity"]
    assert test["recall@20"] > 1.2 * popularity["recall@20"], (test, popularity)
    assert checkpoint.metrics["valid"]["recall@20"] > 0


def test_a_saved_checkpoint_folds_and_evaluates_as_fitted(split, tmp_path):
    card = ModelCard(name="gf-cf", model=GraphFilterConfig(rank=16, neighbors=32))
    checkpoint, _ = fit(split, card)
    loaded = load_checkpoint(save_checkpoint(checkpoint, tmp_path / "gf.pt"))
    metrics = evaluate(loaded, split)
    assert metrics["recall@20"] == pytest.approx(checkpoint.metrics["test"]["recall@20"], abs=1e-12)
    assert metrics["popularity"]["recall@20"] == pytest.approx(checkpoint.metrics["popularity"]["recall@20"])
    edge = fold(loaded)
    assert edge.kind == "graph-filter" and edge.has_item_scores


def test_a_rank_the_data_cannot_hold_is_one_error_naming_it(split):
    card = ModelCard(name="gf-cf", model=GraphFilterConfig(rank=200))
    with pytest.raises(ConfigError, match=r"model\.rank=200 is invalid: must be below min\(users, items\) = 200"):
        fit(split, card)


@pytest.mark.parametrize("field, value, fragment", [
    ("rank", 0, "1 <= rank"), ("neighbors", -1, "0 <= neighbors"), ("low_pass_weight", -0.5, "0.0 <= low_pass_weight"),
    ("filter", "ease", "allowed: gf-cf, chebycf, bspm"), ("svd_iterations", 100, "svd_iterations <= 64"),
    ("order", 0, "1 <= order"), ("flatness", 0, "0.0 < flatness"), ("degree_power", 1.5, "degree_power <= 1.0"),
    ("sharpen_time", -1.0, "0.0 <= sharpen_time"), ("sharpen_steps", 0, "1 <= sharpen_steps"),
])
def test_bad_settings_name_the_field_and_what_is_allowed(field, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ModelCard.from_dict({"model": {"type": "graph-filter", field: value}})


@pytest.mark.parametrize("card_name, rank", [("gf-cf", 256), ("bspm", 448)])
def test_the_cli_fits_compresses_exports_and_serves_a_graph_filter(tmp_path, card_name, rank):
    """train --model models/CARD.yaml, compress to int8, export for ONNX Runtime and LiteRT, and
    recommend through the runtime: each artifact's metrics equal its simulation's, a new user gets items."""
    import json

    from typer.testing import CliRunner

    from edgegnn.cli.app import app
    from tests.conftest import REPO
    from tests.kinds.journey import compress_export_serve

    runner = CliRunner()
    data = "synthetic:users=300,items=160,seed=4"
    card = tmp_path / "gf.yaml"
    card.write_text((REPO / "models" / f"{card_name}.yaml").read_text().replace(f"rank: {rank}", "rank: 24"))
    model = tmp_path / "gf.pt"
    trained = runner.invoke(app, ["train", "--data", data, "--model", str(card), "--out", str(model), "--json"])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout)
    assert metrics["test"]["recall@20"] > metrics["popularity"]["recall@20"]
    compress_export_serve(runner, app, model, tmp_path)


@pytest.mark.parametrize("setting, fragment", [
    ({"rank": 500}, "model.rank=500 is invalid: must be below min(users, items)"),
    ({"neighbors": -3}, "0 <= neighbors"),
    ({"neighbors": 4000}, None),         # more neighbours than items: capped at items - 1
])
def test_the_cli_names_a_setting_the_data_cannot_hold_in_one_line(tmp_path, setting, fragment):
    import yaml
    from typer.testing import CliRunner

    from edgegnn.cli.app import app

    card = tmp_path / "gf.yaml"
    card.write_text(yaml.safe_dump({"name": "gf", "model": {"type": "graph-filter", "rank": 16, **setting}}))
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(app, ["train", "--data", "synthetic:users=200,items=150,seed=2", "--model", str(card),
                                      "--out", str(out)])
    if fragment is None:
        assert result.exit_code == 0, result.output
        assert load_checkpoint(out).state_dict["neighbor_items"].shape == (150, 149)
        return
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], result.output
    assert not out.exists()
