"""Compression of a Gowalla LightGCN: the whole size / Recall@20 front, and the issue's targets.

Folds a checkpoint trained by `edgegnn train` on the Gowalla split, runs the accuracy-gated
search (every recipe of `edgegnn.compress.search.default_grid`, measured with the device
arithmetic on a fixed sample of test users, with their e_u⁰), and checks the targets:
    int8 <= 0.5 % relative Recall@20 drop (about 4x smaller); >= 8x at <= 1 %;
    >= 16x at <= 2 %; >= 32x at <= 5 %.
Sizes are whole-model bytes: every table, factor, scale, codebook and norm. Calibration:
2,048 training users (the distillations of the low-rank factors and PQ codebooks fit their
scores; with 512 the PQ codebooks overfit them: M=16 dropped 2.6 % instead of 2.0 %).

    python benchmarks/bench_gowalla_budget.py --model models/lightgcn.yaml --budget 600 \
        --save benchmarks/results/gowalla_lightgcn.pt        # the model (once)
    python benchmarks/bench_compress_gowalla.py --checkpoint benchmarks/results/gowalla_lightgcn.pt
Writes benchmarks/results/compress_gowalla.json.
"""

from __future__ import annotations

import argparse
import logging

from common import RESULTS, gowalla_split, machine, relative, write_json

TARGETS = ((4.0, 0.005), (8.0, 0.01), (16.0, 0.02), (32.0, 0.05))  # (x smaller, max relative drop)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=str(RESULTS / "gowalla_lightgcn.pt"))
    parser.add_argument("--max-users", type=int, default=8000)
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--calibration-users", type=int, default=2048)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from edgegnn.compress import Calibration, search
    from edgegnn.fold import fold, user_bases
    from edgegnn.train.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    split = gowalla_split(valid_ratio=0.0)
    edge = fold(checkpoint)
    base = user_bases(checkpoint)
    calibration = Calibration.from_split(split, num_users=args.calibration_users, seed=0, user_base=base)
    result = search(edge, split, calibration=calibration, max_drop=0.01, max_users=args.max_users,
                    user_base=base, finetune_steps=args.finetune_steps,
                    on_point=lambda i, n, p: print(f"{i:3d}/{n} {p.name:28s} {p.bytes:>11,} B  "
                                                   f"{edge.nbytes / p.bytes:5.1f}x  recall@20 {p.recall:.4f}  "
                                                   f"drop {100 * p.relative_drop:+.2f}%", flush=True))
    fp32_bytes = result.baseline.bytes
    targets = []
    for ratio, max_drop in TARGETS:
        fits = [p for p in result.points if fp32_bytes / p.bytes >= ratio and p.relative_drop <= max_drop]
        best = max(fits, key=lambda p: fp32_bytes / p.bytes, default=None)
        targets.append({"x_smaller_at_least": ratio, "max_relative_drop": max_drop, "met": best is not None,
                        "best": None if best is None else {**best.to_dict(), "x_smaller": fp32_bytes / best.bytes}})
        status = "met by " + best.name if best else "NOT met"
        print(f">= {ratio:g}x at <= {100 * max_drop:g}% drop: {status}")
    out = {"checkpoint": relative(args.checkpoint), "model_metrics": checkpoint.metrics.get("test"),
           "calibration_users": calibration.num_users, "finetune_steps": args.finetune_steps,
           "fp32_bytes": fp32_bytes, "targets": targets, "search": result.to_dict(),
           "x_smaller": {p.name: fp32_bytes / p.bytes for p in result.points}, "machine": machine()}
    path = write_json("compress_gowalla", out)
    print(f"search took {result.seconds:.0f} s over {len(result.points)} recipes on {result.users} users; wrote {path}")


if __name__ == "__main__":
    main()
