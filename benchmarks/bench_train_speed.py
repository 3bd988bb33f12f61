"""Epoch time of `edgegnn train` against PyG's LightGCN used as in PyG's examples/lightgcn.py.

Same data (Gowalla), same batch size, same machine, one run, interleaved. PyG's example
passes `edge_index` to the model, which re-normalizes and scatters on every batch; an
epoch of it takes minutes here, so both sides are timed over the same number of batches
and the epoch time is extrapolated as (mean batch time) x (batches per epoch). The
edgegnn whole-data loss takes one step per epoch and is timed over whole epochs.

    python benchmarks/bench_train_speed.py [--batch-size 8192] [--batches 4]
Writes benchmarks/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from common import gowalla_split, machine, write_json


def pyg_example_step_fn(split, batch_size: int, generator: torch.Generator):
    """One training step exactly as PyG's examples/lightgcn.py does it."""
    from torch_geometric.nn.models import LightGCN

    num_users, num_items = split.num_users, split.num_items
    users = torch.from_numpy(split.train.users)
    items = torch.from_numpy(split.train.items) + num_users
    edge_index = torch.cat([torch.stack([users, items]), torch.stack([items, users])], dim=1)
    model = LightGCN(num_users + num_items, embedding_dim=64, num_layers=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)

    def step() -> None:
        index = torch.randint(len(users), (batch_size,), generator=generator)
        pos = torch.stack([users[index], items[index]])
        neg = torch.stack([pos[0], torch.randint(num_users, num_users + num_items, (batch_size,),
                                                 generator=generator)])
        edge_label_index = torch.cat([pos, neg], dim=1)
        pos_rank, neg_rank = model(edge_index, edge_label_index).chunk(2)
        loss = model.recommendation_loss(pos_rank, neg_rank, node_id=edge_label_index.unique(), lambda_reg=1e-4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def edgegnn_runner(split, loss: str, batch_size: int):
    from edgegnn.models import LightGCNConfig, TrainConfig, build_model
    from edgegnn.models.graph import BipartiteGraph
    from edgegnn.train.trainer import StepRunner

    config = TrainConfig(loss=loss, batch_size=batch_size, learning_rate=0.001)
    model = build_model(LightGCNConfig(), split.num_users, split.num_items)
    graph = BipartiteGraph.from_interactions(split.train)
    _ = graph.sym_adjacency  # built once, before timing (part of set-up, like PyG's data loading)
    return StepRunner(model, graph, split.train, config)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per side (after 1 warm-up)")
    args = parser.parse_args()
    split = gowalla_split()
    batches_per_epoch = math.ceil(len(split.train) / args.batch_size)
    generator = torch.Generator().manual_seed(0)

    pyg_step = pyg_example_step_fn(split, args.batch_size, generator)
    ours_bpr = edgegnn_runner(split, "bpr", args.batch_size)

    def ours_bpr_batch():
        return ours_bpr.bpr_step(torch.randint(len(ours_bpr.users), (args.batch_size,), generator=generator))

    ours_whole = edgegnn_runner(split, "whole-data", args.batch_size)

    for fn in (pyg_step, ours_bpr_batch, ours_whole.whole_data_step):
        fn()  # warm-up
    pyg_times, bpr_times, whole_times = [], [], []
    for _ in range(args.batches):  # interleaved: the machine is shared and noisy
        pyg_times.append(timed(pyg_step))
        bpr_times.append(timed(ours_bpr_batch))
        whole_times.append(timed(ours_whole.whole_data_step))

    pyg_batch, bpr_batch = statistics.median(pyg_times), statistics.median(bpr_times)
    whole_epoch = statistics.median(whole_times)
    result = {
        "data": "gowalla (LightGCN paper split)",
        "batch_size": args.batch_size,
        "batches_per_epoch": batches_per_epoch,
        "pyg_example": {"seconds_per_batch": pyg_batch, "seconds_per_epoch": pyg_batch * batches_per_epoch,
                        "batch_times": pyg_times},
        "edgegnn_bpr": {"seconds_per_batch": bpr_batch, "seconds_per_epoch": bpr_batch * batches_per_epoch,
                        "batch_times": bpr_times},
        "edgegnn_whole_data": {"seconds_per_epoch": whole_epoch, "epoch_times": whole_times},
        "speedup_bpr_same_batch": pyg_batch / bpr_batch,
        "speedup_epoch_whole_data": pyg_batch * batches_per_epoch / whole_epoch,
        "machine": machine(),
    }
    path = write_json("train_speed", result)
    print(f"PyG example: {pyg_batch:.2f} s/batch ({pyg_batch * batches_per_epoch:.0f} s/epoch); "
          f"edgegnn BPR: {bpr_batch:.2f} s/batch ({result['speedup_bpr_same_batch']:.1f}x); "
          f"edgegnn whole-data: {whole_epoch:.2f} s/epoch ({result['speedup_epoch_whole_data']:.0f}x per epoch)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
