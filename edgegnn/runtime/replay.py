"""Run an artifact on given queries and keep the graph's raw outputs: the CPU verification's worker.

    python -m edgegnn.runtime.replay JOB.json

JOB.json: {"runs": [{"artifact": DIR, "queries": QUERIES.npz, "out": OUT.npz}, ...]}: one process
runs every artifact of the job (an emulated python start costs seconds).
QUERIES.npz (`save_queries`): "embeddings" float32 [B, d] (user variant), or "rows" int64 (the
histories, concatenated) with "lengths" int64 [B] and optionally "user_base" float32 [B, d⁰].
OUT.npz: "top_items" int64 [B, W], "top_scores" float32 [B, W], as the graph returned them
(nothing removed), and "class_probabilities" float32 [B, C] where the artifact has a user head.
stdout: one JSON line {"runtimes" (one per run), "machine", "cpu"}.

Imports numpy, `edgegnn.runtime` and `edgegnn.cpu` only, so that it runs unchanged in an
aarch64 sysroot under QEMU (`edgegnn.export.emulation`) as on this machine.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgegnn.runtime.manifest import CLASS_OUTPUT
from edgegnn.runtime.recommender import Recommender


def save_queries(path: Path, histories: Sequence[np.ndarray] | None = None, user_base: np.ndarray | None = None,
                 embeddings: np.ndarray | None = None) -> None:
    """Write the queries of one verification (see the module docstring)."""
    if embeddings is not None:
        np.savez(path, embeddings=np.asarray(embeddings, np.float32))
        return
    arrays = {"rows": np.concatenate([np.asarray(h, np.int64) for h in histories]),
              "lengths": np.array([len(h) for h in histories], np.int64)}
    if user_base is not None:
        arrays["user_base"] = np.asarray(user_base, np.float32)
    np.savez(path, **arrays)


def load_queries(path: Path) -> dict:
    """{"histories", "user_base", "embeddings"} (absent ones None) from `save_queries`' file."""
    with np.load(path) as data:
        if "embeddings" in data:
            return {"histories": None, "user_base": None, "embeddings": data["embeddings"]}
        histories = np.split(data["rows"], np.cumsum(data["lengths"])[:-1])
        return {"histories": histories, "user_base": data["user_base"] if "user_base" in data else None,
                "embeddings": None}


def run_queries(artifact: Path | Recommender, histories: Sequence[np.ndarray] | None = None,
                user_base: np.ndarray | None = None, embeddings: np.ndarray | None = None
                ) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    """((top_items int64 [B, W], top_scores float32 [B, W][, class_probabilities [B, C]]), "runtime
    version") of the graph of an artifact folder (opened and verified here) or of an open
    Recommender; the class probabilities where the artifact has a user class head."""
    recommender = artifact if isinstance(artifact, Recommender) else Recommender.open(artifact)
    if embeddings is not None:
        return recommender.backend.run({"user_embedding": np.ascontiguousarray(embeddings, np.float32)}), \
            recommender.backend.runtime
    names = ["top_items", "top_scores"] + ([CLASS_OUTPUT] if recommender.classes("user") else [])
    outputs = recommender.backend.run_outputs(recommender.feeds(list(histories), user_base), names)
    outputs[0] = outputs[0].astype(np.int64, copy=False)
    return tuple(outputs), recommender.backend.runtime


def main(argv: list[str] | None = None) -> None:
    from edgegnn.cpu import host_cpu

    job = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    runtimes = []
    for run in job["runs"]:
        outputs, runtime = run_queries(Path(run["artifact"]), **load_queries(Path(run["queries"])))
        np.savez(run["out"], **dict(zip(["top_items", "top_scores", CLASS_OUTPUT], outputs)))
        runtimes.append(runtime)
    print(json.dumps({"runtimes": runtimes, "machine": platform.machine(), "cpu": host_cpu()}))


if __name__ == "__main__":
    main()
