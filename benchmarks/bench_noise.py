"""Robustness to noisy interactions on Gowalla: fake rows injected into train, clean test.

For each noise rate (0, 10, 20, 40 % extra rows, `edgegnn.data.noise.inject_noise`: a random
unseen item for a user drawn in proportion to activity), models/gf-cf.yaml is fitted plain and
with `training.denoise: auto` (the share chosen on validation, `edgegnn.train.denoise`); at 20 %
models/lightgcn.yaml too, plain and with denoise 0.2 (one refit: its fits are the slow ones).
Validation is 10 % of each user's clean training rows; test is the published clean split.
Reported: test Recall@20 / NDCG@20, the share chosen, the rows dropped and how many were fake,
and "kept": the share of the plain model's loss (against its clean fit) that denoising recovers.

    python benchmarks/bench_noise.py [--rates 0,0.1,0.2,0.4] [--epochs 80]
Writes benchmarks/results/noise.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from common import REPO, gowalla_split, write_json


def run(split, card, epochs: int, fake=None) -> dict:
    """Fit `card` on `split`; its test metrics, seconds and (denoised) what it dropped."""
    from edgegnn.train.api import fit

    started = time.perf_counter()
    checkpoint, _ = fit(split, card, epochs=epochs)          # a closed-form fit takes no epochs
    row = {"recall@20": checkpoint.metrics["test"]["recall@20"], "ndcg@20": checkpoint.metrics["test"]["ndcg@20"],
           "seconds": round(time.perf_counter() - started, 1)}
    if "denoise" in checkpoint.metrics:
        row["denoise"] = checkpoint.metrics["denoise"]
        kept = set((checkpoint.train.users * np.int64(split.num_items) + checkpoint.train.items).tolist())
        pairs = split.train.users * np.int64(split.num_items) + split.train.items
        dropped = np.array([pair not in kept for pair in pairs.tolist()])
        row["dropped_fake_rows"], row["fake_rows"] = int((dropped & fake).sum()), int(fake.sum())
    return row


def plan(rates) -> list[tuple[str, float, object]]:
    """(model, noise rate, denoise share or None for the clean baseline only)."""
    steps = [("gf-cf", rate, "auto" if rate > 0 else None) for rate in rates]
    if 0.2 in rates:
        steps += [("lightgcn", 0.0, None), ("lightgcn", 0.2, 0.2)]
    return steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="0,0.1,0.2,0.4")
    parser.add_argument("--epochs", type=int, default=80, help="LightGCN's epochs per fit (a count: a busy "
                                                                    "machine cannot favour one run)")
    args = parser.parse_args()
    from edgegnn.data.noise import inject_noise
    from edgegnn.models import load_model_card

    clean = gowalla_split(valid_ratio=0.1)
    cards = {name: load_model_card(REPO / "models" / f"{name}.yaml") for name in ("gf-cf", "lightgcn")}
    rows = {}
    for name, rate, share in plan([float(r) for r in args.rates.split(",")]):
        train, fake = inject_noise(clean.train, rate, seed=0)
        split, card = dataclasses.replace(clean, train=train), cards[name]
        if share is None:
            row = {"rate": rate, "model": name, "plain": run(split, card, args.epochs)}
        else:                  # the denoised fit's first fit is the plain one: its test metrics come along
            denoised = dataclasses.replace(card, training=dataclasses.replace(card.training, denoise=share))
            result = run(split, denoised, args.epochs, fake)
            first = result["denoise"]["first_fit_test"]
            row = {"rate": rate, "model": name, "denoised": result,
                   "plain": {"recall@20": first["recall@20"], "ndcg@20": first["ndcg@20"]}}
            base = rows[f"{name}@0"]["plain"]["recall@20"]
            lost = base - row["plain"]["recall@20"]
            row["kept"] = None if lost <= 0 else round((row["denoised"]["recall@20"] - row["plain"]["recall@20"]) / lost, 3)
        rows[f"{name}@{rate:g}"] = row
        print(f"{name}@{rate:g}", row, flush=True)
    path = write_json("noise", {"rates": args.rates, "lightgcn_epochs": args.epochs, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
