"""Graph attention on Gowalla against LightGCN: quality, artifact bytes and batch-1 p50, one run.

    lightgcn-int8   the 64-dim LightGCN of benchmarks/results/gowalla_lightgcn.pt, folded, int8
    gat-int8        models/gat.yaml (GATv2, 64 dims) trained here for --epochs epochs (early
                    stopping on 10 % of each user's training rows), int8
each exported for cpu-x86_64 and android-litert; Recall@20 / NDCG@20 on the artifact (3,000
test users, as new users), p50 at batch 1, history 20, 1 thread (bench_graph_filter_gowalla's
protocol). The graph filters' rows of the same protocol: benchmarks/results/graph_filter_gowalla.json.

    .venv/bin/python benchmarks/bench_gat_gowalla.py [--epochs 80]
Writes benchmarks/results/gat_gowalla.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from bench_graph_filter_gowalla import logger, profile_edges
from common import REPO, RESULTS, gowalla_split, write_json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    from edgegnn.compress import Calibration, QuantizeConfig
    from edgegnn.compress.quantize import quantize
    from edgegnn.fold import fold
    from edgegnn.models import load_model_card
    from edgegnn.train.api import fit
    from edgegnn.train.checkpoint import load_checkpoint

    log = logger()
    split = gowalla_split(valid_ratio=0.1)
    calibration = Calibration.from_split(split, num_users=512, seed=0)
    card = load_model_card(REPO / "models" / "gat.yaml")
    started = time.perf_counter()
    checkpoint, result = fit(split, card, epochs=args.epochs)
    fits = {"gat": {"seconds": round(time.perf_counter() - started, 1), "epochs": result.epochs_run,
                    "best_epoch": result.best_epoch, "test": checkpoint.metrics["test"],
                    "valid": checkpoint.metrics.get("valid")}}
    log(f"gat: trained, test recall@20 {checkpoint.metrics['test']['recall@20']:.4f}")
    edges = {"gat-int8": quantize(fold(checkpoint), QuantizeConfig(), calibration)}
    lightgcn = RESULTS / "gowalla_lightgcn.pt"
    if lightgcn.is_file():
        edges = {"lightgcn-int8": quantize(fold(load_checkpoint(lightgcn)), QuantizeConfig(), calibration), **edges}
    test_split = dataclasses.replace(split, valid=None)
    rows = profile_edges(edges, test_split, iterations=args.iterations, warmup=args.warmup, log=log)
    path = write_json("gat_gowalla", {"fits": fits, "artifacts": rows, "epochs": args.epochs,
                                      "protocol": "batch 1, history 20, 1 thread; quality on the artifact"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
