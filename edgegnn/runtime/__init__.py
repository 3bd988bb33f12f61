"""The edge runtime: load an exported artifact and recommend from a user's history.

    from edgegnn.runtime import Recommender
    rec = Recommender.open("artifacts/android")
    rec.recommend(["i12", "i55"], k=10)      # [(raw item id, score), ...]

Imports only numpy plus, lazily and by artifact kind, onnxruntime (model.onnx) or
ai_edge_litert (model.tflite) -- never torch or the training stack (a test checks it), so an
edge app can ship this package with the artifact.
"""

from edgegnn.runtime.errors import ArtifactError, NotAnArtifactError, RecommendError
from edgegnn.runtime.manifest import SCHEMA_VERSION, read_manifest, verify_files
from edgegnn.runtime.recommender import Recommendation, Recommender

__all__ = ["Recommender", "Recommendation", "ArtifactError", "NotAnArtifactError", "RecommendError", "SCHEMA_VERSION",
           "read_manifest", "verify_files"]
