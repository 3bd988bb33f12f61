"""Run an artifact under other CPUs with QEMU user-mode: the emulated half of the CPU verification.

An emulator folder (built by scripts/setup_emulators.sh; found through EDGEGNN_EMULATORS) holds
    qemu/usr/bin/qemu-x86_64     runs this machine's own python under an x86-64 CPU model
                                 (-cpu Nehalem: SSE4.2; -cpu Haswell: AVX2), no sysroot needed;
    py-arm64                     runs an aarch64 python3.11 (sysroot/, and site/ with numpy,
                                 onnxruntime, ai-edge-litert) under qemu-aarch64, the CPU model
                                 taken from QEMU_CPU (cortex-a53, neoverse-n1, neoverse-v1).
ONNX Runtime and XNNPACK pick their kernels from the (emulated) cpuid / hwcaps, so each level
runs the code paths a device of that level runs. Emulated time means nothing (10-100x slower):
nothing here is timed. The worker is `edgegnn.runtime.replay` (numpy + the runtime only); for
aarch64 only the `edgegnn` package is put on the path, never this machine's site-packages.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegnn.cpu import LEVELS, CpuLevel
from edgegnn.errors import ConfigError, ExportError
from edgegnn.runtime.manifest import CLASS_OUTPUT

log = logging.getLogger(__name__)
ENV = "EDGEGNN_EMULATORS"
TIMEOUT_S = 900          # one emulated process: python start (~5 s) + the runtime's work, 10-100x slowed
_PACKAGE = Path(__file__).resolve().parents[1]      # the edgegnn package folder


@dataclass(frozen=True)
class Emulators:
    """An emulator folder (see the module docstring)."""

    root: Path

    @property
    def qemu_x86_64(self) -> Path:
        return self.root / "qemu" / "usr" / "bin" / "qemu-x86_64"

    @property
    def python_arm64(self) -> Path:
        return self.root / "py-arm64"

    def missing(self, level: CpuLevel, host_arch: str) -> str | None:
        """Why `level` cannot run here, or None if it can."""
        if level.arch == "x86_64":
            if host_arch != "x86_64":
                return "x86-64 levels are emulated on x86-64 machines only (they run this machine's python)"
            return None if os.access(self.qemu_x86_64, os.X_OK) else f"no {self.qemu_x86_64}"
        return None if os.access(self.python_arm64, os.X_OK) else f"no {self.python_arm64}"

    def command(self, level: CpuLevel, args: list[str], package_path: Path) -> tuple[list[str], dict]:
        """(argv, env) that run `python args...` under `level`, with `package_path` importable."""
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        if level.arch == "x86_64":
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_path), os.environ.get("PYTHONPATH")]))
            return [str(self.qemu_x86_64), "-cpu", level.qemu_cpu, sys.executable, *args], env
        env.update(QEMU_CPU=level.qemu_cpu, PYTHONPATH=str(package_path))
        return [str(self.python_arm64), *args], env


def find_emulators(path: str | Path | None = None) -> Emulators | None:
    """The emulator folder at `path`, else $EDGEGNN_EMULATORS; None when neither is set.

    A folder that is set but holds neither emulator is a ConfigError (a wrong setting should
    not silently verify less).
    """
    chosen = path if path is not None else os.environ.get(ENV)
    if not chosen:
        return None
    emulators = Emulators(Path(chosen).expanduser().resolve())
    if not (os.access(emulators.qemu_x86_64, os.X_OK) or os.access(emulators.python_arm64, os.X_OK)):
        raise ConfigError(ENV if path is None else "emulators", str(emulators.root),
                          "not an emulator folder (no qemu/usr/bin/qemu-x86_64, no py-arm64): build one with "
                          f"scripts/setup_emulators.sh, or unset {ENV}")
    return emulators


def run_on_levels(emulators: Emulators | None, levels: list[str], jobs: list[tuple[Path, object]]) -> dict:
    """{level: [((top_items, top_scores[, class_probabilities]), runtime, how) per job]}: each
    (artifact folder, queries) job run under each level; one process per level runs all jobs,
    the levels in parallel. An emulated process that fails is an ExportError."""
    if not levels or not jobs:
        return {}
    from edgegnn.runtime.replay import save_queries

    with tempfile.TemporaryDirectory(prefix="edgegnn-emulated-") as tmp:
        tmp = Path(tmp)
        for i, (_, queries) in enumerate(jobs):
            save_queries(tmp / f"queries-{i}.npz", queries.histories, queries.user_base, queries.embeddings)
        (tmp / "path").mkdir()
        (tmp / "path" / "edgegnn").symlink_to(_PACKAGE, target_is_directory=True)
        workers = max(1, min(len(levels), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            done = pool.map(lambda name: _run_level(emulators, LEVELS[name], [d for d, _ in jobs], tmp), levels)
            return dict(zip(levels, done))


def _run_level(emulators: Emulators, level: CpuLevel, directories: list[Path], tmp: Path) -> list:
    runs = [{"artifact": str(Path(d).resolve()), "queries": str(tmp / f"queries-{i}.npz"),
             "out": str(tmp / f"{level.name}-{i}.npz")} for i, d in enumerate(directories)]
    job = tmp / f"{level.name}.json"
    job.write_text(json.dumps({"runs": runs}))
    argv, env = emulators.command(level, ["-m", "edgegnn.runtime.replay", str(job)], tmp / "path")
    how = f"QEMU user-mode -cpu {level.qemu_cpu}"
    log.info("running %d artifact(s) under %s", len(runs), how)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, cwd=tmp)
    except subprocess.TimeoutExpired:
        raise ExportError(f"the artifacts did not finish under {how} within {TIMEOUT_S} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"the artifact could not run on {level.name} ({how}): {last[:300]}",
                          hint="check the emulator folder (scripts/setup_emulators.sh) or report this")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = []
    for run, runtime in zip(runs, report["runtimes"]):
        with np.load(run["out"]) as data:
            outputs = tuple(data[name] for name in ("top_items", "top_scores", CLASS_OUTPUT) if name in data)
            results.append((outputs, runtime, how))
    return results
