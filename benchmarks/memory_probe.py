"""Measure one artifact's memory in this (fresh) process; print one JSON line. Run as a script:

    python benchmarks/memory_probe.py ARTIFACT_DIR [--threads 1] [--delegate xnnpack|none]

Figures (bytes, from /proc/self/status; writing 5 to /proc/self/clear_refs resets VmHWM):
    baseline_rss            RSS with python, numpy, edgegnn.runtime and the artifact's runtime imported
    model_load_peak_growth  peak RSS while the runtime loads the model file, minus baseline
    model_load_rss_growth   RSS after it, minus baseline (what the model keeps resident)
    load_peak_growth        peak RSS over the whole open (model + item index) minus baseline
    load_rss_growth         RSS after opening minus baseline (what stays resident)
    run_peak_growth         peak RSS over 20 queries (history of 10 items) minus RSS after opening
    disk_bytes              bytes of the model file(s) on disk
The /proc readers live in edgegnn.profile.probe (`memory`, `reset_peak`), which `edgegnn profile`
runs per configuration with latency figures too. The artifact is opened as Recommender.open does
it, in two measured phases (model, then the item index), skipping the checksum pass so that
reading the file for hashing is not counted; the runtime is imported before the baseline so that
its libraries are not counted either.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--delegate", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    from edgegnn.profile.probe import memory as status
    from edgegnn.profile.probe import reset_peak
    from edgegnn.runtime import Recommender, read_manifest
    from edgegnn.runtime.backends import open_backend
    from edgegnn.runtime.items import ItemIndex

    manifest = read_manifest(args.artifact)
    if manifest["kind"] == "onnx":
        import onnxruntime  # noqa: F401 -- imported before the baseline
    else:
        import ai_edge_litert.interpreter  # noqa: F401
    base = status()
    reset_peak()
    directory = Path(args.artifact)
    backend = open_backend(directory / manifest["model_file"], manifest, threads=args.threads, delegate=args.delegate)
    model = status()
    rec = Recommender(directory, manifest, ItemIndex.open(directory, manifest), backend)
    loaded = status()
    reset_peak()
    history = [np.arange(10) * 7]
    embedding = {"user_embedding": np.ones((1, manifest.get("embedding_dim", 1)), np.float32)}
    for _ in range(20):         # a history, or a user embedding (variant "user")
        rec.run_rows(history) if manifest["variant"] == "history" else rec.backend.run(embedding)
    ran = status()
    disk = sum(entry["bytes"] for name, entry in manifest["files"].items() if name.startswith("model."))
    print(json.dumps({"baseline_rss": base["VmRSS"], "model_load_peak_growth": model["VmHWM"] - base["VmRSS"],
                      "model_load_rss_growth": model["VmRSS"] - base["VmRSS"],
                      "load_peak_growth": max(model["VmHWM"], loaded["VmHWM"]) - base["VmRSS"],
                      "load_rss_growth": loaded["VmRSS"] - base["VmRSS"],
                      "run_peak_growth": ran["VmHWM"] - loaded["VmRSS"], "disk_bytes": disk}))


if __name__ == "__main__":
    main()
