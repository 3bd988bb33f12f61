"""Distributed training on one 2-core machine: memory per rank, bytes communicated, and time.

LightGCN (models/lightgcn.yaml: d = 64, L = 3) on the Gowalla split, whole-data loss (one step
per epoch) and BPR (a few steps), in three runs, one after the other on the same machine:
    plain, 2 threads      one process, the single-process trainer (StepRunner)
    plain, 1 thread       the same with one thread (the compute of one rank at W = 1)
    2 ranks x 1 thread    torchrun --standalone --nproc_per_node 2, gloo on 127.0.0.1
Users and items are both split (edgegnn/distributed/halo.py). Each rank times its collectives
by wrapping torch.distributed's all_reduce / broadcast / all_to_all_single (a measurement
around the real calls), counts the bytes it sends to other ranks (an all-reduce's payload; an
all_to_all's rows for other ranks), and reads its peak RSS (VmHWM). The job's wire bytes are
the loopback interface's counters (/proc/net/dev) across the timed epochs. Per rank and epoch
of the whole-data loss the formula is
    (2L + 1) · (S_r + X_r) · d · 4 + 2 · d² · 4 + 8 bytes
with X_r the halo rows rank r fetches from others and S_r the rows of its items others fetch
(`edgegnn.distributed.partition.halo_rows`): L gathers and L scatter-adds forward, their
adjoints backward, one gather of the final item rows for the observed term and its adjoint;
the item Gram's d×d all-reduce forward and backward; the loss.
The cluster projection fits t_compute(W) = b / W to the measured per-rank compute and adds the
halo's transfer time at W ranks, from the exact halo of the partition at W (computed, not run),
at a stated bandwidth and per-message latency: a model, not a measurement.

    python benchmarks/bench_distributed.py [--epochs 8]
Writes benchmarks/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import REPO, gowalla_split, machine, write_json  # noqa: E402

CARD = REPO / "models" / "lightgcn.yaml"
BPR_STEPS = 3
NETWORKS = {"10 GbE": (1.25e9, 20e-6), "100 Gb/s InfiniBand": (12.5e9, 3e-6)}   # bytes/s, s per message


def loopback_bytes() -> int:
    """Bytes sent on the loopback interface so far (every process's)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            return int(counters.split()[8])
    return 0


class CollectiveMeter:
    """Wraps torch.distributed.all_reduce, broadcast and all_to_all_single: calls, bytes sent to
    other ranks (an all-reduce's payload) and seconds."""

    def __init__(self):
        import torch.distributed as dist

        self.rank = dist.get_rank()
        self.calls, self.bytes, self.seconds = 0, 0, 0.0
        for name in ("all_reduce", "broadcast"):
            setattr(dist, name, self._timed(getattr(dist, name), lambda tensor, *_, **__: tensor.nbytes))
        dist.all_to_all_single = self._timed(dist.all_to_all_single, self._sent_to_others)

    def _sent_to_others(self, output, tensor, output_split_sizes=None, input_split_sizes=None, *_, **__) -> int:
        row_bytes = tensor.nbytes // max(len(tensor), 1)
        own = input_split_sizes[self.rank] if input_split_sizes is not None else len(tensor) // len(output)
        return (len(tensor) - own) * row_bytes

    def _timed(self, collective, sent_bytes):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            result = collective(*args, **kwargs)
            self.seconds += time.perf_counter() - started
            self.calls += 1
            self.bytes += sent_bytes(*args, **kwargs)
            return result
        return timed

    def reset(self) -> None:
        self.calls, self.bytes, self.seconds = 0, 0, 0.0


def peak_rss() -> int:
    from edgegnn.profile.probe import memory

    return memory()["VmHWM"]


def card(loss: str):
    import dataclasses

    from edgegnn.models import load_model_card

    loaded = load_model_card(CARD)
    return dataclasses.replace(loaded, training=dataclasses.replace(loaded.training, loss=loss))


def time_epochs(run_epoch, epochs: int, meter: CollectiveMeter | None) -> dict:
    run_epoch()                                         # warm-up: first-touch allocations
    seconds, comm, payload = [], [], []
    for _ in range(epochs):
        if meter is not None:
            meter.reset()
        started = time.perf_counter()
        run_epoch()
        seconds.append(time.perf_counter() - started)
        if meter is not None:
            comm.append(meter.seconds)
            payload.append(meter.bytes)
    record = {"epoch_seconds_median": statistics.median(seconds), "epoch_seconds": seconds}
    if meter is not None:
        record.update(comm_seconds_median=statistics.median(comm), payload_bytes_per_epoch=payload[-1],
                      collectives_per_epoch=meter.calls)
    return record


def batch_steps(step, order: torch.Tensor, size: int):
    """A callable running `step` on the next batch of `order` at each call."""
    starts = iter(range(0, len(order), size))
    return lambda: step(order[next(starts):][:size])


def plain_worker(epochs: int, threads: int) -> dict:
    from edgegnn.models import build_model
    from edgegnn.models.graph import BipartiteGraph
    from edgegnn.train.trainer import StepRunner, seed_everything

    torch.set_num_threads(threads)
    split = gowalla_split()
    results = {}
    for loss in ("whole-data", "bpr"):
        chosen = card(loss)
        seed_everything(0)
        model = build_model(chosen.model, split.num_users, split.num_items)
        runner = StepRunner(model, BipartiteGraph.from_interactions(split.train), split.train, chosen.training)
        if loss == "whole-data":
            results[loss] = time_epochs(runner.whole_data_step, epochs, None)
        else:
            order = torch.randperm(len(runner.users), generator=runner.generator)
            results[loss] = time_epochs(batch_steps(runner.bpr_step, order, chosen.training.batch_size), BPR_STEPS,
                                        None)
    results["peak_rss_bytes"] = peak_rss()
    return results


def distributed_worker(epochs: int) -> dict | None:
    import torch.distributed as dist

    from edgegnn.distributed.context import init_from_env
    from edgegnn.distributed.train import set_up_rank

    context = init_from_env()
    meter = CollectiveMeter()
    split = gowalla_split()
    results = {}
    for loss in ("whole-data", "bpr"):
        chosen = card(loss)
        setup = set_up_rank(split, chosen, context, torch.float32)
        table = setup.model.table
        sent, received = setup.model.halo.foreign_rows(context.rank)
        record = {"users": setup.model.num_local_users, "items": len(table) - setup.model.num_local_users,
                  "pairs": len(setup.runner.pairs.users), "halo_rows": setup.model.halo.size,
                  "halo_rows_sent": sent, "halo_rows_received": received,
                  "table_bytes": table.numel() * table.element_size(),
                  "adjacency_nnz": 2 * int(setup.model.user_to_halo.values().numel())}
        dist.barrier()
        wire = loopback_bytes()
        if loss == "whole-data":
            record.update(time_epochs(setup.runner.whole_data_step, epochs, meter))
            steps = epochs + 1
        else:
            order = torch.randperm(setup.runner.pairs.num_pairs, generator=setup.runner.generator)
            size = chosen.training.batch_size
            record.update(time_epochs(batch_steps(setup.runner.bpr_step, order, size), BPR_STEPS, meter))
            record["steps_per_epoch"] = -(-setup.runner.pairs.num_pairs // size)
            steps = BPR_STEPS + 1
        dist.barrier()
        record["loopback_bytes_per_step"] = (loopback_bytes() - wire) / steps
        results[loss] = record
    results["peak_rss_bytes"] = peak_rss()
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, results)
    dist.destroy_process_group()
    return {"ranks": gathered} if context.rank == 0 else None


def run_worker(args_list: list[str], env: dict, launcher: list[str]) -> dict:
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_distributed_{os.getpid()}_{len(args_list)}.json"
    done = subprocess.run([*launcher, str(Path(__file__)), "--worker", str(out), *args_list], env=env,
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(out.read_text())
    out.unlink()
    return result


def halo_at(split, world: int) -> tuple[int, int]:
    """(largest rows sent + received by one rank per halo exchange, the largest block of users +
    items) of the partition at `world` ranks."""
    import numpy as np

    from edgegnn.distributed.partition import halo_rows, partition_items, partition_users

    pairs = np.unique(np.stack([split.train.users, split.train.items]), axis=1)
    users = partition_users(np.bincount(pairs[0], minlength=split.num_users), world)
    items = partition_items(np.bincount(pairs[1], minlength=split.num_items), world)
    sent, received = halo_rows(pairs[0], pairs[1], users, items)
    return int((sent + received).max()), users.block_rows + items.block_rows


def projection(plain_1: dict, split, layers: int, dim: int) -> dict:
    """Whole-data seconds per epoch at W ranks on a cluster (module docstring)."""
    compute_1 = plain_1["whole-data"]["epoch_seconds_median"]
    exchanges = 2 * (2 * layers + 1)
    table = {}
    halos = {world: halo_at(split, world) for world in (1, 2, 4, 8, 16, 64)}
    for network, (bandwidth, latency) in NETWORKS.items():
        rows = {}
        for world, (halo, block) in halos.items():
            transfer = 0.0 if world == 1 else (exchanges // 2 * halo * dim * 4 / bandwidth
                                               + exchanges * (world - 1) * latency)
            rows[str(world)] = {"compute_s": compute_1 / world, "communication_s": transfer,
                                "epoch_s": compute_1 / world + transfer, "halo_rows_per_exchange": halo,
                                "table_rows_per_rank": block}
        table[network] = rows
    return {"compute_s_at_1": compute_1, "networks": table,
            "model": "t(W) = t(1)/W + (2L+1) * max_r (S_r + X_r) * d * 4 / bandwidth "
                     "+ 2(2L+1) * (W-1) * latency"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--worker", default=None)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        result = plain_worker(args.epochs, args.threads) if args.threads else distributed_worker(args.epochs)
        if result is not None:
            Path(args.worker).write_text(json.dumps(result))
        return
    python = [sys.executable]
    torchrun = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain_2 = run_worker(["--epochs", str(args.epochs), "--threads", "2"], {**os.environ, "OMP_NUM_THREADS": "2"},
                         python)
    plain_1 = run_worker(["--epochs", str(args.epochs), "--threads", "1"], env, python)
    two = run_worker(["--epochs", str(args.epochs)], env, torchrun)
    split = gowalla_split()
    chosen = card("whole-data")
    layers, dim = chosen.model.num_layers, chosen.model.embedding_dim
    ranks = two["ranks"]
    whole = [r["whole-data"] for r in ranks]
    formula = [(2 * layers + 1) * (w["halo_rows_sent"] + w["halo_rows_received"]) * dim * 4 + 2 * dim * dim * 4 + 8
               for w in whole]
    result = {
        "data": {"name": "gowalla", "users": split.num_users, "items": split.num_items,
                 "train_pairs": len(split.train)},
        "card": str(CARD.relative_to(REPO)), "epochs_timed": args.epochs,
        "plain_2_threads": plain_2, "plain_1_thread": plain_1, "two_ranks_1_thread": two,
        "whole_data": {
            "epoch_seconds": {"1 process x 2 threads": plain_2["whole-data"]["epoch_seconds_median"],
                              "1 process x 1 thread": plain_1["whole-data"]["epoch_seconds_median"],
                              "2 processes x 1 thread": max(w["epoch_seconds_median"] for w in whole)},
            "speedup_2_procs_over_2_threads": plain_2["whole-data"]["epoch_seconds_median"]
            / max(w["epoch_seconds_median"] for w in whole),
            "sent_bytes_per_rank_measured": [w["payload_bytes_per_epoch"] for w in whole],
            "sent_bytes_per_rank_formula": formula,
            "sent_formula": "(2L+1) * (S_r + X_r) * d * 4 + 2 * d^2 * 4 + 8",
            "replicated_items_bytes_per_rank": (2 * layers + 1) * split.num_items * dim * 4,
            "loopback_bytes_per_epoch_job": whole[0]["loopback_bytes_per_step"],
        },
        "memory": {"peak_rss_bytes_per_rank": [r["peak_rss_bytes"] for r in ranks],
                   "peak_rss_bytes_plain": plain_1["peak_rss_bytes"],
                   "table_bytes_per_rank": [r["whole-data"]["table_bytes"] for r in ranks],
                   "halo_rows_per_rank": [r["whole-data"]["halo_rows"] for r in ranks],
                   "table_bytes_plain": (split.num_users + split.num_items) * dim * 4,
                   "adjacency_nnz_per_rank": [r["whole-data"]["adjacency_nnz"] for r in ranks],
                   "adjacency_nnz_plain": 2 * len(split.train)},
        "bpr": {"payload_bytes_per_step_per_rank": ranks[0]["bpr"]["payload_bytes_per_epoch"],
                "steps_per_epoch": ranks[0]["bpr"]["steps_per_epoch"],
                "payload_bytes_per_epoch_per_rank": ranks[0]["bpr"]["payload_bytes_per_epoch"]
                * ranks[0]["bpr"]["steps_per_epoch"],
                "step_seconds": {"1 process x 2 threads": plain_2["bpr"]["epoch_seconds_median"],
                                 "2 processes x 1 thread": max(r["bpr"]["epoch_seconds_median"] for r in ranks)}},
        "projection": projection(plain_1, split, layers, dim),
        "measured_on": machine()["cpu"],
    }
    print(write_json("distributed", result))


if __name__ == "__main__":
    main()
