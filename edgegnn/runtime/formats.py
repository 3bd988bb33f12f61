"""Export formats: one record each says what a format is, from the writer to the runtime.

    from edgegnn.runtime.formats import format_of
    fmt = format_of("onnx")        # or by a target's runtime: format_for_runtime("litert")

A record names, for its format: the model file, the target `runtime` that runs it, the pip
package and module of that runtime, the torch-free backend that opens it
(`edgegnn.runtime.backends`), the module that writes it (`edgegnn.export.<writer>`: its
`plan_graph`, `write` and `layout`), the dtype of its top_items output, whether its history
graphs also output the whole score row, and the packages whose versions a manifest records.
Adding a format: a writer module, a backend class, and a record in `FORMATS`. Only the
standard library here: the runtime imports it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from edgegnn.runtime.errors import ArtifactError


@dataclass(frozen=True)
class Format:
    name: str
    model_file: str
    runtime: str                    # a target's `runtime` field
    package: str                    # pip name of the runtime
    module: str                     # its import name
    backend: str                    # "module:Class" of the edgegnn.runtime backend
    writer: str                     # the edgegnn.export module that writes it
    index_dtype: str                # dtype of the top_items output
    full_scores: bool               # history graphs also output "scores" [B, I] (fixed H: the runtime ranks it)
    versions: tuple[str, ...]       # packages whose versions the manifest records

    def backend_class(self):
        module, name = self.backend.split(":")
        return getattr(importlib.import_module(module), name)

    def writer_module(self):
        return importlib.import_module(self.writer)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "model.onnx", "onnxruntime", "onnxruntime", "onnxruntime", "edgegnn.runtime.backends:OnnxBackend",
           "edgegnn.export.onnx_graph", "int64", False, ("numpy", "onnx", "onnxruntime")),
    Format("tflite", "model.tflite", "litert", "ai-edge-litert", "ai_edge_litert",
           "edgegnn.runtime.backends:LiteRTBackend", "edgegnn.export.tflite_graph", "int32", True,
           ("numpy", "ai-edge-litert", "flatbuffers")),
)}
RUNTIMES = tuple(f.runtime for f in FORMATS.values())


def format_of(name: str) -> Format:
    """The record of an artifact kind ("onnx", "tflite"); an unknown one is an ArtifactError."""
    if name not in FORMATS:
        raise ArtifactError(f"artifact kind {name!r} is unknown (known: {', '.join(FORMATS)})",
                            hint="a newer edgegnn may read it")
    return FORMATS[name]


def format_for_runtime(runtime: str) -> Format:
    """The record of the format a target's runtime ("onnxruntime", "litert") runs."""
    return next(f for f in FORMATS.values() if f.runtime == runtime)
