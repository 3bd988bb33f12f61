"""Two ranks (torchrun, gloo on 127.0.0.1) compute what one process computes.

tests/distributed/worker.py runs the distributed steps; here the single-process StepRunner runs
the same steps from the same seed. float64: loss, step-1 gradient and the table after 5 steps
within rtol 1e-10; float32 within 1e-5; the gradients through the all-reduces agree with
central differences of the summed loss (coordinates of users and items of both ranks).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.distributed import worker

HERE = Path(__file__).resolve().parent
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "results.pt"
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node", "2", str(HERE / "worker.py"), str(out)],
                          capture_output=True, text=True, timeout=600, cwd=HERE.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out, weights_only=False)


@pytest.fixture(scope="module")
def split():
    from edgegnn.data import load_dataset

    return load_dataset(worker.DATA, valid_ratio=0.0, seed=0)


def single_process(split, loss: str, dtype: torch.dtype, kind: str = "lightgcn"):
    """(losses, step-1 gradient of the ego table, table after the steps, step-1 gradients and values
    after the steps of the other parameters) of the plain trainer's StepRunner."""
    from edgegnn.models import build_model
    from edgegnn.models.graph import BipartiteGraph
    from edgegnn.train.trainer import StepRunner, seed_everything

    card = worker.card_for(loss, kind)
    seed_everything(card.training.seed)
    model = build_model(card.model, split.num_users, split.num_items).to(dtype)
    graph = BipartiteGraph.from_interactions(split.train, dtype=dtype)
    runner = StepRunner(model, graph, split.train, card.training)
    order = torch.randperm(len(runner.users), generator=runner.generator)
    losses, grad = [], None
    others = {name: param for name, param in model.named_parameters() if param is not model.ego_embeddings}
    for step in range(worker.STEPS):
        if loss == "whole-data":
            losses.append(runner.whole_data_step())
        else:
            batch = order[step * worker.BATCH:(step + 1) * worker.BATCH]
            losses.append((runner.bpr_step if loss == "bpr" else runner.bce_step)(batch))
        if step == 0:
            grad = model.ego_embeddings.grad.detach().clone()
            other_grads = {name: param.grad.detach().clone() for name, param in others.items()}
    return losses, grad, model.ego_embeddings.detach().clone(), other_grads, {
        name: param.detach().clone() for name, param in others.items()}


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """Elementwise within rtol, with an absolute floor of rtol x the largest entry (gradients of
    rows that barely move are sums of terms that cancel)."""
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * float(expected.abs().max()))


TRAINED = [("lightgcn", "whole-data"), ("lightgcn", "bpr"), ("lightgcn", "bce"), ("sage", "whole-data"),
           ("sage", "bpr"), ("gat", "whole-data"), ("gat", "bpr")]


@pytest.mark.parametrize("kind,loss", TRAINED)
def test_two_ranks_match_one_process_in_float64(two_ranks, split, kind, loss):
    losses, grad, table, other_grads, others = single_process(split, loss, torch.float64, kind)
    result = two_ranks[worker.case_name(kind, loss, torch.float64)]
    assert two_ranks["world_size"] == 2
    np.testing.assert_allclose(result["losses"], losses, rtol=1e-10)
    close(result["grad"], grad, 1e-10)
    close(result["table"], table, 1e-10)
    moved = (table - single_process_start(split, loss, kind)).abs().max()
    assert moved > 1e-3                                  # the 5 steps did move the table
    assert result["replicated"].keys() == others.keys() and (kind != "lightgcn") == bool(others)
    for name in others:                       # the layers' weights: gradients summed over ranks, then stepped
        close(result["replicated_grads"][name], other_grads[name], 1e-10)
        close(result["replicated"][name], others[name], 1e-10)


def single_process_start(split, loss: str, kind: str) -> torch.Tensor:
    from edgegnn.models import build_model
    from edgegnn.train.trainer import seed_everything

    card = worker.card_for(loss, kind)
    seed_everything(card.training.seed)
    return build_model(card.model, split.num_users, split.num_items).ego_embeddings.detach().double()


