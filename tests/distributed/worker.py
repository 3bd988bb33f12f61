"""Run under torchrun by tests/distributed/test_equivalence.py: steps of the distributed runner,
written by rank 0 for the test to compare with the single-process trainer.

    torchrun --standalone --nproc_per_node 2 tests/distributed/worker.py OUT.pt

For each case (loss, dtype) it records the loss and the gathered gradient of step 1 and the
gathered table after 5 steps (whole-data: 5 epochs; BPR: the first 5 batches of an epoch), and
for float64 the gradient checked by central differences at a few coordinates of every rank.
For each graph filter it records the tables assembled from the one-process eigenvectors with
P̃'s products computed over the ranks (`graph_filter_tables`).
"""

from __future__ import annotations

import sys

import torch

from edgegnn.data import load_dataset
from edgegnn.distributed.context import init_from_env, sum_over_ranks
from edgegnn.distributed.state import gather_table
from edgegnn.distributed.steps import reduce_gradients
from edgegnn.distributed.train import set_up_rank
from edgegnn.models import GATConfig, LightGCNConfig, ModelCard, SAGEConfig, TrainConfig

DATA = "synthetic:users=300,items=200,seed=1"
CASES = [("lightgcn", "whole-data", torch.float64), ("lightgcn", "bpr", torch.float64),
         ("lightgcn", "bce", torch.float64), ("lightgcn", "whole-data", torch.float32),
         ("lightgcn", "bpr", torch.float32), ("sage", "whole-data", torch.float64), ("sage", "bpr", torch.float64),
         ("gat", "whole-data", torch.float64), ("gat", "bpr", torch.float64)]
STEPS = 5
BATCH = 256
STEP = 1e-6            # central differences in float64


def card_for(loss: str, kind: str = "lightgcn") -> ModelCard:
    model = {"lightgcn": LightGCNConfig(embedding_dim=8, num_layers=2),
             "sage": SAGEConfig(embedding_dim=8, hidden_dim=6), "gat": GATConfig(embedding_dim=8)}[kind]
    return ModelCard(name=f"{kind}-{loss}", model=model,
                     training=TrainConfig(loss=loss, batch_size=BATCH, learning_rate=0.01, seed=3))


def case_name(kind: str, loss: str, dtype: torch.dtype) -> str:
    return f"{'' if kind == 'lightgcn' else kind + '/'}{loss}/{str(dtype).removeprefix('torch.')}"


def replicated(setup) -> dict[str, torch.Tensor]:
    """The model's replicated parameters by name (GraphSAGE's layers), as the plain model names them."""
    return {name: param.detach().clone() for name, param in setup.model.named_parameters() if name != "table"}


def replicated_grads(setup) -> dict[str, torch.Tensor]:
    return {name: param.grad.detach().clone() for name, param in setup.model.named_parameters() if name != "table"}


def run_steps(setup, loss: str, order: torch.Tensor) -> list[float]:
    """STEPS steps; the losses. BPR/BCE step on the batches of `order`."""
    losses = []
    for step in range(STEPS):
        if loss == "whole-data":
            losses.append(setup.runner.whole_data_step())
        else:
            batch = order[step * BATCH:(step + 1) * BATCH]
            losses.append((setup.runner.bpr_step if loss == "bpr" else setup.runner.bce_step)(batch))
        if step == 0:
            first_grad = gather_table(setup.layout, setup.model.table.grad), replicated_grads(setup)
    return losses, first_grad


