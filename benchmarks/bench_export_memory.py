"""Does an int8 artifact stay int8 in memory? Peak RSS of fresh processes opening fp32 vs int8 artifacts.

A synthetic LightGCN EdgeModel (message and item tables, ITEMS x DIM each, default 200k x 64:
fp32 tables 102 MB, int8 26 MB + scales) is exported for cpu-x86_64 (ONNX, also with its
tables as external data, which ONNX Runtime memory-maps) and android-litert (TFLite, with and
without XNNPACK). Each artifact is opened in a fresh process by benchmarks/memory_probe.py,
which defines the figures (baseline, growth at load, growth at run, bytes on disk). A runtime
that dequantized int8 tables at load would grow by at least the fp32 table bytes.

    python benchmarks/bench_export_memory.py [--items 200000] [--dim 64]
Writes benchmarks/results/export_memory.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
PROBE = Path(__file__).resolve().parent / "memory_probe.py"


def synthetic_model(items: int, dim: int, precision: str):
    """A LightGCN EdgeModel with random tables (fp32, or per-row int8 / int4 with a static user scale)."""
    from edgegnn.edge_model import EdgeModel
    from edgegnn.tensors import DenseTensor, quantize_rows

    rng = np.random.default_rng(0)
    message = (rng.standard_normal((items, dim)) * 0.05).astype(np.float32)
    item = (rng.standard_normal((items, dim)) * 0.1).astype(np.float32)
    edge = EdgeModel(kind="lightgcn", tensors={"message": DenseTensor(message), "item": DenseTensor(item)},
                     item_ids=np.array([str(i) for i in range(items)]), params={"a0": 0.25})
    if precision == "fp32":
        return edge
    bits = {"int8": 8, "int4": 4}[precision]
    quantized = edge.with_tensors({"pass": "quantize", "precision": precision},
                                  message=quantize_rows(message, bits), item=quantize_rows(item, bits))
    return dataclasses.replace(quantized, activation_scales={"user": 0.01})


def probe(artifact: Path, *extra: str) -> dict:
    out = subprocess.run([sys.executable, str(PROBE), str(artifact), *extra], capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from common import write_json

    from edgegnn.export import export
    from edgegnn.targets import load_target

    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    fp32_table_bytes = 2 * args.items * args.dim * 4
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "int8"):
            edge = synthetic_model(args.items, args.dim, precision)
            runs = [("cpu-x86_64", {}, ()), ("cpu-x86_64", {"external_data_bytes": 0}, ()),
                    ("android-litert", {}, ("--delegate", "xnnpack")), ("android-litert", {}, ("--delegate", "none"))]
            for target, kwargs, probe_args in runs:
                name = f"{target}-{precision}" + ("-external" if kwargs else "") + \
                    (f"-{probe_args[1]}" if probe_args else "")
                out = Path(tmp) / name
                if not out.exists():    # the targets' own budgets are for real apps; this measures
                    export(edge, dataclasses.replace(load_target(target), memory_budget="8GB"), out_dir=out, **kwargs)
                figures = probe(out, *probe_args)
                rows.append({"artifact": name, "precision": precision, **figures,
                             "model_load_peak_vs_fp32_tables": figures["model_load_peak_growth"] / fp32_table_bytes})
                print(f"{name:36s} disk {figures['disk_bytes'] / 1e6:7.1f} MB  model load peak "
                      f"+{figures['model_load_peak_growth'] / 1e6:7.1f} MB  "
                      f"open peak +{figures['load_peak_growth'] / 1e6:7.1f} MB"
                      f"  resident +{figures['load_rss_growth'] / 1e6:7.1f} MB  "
                      f"run +{figures['run_peak_growth'] / 1e6:5.1f} MB")
    path = write_json("export_memory", {
        "items": args.items, "dim": args.dim, "fp32_table_bytes": fp32_table_bytes, "results": rows,
        "definitions": "see benchmarks/memory_probe.py; growth figures are bytes over the baseline process "
                       "(python + numpy + edgegnn.runtime + the runtime imported)"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
