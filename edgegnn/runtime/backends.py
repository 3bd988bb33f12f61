"""Run an artifact's model file: ONNX Runtime or LiteRT, imported lazily by artifact kind.

A backend takes the graph's inputs as arrays with a batch dimension and returns
(top_items int64 [B, W], top_scores float32 [B, W]) (`run`), or the outputs named
(`run_outputs`). LiteRT graphs take batch 1, so the LiteRT backend runs one row at a time.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgegnn.runtime.errors import ArtifactError

log = logging.getLogger("edgegnn.runtime")


class OnnxBackend:
    """ONNX Runtime session over model.onnx (dynamic batch; H dynamic or fixed by the graph).

    Args:
        path: model.onnx (its external data, if any, next to it).
        providers: execution providers in priority order; those this onnxruntime lacks are
            dropped (logged), CPUExecutionProvider is always the last resort.
        threads: intra-op threads.
    """

    kind = "onnx"
    batch: int | None = None

    def __init__(self, path: Path, *, providers: list[str], threads: int) -> None:
        import onnxruntime as ort

        available = set(ort.get_available_providers())
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        if chosen != list(providers):
            log.info("providers %s not available here; using %s", [p for p in providers if p not in available], chosen)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # noqa: BLE001 -- ORT raises its own classes for bad files; one line for all
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{path}: ONNX Runtime cannot load the model ({first[:300]})") from None
        self.providers = self.session.get_providers()
        self.runtime = f"onnxruntime {ort.__version__}"

    @classmethod
    def from_target(cls, path: Path, target: dict, *, threads: int, providers: list[str] | None = None,
                    delegate: str | None = None) -> "OnnxBackend":
        """With the target's providers unless `providers` is given (`delegate` is LiteRT's)."""
        return cls(path, providers=list(providers or target.get("providers") or ["CPUExecutionProvider"]),
                   threads=threads)

    def run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        items, scores = self.run_outputs(feeds, ["top_items", "top_scores"])
        return items.astype(np.int64, copy=False), scores

    def run_outputs(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        """The named outputs [B, ...] of one call."""
        return self.session.run(names, feeds)

    def full_scores(self, feeds: dict[str, np.ndarray], num_items: int) -> None:
        """None: ONNX graphs take any number of history slots, so a query is never left short
        (`Recommender.top_rows` feeds as many slots as the user has seen items)."""
        return None


class LiteRTBackend:
    """LiteRT interpreter over model.tflite, through its "serving_default" signature (batch 1).

    The signature's tensors are set and read by index on the interpreter (allocated once), so a
    call copies out only top_items and top_scores; the "scores" output (the query's whole score
    row, history graphs from edgegnn 0.2 on) is read on demand by `full_scores`.

    Args:
        path: model.tflite.
        delegate: "xnnpack" (LiteRT's default CPU delegate) or "none" (builtin kernels only).
        threads: interpreter threads.
    """

    kind = "tflite"
    batch = 1

    def __init__(self, path: Path, *, delegate: str | None, threads: int) -> None:
        from ai_edge_litert import interpreter as litert

        kwargs = {}
        if delegate == "none":
            kwargs["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with _quiet_native_stderr():
                self.interpreter = litert.Interpreter(model_path=str(path), num_threads=threads, **kwargs)
                self.interpreter.allocate_tensors()
            runner = self.interpreter.get_signature_runner("serving_default")
            self.inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
            self.outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
        except Exception as exc:  # noqa: BLE001 -- LiteRT raises ValueError/RuntimeError for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{path}: LiteRT cannot load the model ({first[:300]})") from None
        self.providers = ["XNNPACK" if delegate != "none" else "builtin"]
        self.runtime = f"ai-edge-litert {_version('ai-edge-litert')}"

    @classmethod
    def from_target(cls, path: Path, target: dict, *, threads: int, providers: list[str] | None = None,
                    delegate: str | None = None) -> "LiteRTBackend":
        """With the target's delegate unless `delegate` is given (`providers` are ONNX Runtime's)."""
        return cls(path, delegate=delegate or target.get("delegate"), threads=threads)

    def _invoke(self, feeds: dict[str, np.ndarray], row: int) -> None:
        for name, value in feeds.items():
            self.interpreter.set_tensor(self.inputs[name], np.ascontiguousarray(value[row:row + 1]))
        self.interpreter.invoke()

    def run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        items, scores = self.run_outputs(feeds, ["top_items", "top_scores"])
        return items.astype(np.int64), scores

    def run_outputs(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        """The named outputs [B, ...], one invocation per row."""
        rows = len(next(iter(feeds.values())))
        out: list[list[np.ndarray]] = [[] for _ in names]
        for r in range(rows):
            self._invoke(feeds, r)
            for values, name in zip(out, names):
                values.append(self.interpreter.get_tensor(self.outputs[name]))
        return [np.concatenate(values) for values in out]

    def full_scores(self, feeds: dict[str, np.ndarray], num_items: int) -> np.ndarray | None:
        """float32 [I]: every item's score for the one query in `feeds` (with inverted lists, the
        items the graph scored, "scored_rows", and -inf for the others); None for artifacts
        without the "scores" output."""
        if "scores" not in self.outputs:
            return None
        self._invoke(feeds, 0)
        scores = self.interpreter.get_tensor(self.outputs["scores"])[0]
        if "scored_rows" not in self.outputs:
            return scores
        rows = self.interpreter.get_tensor(self.outputs["scored_rows"])[0]
        full = np.full(num_items, -np.inf, np.float32)
        full[rows[rows >= 0]] = scores[rows >= 0]
        return full


@contextmanager
def _quiet_native_stderr():
    """File descriptor 2 sent to /dev/null for the block: LiteRT's C++ logs "INFO: Created TensorFlow
    Lite XNNPACK delegate for CPU." on every interpreter, past Python's sys.stderr, and has no
    switch for it. Its errors still surface: a failed load raises, and the one line names it.
    (Other threads' stderr output during the block is lost too: the block is one constructor.)"""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def open_backend(path: Path, manifest: dict, *, threads: int | None = None, providers: list[str] | None = None,
                 delegate: str | None = None):
    """The backend for the artifact's model file (its format, `edgegnn.runtime.formats`, from the
    manifest's kind)."""
    from edgegnn.runtime.formats import format_of

    target = manifest["target"]
    threads = threads if threads is not None else int(target.get("threads", 1))
    backend = format_of(manifest.get("kind", "onnx")).backend_class()
    return backend.from_target(path, target, threads=threads, providers=providers, delegate=delegate)
