"""Export an EdgeModel per target: ONNX (ONNX Runtime on x86/ARM/GPU) or TFLite (LiteRT on phones).

    from edgegnn.export import export, check_target
    from edgegnn.targets import load_target
    check_target(edge, load_target("android-litert"))          # fails fast, one line
    export(edge, "android-litert", split=split, out_dir="artifacts/android")

An artifact is a folder: model.onnx | model.tflite, items.json, manifest.json (schema
version, target, inputs/outputs, storage of each tensor, sha256 of every file, Recall/NDCG@20
measured by running the artifact next to the numpy simulation, recipe, versions, popularity
fallback). `edgegnn.runtime.Recommender` opens it without torch.

Modules: plan (options, I/O, tensor forms), onnx_graph, tflite_graph (the graphs), check
(target checks), evaluate (metrics on the artifact), artifact (atomic, checksummed folder),
api (the `export` verb).
"""

from edgegnn.export.api import TOLERANCE, export, resolve_model
from edgegnn.export.check import TargetCheck, check_target, graph_options
from edgegnn.export.plan import GraphOptions

__all__ = ["export", "check_target", "graph_options", "GraphOptions", "TargetCheck", "TOLERANCE", "resolve_model"]
