"""Helpers shared by the benchmark scripts: the Gowalla split and JSON output."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOWALLA = REPO.parent / "shared" / "data" / "gowalla"
RESULTS = REPO / "benchmarks" / "results"


def gowalla_split(valid_ratio: float = 0.0):
    """The LightGCN paper's Gowalla split (train.txt / test.txt), for benchmarks only."""
    from edgegnn.data import load_dataset

    if not (GOWALLA / "train.txt").is_file():
        raise SystemExit(f"Gowalla split not found at {GOWALLA}")
    return load_dataset(str(GOWALLA), format="lightgcn", valid_ratio=valid_ratio)


def machine() -> dict:
    """The machine that measured: python, the CPU (model, feature level, the flags that pick
    kernels: edgegnn.cpu.host_cpu), cores, torch threads."""
    import torch

    from edgegnn.cpu import host_cpu

    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": host_cpu(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def relative(path) -> str:
    """A path as the JSON records it: relative to the repository when inside it (no machine's
    absolute paths), else as given."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def write_json(name: str, data: dict) -> Path:
    """Write benchmarks/results/NAME.json atomically and return its path; every file records the
    machine (and CPU) that measured it (`machine()`, unless the benchmark gave its own)."""
    data = {"machine": machine(), **data}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
    return path
