"""A GF-CF graph filter fitted over two ranks (torchrun, gloo) against the one-process fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

from tests.distributed.test_cli import DATA, error_lines, plain_train, torchrun


def card(tmp_path, filter_name: str = "gf-cf"):
    path = tmp_path / f"{filter_name}.yaml"
    path.write_text(f"name: {filter_name}-test\nmodel:\n  type: graph-filter\n  filter: {filter_name}\n  rank: 16\n"
                    "  neighbors: 20\n")
    return path


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    where = tmp_path_factory.mktemp("gf")
    plain = plain_train("--model", str(card(where)), "--data", DATA, "--out", str(where / "one.pt"))
    two = torchrun(2, "--model", str(card(where)), "--data", DATA, "--out", str(where / "two.pt"))
    assert plain.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    return {name: torch.load(where / f"{name}.pt", weights_only=True) for name in ("one", "two")}


def test_two_ranks_give_the_one_process_neighbour_lists(fits):
    one, two = fits["one"]["state_dict"], fits["two"]["state_dict"]
    assert torch.equal(one["neighbor_items"], two["neighbor_items"])
    torch.testing.assert_close(two["neighbor_weights"], one["neighbor_weights"], rtol=1e-5, atol=1e-7)


def test_two_ranks_find_the_top_eigenspace_at_least_as_well_as_one_process(fits):
    from edgegnn.data import load_dataset
    from edgegnn.models.graph_filter import normalized_interactions

    split = load_dataset(DATA)
    normalized, degree = normalized_interactions(split.train.to_csr())
    gram = (normalized.T @ normalized).astype(np.float64)
    exact = np.sort(sla.eigsh(gram, k=16, which="LA")[0])[::-1]

    def captured(state) -> float:
        vectors = state["item"].double().numpy() / np.sqrt(np.maximum(degree, 1))[:, None]   # V = D^-½ item
        basis, _ = np.linalg.qr(vectors)
        return float(np.trace(basis.T @ (gram @ basis)))

    one, two = captured(fits["one"]["state_dict"]), captured(fits["two"]["state_dict"])
    assert two >= 0.98 * exact.sum()               # both randomized fits keep ~99 % of the top-16 energy here
    assert two >= one * 0.999
    recall = [fits[name]["metrics"]["test"]["recall@20"] for name in ("one", "two")]
    assert abs(recall[0] - recall[1]) < 0.01 and fits["two"]["metrics"]["distributed"]["world_size"] == 2


def test_a_filter_the_distributed_fit_does_not_cover_is_one_line(tmp_path):
    done = torchrun(1, "--model", str(card(tmp_path, "bspm")), "--data", DATA, "--out", str(tmp_path / "m.pt"))
    assert done.returncode != 0 and not (tmp_path / "m.pt").exists()
    assert error_lines(done.stderr) == ["error: model.filter='bspm': the distributed fit covers gf-cf"]
