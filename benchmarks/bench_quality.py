"""Recommendation quality side by side, one run: edgegnn's default, each model kind, implicit ALS, popularity.

Rows: the default, models/gf-cf.yaml, models/chebycf.yaml, models/bspm.yaml, models/lightgcn.yaml,
implicit ALS, popularity.
Datasets: the LightGCN paper's Gowalla split (train.txt / test.txt), and two synthetic regimes
made in code -- "dense" (3,000 users x 3,000 items, ~100 interactions a user) and "sparse"
(6,000 users x 12,000 items, ~8 a user) -- split per user 70 / 10 / 20 (train / valid / test).
Every choice is made on validation, never on test: the default (`edgegnn train` with no card:
`edgegnn.train.select`) carves a validation split from Gowalla's train, as it does for any
split without one; implicit ALS gets the same chance (a small grid of alpha and regularization,
picked on the same validation users), then is refitted on the whole training split.

Each row: Recall@20 / NDCG@20 on test (full ranking, training items excluded), fit seconds
(selection included for the default), and the bytes of the device model (fp32, and after the
int8 quantize pass for edgegnn's kinds; ALS ships no history-only model: its users are a table).

    python benchmarks/bench_quality.py [--datasets gowalla,dense,sparse] [--budget 300]
Writes benchmarks/results/quality.json. Needs `implicit` (pip install -e ".[bench]").
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
import types

import numpy as np
from common import gowalla_split, write_json

REGIMES = {"dense": dict(num_users=3000, num_items=3000, mean_degree=100),
           "sparse": dict(num_users=6000, num_items=12000, mean_degree=8)}
ALS_GRID = [dict(alpha=a, regularization=r) for a in (1.0, 20.0) for r in (0.01, 0.1)]


def load(name: str):
    if name == "gowalla":
        return gowalla_split(valid_ratio=0.0)
    from edgegnn.data.splits import split_random
    from edgegnn.data.synthetic import make_synthetic

    return split_random(make_synthetic(seed=0, **REGIMES[name]), test_ratio=0.2, valid_ratio=0.1, seed=0)


def edge_bytes(checkpoint) -> dict:
    """fp32 and int8 bytes of the device model (the quantize pass, calibrated on training users)."""
    from edgegnn.compress.calibration import Calibration
    from edgegnn.compress.configs import QuantizeConfig
    from edgegnn.compress.quantize import quantize
    from edgegnn.fold import fold

    edge = fold(checkpoint)
    calibration = Calibration.from_split(types.SimpleNamespace(train=checkpoint.train), num_users=256, seed=0)
    return {"fp32": edge.nbytes, "int8": quantize(edge, QuantizeConfig(), calibration).nbytes}


def run_edgegnn(split, card, budget: float) -> dict:
    from edgegnn.train.api import fit

    started = time.perf_counter()
    checkpoint, _ = fit(split, card, time_budget=budget)
    seconds = time.perf_counter() - started
    return {"model": card.name, "kind": card.model.type, **_test(checkpoint.metrics["test"]),
            "fit_seconds": round(seconds, 1), "bytes": edge_bytes(checkpoint)}


def run_default(split, budget: float) -> dict:
    from edgegnn.train.select import select_model

    started = time.perf_counter()
    checkpoint, _, trials = select_model(split, time_budget=budget)
    seconds = time.perf_counter() - started
    return {"model": f"default -> {checkpoint.card.name}", "kind": checkpoint.card.model.type,
            **_test(checkpoint.metrics["test"]), "fit_seconds": round(seconds, 1), "bytes": edge_bytes(checkpoint),
            "trials": [t.to_dict() for t in trials]}


def run_als(split) -> dict:
    """implicit's ALS, 64 factors, 15 iterations; alpha and regularization chosen on validation."""
    from implicit.cpu.als import AlternatingLeastSquares

    from edgegnn.metrics import evaluate_embeddings
    from edgegnn.train.select import selection_split

    def fitted(train_csr, settings):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):      # implicit parallelizes itself (its own advice)
            model = AlternatingLeastSquares(factors=64, iterations=15, random_state=0, **settings)
            model.fit(train_csr.astype(np.float32), show_progress=False)
        return model.user_factors, model.item_factors

    chooser = selection_split(split)
    chooser_train = chooser.train.to_csr()
    scored = []
    for settings in ALS_GRID:
        users, items = fitted(chooser_train, settings)
        metrics = evaluate_embeddings(users, items, chooser_train, chooser.valid.to_csr())
        scored.append((metrics["recall@20"], settings))
    best = max(scored, key=lambda pair: pair[0])[1]
    started = time.perf_counter()
    train_csr = split.train.to_csr()
    users, items = fitted(train_csr, best)
    seconds = time.perf_counter() - started
    metrics = evaluate_embeddings(users, items, train_csr, split.test.to_csr())
    return {"model": f"implicit ALS 64 ({best})", "kind": "als", **_test(metrics), "fit_seconds": round(seconds, 1),
            "bytes": {"fp32": int(items.nbytes + users.nbytes)},
            "grid": [{"valid_recall@20": r, **s} for r, s in scored]}


def run_popularity(split) -> dict:
    from edgegnn.metrics import popularity_metrics

    return {"model": "popularity", "kind": "popularity",
            **_test(popularity_metrics(split.train.to_csr(), split.test.to_csr())), "fit_seconds": 0.0}


def _test(metrics: dict) -> dict:
    return {"recall@20": round(metrics["recall@20"], 4), "ndcg@20": round(metrics["ndcg@20"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="gowalla,dense,sparse")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds: the default's selection, LightGCN's training")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from common import REPO

    from edgegnn.models import load_model_card

    results = {}
    for name in args.datasets.split(","):
        split = load(name)
        rows = [run_default(split, args.budget)]
        for card_file in ("gf-cf.yaml", "chebycf.yaml", "bspm.yaml", "lightgcn.yaml"):
            card = load_model_card(REPO / "models" / card_file)
            card = dataclasses.replace(card, training=dataclasses.replace(card.training, epochs=10**6))
            rows.append(run_edgegnn(split, card, args.budget))
        rows += [run_als(split), run_popularity(split)]
        for row in rows:
            print(f"{name:8s} {row['model'][:40]:40s} recall@20 {row['recall@20']:.4f} ndcg@20 {row['ndcg@20']:.4f} "
                  f"{row['fit_seconds']:7.1f} s", flush=True)
        results[name] = {"users": split.num_users, "items": split.num_items, "train": len(split.train), "rows": rows}
    path = write_json("quality", {"budget_seconds": args.budget, "datasets": results,
                                  "protocol": "test Recall/NDCG@20, full ranking; choices on validation only"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
