"""Why the user vector enters MatMulInteger with 7 bits: exactness per CPU, speed, and Recall.

ONNX Runtime's uint8 x int8 MatMulInteger on x86 without VNNI multiplies with vpmaddubsw, which
adds each pair of u8·s8 products into a saturating int16 (../shared/notes/CPU_ISA.md). Three
ways to score x [1, 64] against int8 item codes [64, N] in [-127, 127]:
    u8s8-8bit   x as uint8 in [1, 255], zero point 128 (edgegnn before 0.2)
    u8s8-7bit   x as uint8 in [1, 127], zero point 64 (edgegnn 0.2): pairs <= 2·127·127 < 2^15
    u8u8        codes as uint8 (q + 128) too: MLAS widens both to int16 (vpmaddwd) on AVX2
1. Exactness: full-range random inputs and the same inputs at the edges of their ranges, the
   fraction of outputs that differ from the exact integer product, on this machine and under
   QEMU user-mode (-cpu Nehalem: SSE4.2, Haswell: AVX2; aarch64 cortex-a53, neoverse-n1,
   neoverse-v1) when an emulator folder is given (--emulators, default $EDGEGNN_EMULATORS).
2. Speed on this machine: p50 of session.run, 1 thread, batch 1, at 4,096, 40,981 (Gowalla) and
   262,144 rows, variants interleaved over rounds. Emulated speed means nothing and is not measured.
3. Quality (with --checkpoint, a Gowalla LightGCN from bench_gowalla_budget.py --save): Recall@20
   and NDCG@20 on 10,000 sampled Gowalla test users (new users: history only) of per-item and
   per-table int8 scoring with x in float, or rounded to 127 or 63 levels with a static scale
   (max|e_u| over 2,048 calibration users) or a per-query one.

    .venv/bin/python benchmarks/bench_int8_cpu_paths.py [--checkpoint benchmarks/results/gowalla_lightgcn.pt]
Writes benchmarks/results/int8_cpu_paths.json.
"""

from __future__ import annotations

import argparse
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

K = 64
VARIANTS = {"u8s8-8bit": (128, 1, 255, "int8"), "u8s8-7bit": (64, 1, 127, "int8"), "u8u8": (128, 1, 255, "uint8")}
EMULATED = ("x86-64-v2", "x86-64-v3", "armv8.0", "armv8.2-dotprod", "armv8.4-sve")
WORKER = """
import json, sys, numpy as np, onnxruntime as ort
job = json.load(open(sys.argv[1]))
options = ort.SessionOptions(); options.intra_op_num_threads = 1
for name in job["variants"]:
    session = ort.InferenceSession(f"{job['dir']}/{name}.onnx", options, providers=["CPUExecutionProvider"])
    x = np.load(f"{job['dir']}/{name}-x.npy")
    np.save(f"{job['dir']}/{job['level']}-{name}-y.npy",
            np.concatenate([session.run(None, {"x": row[None]})[0] for row in x]))
print("ok")
"""


