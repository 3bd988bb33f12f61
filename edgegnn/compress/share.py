"""Share pass: LightGCN's message table as a linear map of its item table (see `ShareConfig`).

The device gathers the history's rows of the item table (the table it scores with) and
multiplies their scaled sum by W: e_u = a0·e_u⁰ + ((1/sqrt(n)) Σ_{i∈history} item_i) W.
One [I, d] table ships instead of two, before any quantization, so it composes with
int8/int4 rows (the shared table is quantized once and stays shared).
"""

from __future__ import annotations

import logging

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import ShareConfig
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.tensors import DenseTensor, LowRankTensor

log = logging.getLogger(__name__)


def share_tables(edge: EdgeModel, config: ShareConfig, calibration: Calibration | None = None) -> EdgeModel:
    """`edge` with message = item @ W, W [d, d] the (ridge) least-squares fit of message on item."""
    if edge.kind != "lightgcn":
        raise ConfigError("share", edge.kind, "only a lightgcn EdgeModel has a message table to share")
    item = edge.tensors["item"]
    items = item.to_dense().astype(np.float64)
    messages = edge.tensors["message"].to_dense().astype(np.float64)
    gram = items.T @ items + config.ridge * np.eye(items.shape[1])
    weight = np.linalg.solve(gram, items.T @ messages)  # [d, d]: messages ≈ items @ weight
    residual = np.linalg.norm(items @ weight - messages) / max(np.linalg.norm(messages), 1e-30)
    log.info("share: message ≈ item · W, relative residual %.3f", residual)
    message = LowRankTensor(left=item, right=DenseTensor(np.ascontiguousarray(weight.T, dtype=np.float32)))
    return edge.with_tensors(config.recipe_entry(), message=message)
