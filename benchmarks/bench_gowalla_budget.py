"""Recall@20 that `edgegnn train` reaches on Gowalla within a wall-clock budget.

Trains LightGCN with a model card (default models/lightgcn.yaml) on the LightGCN paper's
Gowalla split (train.txt, no validation carved out, as in the paper), stopping at the
time budget, and measures full-ranking Recall@20 / NDCG@20 on test.txt every few epochs.
The curve's seconds are training seconds; evaluation time is excluded and reported apart.

    python benchmarks/bench_gowalla_budget.py [--budget 1800] [--model models/lightgcn.yaml]
Writes benchmarks/results/gowalla_budget_<card name>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

from common import REPO, gowalla_split, machine, write_json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=1800.0, help="training seconds")
    parser.add_argument("--model", default=str(REPO / "models" / "lightgcn.yaml"))
    parser.add_argument("--eval-every", type=int, default=None, help="epochs between test evaluations")
    parser.add_argument("--save", default=None, help="also write the trained checkpoint here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from edgegnn.models import load_model_card
    from edgegnn.train.api import fit
    from edgegnn.train.trainer import evaluate_model

    card = load_model_card(args.model)
    training = dataclasses.replace(card.training, epochs=10**6,
                                   eval_every=args.eval_every or card.training.eval_every)
    card = dataclasses.replace(card, training=training)
    split = gowalla_split(valid_ratio=0.0)
    curve, eval_seconds = [], 0.0

    def monitor(model, graph) -> dict:
        nonlocal eval_seconds
        started = time.perf_counter()
        metrics = evaluate_model(model, graph, split.train, split.test, ks=(20,))
        eval_seconds += time.perf_counter() - started
        return metrics

    def on_evaluate(record) -> None:
        metrics = record.monitored
        curve.append({"epoch": record.epoch, "train_seconds": round(record.seconds, 1), "loss": record.loss,
                      "recall@20": metrics["recall@20"], "ndcg@20": metrics["ndcg@20"]})
        print(f"epoch {record.epoch:5d}  {record.seconds:7.1f} s  recall@20 {metrics['recall@20']:.4f}  "
              f"ndcg@20 {metrics['ndcg@20']:.4f}", flush=True)

    started = time.perf_counter()
    checkpoint, result = fit(split, card, time_budget=args.budget, on_evaluate=on_evaluate, monitor=monitor)
    wall = time.perf_counter() - started
    if args.save:
        from edgegnn.train.checkpoint import save_checkpoint

        save_checkpoint(checkpoint, args.save)
    final = checkpoint.metrics["test"]
    out = {
        "data": "gowalla (LightGCN paper split: 29,858 users, 40,981 items, 810,128 train)",
        "paper": {"recall@20": 0.1830, "ndcg@20": 0.1554},
        "card": card.to_dict(),
        "budget_seconds": args.budget,
        "train_seconds": result.seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": wall,
        "epochs": result.epochs_run,
        "final": {"recall@20": final["recall@20"], "ndcg@20": final["ndcg@20"]},
        "best_on_curve": max(curve, key=lambda p: p["recall@20"]) if curve else None,
        "curve": curve,
        "machine": machine(),
    }
    path = write_json(f"gowalla_budget_{card.name}", out)
    print(f"final recall@20 {final['recall@20']:.4f} ndcg@20 {final['ndcg@20']:.4f} after "
          f"{result.epochs_run} epochs / {result.seconds:.0f} s of training; wrote {path}")


if __name__ == "__main__":
    main()
