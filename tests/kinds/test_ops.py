"""Model kinds: every backend implements the ops the kinds use, and a new kind is one module."""

from __future__ import annotations

import types

import numpy as np
import pytest

from edgegnn.compress.distill import TorchOps
from edgegnn.edge_model import EdgeModel, NumpyOps
from edgegnn.export import onnx_graph, tflite_graph
from edgegnn.export.onnx_graph import OnnxOps
from edgegnn.export.plan import GraphOptions, io_spec
from edgegnn.export.tflite_graph import TfliteOps
from edgegnn.export.verify import BoundOps
from edgegnn.kinds import KINDS, item_scores, kind
from edgegnn.kinds.ops import OPS
from edgegnn.tensors import DenseTensor
from tests.export import models
from tests.export.graph_checks import check_top

BACKENDS = {"numpy": NumpyOps, "bounds": BoundOps, "torch": TorchOps, "onnx": OnnxOps, "tflite": TfliteOps}


class _Recorder:
    """Ops that record their names; optional tensors and e_u⁰ present, so every branch is taken."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __getattr__(self, name):
        def op(*args, **kwargs):
            self.used.add(name)
            return True if name == "has" else object()
        return op


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_backend_implements_the_ops_a_kind_uses(name, backend):
    recorder = _Recorder()
    kind(name).encode(recorder, {"a0": 0.5})
    item_scores(name, recorder, {"a0": 0.5})
    assert recorder.used <= set(OPS), recorder.used - set(OPS)
    missing = [op for op in recorder.used if not callable(getattr(BACKENDS[backend], op, None))]
    assert not missing, f"{backend} lacks {missing}, which the {name} kind uses"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_implements_the_whole_interface(backend):
    assert [op for op in OPS if not callable(getattr(BACKENDS[backend], op, None))] == []


def _mean_pool_kind():
    """A kind written the way a new one is: tables, device math against the ops, nothing else."""
    def encode(ops, params):
        pooled = ops.history_pool("rows", "mean")
        base = ops.user_base()
        return pooled if base is None else ops.add(pooled, ops.scale(base, params["beta"]))

    return types.SimpleNamespace(NAME="meanpool", TABLES=("rows", "item"), HISTORY_TABLES=("rows",), WEIGHTS=(),
                                 ACTIVATIONS=(), encode=encode, base_dim=lambda tensors: tensors["item"].shape[1])


def test_a_new_kind_runs_on_every_backend_from_its_module_alone(monkeypatch):
    """Registered in KINDS, a kind's device math runs in the simulation, the ONNX and the TFLite
    graphs (compared by the verification's bounds) with no other file touched."""
    monkeypatch.setitem(KINDS, "meanpool", _mean_pool_kind())
    rng = np.random.default_rng(0)
    edge = EdgeModel(kind="meanpool", item_ids=np.array([f"i{i}" for i in range(120)]), params={"beta": 0.5},
                     tensors={"rows": DenseTensor(rng.standard_normal((120, 8)).astype(np.float32)),
                              "item": DenseTensor(rng.standard_normal((120, 8)).astype(np.float32))})
    hist = models.histories(4, 5, items=120)
    base = rng.standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(edge.encode(hist, base),
                               [edge.tensors["rows"].values[h].mean(0) + 0.5 * b for h, b in zip(hist, base)],
                               rtol=1e-5)
    options = GraphOptions(top_k=6)
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_graph.build(edge, options, io_spec(edge, options, index_dtype="int64"))
                                   .SerializeToString(), providers=["CPUExecutionProvider"])
    history, mask = models.padded(hist)
    items, scores = session.run(["top_items", "top_scores"],
                                {"history": history, "history_mask": mask, "user_base": base})
    check_top(edge, hist, base, items, scores, options=options, exact=True)
    from ai_edge_litert.interpreter import Interpreter
    fixed = GraphOptions(top_k=6, history_length=5, batch=1)
    runner = Interpreter(model_content=tflite_graph.build(edge, fixed)).get_signature_runner("serving_default")
    history, mask = models.padded(hist, width=5)
    outs = [runner(history=history[r:r + 1], history_mask=mask[r:r + 1], user_base=base[r:r + 1]) for r in range(4)]
    check_top(edge, hist, base, np.concatenate([o["top_items"] for o in outs]),
              np.concatenate([o["top_scores"] for o in outs]), options=fixed, fmt="tflite", exact=True)


def test_an_unknown_kind_is_one_error_naming_the_known_ones():
    from edgegnn.errors import ConfigError

    with pytest.raises(ConfigError, match="kind='transformer' is invalid: allowed: lightgcn, sage, gat, graph-filter"):
        EdgeModel(kind="transformer", tensors={}, item_ids=np.array([]))
