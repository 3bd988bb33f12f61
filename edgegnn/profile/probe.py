"""Measure one artifact in one configuration, in this (fresh) process; print one JSON line.

    python -m edgegnn.profile.probe ARTIFACT --batch 8 --history-len 50 --threads 1 \
        --iterations 200 --warmup 20

Imports only the standard library, numpy and `edgegnn.runtime` (plus the artifact's runtime),
so that it runs in an edge sysroot (aarch64 under QEMU) as it does here. `edgegnn.profile.runner`
starts one such process per configuration: a process that measured one configuration never
measures another, so no figure carries the heap, caches or high-water mark of an earlier one.

Queries: `batch` users, each with a history of `history_len` distinct item rows drawn with a
fixed seed (fewer if the catalog is smaller); the runtime keeps the newest H of them where the
artifact fixes H (`history_used`).

Figures (`FIELDS` defines each; the runner copies them into every report):
    times in milliseconds; memory in bytes, from /proc/self/status (VmRSS, VmHWM); writing 5 to
    /proc/self/clear_refs resets VmHWM to the current RSS between the phases
    (baseline -> load -> first inference -> steady state).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

FIELDS = {
    "pid": "id of the process that measured this configuration (one process per configuration)",
    "machine": "CPU architecture the probe ran on (platform.machine())",
    "runtime": "runtime and version that ran the model",
    "providers": "ONNX Runtime execution providers in use, or the LiteRT delegate",
    "batch": "users per runtime call (LiteRT graphs take one user per call: the runtime loops)",
    "history_len": "items in each user's history as given",
    "history_used": "items per history the graph saw (the artifact's H keeps the newest ones)",
    "threads": "intra-op threads of the runtime",
    "iterations": "timed steady-state calls",
    "warmup": "untimed calls after the first inference, before the timed ones",
    "load_ms": "session creation: opening the artifact (model file and item index, checksums not verified) "
               "until the runtime session is ready",
    "first_inference_ms": "the first call on the new session (Recommender.run_rows: padding plus runtime call); "
                          "includes one-time kernel selection and weight packing",
    "p50_ms": "median latency of one steady-state runtime call (backend.run on prepared inputs, "
              "time.perf_counter_ns), after warm-up",
    "p90_ms": "90th percentile of the steady-state call latency",
    "p99_ms": "99th percentile of the steady-state call latency",
    "max_ms": "slowest steady-state call",
    "mean_ms": "mean steady-state call latency",
    "throughput_users_per_s": "users answered per second in the steady state: batch x iterations / total timed time",
    "baseline_rss": "resident bytes of the process with python, numpy, edgegnn.runtime and the artifact's runtime "
                    "imported, before any model is opened",
    "load_peak_growth": "peak resident bytes while opening the artifact, minus baseline_rss",
    "load_rss_growth": "resident bytes after opening, minus baseline_rss (what the loaded model keeps)",
    "run_peak_growth": "peak resident bytes during the first inference, warm-up and timed calls, minus the "
                       "resident bytes after opening",
    "peak_rss": "highest resident bytes of the process over all phases (VmHWM)",
    "rss": "resident bytes at the end (VmRSS)",
    "disk_bytes": "bytes of the model file(s) on disk (items.json and manifest.json excluded)",
    "peak_reset": "whether /proc/self/clear_refs could reset the high-water mark between phases (if not, "
                  "growth figures are upper bounds measured against the whole-process peak)",
    "check": "the first 20 item rows of the first query's ranking (a correctness fingerprint compared across machines)",
}

CHECK_ITEMS = 20


def memory() -> dict[str, int]:
    """{"VmRSS": bytes, "VmHWM": bytes} of this process, from /proc/self/status (zeros where absent)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (write 5 to /proc/self/clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, nearest rank (always an observed value)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


def histories(num_items: int, batch: int, history_len: int, seed: int = 0):
    """`batch` histories of min(history_len, num_items) distinct item rows each (seeded)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    size = min(history_len, num_items)
    return [rng.choice(num_items, size, replace=False).astype(np.int64) for _ in range(batch)]


def probe(artifact: str | Path, *, batch: int, history_len: int, threads: int, iterations: int,
          warmup: int, delegate: str | None = None) -> dict:
    """Measure one configuration in this process; the figures of `FIELDS`."""
    import numpy as np

    from edgegnn.runtime import Recommender, read_manifest
    from edgegnn.runtime.backends import open_backend
    from edgegnn.runtime.items import ItemIndex

    directory = Path(artifact)
    manifest = read_manifest(directory)
    if manifest["kind"] == "onnx":
        import onnxruntime  # noqa: F401 -- imported before the baseline: its libraries are not the model's
    else:
        import ai_edge_litert.interpreter  # noqa: F401
    queries = histories(int(manifest["num_items"]), batch, history_len)
    base = memory()
    resettable = reset_peak()
    start = time.perf_counter_ns()
    backend = open_backend(directory / manifest["model_file"], manifest, threads=threads, delegate=delegate)
    rec = Recommender(directory, manifest, ItemIndex.open(directory, manifest), backend)
    load_ns = time.perf_counter_ns() - start
    loaded = memory()
    reset_peak()

    captured = {}
    run = backend.run

    def capture(feeds):
        captured["feeds"] = feeds
        return run(feeds)

    backend.run = capture
    start = time.perf_counter_ns()
    top, _ = rec.run_rows(queries)
    first_ns = time.perf_counter_ns() - start
    backend.run = run
    feeds = captured["feeds"]
    for _ in range(warmup):
        run(feeds)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        run(feeds)
        times.append(time.perf_counter_ns() - t0)
    ran = memory()
    times_ms = sorted(t / 1e6 for t in times)
    total_s = sum(times) / 1e9
    limit = rec.history_length or history_len
    disk = sum(int(e["bytes"]) for name, e in manifest["files"].items() if name.startswith("model."))
    return {
        "pid": os.getpid(), "machine": platform.machine(), "runtime": backend.runtime,
        "providers": list(backend.providers), "batch": batch, "history_len": history_len,
        "history_used": min(history_len, int(manifest["num_items"]), limit), "threads": threads,
        "iterations": iterations, "warmup": warmup,
        "load_ms": load_ns / 1e6, "first_inference_ms": first_ns / 1e6,
        "p50_ms": percentile(times_ms, 50), "p90_ms": percentile(times_ms, 90),
        "p99_ms": percentile(times_ms, 99), "max_ms": times_ms[-1] if times_ms else float("nan"),
        "mean_ms": (total_s * 1e3 / len(times)) if times else float("nan"),
        "throughput_users_per_s": (batch * len(times) / total_s) if total_s > 0 else float("nan"),
        "baseline_rss": base["VmRSS"],
        "load_peak_growth": loaded["VmHWM"] - base["VmRSS"],
        "load_rss_growth": loaded["VmRSS"] - base["VmRSS"],
        "run_peak_growth": ran["VmHWM"] - loaded["VmRSS"],
        "peak_rss": max(base["VmHWM"] if not resettable else base["VmRSS"], loaded["VmHWM"], ran["VmHWM"]),
        "rss": ran["VmRSS"], "disk_bytes": disk, "peak_reset": resettable,
        "check": np.asarray(top[0][:CHECK_ITEMS]).astype(int).tolist(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edgegnn.profile.probe", description=__doc__.splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--history-len", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--delegate", default=None)
    args = parser.parse_args(argv)
    try:
        result = probe(args.artifact, batch=args.batch, history_len=args.history_len, threads=args.threads,
                       iterations=args.iterations, warmup=args.warmup, delegate=args.delegate)
    except ImportError as exc:
        result = {"error": f"runtime not installed: {exc}", "exit_code": 3}
    except Exception as exc:  # noqa: BLE001 -- reported to the parent as one line, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result = {"error": first[:500], "exit_code": int(getattr(exc, "exit_code", 3))}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
