"""Graph filters on the device, Gowalla: artifact bytes, Recall@20 on the artifact, batch-1 p50,
against today's int8 LightGCN artifact on the same CPU in the same run.

Models (all on the LightGCN paper's split; users measured as new: the history is the input):
    lightgcn-int8   the 64-dim LightGCN of benchmarks/results/gowalla_lightgcn.pt, folded, int8
    gf-cf-int8      models/gf-cf.yaml (rank 256, 128 neighbours), int8 tables and neighbour weights
    chebycf-int8    models/chebycf.yaml (rank 512, 128 neighbours), int8
    gf-r64-n32-int8 rank 64, 32 neighbours, int8
    gf-r64-n16-int4 rank 64, 16 neighbours, int4 (the size the issue asks: <= 4 MB)
each exported for cpu-x86_64 (ONNX Runtime) and android-litert (LiteRT), Recall@20 / NDCG@20
measured on the artifact at export (3,000 test users), then profiled with `edgegnn.profile`
(batch 1, history 20, 1 thread, a fresh process per artifact).

    .venv/bin/python benchmarks/bench_graph_filter_gowalla.py [--iterations 300]
Writes benchmarks/results/graph_filter_gowalla.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import RESULTS, gowalla_split, write_json

TARGETS = ("cpu-x86_64", "android-litert")
USERS = 3000


def models(split, log) -> dict:
    from common import REPO

    from edgegnn.compress import Calibration, QuantizeConfig
    from edgegnn.compress.quantize import quantize
    from edgegnn.fold import fold
    from edgegnn.models import GraphFilterConfig, ModelCard, load_model_card
    from edgegnn.train.api import fit
    from edgegnn.train.checkpoint import load_checkpoint

    calibration = Calibration.from_split(split, num_users=512, seed=0)
    out, fits = {}, {}
    lightgcn = RESULTS / "gowalla_lightgcn.pt"
    if lightgcn.is_file():
        out["lightgcn-int8"] = quantize(fold(load_checkpoint(lightgcn)), QuantizeConfig(), calibration)
    cards = {"gf-cf-int8": (load_model_card(REPO / "models" / "gf-cf.yaml"), "int8"),
             "chebycf-int8": (load_model_card(REPO / "models" / "chebycf.yaml"), "int8"),
             "gf-r64-n32-int8": (ModelCard(name="gf-r64-n32", model=GraphFilterConfig(rank=64, neighbors=32)), "int8"),
             "gf-r64-n16-int4": (ModelCard(name="gf-r64-n16", model=GraphFilterConfig(rank=64, neighbors=16)), "int4")}
    for name, (card, precision) in cards.items():
        started = time.perf_counter()
        checkpoint, _ = fit(split, card)
        fits[name] = {"fit_seconds": round(time.perf_counter() - started, 1),
                      "fp32_recall@20": checkpoint.metrics["test"]["recall@20"],
                      "fp32_ndcg@20": checkpoint.metrics["test"]["ndcg@20"]}
        edge = fold(checkpoint)
        fits[name]["fp32_bytes"] = edge.nbytes
        out[name] = quantize(edge, QuantizeConfig(precision=precision), calibration)
        log(f"{name}: fitted, fp32 recall@20 {fits[name]['fp32_recall@20']:.4f}")
    return out, fits


def profile_edges(edges: dict, split, *, iterations: int, warmup: int, log) -> dict:
    """Export each EdgeModel for TARGETS (quality measured on the artifact at export, USERS test
    users), profile them all in one run (batch 1, history 20, 1 thread, a fresh process per
    artifact) and return a row per artifact, with its p50 against int8 LightGCN's on its target."""
    from edgegnn.export import export
    from edgegnn.profile import Sweep, profile

    rows = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        paths = []
        for name, edge in edges.items():
            for target in TARGETS:
                path = Path(tmp_name) / f"{name}-{target}"
                export(edge, target, out_dir=path, split=split, max_users=USERS, emulators=None)
                paths.append(path)
                log(f"exported {path.name}")
        result = profile(paths, sweep=Sweep(batches=(1,), history_lens=(20,), threads=(1,),
                                            iterations=iterations, warmup=warmup))
        for info in result.artifacts.values():
            row = next(r for r in result.rows if r["artifact"] == info["name"])
            quality = info.get("quality") or {}
            rows[info["name"]] = {"target": info["target"], "disk_bytes": info["disk_bytes"], "p50_ms": row["p50_ms"],
                                  "p90_ms": row["p90_ms"], "recall@20": quality.get("recall@20"),
                                  "ndcg@20": quality.get("ndcg@20"), "users": quality.get("users")}
    for target in TARGETS:
        reference = rows.get(f"lightgcn-int8-{target}")
        for row in rows.values():
            if reference and row["target"] == target:
                row["p50_vs_lightgcn_int8"] = round(row["p50_ms"] / reference["p50_ms"], 2)
    for name, row in rows.items():
        print(f"{name:32s} {row['disk_bytes']:>12,} B  p50 {row['p50_ms']:.3f} ms  recall@20 {row['recall@20']}")
    return rows


def logger():
    start = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - start:6.0f} s] {message}", flush=True)

    return log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    log = logger()
    split = gowalla_split(valid_ratio=0.0)
    edges, fits = models(split, log)
    rows = profile_edges(edges, split, iterations=args.iterations, warmup=args.warmup, log=log)
    path = write_json("graph_filter_gowalla", {"fits": fits, "artifacts": rows, "users": USERS,
                                               "protocol": "batch 1, history 20, 1 thread; quality on the artifact"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
