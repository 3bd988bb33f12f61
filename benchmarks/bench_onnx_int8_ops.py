"""Which int8 scoring op to use in ONNX graphs: what runs on ONNX Runtime's CPU provider, how fast.

The scoring query of the exported model: a user vector x [B, d] against a per-row int8 item
table q [I, d] with float32 scales s [I], then TopK. Candidates (each a tiny onnx.helper graph):
    fp32           MatMul(x, tableᵀ [d, I] fp32)                               (reference)
    dq_table       DequantizeLinear(q [I, d], s, axis=0) -> Transpose -> MatMul (the anti-pattern:
                   ORT constant-folds the DequantizeLinear, so the table sits in memory as fp32)
    mmi_s8s8       x -> int8 (static scale), MatMulInteger(int8, qᵀ int8) -> Cast -> Mul(scales)
    mmi_u8s8_static  x as 7-bit uint8 (values 1..127, zero point 64) with the static scale: what
                   edgegnn exports (exact on every CPU: README, "Right on every CPU")
    mmi_u8s8_rowdyn  the same with one symmetric scale per user row computed in the graph
                   (exported when the model has no static scale)
    mmi_u8s8       x -> uint8 (DynamicQuantizeLinear: one asymmetric scale for the whole batch),
                   MatMulInteger(uint8, int8, zero point)
    mmi_u8u8       x -> uint8, table stored uint8 (q + 128, zero point 128)
    qlinear_s8s8   QLinearMatMul(int8, int8) -> int8 scores (loses resolution, for comparison)
    nbits8         com.microsoft MatMulNBits, 8 bits, one block per row (what edgegnn exports for
                   tables of >= 2^17 rows: memory-bound there, it beats MatMulInteger)
Each reports p50/p90 of session.run (batch 1 and 32, one intra-op thread, interleaved rounds),
whether ORT accepted the graph, and the top-20 overlap with fp32. Writes
benchmarks/results/onnx_int8_ops.json (onnx_int8_ops_ITEMS.json for another --items).

    python benchmarks/bench_onnx_int8_ops.py [--items 40981] [--dim 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _graphs(table: np.ndarray, user_scale: float, k: int, score_peak: float) -> dict:
    from onnx import TensorProto, helper, numpy_helper

    from edgegnn.export.onnx_graph import USER_LEVELS, USER_ZERO_POINT

    num_items, dim = table.shape
    peak = np.abs(table).max(axis=1)
    scale = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)

    def model(nodes, inits, out_type=TensorProto.FLOAT):
        inits = list(inits) + [numpy_helper.from_array(np.array([k], np.int64), "k")]
        graph = helper.make_graph(
            nodes + [helper.make_node("TopK", ["scores", "k"], ["top_scores", "top_items"], axis=-1)], "score",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", dim])],
            [helper.make_tensor_value_info("top_scores", out_type, ["B", k]),
             helper.make_tensor_value_info("top_items", TensorProto.INT64, ["B", k])], inits)
        return helper.make_model(graph,
                                 opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)],
                                 ir_version=10,
                                 producer_name="bench")

    A = numpy_helper.from_array
    static = [A(np.array(user_scale, np.float32), "xs"), A(np.array(0, np.int8), "xz"),
              A(np.array(-127 * user_scale, np.float32), "lo"), A(np.array(127 * user_scale, np.float32), "hi")]
    out = {}
    out["fp32"] = model([helper.make_node("MatMul", ["x", "wT"], ["scores"])],
                        [A(np.ascontiguousarray((q * scale[:, None]).T.astype(np.float32)), "wT")])
    out["dq_table"] = model([helper.make_node("DequantizeLinear", ["q", "s"], ["w"], axis=0),
                             helper.make_node("Transpose", ["w"], ["wT"], perm=[1, 0]),
                             helper.make_node("MatMul", ["x", "wT"], ["scores"])], [A(q, "q"), A(scale, "s")])
    quant_s8 = [helper.make_node("Clip", ["x", "lo", "hi"], ["xc"]),
                helper.make_node("QuantizeLinear", ["xc", "xs", "xz"], ["xq"])]
    rescale = [helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
               helper.make_node("Mul", ["accf", "cs"], ["scores"])]
    out["mmi_s8s8"] = model(quant_s8 + [helper.make_node("MatMulInteger", ["xq", "qT"], ["acc"])] + rescale,
                            static + [A(np.ascontiguousarray(q.T), "qT"),
                                      A((scale * user_scale).astype(np.float32), "cs")])
    # what edgegnn exports: the same clip range in 63 levels around zero point 64 (uint8 values 1..127),
    # MLAS's u8s8 path with no int16 pair sum that can saturate
    scale7 = user_scale * 127 / USER_LEVELS
    static_u8 = [A(np.array(scale7, np.float32), "xs"), A(np.array(USER_ZERO_POINT, np.uint8), "xz"),
                 A(np.array(-USER_LEVELS * scale7, np.float32), "lo"),
                 A(np.array(USER_LEVELS * scale7, np.float32), "hi")]
    out["mmi_u8s8_static"] = model(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["xc"]),
         helper.make_node("QuantizeLinear", ["xc", "xs", "xz"], ["xq"]),
         helper.make_node("MatMulInteger", ["xq", "qT", "xz"], ["acc"])] + rescale,
        static_u8 + [A(np.ascontiguousarray(q.T), "qT"), A((scale * scale7).astype(np.float32), "cs")])
    # ... and without a static scale: one symmetric scale per user row, computed in the graph
    row = [helper.make_node("Abs", ["x"], ["ax"]), helper.make_node("ReduceMax", ["ax", "one"], ["mx"], keepdims=1),
           helper.make_node("Max", ["mx", "tiny"], ["mx2"]), helper.make_node("Div", ["mx2", "levels"], ["rs"]),
           helper.make_node("Div", ["x", "rs"], ["xd"]), helper.make_node("Round", ["xd"], ["xr"]),
           helper.make_node("Add", ["xr", "zero_f"], ["xa"]),
           helper.make_node("Cast", ["xa"], ["xq"], to=TensorProto.UINT8),
           helper.make_node("MatMulInteger", ["xq", "qT", "zero_u8"], ["acc"]),
           helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
           helper.make_node("Mul", ["accf", "rs"], ["t"]), helper.make_node("Mul", ["t", "s"], ["scores"])]
    out["mmi_u8s8_rowdyn"] = model(row, [A(np.ascontiguousarray(q.T), "qT"), A(scale, "s"),
                                         A(np.array([1], np.int64), "one"),
                                         A(np.array(1e-30, np.float32), "tiny"),
                                         A(np.array(USER_LEVELS, np.float32), "levels"),
                                         A(np.array(USER_ZERO_POINT, np.float32), "zero_f"),
                                         A(np.array(USER_ZERO_POINT, np.uint8), "zero_u8")])
    dyn = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
           helper.make_node("Mul", ["xs", "s"], ["cs"])]
    out["mmi_u8s8"] = model(dyn + [helper.make_node("MatMulInteger", ["xq", "qT", "xz"], ["acc"])] + rescale,
                            [A(np.ascontiguousarray(q.T), "qT"), A(scale, "s")])
    out["mmi_u8u8"] = model(dyn + [helper.make_node("MatMulInteger", ["xq", "qTu", "xz", "wz"], ["acc"])] + rescale,
                            [A(np.ascontiguousarray((q.astype(np.int16) + 128).astype(np.uint8).T), "qTu"),
                             A(np.array(128, np.uint8), "wz"), A(scale, "s")])
    # QLinearMatMul: int8 scores need one output scale for every item: the calibration users' max |score|.
    out_scale = float(score_peak / 127)
    qlinear = quant_s8 + [helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "qT", "ws", "wz8", "ys", "yz"], ["acc"]),
                          helper.make_node("DequantizeLinear", ["acc", "ys", "yz"], ["scores"])]
    out["qlinear_s8s8"] = model(qlinear, static + [A(np.ascontiguousarray(q.T), "qT"), A(scale, "ws"),
                                                   A(np.zeros(num_items, np.int8), "wz8"),
                                                   A(np.array(out_scale, np.float32), "ys"),
                                                   A(np.array(0, np.int8), "yz")])
    # MatMulNBits (ORT contrib op): codes q + 128 as uint8, one block per row (d rounded up to a power
    # of two, padded with code 0), per-row scales, accuracy level 4 (x quantized per query, int8 compute)
    block = max(16, 1 << (dim - 1).bit_length())
    codes = np.full((num_items, 1, block), 128, np.uint8)
    codes[:, 0, :dim] = (q.astype(np.int16) + 128).astype(np.uint8)
    out["nbits8"] = model([helper.make_node("MatMulNBits", ["x", "qb", "s"], ["scores"], domain="com.microsoft",
                                            K=dim, N=num_items, bits=8, block_size=block, accuracy_level=4)],
                          [A(codes, "qb"), A(scale, "s")])
    return out


def _session(model, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    from common import write_json

    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40981)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    table = (rng.standard_normal((args.items, args.dim)) * 0.1).astype(np.float32)
    users = (rng.standard_normal((256, args.dim)) * 0.3).astype(np.float32)
    user_scale = float(np.abs(users).max() / 127)
    sessions, status = {}, {}
    for name, model in _graphs(table, user_scale, 20, float(np.abs(users @ table.T).max())).items():
        try:
            sessions[name] = _session(model, 1)
            sessions[name].run(None, {"x": users[:1]})
            status[name] = "ok"
        except Exception as exc:  # noqa: BLE001 -- the point is to record what ORT refuses
            status[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    reference = sessions["fp32"].run(None, {"x": users[:64]})[1]
    overlap = {}
    for name, sess in sessions.items():
        top = sess.run(None, {"x": users[:64]})[1]
        overlap[name] = float(np.mean([len(set(a) & set(b)) / 20 for a, b in zip(top, reference)]))
    times = {(n, b): [] for n in sessions for b in (1, 32)}
    for _ in range(args.rounds):
        for batch in (1, 32):
            for name, sess in sessions.items():
                feed = {"x": users[:batch]}
                for _ in range(10):
                    sess.run(None, feed)
                for _ in range(args.iters // (1 if batch == 1 else 8)):
                    start = time.perf_counter_ns()
                    sess.run(None, feed)
                    times[(name, batch)].append(time.perf_counter_ns() - start)
    results = {}
    for name in status:
        row = {"status": status[name]}
        if name in sessions:
            row["top20_overlap_vs_fp32"] = overlap[name]
            for batch in (1, 32):
                t = np.array(times[(name, batch)]) / 1e3
                row[f"p50_us_b{batch}"] = float(np.percentile(t, 50))
                row[f"p90_us_b{batch}"] = float(np.percentile(t, 90))
        results[name] = row
        print(f"{name:14s} {row.get('p50_us_b1', float('nan')):9.1f} us (b1) "
              f"{row.get('p50_us_b32', float('nan')):9.1f} us (b32)  "
              f"overlap {row.get('top20_overlap_vs_fp32', '-')}  {status[name]}")
    path = write_json("onnx_int8_ops" if args.items == 40981 else f"onnx_int8_ops_{args.items}",
                      {"items": args.items, "dim": args.dim, "threads": 1, "k": 20,
                       "onnxruntime": ort.__version__, "results": results,
                       "note": "p50 of session.run in microseconds; interleaved rounds; noisy shared machine"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
