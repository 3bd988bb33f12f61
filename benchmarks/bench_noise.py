"""Robustness to noisy interactions on Gowalla: fake rows injected into train, clean test.

For each noise rate (0, 10, 20, 40 % extra rows, `edgegnn.data.noise.inject_noise`: a random
unseen item for a user drawn in proportion to activity), models/gf-cf.yaml is fitted plain and
with `training.denoise: auto` (the share chosen on validation, `edgegnn.train.denoise`), and
models/lightgcn.yaml the same way (`--lightgcn-denoise 0.2`: one fixed share, one refit).
Validation is 10 % of each user's clean training rows; test is the published clean split.
Reported: test Recall@20 / NDCG@20, the share chosen, the rows dropped and how many were fake,
and "kept": the share of the plain model's loss (against its clean fit) that denoising recovers.

    python benchmarks/bench_noise.py [--rates 0,0.1,0.2,0.4] [--epochs 80] [--models gf-cf,lightgcn]
        [--lightgcn-denoise auto|SHARE] [--merge]
Writes benchmarks/results/noise.json (with --merge: adds to it, reusing its clean baselines); each
row names the CPU level that measured it ("cpu"), the file's "machine" is the latest run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
from common import REPO, RESULTS, gowalla_split, write_json


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


def plan(rates, models, lightgcn_share) -> list[tuple[str, float, object]]:
    """(model, noise rate, denoise share or None for the clean baseline only); LightGCN's share is
    `lightgcn_share` ("auto", or a number: one refit instead of three)."""
    shares = {"gf-cf": "auto", "lightgcn": lightgcn_share}
    return [(name, rate, shares[name] if rate > 0 else None) for name in models for rate in rates]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="0,0.1,0.2,0.4")
    parser.add_argument("--epochs", type=int, default=80, help="LightGCN's epochs per fit (a count: a busy "
                                                                    "machine cannot favour one run)")
    parser.add_argument("--models", default="gf-cf,lightgcn")
    parser.add_argument("--lightgcn-denoise", default="auto", help="auto, or a fixed share (one refit)")
    parser.add_argument("--merge", action="store_true", help="keep the rows of results/noise.json not rerun "
                                                             "(a clean baseline is reused, not refitted)")
    args = parser.parse_args()
    lightgcn_share = args.lightgcn_denoise if args.lightgcn_denoise == "auto" else float(args.lightgcn_denoise)
    from edgegnn.cpu import host_cpu
    from edgegnn.data.noise import inject_noise
    from edgegnn.models import load_model_card

    clean = gowalla_split(valid_ratio=0.1)
    cards = {name: load_model_card(REPO / "models" / f"{name}.yaml") for name in ("gf-cf", "lightgcn")}
    previous = json.loads((RESULTS / "noise.json").read_text()) if args.merge else {}
    if previous and previous.get("lightgcn_epochs") != args.epochs:
        raise SystemExit(f"results/noise.json has {previous.get('lightgcn_epochs')} LightGCN epochs, not {args.epochs}")
    rows = dict(previous.get("results", {}))
    for row in rows.values():                     # rows of a run before rows named their CPU
        row.setdefault("cpu", previous["machine"]["cpu"]["level"])
    for name, rate, share in plan([float(r) for r in args.rates.split(",")], args.models.split(","), lightgcn_share):
        if share is None and f"{name}@0" in rows:
            continue                  # the clean baseline of an earlier run of the same settings
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
            row["kept"] = None if lost <= 0 else round(
                (row["denoised"]["recall@20"] - row["plain"]["recall@20"]) / lost, 3)
        row["cpu"] = host_cpu()["level"]
        rows[f"{name}@{rate:g}"] = row
        print(f"{name}@{rate:g}", row, flush=True)
    rates = sorted({row["rate"] for row in rows.values()})
    notes = {"note": previous["note"]} if "note" in previous else {}     # how earlier rows were obtained
    path = write_json("noise", {"rates": ",".join(f"{r:g}" for r in rates), "lightgcn_epochs": args.epochs,
                                "results": rows, **notes})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
