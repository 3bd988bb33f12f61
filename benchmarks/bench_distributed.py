"""Distributed training on one 2-core machine: memory per rank, bytes communicated, and time.

LightGCN (models/lightgcn.yaml: d = 64, L = 3) on the Gowalla split, whole-data loss (one step
per epoch) and BPR (a few steps), in three runs, one after the other on the same machine:
    plain, 2 threads      one process, the single-process trainer (StepRunner)
    plain, 1 thread       the same with one thread (the compute of one rank at W = 1)
    2 ranks x 1 thread    torchrun --standalone --nproc_per_node 2, gloo on 127.0.0.1
Each rank times its collectives by wrapping torch.distributed's all_reduce / broadcast (a
measurement around the real calls), counts their payload bytes, and reads its peak RSS
(VmHWM). The job's wire bytes are the loopback interface's counters (/proc/net/dev) across
the timed epochs. The payload per epoch of the whole-data loss is, per rank,
    (2L + 1) · I · d · 4 bytes      L forward + L backward item all-reduces + the item gradient
plus the 8-byte loss (and, in a training loop, rank 0's clock); a ring all-reduce moves 2(W-1)/W of it per rank.
The cluster projection fits t_compute(W) = a + b / W to the measured per-rank compute at W = 1
and 2 (a: the replicated item work, b: the work split by users) and adds the ring's transfer
time at a stated bandwidth and latency: a model, not a measurement.

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
    """Wraps torch.distributed.all_reduce and broadcast: calls, payload bytes and seconds."""

    def __init__(self):
        import torch.distributed as dist

        self.calls, self.bytes, self.seconds = 0, 0, 0.0
        for name in ("all_reduce", "broadcast"):
            setattr(dist, name, self._timed(getattr(dist, name)))

    def _timed(self, collective):
        def timed(tensor, *args, **kwargs):
            started = time.perf_counter()
            result = collective(tensor, *args, **kwargs)
            self.seconds += time.perf_counter() - started
            self.calls += 1
            self.bytes += tensor.numel() * tensor.element_size()
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
        record = {"users": setup.model.num_local_users, "pairs": len(setup.runner.pairs.users),
                  "table_bytes": table.numel() * table.element_size(),
                  "adjacency_nnz": int(setup.model.adjacency.values().numel())}
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


def projection(plain_1: dict, ranks: list[dict], split_shape: tuple[int, int], layers: int, dim: int) -> dict:
    """Whole-data seconds per epoch at W ranks on a cluster (module docstring)."""
    compute_1 = plain_1["whole-data"]["epoch_seconds_median"]
    compute_2 = max(r["whole-data"]["epoch_seconds_median"] - r["whole-data"]["comm_seconds_median"] for r in ranks)
    b = max(2 * (compute_1 - compute_2), 0.0)
    a = compute_1 - b
    _, items = split_shape
    payload = (2 * layers + 1) * items * dim * 4
    collectives = 2 * layers + 1
    table = {}
    for network, (bandwidth, latency) in NETWORKS.items():
        rows = {}
        for world in (1, 2, 4, 8, 16, 64):
            transfer = 0.0 if world == 1 else (2 * (world - 1) / world * payload / bandwidth
                                               + collectives * 2 * (world - 1) * latency)
            rows[str(world)] = {"compute_s": a + b / world, "communication_s": transfer,
                                "epoch_s": a + b / world + transfer}
        table[network] = rows
    return {"replicated_compute_s": a, "split_compute_s_at_1": b, "networks": table,
            "model": "t(W) = a + b/W + 2(W-1)/W * payload / bandwidth + (2L+1) * 2(W-1) * latency"}


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
    formula = (2 * layers + 1) * split.num_items * dim * 4
    ranks = two["ranks"]
    whole = [r["whole-data"] for r in ranks]
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
            "payload_bytes_per_rank_measured": whole[0]["payload_bytes_per_epoch"],
            "payload_bytes_per_rank_formula": formula,
            "payload_formula": "(2L+1) * I * d * 4 (+8 bytes: the loss)",
            "loopback_bytes_per_epoch_job": whole[0]["loopback_bytes_per_step"],
            "ring_bytes_per_epoch_job_formula": 2 * (2 - 1) * formula,
        },
        "memory": {"peak_rss_bytes_per_rank": [r["peak_rss_bytes"] for r in ranks],
                   "peak_rss_bytes_plain": plain_1["peak_rss_bytes"],
                   "table_bytes_per_rank": [r["whole-data"]["table_bytes"] for r in ranks],
                   "table_bytes_plain": (split.num_users + split.num_items) * dim * 4,
                   "adjacency_nnz_per_rank": [r["whole-data"]["adjacency_nnz"] for r in ranks],
                   "adjacency_nnz_plain": 2 * len(split.train)},
        "bpr": {"payload_bytes_per_step_per_rank": ranks[0]["bpr"]["payload_bytes_per_epoch"],
                "steps_per_epoch": ranks[0]["bpr"]["steps_per_epoch"],
                "payload_bytes_per_epoch_per_rank": ranks[0]["bpr"]["payload_bytes_per_epoch"]
                * ranks[0]["bpr"]["steps_per_epoch"],
                "step_seconds": {"1 process x 2 threads": plain_2["bpr"]["epoch_seconds_median"],
                                 "2 processes x 1 thread": max(r["bpr"]["epoch_seconds_median"] for r in ranks)}},
        "projection": projection(plain_1, ranks, (split.num_users, split.num_items), layers, dim),
        "measured_on": machine()["cpu"],
    }
    print(write_json("distributed", result))


if __name__ == "__main__":
    main()