def test_every_row_lives_on_one_rank_and_the_halo_is_what_the_partition_predicts(two_ranks, split):
    from edgegnn.distributed.partition import halo_rows, partition_items, partition_users

    rows = two_ranks["whole-data/float64"]["rows_per_rank"]
    assert sum(rows) == split.num_users + split.num_items            # users and items split, nothing replicated
    assert max(rows) - min(rows) <= 2
    pairs = np.unique(np.stack([split.train.users, split.train.items]), axis=1)
    users = partition_users(np.bincount(pairs[0], minlength=split.num_users), 2)
    items = partition_items(np.bincount(pairs[1], minlength=split.num_items), 2)
    sent, received = halo_rows(pairs[0], pairs[1], users, items)
    assert two_ranks["whole-data/float64"]["halo_foreign_rows"] == [(int(s), int(r)) for s, r in zip(sent, received)]
    assert sent.sum() == received.sum() > 0


@pytest.mark.parametrize("loss", ["whole-data", "bpr"])
def test_two_ranks_match_one_process_in_float32(two_ranks, split, loss):
    losses, grad, table, _, _ = single_process(split, loss, torch.float32)
    result = two_ranks[worker.case_name("lightgcn", loss, torch.float32)]
    np.testing.assert_allclose(result["losses"], losses, rtol=1e-5)
    close(result["grad"], grad, 1e-5)
    close(result["table"], table, 1e-5)


@pytest.mark.parametrize("kind,loss", TRAINED)
def test_gradients_through_the_collectives_match_finite_differences(two_ranks, split, kind, loss):
    checked = two_ranks[worker.case_name(kind, loss, torch.float64)]["finite_differences"]
    analytic = checked["analytic"]
    owners = {what for what, _, _ in checked["coordinates"]}
    assert owners == {"lightgcn": {"user", "item"}, "sage": {"user", "item", "weight"}, "gat": {"item", "weight"}}[kind]
    user_rows = split.num_users if kind != "gat" else 0          # graph attention's table is its items
    for (what, row, col), numeric in zip(checked["coordinates"], checked["numeric"]):
        if what == "weight":                                    # a replicated weight, [col, col]
            expected = float(checked["analytic_weights"][row][col, col])
        else:
            expected = float(analytic[row if what == "user" else user_rows + row, col])
        assert abs(numeric - expected) <= 1e-6 * max(abs(expected), 1e-3), (what, row, col, numeric, expected)
    assert max(abs(n) for n in checked["numeric"]) > 1e-6      # not a vacuous match of zeros


@pytest.mark.parametrize("name", worker.FILTERS)
def test_a_graph_filter_assembled_from_products_over_two_ranks_is_the_one_process_filter(two_ranks, split, name):
    """The same eigenvectors in, the products with P̃ over the ranks' blocks (ChebyCF's scaled
    neighbour lists, BSPM's sharpening): the one-process tables to float32 rounding. Lists may
    pick another of equally weighted neighbours (the sums round apart): each chosen id's weight
    must be its entry of the scaled P̃."""
    from edgegnn.models.graph_filter import FilterProducts, filter_tables, top_neighbors

    config, degree, vectors, values, count, normalized = worker.filter_inputs(split, name)
    scales = {}

    def neighbors(n, **given):
        scales.update(given)
        return top_neighbors(normalized, n, **given)

    products = FilterProducts(neighbors=neighbors, gram=lambda columns: normalized.T @ (normalized @ columns))
    expected = filter_tables(config, degree, vectors, values, count, products)
    actual = two_ranks["graph_filters"][name]
    for field in ("neighbor_weights", "message", "item"):
        np.testing.assert_allclose(getattr(actual, field), getattr(expected, field), rtol=1e-5,
                                   atol=1e-6 * np.abs(getattr(expected, field)).max(), err_msg=field)
    scaled = (normalized.T @ normalized).toarray().astype(np.float64)
    if scales.get("column_scale") is not None:
        scaled *= scales["column_scale"][None, :]
    if scales.get("row_scale") is not None:
        scaled *= scales["row_scale"][:, None]
    chosen = np.take_along_axis(scaled, actual.neighbor_items.astype(np.int64), axis=1)
    np.testing.assert_allclose(actual.neighbor_weights, chosen, rtol=1e-5, atol=1e-7)
    assert (actual.neighbor_items != np.arange(split.num_items)[:, None]).all()           # no diagonal
    assert (actual.neighbor_items == expected.neighbor_items).mean() > 0.99
    assert np.abs(expected.item).max() > 0 and (expected.neighbor_weights > 0).any()
