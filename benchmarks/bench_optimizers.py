"""The optimizers of `training.optimizer` on Gowalla: each at the step size its validation picks.

models/lightgcn.yaml (whole-data loss) trained with adam, adagrad, rmsprop and sgd (momentum
0.9), each at a small grid of learning rates and for the same number of epochs (a count, not
seconds, so that a busy machine cannot favour one run; early stopping on validation still
applies); the learning rate is picked on validation Recall@20 (10 % of each user's training
interactions, seeded), and the picked run's test Recall@20 / NDCG@20 is reported. Test takes
no part in the choice.

    python benchmarks/bench_optimizers.py [--epochs 80]
Writes benchmarks/results/optimizers.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from common import REPO, gowalla_split, write_json

GRID = {"adam": (0.01, 0.02), "adagrad": (0.05, 0.1), "rmsprop": (0.002, 0.005),
        "sgd": (10.0, 30.0)}
MOMENTUM = {"sgd": 0.9}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=80, help="epochs per run (whole-data: one step each)")
    args = parser.parse_args()
    from edgegnn.models import load_model_card
    from edgegnn.train.api import fit

    split = gowalla_split(valid_ratio=0.1)
    base = load_model_card(REPO / "models" / "lightgcn.yaml")
    rows = {}
    for optimizer, rates in GRID.items():
        runs = []
        for rate in rates:
            training = dataclasses.replace(base.training, optimizer=optimizer, learning_rate=rate,
                                           momentum=MOMENTUM.get(optimizer, 0.0))
            started = time.perf_counter()
            checkpoint, result = fit(split, dataclasses.replace(base, training=training), epochs=args.epochs)
            runs.append({"learning_rate": rate, "valid_recall@20": checkpoint.metrics["valid"]["recall@20"],
                         "test_recall@20": checkpoint.metrics["test"]["recall@20"],
                         "test_ndcg@20": checkpoint.metrics["test"]["ndcg@20"], "epochs": result.epochs_run,
                         "seconds": round(time.perf_counter() - started, 1)})
            print(optimizer, runs[-1], flush=True)
        best = max(runs, key=lambda run: run["valid_recall@20"])
        rows[optimizer] = {"picked": best, "runs": runs, "momentum": MOMENTUM.get(optimizer, 0.0)}
    path = write_json("optimizers", {"epochs": args.epochs, "card": "models/lightgcn.yaml",
                                     "optimizers": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
