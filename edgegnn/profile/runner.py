"""The sweep: every artifact x batch x history length x threads, each in a fresh process.

    result = profile(["artifacts/cpu", "artifacts/android"], batches=(1, 8, 64), history_lens=(5, 50, 200),
                     threads=(1, 4), iterations=200, warmup=20, split=split)

Each configuration runs `python -m edgegnn.profile.probe` in a new process (see
`edgegnn.profile.probe` for the figures); configurations of different artifacts are
interleaved (artifact is the innermost loop) so that a noisy neighbour slows all of them alike.

Where an artifact runs:
    onnx, x86_64/any   ONNX Runtime here, with the artifact's execution providers; a provider
                       this onnxruntime does not list (CUDA, TensorRT) skips the artifact with a
                       message (status "skipped"), never a crash.
    tflite             LiteRT here, its delegate (XNNPACK) with the swept thread count.
    onnx for aarch64   on x86_64 the probe runs under user-mode QEMU (`py-arm64` of the emulator
                       folder $EDGEGNN_EMULATORS, `edgegnn.export.emulation`); its answers are
                       compared with a native run of the same artifact ("correct"), and its
                       latency is marked emulated (meaningless as a figure). Without an emulator
                       folder: skipped, with a message.

Quality (optional): Recall@20 and NDCG@20 of each artifact, measured by running it through the
runtime on a split's test users (`edgegnn.export.evaluate`'s protocol, users as new: no
e_u⁰); without a split, the metrics the manifest recorded at export, if any.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgegnn.errors import ConfigError, EdgeGNNError, ExportError

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_S = 600
EMULATED_ITERATIONS = 3
_OPTION = {"batches": "batch", "history_lens": "history-len", "threads": "threads"}


@dataclass(frozen=True)
class Sweep:
    """The configurations to measure (every combination), each >= 1."""

    batches: tuple[int, ...] = (1,)
    history_lens: tuple[int, ...] = (20,)
    threads: tuple[int, ...] = (1,)
    iterations: int = 200
    warmup: int = 20

    def __post_init__(self) -> None:
        for name in ("batches", "history_lens", "threads"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(name, list(values), "give at least one value")
            for value in values:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(_OPTION[name], value, "must be an integer >= 1")
        if self.iterations < 1:
            raise ConfigError("iterations", self.iterations, "must be >= 1")
        if self.warmup < 0:
            raise ConfigError("warmup", self.warmup, "must be >= 0")

    def configs(self) -> list[tuple[int, int, int]]:
        """(batch, history length, threads) for every combination."""
        return [(b, h, t) for b in self.batches for h in self.history_lens for t in self.threads]


@dataclass
class ProfileResult:
    """What `profile` measured.

    Attributes:
        artifacts: per artifact path: name, target, kind, precision, disk bytes, status
            ("ok" | "emulated" | "skipped"), message, quality (recall@20, ndcg@20, source, and
            the popularity baseline's on the same users).
        rows: one dict per configuration measured (the probe's figures plus artifact, status).
        sweep: the configurations asked for.
        host: machine, python, runtime versions.
    """

    artifacts: dict[str, dict] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    sweep: Sweep = field(default_factory=Sweep)
    host: dict = field(default_factory=dict)


def profile(artifacts: Sequence[str | Path], *, sweep: Sweep | None = None, split=None,
            names: Sequence[str] | None = None,
            on_progress: Callable[[str, int, int], None] | None = None) -> ProfileResult:
    """Measure every artifact in every configuration of `sweep`, each in a fresh process.

    Args:
        artifacts: artifact folders (`edgegnn export --out`).
        sweep: the configurations (default: batch 1, history 20, 1 thread, 200 iterations).
        split: a `Split`; when given, Recall/NDCG@20 of each artifact on its test users.
        names: labels of the artifacts in the report (default: folder names).
        on_progress: called as (stage, done, total).
    """
    sweep = sweep or Sweep()
    progress = on_progress or (lambda stage, done, total: None)
    paths = [Path(a) for a in artifacts]
    if not paths:
        raise ConfigError("artifacts", [], "give at least one artifact folder")
    labels = list(names) if names is not None else _labels(paths)
    result = ProfileResult(sweep=sweep, host=_host())
    plans = {}
    for path, label in zip(paths, labels):
        info, plan = _plan(path, label)
        result.artifacts[str(path)] = info
        plans[str(path)] = plan
    runnable = [p for p in paths if plans[str(p)] is not None]
    configs = sweep.configs()
    total = len(configs) * len(runnable)
    done = 0
    for batch, history_len, threads in configs:
        for path in runnable:
            info = result.artifacts[str(path)]
            progress(f"{info['name']} b={batch} h={history_len} t={threads}", done, total)
            row = _run_probe(path, plans[str(path)], batch=batch, history_len=history_len, threads=threads,
                             sweep=sweep)
            result.rows.append({"artifact": info["name"], "path": str(path), "status": info["status"], **row})
            done += 1
            progress(f"{info['name']} b={batch} h={history_len} t={threads}", done, total)
    for path in runnable:
        info = result.artifacts[str(path)]
        if info["status"] == "emulated":
            info["correct"] = _emulation_correct(path, result.rows, info["name"])
    for i, path in enumerate(paths):
        info = result.artifacts[str(path)]
        progress("quality", i, len(paths))
        if info["status"] != "skipped":
            info["quality"] = quality(path, split) if split is not None else _manifest_quality(info["manifest"])
        info.pop("manifest", None)
    progress("quality", len(paths), len(paths))
    return result


# ---- planning: where and how each artifact runs --------------------------------------------

def _plan(path: Path, label: str) -> tuple[dict, list[str] | None]:
    """(artifact info, the command prefix that runs the probe, or None if it cannot run here)."""
    from edgegnn.runtime import read_manifest, verify_files

    manifest = read_manifest(path)        # not an artifact: exit 1; damaged: exit 3 (before any run)
    verify_files(path, manifest)          # the probes open it unverified: check every file once here
    target = manifest["target"]
    disk = sum(int(e["bytes"]) for name, e in manifest["files"].items() if name.startswith("model."))
    info = {"name": label, "path": str(path), "target": target["name"], "kind": manifest["kind"],
            "precision": manifest["precision"], "recipe": [e.get("pass") for e in manifest.get("recipe", [])],
            "arch": target["arch"], "disk_bytes": disk, "status": "ok", "message": "", "quality": None,
            "manifest": manifest}
    _check_runtime_installed(manifest["kind"])
    if manifest["kind"] == "onnx":
        missing = _missing_providers(target.get("providers") or [])
        if missing:
            info.update(status="skipped", message=f"{', '.join(missing)} not available in this onnxruntime "
                                                  f"(it lists {', '.join(_ort_providers())}); install "
                                                  "onnxruntime-gpu on a machine with the device to profile it")
            log.warning("%s: %s", label, info["message"])
            return info, None
    here = platform.machine().lower()
    if manifest["kind"] == "onnx" and target["arch"] == "aarch64" and here not in ("aarch64", "arm64"):
        runner = arm_python()
        if runner is None:
            info.update(status="skipped", message="built for aarch64 and this machine is "
                                                  f"{here}: no aarch64 emulator (set EDGEGNN_EMULATORS to a "
                                                  "folder from scripts/setup_emulators.sh)")
            log.warning("%s: %s", label, info["message"])
            return info, None
        info.update(status="emulated", message="ran under QEMU user-mode emulation: correctness only, "
                                               "latency and memory are the emulator's, not the device's")
        return info, [str(runner)]
    return info, [sys.executable]


def arm_python() -> Path | None:
    """The aarch64 python launcher (`py-arm64` of the emulator folder $EDGEGNN_EMULATORS), or None."""
    from edgegnn.export.emulation import find_emulators

    emulators = find_emulators()
    return emulators.python_arm64 if emulators is not None and emulators.python_arm64.is_file() else None


def _check_runtime_installed(kind: str) -> None:
    import importlib.util

    from edgegnn.runtime.formats import format_of

    fmt = format_of(kind)
    module, package = fmt.module, fmt.package
    if importlib.util.find_spec(module) is None:
        raise ExportError(f"the {kind} artifact needs {package}, which is not installed",
                          hint=f"pip install {package}")


def _ort_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _missing_providers(wanted: Sequence[str]) -> list[str]:
    """Accelerator providers the artifact asks for that this onnxruntime lacks (CPU always exists)."""
    available = set(_ort_providers())
    return [p for p in wanted if p not in available and p != "CPUExecutionProvider"]


# ---- running one configuration -------------------------------------------------------------

def _run_probe(path: Path, prefix: list[str], *, batch: int, history_len: int, threads: int, sweep: Sweep) -> dict:
    emulated = prefix[0] != sys.executable
    iterations, warmup = (EMULATED_ITERATIONS, 1) if emulated else (sweep.iterations, sweep.warmup)
    command = [*prefix, "-m", "edgegnn.profile.probe", str(Path(path).resolve()), "--batch", str(batch),
               "--history-len", str(history_len), "--threads", str(threads), "--iterations", str(iterations),
               "--warmup", str(warmup)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ExportError(f"{path}: the probe (batch {batch}, history {history_len}, threads {threads}) ran "
                          f"past {PROBE_TIMEOUT_S} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"{path}: the probe process failed (exit {done.returncode}): {tail[:300]}")
    row = json.loads(lines[-1])
    if "error" in row:
        error = ExportError if row.get("exit_code", 3) == 3 else EdgeGNNError
        raise error(f"{path}: {row['error']}")
    return row


def _emulation_correct(path: Path, rows: list[dict], name: str) -> bool:
    """Do the emulated runs rank the first query as a native run of the same artifact does?"""
    mine = [r for r in rows if r["artifact"] == name]
    ok = True
    for row in mine:
        native = _run_probe(path, [sys.executable], batch=row["batch"], history_len=row["history_len"],
                            threads=row["threads"], sweep=Sweep(iterations=1, warmup=0))
        row["correct"] = native["check"] == row["check"]
        ok = ok and row["correct"]
    return ok


# ---- quality -------------------------------------------------------------------------------

def quality(path: str | Path, split) -> dict:
    """Recall@20 and NDCG@20 of the artifact on the split's test users, by running it (users as new).

    The protocol of `edgegnn.export.evaluate` (histories = training items, newest H kept; the 20
    best items outside the training items, `Recommender.top_rows`), without the simulation.
    """
    import numpy as np

    from edgegnn.export.evaluate import CUTOFF, eval_data, ranking_sums
    from edgegnn.metrics import popularity_metrics
    from edgegnn.runtime import Recommender

    rec = Recommender.open(path)
    data = eval_data(split.train, split.test, rec.item_ids)
    sums, history_length = np.zeros(2), rec.history_length
    for start in range(0, len(data.users), 256):
        users = data.users[start:start + 256]
        histories = [data.train_csr.indices[data.train_csr.indptr[u]:data.train_csr.indptr[u + 1]].astype(np.int64)
                     for u in users]
        fed = [h[-history_length:] if history_length else h for h in histories]
        top, _ = rec.top_rows(fed, CUTOFF, exclude=histories)
        sums += ranking_sums(top, data.truth_csr[users])
    n = len(data.users)
    popular = popularity_metrics(data.train_csr, data.truth_csr, ks=(CUTOFF,), users=data.users)
    return {f"recall@{CUTOFF}": float(sums[0] / n), f"ndcg@{CUTOFF}": float(sums[1] / n), "users": int(n),
            "popularity": {k: float(popular[k]) for k in (f"recall@{CUTOFF}", f"ndcg@{CUTOFF}")},
            "source": "measured now on the given data's test split (users as new)"}


def _manifest_quality(manifest: dict) -> dict | None:
    metrics = (manifest.get("metrics") or {}).get("artifact")
    if not metrics:
        return None
    popular = manifest["metrics"].get("popularity")
    return {**{k: float(v) for k, v in metrics.items()}, "users": manifest["metrics"].get("users"),
            **({"popularity": popular} if popular else {}),
            "source": f"recorded at export ({manifest['metrics'].get('users_as', '')})"}


def _labels(paths: list[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def _host() -> dict:
    import importlib.metadata as md

    versions = {}
    for name in ("numpy", "onnxruntime", "ai-edge-litert"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    from edgegnn.cpu import host_cpu

    return {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "cpu": host_cpu(), "versions": versions}
