"""Trained models and exported artifacts shared by tests/export and tests/runtime.

Training and exporting are cached per process (the two test folders each register these
fixtures; the cache makes the second registration free). Everything here is small: a
LightGCN of width 16 trained for 25 epochs on the 1000 x 800 synthetic split (~2 s), and
artifacts of a few hundred KB.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from edgegnn.edge_eval import histories_from_csr
from edgegnn.tensors import quantize_rows

_ROOT = Path(tempfile.mkdtemp(prefix="edgegnn-export-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def _trained(split):
    from edgegnn.models import LightGCNConfig, ModelCard, TrainConfig
    from edgegnn.train.api import fit
    from edgegnn.train.checkpoint import save_checkpoint

    card = ModelCard(name="lightgcn-test", model=LightGCNConfig(embedding_dim=16), training=TrainConfig(epochs=25))
    checkpoint, _ = fit(split, card)
    path = save_checkpoint(checkpoint, _ROOT / "model.pt")
    return checkpoint, Path(path)


def int8_model(edge, split, bits: int = 8):
    """Per-row int8 (or int4) tables and a static user scale calibrated on 256 training users (max |e_u| / 63)."""
    q = edge.with_tensors({"pass": "quantize", "precision": f"int{bits}", "test": True},
                          message=quantize_rows(edge.tensors["message"].to_dense(), bits),
                          item=quantize_rows(edge.tensors["item"].to_dense(), bits))
    histories = [h for h in histories_from_csr(split.train.to_csr()) if len(h)][:256]
    from edgegnn.edge_model import ACTIVATION_LEVELS
    scale = float(np.abs(q.encode(histories)).max() / ACTIVATION_LEVELS["user"])
    import dataclasses
    return dataclasses.replace(q, activation_scales={"user": scale})


@functools.lru_cache(maxsize=None)
def _artifact(split, target: str, precision: str) -> Path:
    from edgegnn.export import export
    from edgegnn.fold import fold

    checkpoint, _ = _trained(split)
    model = checkpoint if precision == "fp32" else int8_model(fold(checkpoint), split, 4 if precision == "int4" else 8)
    if precision != "int8-big":
        return export(model, target, split=split, out_dir=_ROOT / f"{target}-{precision}")
    # The layout a big catalog gets (MatMulNBits, row blocks, the two-stage top-K), on this small model.
    import dataclasses

    from edgegnn.export import onnx_graph, tflite_graph
    from edgegnn.targets import load_target
    small_blocks = dataclasses.replace(load_target(target), score_block_rows=100)
    with mock.patch.object(onnx_graph, "NBITS_MIN_ROWS", 1), mock.patch.object(onnx_graph, "BLOCK_TOPK_MIN_ITEMS", 1), \
            mock.patch.object(tflite_graph, "BLOCK_TOPK_MIN_ITEMS", 1):
        return export(model, small_blocks, split=split, out_dir=_ROOT / f"{target}-{precision}")


@pytest.fixture(scope="session")
def trained(small_split):
    """(checkpoint, path of MODEL.pt)."""
    return _trained(small_split)


@pytest.fixture(scope="session")
def artifacts(small_split):
    """Artifacts by (target, precision): cpu-x86_64 and android-litert, fp32 and int8; "int8-big": int8 laid
    out as a big catalog's (ONNX: MatMulNBits scoring in row blocks; both: the two-stage top-K); "int4"
    (ONNX: packed nibbles)."""
    return lambda target, precision="fp32": _artifact(small_split, target, precision)