def fixed_loss(setup, loss: str, batch: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """This rank's part of the loss at fixed samples (for finite differences)."""
    runner = setup.runner
    return runner.whole_data_loss() if loss == "whole-data" else runner.sampled_loss(batch, negatives)


def owned_row(setup, what: str, index: int) -> tuple[int, int]:
    """(owner rank, row in the owner's table) of original user or item `index`."""
    partition = setup.users if what == "user" else setup.items
    owner = int(partition.owners()[index])
    row = int(partition.renumbered()[index] - partition.bounds[owner])
    return owner, row if what == "user" or not setup.model.user_rows else setup.users.size_of(owner) + row


def finite_differences(setup, context, loss: str) -> dict:
    """dL/dE⁰ by autograd (gathered) and by central differences at coordinates on every rank."""
    generator = torch.Generator().manual_seed(11)
    num_pairs = setup.runner.pairs.num_pairs
    batch = torch.randperm(num_pairs, generator=generator)[:BATCH]
    shape = (len(batch),) if loss == "bpr" else (len(batch), 4)
    negatives = torch.randint(setup.runner.pairs.num_items, shape, generator=generator)
    table = setup.model.table
    table.grad = None
    fixed_loss(setup, loss, batch, negatives).backward()
    reduce_gradients(setup.model.replicated_parameters())
    analytic = gather_table(setup.layout, table.grad)
    weights = dict(setup.model.named_parameters())
    coordinates = [("user", int(setup.users.rows_of(owner)[k * 3]), k)     # two user rows of each rank
                   for owner in range(context.world_size) for k in range(2) if setup.model.user_rows]
    coordinates += [("item", int(setup.items.rows_of(owner)[k * 5]), k)     # two item rows of each rank
                    for owner in range(context.world_size) for k in range(2)]
    matrices = [name for name, weight in weights.items() if name != "table" and weight.dim() == 2]
    coordinates += [("weight", name, k) for name in matrices[:2] for k in range(2)]   # replicated layers
    numeric = []
    for what, index, col in coordinates:
        if what == "weight":                          # replicated: every rank moves its copy
            target, at = weights[index], (col, col)
        else:
            owner, row = owned_row(setup, what, index)
            target, at = (table, (row, col)) if owner == context.rank else (None, None)
        values = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                if target is not None:
                    target[at] += sign * STEP
            values.append(sum_over_ranks(float(fixed_loss(setup, loss, batch, negatives))))
            with torch.no_grad():
                if target is not None:
                    target[at] -= sign * STEP
        numeric.append((values[0] - values[1]) / (2 * STEP))
    return {"coordinates": coordinates, "numeric": numeric, "analytic": analytic,
            "analytic_weights": {name: weights[name].grad.detach().clone() for name in weights if name != "table"}}


FILTERS = ("gf-cf", "chebycf", "bspm")


def filter_inputs(split, name: str):
    """(card config, item degrees, eigenvectors, eigenvalues, N, normalized R̃) as the one-process fit
    computes them: every rank gets the same."""
    from sklearn.utils.extmath import randomized_svd

    from edgegnn.models import GraphFilterConfig
    from edgegnn.models.graph_filter import neighbor_count, normalized_interactions

    config = GraphFilterConfig(filter=name, rank=8, neighbors=12)
    normalized, item_degree = normalized_interactions(split.train.to_csr())
    _, singular, vt = randomized_svd(normalized, config.rank, n_iter=config.svd_iterations, random_state=0)
    return (config, item_degree, vt.T.astype(float), singular.astype(float) ** 2,
            neighbor_count(config, split.num_items), normalized)


def graph_filter_tables(split, context) -> dict:
    """Each filter's tables with the products over the ranks' blocks of users (rank 0's; None elsewhere)."""
    from edgegnn.distributed.graph_filter import distributed_products, local_normalized
    from edgegnn.distributed.train import partitions, unique_pairs
    from edgegnn.models.graph_filter import filter_tables

    users, _ = partitions(unique_pairs(split), split, context.world_size)
    block, _ = local_normalized(split.train.to_csr(), users.rows_of(context.rank))
    tables = {}
    for name in FILTERS:
        config, degree, vectors, values, count, _ = filter_inputs(split, name)
        tables[name] = filter_tables(config, degree, vectors, values, count, distributed_products(block, context))
    return tables


def all_gathered(value: int) -> list[int]:
    values = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(values, value)
    return values


def main(out: str) -> None:
    context = init_from_env()
    split = load_dataset(DATA, valid_ratio=0.0, seed=0)
    results = {"world_size": context.world_size}
    for kind, loss, dtype in CASES:
        card = card_for(loss, kind)
        setup = set_up_rank(split, card, context, dtype)
        order = torch.randperm(setup.runner.pairs.num_pairs, generator=setup.runner.generator)
        losses, (first_grad, first_replicated_grads) = run_steps(setup, loss, order)
        record = {"losses": losses, "grad": first_grad, "table": gather_table(setup.layout, setup.model.table),
                  "replicated_grads": first_replicated_grads, "replicated": replicated(setup),
                  "rows_per_rank": all_gathered(len(setup.model.table)),
                  "halo_foreign_rows": all_gathered(setup.model.halo.foreign_rows(context.rank))}
        if dtype == torch.float64:
            fresh = set_up_rank(split, card, context, dtype)
            record["finite_differences"] = finite_differences(fresh, context, loss)
        results[case_name(kind, loss, dtype)] = record
    results["graph_filters"] = graph_filter_tables(split, context)
    if context.is_writer:
        torch.save(results, out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
