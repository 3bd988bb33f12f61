"""Issue 5's on-device query, profiled: one user's history (20 items) -> top-20 over all items.

Batch 1, 1 intra-op thread, p50/p90/p99 of the steady-state runtime call, each configuration in
a fresh process (`edgegnn.profile`'s runner and probe), artifacts interleaved, over ROUNDS rounds
(each round runs every artifact once, then the PyTorch eager references).

1. Gowalla (40,981 items), the trained 64-dim LightGCN (benchmarks/results/gowalla_lightgcn.pt),
   folded, as fp32, int8 (QuantizeConfig int8, calibrated on 512 training users; per-item
   scales, and one scale per table: granularity "tensor", whose ONNX graph ranks the int32
   accumulators), low-rank 32 (+100 distillation steps) + int8 (both granularities), and the
   shared table product-quantized
   (M=16, 200 distillation steps on 2,048 users; scored with lookup tables), each exported
   for cpu-x86_64 (ONNX) and android-litert (TFLite, XNNPACK) with Recall@20 measured on the
   artifact at export on 2,000 test users (users as new: the graph takes the history only,
   no e_u⁰ input).
2. 1,000,000 items: a random 64-dim LightGCN EdgeModel (no training), fp32, int8 and int4
   (ONNX ships int4 packed on MatMulNBits; LiteRT widens it to int8 codes), ONNX and LiteRT;
   latency and peak RSS growth at load against bytes on disk (the whole open, model + item
   index, from the profile probe; and the model file alone, from benchmarks/memory_probe.py);
   int8 ONNX also in row blocks of 2^17 items (target score_block_rows), for the trade-off.

The PyTorch eager reference does the same arithmetic on the fp32 tables (gather the history
rows of the message table, sum, scale by 1/sqrt(n), matmul with the item table, topk of
K + H = 40 as the exported graphs do), in a fresh subprocess with torch.set_num_threads(1),
same iterations and warm-up.

    .venv/bin/python benchmarks/bench_profile_gowalla.py [--rounds 2] [--iterations 300] [--warmup 30]
Writes benchmarks/results/profile_gowalla.json. The machine is shared and noisy: compare the
figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HISTORY, TOP_K, MAX_USERS = 20, 20, 2000
BIG_ITEMS, DIM = 1_000_000, 64


# ---- the PyTorch eager reference (runs in its own process: `--eager DIR`) --------------------

def eager_probe(directory: str, iterations: int, warmup: int) -> dict:
    import torch

    from edgegnn.profile.probe import histories, memory, percentile, reset_peak

    torch.set_num_threads(1)
    base = memory()
    reset_peak()
    message = torch.from_numpy(np.load(Path(directory) / "message.npy"))
    item = torch.from_numpy(np.load(Path(directory) / "item.npy"))
    loaded = memory()
    rows = torch.from_numpy(histories(item.shape[0], 1, HISTORY)[0])
    k = TOP_K + HISTORY

    def query():
        user = message.index_select(0, rows).sum(0, keepdim=True) * (1.0 / len(rows) ** 0.5)
        return torch.topk(user @ item.T, k, dim=1)

    times = []
    with torch.inference_mode():
        for _ in range(warmup + 1):
            query()
        for _ in range(iterations):
            t0 = time.perf_counter_ns()
            query()
            times.append(time.perf_counter_ns() - t0)
    ms = sorted(t / 1e6 for t in times)
    return {"pid": os.getpid(), "runtime": f"torch {torch.__version__} eager", "threads": torch.get_num_threads(),
            "iterations": iterations, "warmup": warmup, "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "load_peak_growth": loaded["VmHWM"] - base["VmRSS"],
            "disk_bytes": int(message.numel() * 4 + item.numel() * 4)}


def run_eager(directory: Path, iterations: int, warmup: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--eager", str(directory), "--iterations", str(iterations),
                           "--warmup", str(warmup)], capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"eager probe failed: {done.stderr[-500:]}")
    return json.loads(lines[-1])


# ---- models and artifacts --------------------------------------------------------------------

def gowalla_models(log) -> tuple[dict, object]:
    from common import RESULTS, gowalla_split

    from edgegnn.compress import (
        Calibration,
        LowRankConfig,
        ProductQuantizeConfig,
        QuantizeConfig,
        ShareConfig,
        compress,
    )
    from edgegnn.fold import fold
    from edgegnn.train.checkpoint import load_checkpoint

    t0 = time.time()
    split = gowalla_split()
    edge = fold(load_checkpoint(RESULTS / "gowalla_lightgcn.pt"))
    calibration = Calibration.from_split(split, num_users=512)
    log(f"split + fold {time.time() - t0:.0f} s")
    t0 = time.time()
    int8 = compress(edge, QuantizeConfig(precision="int8"), calibration=calibration)
    per_table = QuantizeConfig(precision="int8", granularity="tensor")
    int8_tensor = compress(edge, per_table, calibration=calibration)
    log(f"int8 (per row, per table) {time.time() - t0:.0f} s")
    t0 = time.time()
    lowrank32 = compress(edge, LowRankConfig(rank=32, finetune_steps=100), calibration=calibration)
    lowrank = compress(lowrank32, QuantizeConfig(precision="int8"), calibration=calibration)
    lowrank_tensor = compress(lowrank32, per_table, calibration=calibration)
    log(f"low-rank 32 + int8 (per row, per table) {time.time() - t0:.0f} s")
    t0 = time.time()
    pq = compress(edge, ShareConfig(), ProductQuantizeConfig(subvectors=16, finetune_steps=200),
                  calibration=Calibration.from_split(split, num_users=2048))
    log(f"shared table + PQ 16 {time.time() - t0:.0f} s")
    return {"fp32": edge, "int8": int8, "int8-tensor": int8_tensor, "lowrank32-int8": lowrank,
            "lowrank32-int8-tensor": lowrank_tensor, "shared-pq16": pq}, split


def big_models() -> dict:
    from bench_export_memory import synthetic_model

    return {precision: synthetic_model(BIG_ITEMS, DIM, precision) for precision in ("fp32", "int8", "int4")}


def export_all(models: dict, prefix: str, tmp: Path, split, log) -> list[Path]:
    from edgegnn.export import export
    from edgegnn.targets import load_target

    paths = []
    for name, edge in models.items():
        for target_name, short in (("cpu-x86_64", "onnx"), ("android-litert", "litert")):
            # the targets' memory budgets are for real apps (256 MB on android); this measures
            target = dataclasses.replace(load_target(target_name), memory_budget="8GB")
            out = tmp / f"{prefix}-{short}-{name}"
            t0 = time.time()
            export(edge, target, out_dir=out, split=split, top_k=TOP_K, user_base=False,
                   max_users=MAX_USERS if split is not None else None)
            log(f"exported {out.name} in {time.time() - t0:.0f} s")
            paths.append(out)
    return paths


def export_row_blocks(edge, out: Path) -> Path:
    """The int8 ONNX artifact with its scoring table in row blocks of 2^17 items (cpu-x86_64 ships
    one block): the latency / load-memory trade-off of the blocks, measured in the same run."""
    from edgegnn.export import export
    from edgegnn.targets import load_target

    target = dataclasses.replace(load_target("cpu-x86_64"), memory_budget="8GB", score_block_rows=1 << 17)
    return export(edge, target, out_dir=out, top_k=TOP_K, user_base=False)


def model_memory(artifact: Path) -> dict:
    """benchmarks/memory_probe.py in a fresh process: the model file's load peak apart from the item index."""
    probe = Path(__file__).resolve().parent / "memory_probe.py"
    done = subprocess.run([sys.executable, str(probe), str(artifact)], capture_output=True, text=True, timeout=600,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def save_tables(edge, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "message.npy", edge.tensors["message"].to_dense().astype(np.float32))
    np.save(directory / "item.npy", edge.tensors["item"].to_dense().astype(np.float32))
    return directory


# ---- the run ---------------------------------------------------------------------------------

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--eager", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.eager:
        print(json.dumps(eager_probe(args.eager, args.iterations, args.warmup)))
        return

    from common import machine, write_json

    from edgegnn.profile import Sweep, profile

    start = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - start:6.0f} s] {message}", flush=True)

    sweep = Sweep(batches=(1,), history_lens=(HISTORY,), threads=(1,), iterations=args.iterations,
                  warmup=args.warmup)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gowalla, split = gowalla_models(log)
        paths = export_all(gowalla, "gowalla", tmp, split, log)
        eager_dirs = {"gowalla": save_tables(gowalla["fp32"], tmp / "eager-gowalla")}
        del gowalla, split
        big = big_models()
        paths += export_all(big, "1m", tmp, None, log)
        paths.append(export_row_blocks(big["int8"], tmp / "1m-onnx-int8-blocks"))
        eager_dirs["1m"] = save_tables(big["fp32"], tmp / "eager-1m")
        del big

        per_round, eager_rounds, artifacts = [], {k: [] for k in eager_dirs}, {}
        for r in range(args.rounds):
            result = profile(paths, sweep=sweep)
            artifacts = result.artifacts
            per_round.append(result.rows)
            for key, directory in eager_dirs.items():
                eager_rounds[key].append(run_eager(directory, args.iterations, args.warmup))
            log(f"round {r + 1}/{args.rounds} done")
        host = result.host
        model_only = {path.name: model_memory(path) for path in paths}

    # ---- aggregate: per artifact, median over rounds of p50/p90/p99; memory from the first round
    rows = {}
    for info in artifacts.values():
        name = info["name"]
        mine = [row for rows_ in per_round for row in rows_ if row["artifact"] == name]
        first = mine[0]
        quality = info.get("quality") or {}
        rows[name] = {
            "target": info["target"], "kind": info["kind"], "precision": info["precision"], "recipe": info["recipe"],
            "runtime": first["runtime"], "providers": first["providers"],
            "p50_ms": statistics.median(m["p50_ms"] for m in mine),
            "p90_ms": statistics.median(m["p90_ms"] for m in mine),
            "p99_ms": statistics.median(m["p99_ms"] for m in mine),
            "p50_ms_per_round": [m["p50_ms"] for m in mine],
            "load_ms": statistics.median(m["load_ms"] for m in mine),
            "first_inference_ms": statistics.median(m["first_inference_ms"] for m in mine),
            "disk_bytes": info["disk_bytes"],
            "load_peak_growth": statistics.median(m["load_peak_growth"] for m in mine),
            "load_rss_growth": statistics.median(m["load_rss_growth"] for m in mine),
            "run_peak_growth": statistics.median(m["run_peak_growth"] for m in mine),
            "load_peak_vs_disk": statistics.median(m["load_peak_growth"] for m in mine) / info["disk_bytes"],
            "load_plus_run_peak_vs_disk": statistics.median(m["load_rss_growth"] + m["run_peak_growth"]
                                                            for m in mine) / info["disk_bytes"],
            "model_load_peak_growth": model_only[name]["model_load_peak_growth"],
            "model_load_peak_vs_disk": model_only[name]["model_load_peak_growth"] / info["disk_bytes"],
            "item_map_load_growth": model_only[name]["load_rss_growth"] - model_only[name]["model_load_rss_growth"],
            "recall@20": quality.get("recall@20"), "ndcg@20": quality.get("ndcg@20"),
            "quality_users": quality.get("users"), "quality_source": quality.get("source"),
        }
    eager = {key: {"p50_ms": statistics.median(e["p50_ms"] for e in runs),
                   "p90_ms": statistics.median(e["p90_ms"] for e in runs),
                   "p99_ms": statistics.median(e["p99_ms"] for e in runs),
                   "p50_ms_per_round": [e["p50_ms"] for e in runs], "runtime": runs[0]["runtime"],
                   "threads": runs[0]["threads"], "table_bytes": runs[0]["disk_bytes"]}
             for key, runs in eager_rounds.items()}

    def p50(name):
        return rows[name]["p50_ms"] if name in rows else None

    def rel_drop(a, b):
        ra, rb = rows[a]["recall@20"], rows[b]["recall@20"]
        return None if ra is None or rb is None else (rb - ra) / rb

    ratios = {}
    for fmt in ("onnx", "litert"):
        fp32 = f"gowalla-{fmt}-fp32"
        for variant in ("int8", "int8-tensor", "lowrank32-int8", "lowrank32-int8-tensor"):
            key = f"gowalla_{fmt}_{variant.replace('-', '_')}"
            ratios[f"{key}_speedup_vs_fp32"] = ratio(p50(fp32), p50(f"gowalla-{fmt}-{variant}"))
            ratios[f"{key}_recall_rel_drop_vs_fp32"] = rel_drop(f"gowalla-{fmt}-{variant}", fp32)
        for key_suffix, name_suffix in (("", ""), ("_tensor", "-tensor")):
            ratios[f"gowalla_{fmt}_lowrank_int8{key_suffix}_speedup_vs_int8{key_suffix}"] = \
                ratio(p50(f"gowalla-{fmt}-int8{name_suffix}"), p50(f"gowalla-{fmt}-lowrank32-int8{name_suffix}"))
    ratios.update({
        "1m_onnx_int8_speedup_vs_fp32": ratio(p50("1m-onnx-fp32"), p50("1m-onnx-int8")),
        "1m_litert_int8_speedup_vs_fp32": ratio(p50("1m-litert-fp32"), p50("1m-litert-int8")),
        "1m_onnx_int4_speedup_vs_int8": ratio(p50("1m-onnx-int8"), p50("1m-onnx-int4")),
        "1m_onnx_int8_one_block_speedup_vs_row_blocks": ratio(p50("1m-onnx-int8-blocks"), p50("1m-onnx-int8")),
    })
    for name in rows:
        key = "gowalla" if name.startswith("gowalla") else "1m"
        ratios[f"{name}_speedup_vs_torch_eager"] = ratio(eager[key]["p50_ms"], p50(name))

    def twice_as_fast(fmt, variant):
        key = f"gowalla_{fmt}_{variant.replace('-', '_')}"
        drop = ratios[f"{key}_recall_rel_drop_vs_fp32"]
        return bool(ratios[f"{key}_speedup_vs_fp32"] >= 2 and drop is not None and drop <= 0.01)

    targets = {
        f"gowalla {fmt} {variant} >= 2x fp32 p50 at <= 1 % relative Recall@20 drop": twice_as_fast(fmt, variant)
        for fmt in ("onnx", "litert") for variant in ("int8", "int8-tensor")}
    targets.update({
        "gowalla low-rank 32 + int8 faster than int8 (one scale per table)": {
            fmt: bool(ratios[f"gowalla_{fmt}_lowrank_int8_tensor_speedup_vs_int8_tensor"] > 1)
            for fmt in ("onnx", "litert")},
        "1m onnx int8 p50 <= 4 ms": bool(p50("1m-onnx-int8") <= 4.0),
        "1m litert int8 p50 <= 4 ms": bool(p50("1m-litert-int8") <= 4.0),
        "1m peak RSS growth at load <= 1.5x bytes on disk (every 1M artifact; whole open incl. item index)": {
            name: bool(row["load_peak_vs_disk"] <= 1.5) for name, row in rows.items() if name.startswith("1m")},
        "1m peak RSS growth at model load <= 1.5x bytes on disk (model file only, memory_probe.py)": {
            name: bool(row["model_load_peak_vs_disk"] <= 1.5) for name, row in rows.items() if name.startswith("1m")},
    })
    path = write_json("profile_gowalla", {
        "query": {"history_len": HISTORY, "top_k": TOP_K, "graph_top": TOP_K + HISTORY, "batch": 1, "threads": 1,
                  "iterations": args.iterations, "warmup": args.warmup, "rounds": args.rounds,
                  "users_as": "new (history only, no e_u0 input)"},
        "artifacts": rows, "torch_eager": eager, "ratios": ratios, "targets": targets,
        "machine": {**machine(), **host}, "wall_s": round(time.time() - start, 1),
        "note": "shared, noisy 2-core machine (another CI run may be active): compare figures as ratios within "
                "this run; p50/p90/p99 are medians over rounds of each fresh-process probe; Recall@20 is the "
                "artifact's own, measured at export on 2,000 sampled Gowalla test users (users as new)",
        "definitions": {"load_peak_growth": "peak RSS while opening the artifact (model + item index) minus the "
                                            "baseline process (edgegnn.profile.probe.FIELDS)",
                        "load_peak_vs_disk": "load_peak_growth / bytes of the model file(s) on disk",
                        "model_load_peak_growth": "peak RSS while the runtime loads the model file alone, minus "
                                                  "baseline (benchmarks/memory_probe.py, one more fresh process)",
                        "item_map_load_growth": "resident bytes the item index adds after the model (memory_probe.py)",
                        "load_plus_run_peak_vs_disk": "(resident after open + peak growth over the runs) / disk bytes"},
    })

    print(f"\n{'artifact':32s} {'p50 ms':>8s} {'p90':>8s} {'p99':>8s} {'disk MB':>8s} {'load pk MB':>10s} "
          f"{'pk/disk':>7s} {'mdl pk/disk':>11s} {'run pk MB':>9s} {'R@20':>7s}")
    for name, row in rows.items():
        recall = f"{row['recall@20']:.4f}" if row["recall@20"] is not None else "-"
        print(f"{name:32s} {row['p50_ms']:8.3f} {row['p90_ms']:8.3f} {row['p99_ms']:8.3f} "
              f"{row['disk_bytes'] / 1e6:8.1f} {row['load_peak_growth'] / 1e6:10.1f} {row['load_peak_vs_disk']:7.2f} "
              f"{row['model_load_peak_vs_disk']:11.2f} "
              f"{row['run_peak_growth'] / 1e6:9.1f} {recall:>7s}")
    for key, e in eager.items():
        print(f"{'torch-eager-' + key:32s} {e['p50_ms']:8.3f} {e['p90_ms']:8.3f} {e['p99_ms']:8.3f}")
    for key, value in ratios.items():
        print(f"  {key}: {value:.4g}" if value is not None else f"  {key}: -")
    print(json.dumps(targets, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