def model(name: str, codes: np.ndarray):
    """MatMulInteger(x uint8 [1, K], B [K, N]) with x's zero point (and B's, for u8u8) as in VARIANTS."""
    from onnx import TensorProto, helper, numpy_helper

    zero, _, _, kind = VARIANTS[name]
    weights = codes if kind == "int8" else (codes.astype(np.int16) + 128).astype(np.uint8)
    inputs = ["x", "w", "zx"] + (["zw"] if kind == "uint8" else [])
    inits = [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.array(zero, np.uint8), "zx")]
    if kind == "uint8":
        inits.append(numpy_helper.from_array(np.array(128, np.uint8), "zw"))
    graph = helper.make_graph([helper.make_node("MatMulInteger", inputs, ["y"])], name,
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [1, codes.shape[1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def inputs(name: str, rng, rows: int = 16) -> np.ndarray:
    """uint8 [rows, K]: half uniform over the variant's range, half at its two ends."""
    _, low, high, _ = VARIANTS[name]
    uniform = rng.integers(low, high + 1, (rows // 2, K))
    edges = np.where(rng.random((rows - rows // 2, K)) < 0.5, low, high)
    return np.concatenate([uniform, edges]).astype(np.uint8)


def exactness(emulators, levels) -> dict:
    """{level: {variant: fraction of wrong outputs}} for a 64 x 4,096 product."""
    import onnx

    from edgegnn.cpu import LEVELS, host_cpu

    rng = np.random.default_rng(0)
    codes = np.where(rng.random((K, 4096)) < 0.5, -127, 127).astype(np.int8)
    codes[:, ::2] = rng.integers(-127, 128, (K, 2048))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        exact = {}
        for name in VARIANTS:
            onnx.save(model(name, codes), f"{tmp}/{name}.onnx")
            x = inputs(name, rng)
            np.save(f"{tmp}/{name}-x.npy", x)
            exact[name] = (x.astype(np.int64) - VARIANTS[name][0]) @ codes.astype(np.int64)
        runs = {"host": None}
        runs.update({level: emulators.command(LEVELS[level], [f"{tmp}/worker.py", f"{tmp}/{level}.json"],
                                              Path(tmp)) for level in levels})
        Path(tmp, "worker.py").write_text(WORKER)
        for level, command in runs.items():
            Path(tmp, f"{level}.json").write_text(json.dumps({"dir": tmp, "level": level, "variants": list(VARIANTS)}))
            argv, env = command if command else ([sys.executable, f"{tmp}/worker.py", f"{tmp}/{level}.json"],
                                                 dict(os.environ))
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0:
                raise SystemExit(f"{level}: {done.stderr[-500:]}")
            key = f"{host_cpu()['level']} (this machine)" if level == "host" else level
            out[key] = {name: float((np.load(f"{tmp}/{level}-{name}-y.npy") != exact[name]).mean())
                        for name in VARIANTS}
            print(key, out[key], flush=True)
    return out


def speed(rows: int, rounds: int, iterations: int) -> dict:
    """{variant: p50 µs (median over rounds)} of one MatMulInteger call, 1 thread, interleaved."""
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    codes = rng.integers(-127, 128, (K, rows)).astype(np.int8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = {name: ort.InferenceSession(model(name, codes).SerializeToString(), options,
                                           providers=["CPUExecutionProvider"]) for name in VARIANTS}
    x = {name: inputs(name, rng, 2)[:1] for name in VARIANTS}
    p50 = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, session in sessions.items():
            for _ in range(30):
                session.run(None, {"x": x[name]})
            times = []
            for _ in range(iterations):
                start = time.perf_counter_ns()
                session.run(None, {"x": x[name]})
                times.append(time.perf_counter_ns() - start)
            p50[name].append(float(np.median(times)) / 1e3)
    return {name: {"p50_us": round(statistics.median(v), 1), "p50_us_per_round": [round(t, 1) for t in v]}
            for name, v in p50.items()}


def quality(checkpoint_path: str, users: int = 10_000) -> dict:
    """{"<scales> <x>": {"recall@20", "ndcg@20"}} on sampled Gowalla test users (new users)."""
    from common import gowalla_split

    from edgegnn.edge_eval import histories_from_csr
    from edgegnn.edge_model import matmul_transposed
    from edgegnn.fold import fold
    from edgegnn.metrics import evaluate_scorer
    from edgegnn.tensors import quantize_rows
    from edgegnn.train.checkpoint import load_checkpoint

    edge, split = fold(load_checkpoint(checkpoint_path)), gowalla_split()
    train, test = split.train.to_csr(), split.test.to_csr()
    history = histories_from_csr(train)
    candidates = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))
    rng = np.random.default_rng(0)
    calibration = rng.choice(candidates, 2048, replace=False)
    sample = np.sort(rng.choice(candidates, min(users, len(candidates)), replace=False))
    out = {}
    for scales in ("per-item", "per-table"):
        q = edge.with_tensors(None, **{name: quantize_rows(edge.tensors[name].to_dense(),
                                                           per_tensor=scales == "per-table")
                                       for name in ("message", "item")})
        peak = float(np.abs(q.encode([history[u] for u in calibration])).max())
        for x_mode, levels in (("float", None), ("static", 127), ("static", 63), ("per-query", 127),
                               ("per-query", 63)):
            def scorer(batch, x_mode=x_mode, levels=levels, q=q, peak=peak):
                x = q.encode([history[u] for u in batch])
                if levels is not None:
                    step = peak / levels if x_mode == "static" else np.abs(x).max(1, keepdims=True) / levels
                    x = (np.clip(np.rint(x / step), -levels, levels) * step).astype(np.float32)
                return matmul_transposed(x, q.tensors["item"])

            name = f"{scales} x {x_mode}" + ("" if levels is None else f" {levels} levels")
            metrics = evaluate_scorer(scorer, train, test, ks=(20,), users=sample)
            out[name] = {k: round(metrics[k], 5) for k in ("recall@20", "ndcg@20")}
            print(name, out[name], flush=True)
    return {"users": int(len(sample)), "users_as": "new (history only)", "results": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None, help="a Gowalla checkpoint, for the quality part")
    parser.add_argument("--emulators", default=None, help="emulator folder (default: $EDGEGNN_EMULATORS)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()

    from common import relative, write_json

    from edgegnn.export.emulation import find_emulators

    emulators = find_emulators(args.emulators)
    levels = list(EMULATED) if emulators is not None else []
    result = {"variants": {name: {"x_zero_point": v[0], "x_range": [v[1], v[2]], "codes": v[3]}
                           for name, v in VARIANTS.items()},
              "exactness_wrong_fraction": exactness(emulators, levels),
              "speed_this_machine": {str(rows): speed(rows, args.rounds, args.iterations)
                                     for rows in (4096, 40981, 262144)}}
    print(json.dumps(result["speed_this_machine"], indent=1), flush=True)
    if args.checkpoint:
        result["quality_gowalla"] = {"checkpoint": relative(args.checkpoint), **quality(args.checkpoint)}
    result["note"] = ("exactness: 16 queries (8 uniform over the variant's range, 8 at its ends) x 4,096 outputs "
                      "against the exact integer product; speed: this machine only (emulated time means nothing)")
    print(f"wrote {write_json('int8_cpu_paths', result)}")


if __name__ == "__main__":
    main()
